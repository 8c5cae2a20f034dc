import Foundation
import Testing
import LedgerCore
import LedgerLog
import LedgerSimulator
@testable import LedgerProcessors

@Suite struct RunnerRuleTests {
    @Test func decisionIdsAreTheUUIDv5OfSchemasProcessorIds() throws {
        // The worked example of Schemas/processor-ids.md (computed there with Python's uuid5).
        let trigger = try #require(EventID("0b7e9c1a-2f4d-4e8a-9c3b-5d6e7f8a9b0c"))
        #expect(DecisionID.derive(processor: "scheduler", trigger: trigger, index: 0).description == "bc7d293a-adb8-56b9-8c2f-c553cf646591")
        #expect(DecisionID.namespace.description == "3d0c6f4e-8a51-5b7e-9f0a-6c1d2e3f4a5b")
        // Two processors, or two outputs, never collide.
        #expect(DecisionID.derive(processor: "slo", trigger: trigger, index: 0) != DecisionID.derive(processor: "rollout", trigger: trigger, index: 0))
        #expect(DecisionID.derive(processor: "slo", trigger: trigger, index: 0) != DecisionID.derive(processor: "slo", trigger: trigger, index: 1))
    }

    @Test func decisionTimeIsTheTriggersAndNeverGoesBack() async throws {
        let p = try Play()
        try await p.node("n1", gpus: 8)
        try await p.quota("vision", nominal: 8)
        let (queued, _) = try await p.add("job.queued", ["job": "j", "team": "vision", "gpuType": "a100", "gpus": 2, "priority": 0], after: 42)
        let reader = try LogReader(directory: p.dir.path)
        let cursor = reader.cursor(from: 0)
        var times: [Timestamp] = []
        var trigger: Timestamp? = nil
        var decisionTimes: [Timestamp] = []
        while let v = try cursor.next() {
            times.append(v.time)
            if v.id == queued { trigger = v.time }
            if v.type == "job.admitted" || v.type == "gpu.allocated" { decisionTimes.append(v.time) }
        }
        #expect(decisionTimes.count == 2 && decisionTimes.allSatisfy { $0 == trigger })
        #expect(times == times.sorted())
    }

    @Test func aRestartFromAnOlderSnapshotWritesNothingTwice() async throws {
        let p = try Play()
        try await p.node("n1", gpus: 8)
        try await p.quota("vision", nominal: 8)
        try await p.runner.saveSnapshots()
        for i in 0..<5 { try await p.queue("j\(i)", team: "vision", gpus: 4) }
        try await p.complete("j0")
        let head = p.log.head
        // A new runner from the old snapshot re-derives every decision since: all already there.
        let again = ProcessorRunner(log: p.log, dataDirectory: p.dir.path)
        try again.loadSnapshots()
        #expect(again.checkpoints.allSatisfy { $0 < head })
        let rederived = try await again.runToQuiescence()
        #expect(rederived.count == p.decisions.count)
        #expect(rederived.allSatisfy { $0.offset < head })
        #expect(p.log.head == head)
        // And the state it rebuilt is the same: the next event decides the same as the original would.
        let original = p.runner
        p.runner = again
        let next = try await p.complete("j1")
        #expect(next.map(\.type) == ["gpu.released", "job.admitted", "gpu.allocated"])
        _ = original
    }
}

@Suite struct MoreSchedulerRules {
    @Test func loweringAQuotaBelowUsagePreemptsNothingAndNewAdmissionsWait() async throws {
        let p = try Play()
        try await p.node("n1", gpus: 8)
        try await p.quota("vision", nominal: 8)
        try await p.queue("a", team: "vision", gpus: 4)
        try await p.queue("b", team: "vision", gpus: 4)
        let lowered = try await p.add("quota.set", ["team": "vision", "gpuType": "a100", "nominal": 2]).1
        #expect(lowered.isEmpty)
        try await p.queue("c", team: "vision", gpus: 1)
        try await p.complete("a")
        #expect(!p.admittedJobs().contains("c"))  // 4 + 1 > 2: waits
        try await p.complete("b")
        #expect(p.admittedJobs().last == "c")
    }

    @Test func theShareDividesByTheTeamsWeight() async throws {
        let p = try Play()
        for i in 1...3 { try await p.node("n\(i)", gpus: 8) }
        try await p.quota("nlp", nominal: 4, borrowing: 8, cohort: "research", weight: 2)
        try await p.quota("vision", nominal: 12, cohort: "research")
        try await p.queue("n1", team: "nlp", gpus: 8)
        let admitted = p.of("job.admitted")
        // 4 above nominal ÷ cohort nominal 16 ÷ weight 2.
        #expect(admitted.count == 1 && abs(admitted[0]["clusterQueueShare"]!.doubleValue! - 0.125) < 1e-9)
    }
}

