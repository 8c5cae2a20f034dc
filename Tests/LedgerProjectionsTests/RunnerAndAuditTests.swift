import Foundation
import Testing
import LedgerCore
import LedgerLog
import LedgerSimulator
import GRDB
@testable import LedgerProjections

@Suite struct ProjectorTests {
    /// Built incrementally in small transactions, at odd boundaries, or rebuilt from 0: the same rows.
    @Test func incrementalEqualsRebuild() async throws {
        let s = try await ReconciliationTests.simulate(seed: 3, days: 1)
        let head = s.log.head
        let store = try ProjectionStore(dataDirectory: s.dir.path)
        do {
            let projector = try Projector(store: store, source: s.log)
            projector.chunkSize = 977
            var end: Int64 = 0
            var step: Int64 = 1
            while end < head {
                end = min(head, end + step)
                try await projector.catchUp(to: end)
                step = step * 3 + 1
            }
        }
        let incremental = try store.dump()
        let other = TemporaryDirectory()
        let fresh = try ProjectionStore(path: other.path + "/fresh.sqlite")
        let rebuilt = try Projector(store: fresh, source: s.log)
        // Built in bulk: the secondary indexes dropped at the start and built at the end.
        rebuilt.bulkMinimum = 1
        try await rebuilt.rebuild()
        #expect(try Self.indexes(fresh) == Self.indexes(store))
        #expect(try Self.indexes(fresh).count >= 15)
        let rebuiltDump = try fresh.dump()
        if rebuiltDump != incremental {
            let a = incremental.split(separator: "\n")
            let b = rebuiltDump.split(separator: "\n")
            for (x, y) in zip(a, b) where x != y {
                Issue.record("first difference:\n incremental: \(x)\n rebuilt:     \(y)")
                break
            }
        }
        #expect(rebuiltDump == incremental)
        #expect(try store.checkpoint().nextOffset == head)
        #expect(incremental.count > 100_000)
    }

    /// The secondary indexes of a store, name and SQL, and how many indexes a bulk build left deferred.
    static func indexes(_ store: ProjectionStore) throws -> [String] {
        try store.pool.read { db in
            try String.fetchAll(db, sql: "SELECT name || ': ' || sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL ORDER BY name")
                + String.fetchAll(db, sql: "SELECT 'deferred ' || name FROM deferred_indexes ORDER BY name")
        }
    }

    /// A bulk build cut short (killed after some transactions) leaves its indexes dropped and
    /// listed; whichever catch-up comes next creates them, and answers are those of a build that
    /// was never cut.
    @Test func indexesOfABulkBuildCutShortAreBuiltByTheNextCatchUp() async throws {
        let s = try await ReconciliationTests.simulate(seed: 4, days: 1)
        let store = try ProjectionStore(dataDirectory: s.dir.path)
        let projector = try Projector(store: store, source: s.log)
        try await projector.catchUp(to: s.log.head / 3)
        let complete = try Self.indexes(store)
        // The state a killed bulk build leaves: indexes dropped, remembered, rows and checkpoint of its last transaction.
        try await store.pool.write { db in try ProjectionSchema.deferIndexes(db) }
        let cut = try Self.indexes(store)
        #expect(cut.allSatisfy { $0.hasPrefix("deferred ") })
        #expect(cut.count == complete.count)
        projector.close()
        let next = try Projector(store: store, source: s.log)
        try await next.catchUp(to: s.log.head / 2)
        #expect(try Self.indexes(store) == complete)
        // The planner uses them again.
        let plan = try await store.pool.read { db in
            try Row.fetchAll(db, sql: "EXPLAIN QUERY PLAN SELECT * FROM window_blocks WHERE deployment = 'x' AND max_end > 0")
                .map { $0["detail"] as String }.joined()
        }
        #expect(plan.contains("window_blocks_by_deployment"))
    }

    /// Answers for past points do not change when later events arrive.
    @Test func pastAnswersAreStable() async throws {
        let s = try await ReconciliationTests.simulate(seed: 5, days: 1)
        let point = s.log.head / 2
        func answers() throws -> String {
            let q = try s.query(.offset(point))
            let options = Chargeback.Options(from: Timestamp("2026-11-22T00:00:00.000Z")!, to: Timestamp("2026-11-25T00:00:00.000Z")!, groupBy: [.team, .gpuType, .day], shareIdle: true)
            return [
                try Chargeback.report(q, options).json.description,
                JSONValue.array(try Registry.models(q).map(\.json)).description,
                JSONValue.array(try Registry.deployments(q).map(\.json)).description,
                JSONValue.array(try SLOStatus.all(q).map(\.json)).description,
                JSONValue.array(try Audit.events(q, .category, "deployment").map(\.json)).description,
            ].joined(separator: "\n")
        }
        let before = try answers()
        // A day later: more jobs, a price change reaching back, alerts.
        try await pool(s, gpuType: "a100", gpus: 8, rate: 9.99, at: t("12:00", day: 1))
        try await s.add(t("12:00", day: 1), "price.set", ["gpuType": "h100", "hourlyRate": 99, "effectiveFrom": .string(t("00:00"))])
        try await allocate(s, "late", team: "vision", gpus: 8, at: t("13:00", day: 1))
        #expect(try answers() == before)
    }

    /// Projections of another log (or of a log that was replaced) are refused, not mixed.
    @Test func projectionsOfAnotherLogAreRefused() async throws {
        let a = try ScenarioLog()
        try await pool(a, gpus: 8, rate: 1)
        _ = try a.query()
        let b = try ScenarioLog()
        try await pool(b, gpus: 4, rate: 2)
        try await b.add(t("01:00"), "job.started", ["job": "x"])
        let projector = try Projector(store: try ProjectionStore(dataDirectory: a.dir.path), source: b.log)
        #expect(throws: LedgerError.self) { try projector.catchUp() }
    }

    @Test func oneProjectorAtATime() async throws {
        let s = try ScenarioLog()
        let store = try ProjectionStore(dataDirectory: s.dir.path)
        let first = try Projector(store: store, source: s.log)
        #expect { _ = try Projector(store: store, source: s.log) } throws: { ($0 as? LedgerError)?.code == .locked }
        _ = first
    }
}

@Suite struct AuditTests {
    @Test func byActorStreamCategoryTypeAndTime() async throws {
        let s = try ScenarioLog()
        try await pool(s, gpus: 8, rate: 1)
        try await allocate(s, "j1", team: "vision", gpus: 1, at: t("01:00"))
        try await s.add(t("02:00"), "job.started", ["job": "j1"], actor: "svc:trainer")
        try await s.add(t("03:00"), "job.completed", ["job": "j1", "outcome": "succeeded"], actor: "svc:trainer")
        try await release(s, "j1", team: "vision", gpus: 1, at: t("03:00"))
        let q = try s.query()
        #expect(try Audit.events(q, .actor, "svc:trainer").map(\.type) == ["job.started", "job.completed"])
        #expect(try Audit.events(q, .stream, "job-j1").map(\.type) == ["job.queued", "gpu.allocated", "job.started", "job.completed", "gpu.released"])
        #expect(try Audit.events(q, .category, "job").count == 5)
        #expect(try Audit.events(q, .type, "price.set").count == 1)
        let window = try Audit.events(q, .stream, "job-j1", fromTime: Timestamp(t("01:30"))!, toTime: Timestamp(t("02:59"))!)
        #expect(window.map(\.type) == ["job.started"])
        // Each answer carries the offset and the hash of the event.
        for e in try Audit.events(q, .category, "job") {
            #expect(try s.log.event(at: e.offset)?.envelope().hash == e.hash)
        }
        // As of an offset, later events are not there.
        #expect(try Audit.events(try s.query(.offset(3)), .category, "job").count == 2)
    }

    @Test func postingsSpanBuckets() async throws {
        let s = try ScenarioLog()
        var wanted: [Int64] = []
        for i in 0..<9000 {
            let r = try await s.add(t("00:00"), "job.started", ["job": .string(i % 3 == 0 ? "hot" : "j\(i)")])
            if i % 3 == 0 { wanted.append(r.offset) }
        }
        let q = try s.query()
        #expect(try Audit.offsets(q, .stream, "job-hot") == wanted)
        #expect(try Audit.offsets(q, .stream, "job-hot", from: 4000, to: 8200) == wanted.filter { $0 >= 4000 && $0 <= 8200 })
    }

    /// The causal chain of an event, both ways.
    @Test func causalChains() async throws {
        let s = try ScenarioLog()
        let queued = try await s.add(t("00:00"), "job.queued", ["job": "j", "team": "t", "gpuType": "a100", "gpus": 1, "priority": 0])
        let admitted = try await s.add(t("00:01"), "job.admitted", ["job": "j", "node": "n", "gpus": 1, "waitedSeconds": 60, "borrowed": false, "clusterQueueShare": 0], actor: "processor:scheduler", causation: queued.id)
        let allocated = try await s.add(t("00:01"), "gpu.allocated", ["job": "j", "node": "n", "gpuType": "a100", "gpus": 1, "team": "t"], actor: "processor:scheduler", causation: admitted.id)
        let other = try await s.add(t("00:02"), "job.started", ["job": "j"], causation: queued.id)
        let q = try s.query()
        let reader = try LogReader(directory: s.dir.path)
        let fromMiddle = try Audit.chain(q, offset: admitted.offset, ids: try reader.idLookup())
        #expect(fromMiddle.causes.map(\.offset) == [queued.offset])
        #expect(fromMiddle.effects.map(\.offset) == [allocated.offset])
        let fromRoot = try Audit.chain(q, offset: queued.offset, ids: try reader.idLookup())
        #expect(fromRoot.causes.isEmpty)
        #expect(fromRoot.effects.map(\.offset) == [admitted.offset, allocated.offset, other.offset])
        // Links whose cause is in the log before them are kept by the cause's offset.
        let byOffset = try await s.store.pool.read { db in try EffectBlock.all(db).count }
        let byID = try await s.store.pool.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM audit_causes") }
        #expect(byOffset == 3 && byID == 0)
    }

    /// A causation id that names no earlier event (a client's id of an event appended later, or
    /// of none at all) is kept by id, and the chain still finds the link once the cause exists.
    @Test func causesNotYetInTheLogAreKeptByID() async throws {
        let s = try ScenarioLog()
        let causeID = EventID.random()
        let early = try await s.add(t("00:00"), "job.started", ["job": "e"], causation: causeID)
        let dangling = try await s.add(t("00:00"), "job.started", ["job": "d"], causation: .random())
        let cause = try await s.add(t("00:01"), "job.queued", ["job": "e", "team": "t", "gpuType": "a100", "gpus": 1, "priority": 0], id: causeID)
        let q = try s.query()
        let reader = try LogReader(directory: s.dir.path)
        let chain = try Audit.chain(q, offset: cause.offset, ids: try reader.idLookup())
        #expect(chain.effects.map(\.offset) == [early.offset])
        let byID = try await s.store.pool.read { db in try Int64.fetchAll(db, sql: "SELECT effect_offset FROM audit_causes ORDER BY 1") }
        #expect(byID == [early.offset, dangling.offset])
    }
}