@Suite struct MoreAlertingRules {
    @Test func aNewRolloutEndsTheOldOne() async throws {
        let p = try Play()
        _ = try await p.rollout("api", to: "2", steps: [(10, 1000)])
        try await p.window("api", version: "2", end: 5, requests: 900)
        _ = try await p.rollout("api", to: "3", steps: [(10, 1000)])
        // Version 2's windows no longer count; version 3's tally starts at zero.
        try await p.window("api", version: "2", end: 10, requests: 900, errors: 900)
        try await p.window("api", version: "3", end: 10, requests: 900)
        #expect(p.decisions.isEmpty)
        try await p.window("api", version: "3", end: 15, requests: 200)
        #expect(p.of("rollout.promoted").map { $0["version"]!.stringValue! } == ["3"])
    }

    @Test func aLateWindowCountsByItsWindowEnd() async throws {
        let p = try Play()
        try await p.slo("api-avail", deployment: "api")
        for m in stride(from: 5, through: 60, by: 5) { try await p.window("api", version: "1", end: m, requests: 1000) }
        // A window that ended two hours ago arrives late: outside every window but 3d/6h's.
        let start = Timestamp("2026-11-23T00:00:00.000Z")!.milliseconds
        let late = try await p.add("serving.window.observed", [
            "deployment": "api", "version": "1", "windowStart": .string(Timestamp(milliseconds: start - 600_000).description),
            "windowEnd": .string(Timestamp(milliseconds: start - 300_000).description), "requests": 1000, "errors": 1000, "p99Ms": 100,
        ]).1
        #expect(late.map { $0.data["longWindow"]!.stringValue! } == ["3d"])
    }
}

/// A large slice is read ahead on another core, folded by the processors side by side, and its
/// decisions appended while the next slice folds; a small one is folded and appended in turn.
/// Both must write the same log, byte for byte, and leave the same processor states.
@Suite struct RunnerRoundTests {
    static func clientLog(_ events: [SimulatedEvent]) async throws -> (TemporaryDirectory, SegmentLog) {
        let dir = TemporaryDirectory()
        var options = LogOptions()
        options.fsync = .never
        let log = try SegmentLog.open(directory: dir.path, options: options)
        let policy = AppendPolicy(actor: "user:admin", mode: .admin)
        var i = 0
        while i < events.count {
            let slice = events[i..<min(events.count, i + 2000)]
            for case .failure(let e) in await log.append(requests: slice.map { [$0.request] }, policy: policy) { throw e }
            i += slice.count
        }
        return (dir, log)
    }

    @Test func sideBySideRoundsWriteWhatRoundsInTurnWrite() async throws {
        var config = SimulationConfig(seed: 11, days: 1)
        config.jobsPerDay = 900
        let events = PlatformSimulator(config: config).run()
        let (dirA, a) = try await Self.clientLog(events)
        let (dirB, b) = try await Self.clientLog(events)
        let clientEvents = a.head
        #expect(clientEvents > 6 * 1024, "enough events for several rounds")

        let parallel = ProcessorRunner(log: a, dataDirectory: dirA.path)
        parallel.chunk = 1024
        let inTurn = ProcessorRunner(log: b, dataDirectory: dirB.path)
        inTurn.chunk = 1024
        inTurn.parallelMinimum = .max
        let madeA = try await parallel.runToQuiescence()
        let madeB = try await inTurn.runToQuiescence()

        #expect(madeA.count > 1000)
        #expect(madeA.map(\.offset) == madeB.map(\.offset))
        #expect(madeA.map(\.decision) == madeB.map(\.decision))
        #expect(a.head == b.head)
        let ca = a.cursor()
        let cb = b.cursor()
        var compared = 0
        while let x = try ca.next() {
            let y = try #require(try cb.next())
            #expect(Array(x.json) == Array(y.json), "offset \(x.offset)")
            compared += 1
        }
        #expect(compared == Int(a.head))
        for (p, q) in zip(parallel.processors, inTurn.processors) {
            #expect(try p.snapshot() == q.snapshot(), "\(p.name)")
        }
        #expect(parallel.checkpoints == inTurn.checkpoints)
        #expect(parallel.isAtHead && inTurn.isAtHead)
        try await a.close()
        try await b.close()
    }
}
