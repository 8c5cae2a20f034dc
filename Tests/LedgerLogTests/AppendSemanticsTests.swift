import Foundation
import Testing
import LedgerCore
@testable import LedgerLog

@Suite struct AppendSemanticsTests {
    func rejected(_ body: () async throws -> Void) async -> LedgerError? {
        do {
            try await body()
            return nil
        } catch {
            return error as? LedgerError
        }
    }

    @Test func expectedVersions() async throws {
        let dir = TemporaryDirectory()
        let log = try SegmentLog.open(directory: dir.path, options: testOptions())
        var e = await rejected { _ = try await log.append([started("j1", expected: .exists)], policy: user) }
        #expect(e?.code == .wrongExpectedVersion)
        #expect(e?.message == "stream job-j1 does not exist, expected exists")
        _ = try await log.append([queued("j1", expected: .noStream)], policy: user)
        e = await rejected { _ = try await log.append([queued("j1", expected: .noStream)], policy: user) }
        #expect(e?.message == "stream job-j1 is at version 0, expected no_stream")
        e = await rejected { _ = try await log.append([started("j1", expected: .exactly(3))], policy: user) }
        #expect(e?.code == .wrongExpectedVersion)
        #expect(e?.message == "stream job-j1 is at version 0, expected 3")
        let ok = try await log.append([started("j1", expected: .exactly(0))], policy: user)
        #expect(ok[0].version == 1)
        _ = try await log.append([started("j1", expected: .exists)], policy: user)
        _ = try await log.append([started("j1", expected: .any)], policy: user)
        #expect(log.head == 4)
        try await log.close()
        // Versions survive a restart.
        let again = try SegmentLog.open(directory: dir.path, options: testOptions())
        e = await rejected { _ = try await again.append([started("j1", expected: .exactly(2))], policy: user) }
        #expect(e?.message == "stream job-j1 is at version 3, expected 2")
        #expect(try await again.append([started("j1", expected: .exactly(3))], policy: user)[0].version == 4)
        try await again.close()
    }

    @Test func idempotentReappends() async throws {
        let dir = TemporaryDirectory()
        let log = try SegmentLog.open(directory: dir.path, options: testOptions())
        let id = EventID.random()
        let first = try await log.append([queued("j1", id: id)], policy: user)
        _ = try await log.append([queued("j2")], policy: user)
        let bytes = try snapshot(dir.path + "/segments")
        // The same id, stream, type and data: the original offset, nothing written — even with an
        // expected version that no longer holds (idempotency is checked first).
        let replay = try await log.append([queued("j1", id: id, expected: .noStream)], policy: user)
        #expect(replay == first)
        #expect(log.head == 2)
        #expect(try snapshot(dir.path + "/segments") == bytes)
        // The same id with different data, stream or type is refused.
        var e = await rejected { _ = try await log.append([queued("j1", gpus: 8, id: id)], policy: user) }
        #expect(e?.code == .duplicateID)
        #expect(e?.message.contains("offset 0") == true)
        e = await rejected { _ = try await log.append([started("j1", id: id)], policy: user) }
        #expect(e?.code == .duplicateID)
        // A request mixing a landed id with new events is refused as a whole.
        e = await rejected { _ = try await log.append([queued("j1", id: id), started("j1")], policy: user) }
        #expect(e?.code == .duplicateID)
        // The same id twice in one request.
        let twice = EventID.random()
        e = await rejected { _ = try await log.append([queued("j3", id: twice), started("j3", id: twice)], policy: user) }
        #expect(e?.code == .duplicateID)
        #expect(log.head == 2)
        try await log.close()
        // After a restart (ids replayed from the log) and after an index flush (ids in runs).
        var options = testOptions()
        options.indexFlushThreshold = 4
        let again = try SegmentLog.open(directory: dir.path, options: options)
        #expect(try await again.append([queued("j1", id: id)], policy: user) == first)
        var ids: [EventID] = []
        for i in 0..<20 {
            let r = try await again.append([queued("k\(i)", id: .random())], policy: user)
            ids.append(r[0].id)
        }
        try await again.close()
        let third = try SegmentLog.open(directory: dir.path, options: options)
        #expect(third.index.indexedThrough > 0)
        #expect(third.index.ids.runCount > 0)
        #expect(try await third.append([queued("j1", id: id)], policy: user) == first)
        let r = try await third.append([queued("k7", id: ids[7])], policy: user)
        #expect(r[0].offset == 9)
        #expect(third.head == 22)
        try await third.close()
    }

    /// A request over several streams lands whole or not at all.
    @Test func multiStreamAtomicity() async throws {
        let dir = TemporaryDirectory()
        let log = try SegmentLog.open(directory: dir.path, options: testOptions())
        _ = try await log.append([queued("a"), queued("b")], policy: user)
        let before = try snapshot(dir.path + "/segments")
        let e = await rejected {
            _ = try await log.append([started("a", expected: .exactly(0)), started("b", expected: .exactly(5)), queued("c")], policy: user)
        }
        #expect(e?.code == .wrongExpectedVersion)
        #expect(e?.index == 1)
        #expect(log.head == 2)
        #expect(try snapshot(dir.path + "/segments") == before)
        let ok = try await log.append([started("a", expected: .exactly(0)), started("b", expected: .exactly(0)), queued("c", expected: .noStream)], policy: user)
        #expect(ok.map(\.offset) == [2, 3, 4])
        #expect(ok.map(\.version) == [1, 1, 0])
        // Expected versions are checked against the state before the request: two events of one
        // stream both expecting version 1 are fine.
        let same = try await log.append([started("a", expected: .exactly(1)), started("a", expected: .exactly(1))], policy: user)
        #expect(same.map(\.version) == [2, 3])
        // Independent requests submitted together succeed or fail on their own.
        let mixed = await log.append(requests: [[started("c")], [started("zzz", expected: .exists)], [started("b")]], policy: user)
        #expect((try? mixed[0].get())?.first?.offset == 7)
        #expect({ if case .failure(let f) = mixed[1] { return f.code == .wrongExpectedVersion } else { return false } }())
        #expect((try? mixed[2].get())?.first?.offset == 8)
        try await log.close()
    }

    /// Every bad input is refused with its error and leaves the log byte-identical.
    @Test func badInputWritesNothing() async throws {
        let dir = TemporaryDirectory()
        var options = testOptions()
        options.maxDataBytes = 2000
        options.maxRequestBytes = 10_000
        let log = try SegmentLog.open(directory: dir.path, options: options)
        _ = try await log.append([queued("seed")], policy: user)
        let before = try snapshot(dir.path + "/segments")
        let big = String(repeating: "x", count: 900)
        let cases: [(String, [AppendRequest], AppendPolicy, LedgerError.Code, String?)] = [
            ("unknown type", [AppendRequest(stream: "job-j", type: "job.exploded", data: ["job": "j"])], user, .unknownType, "/type"),
            ("schema violation", [AppendRequest(stream: "job-j", type: "job.queued", data: ["job": "j", "team": "t", "gpuType": "a100", "gpus": 0, "priority": 1])], user, .schemaViolation, "/data/gpus"),
            ("missing field", [AppendRequest(stream: "job-j", type: "job.started", data: [:])], user, .schemaViolation, "/data"),
            ("extra field", [AppendRequest(stream: "job-j", type: "job.started", data: ["job": "j", "jbo": 1])], user, .schemaViolation, "/data/jbo"),
            ("bad stream", [AppendRequest(stream: "Job_j", type: "job.started", data: ["job": "j"])], user, .invalidStream, "/stream"),
            ("stream mismatch", [AppendRequest(stream: "job-k", type: "job.started", data: ["job": "j"])], user, .streamMismatch, "/stream"),
            ("decision by a user", [AppendRequest(stream: "job-j", type: "gpu.released", data: ["job": "j", "node": "n", "gpuType": "a100", "gpus": 1, "team": "t"])], user, .forbiddenType, "/type"),
            ("too large", [AppendRequest(stream: "model-m", type: "model.version.evaluated", data: ["model": "m", "version": "1", "passed": true, "metrics": .object(JSONObject(members: (0..<200).map { .init(key: "metric_\($0)", value: 0.123456789) }))])], user, .eventTooLarge, "/data"),
            ("batch too large", (0..<12).map { AppendRequest(stream: "node-n\($0)", type: "node.removed", data: ["node": .string("n\($0)"), "reason": .string(big)]) }, user, .batchTooLarge, nil),
            ("bad time", [AppendRequest(stream: "pricing-a100", type: "price.set", data: ["gpuType": "a100", "hourlyRate": 2, "effectiveFrom": "2026-02-30T00:00:00.000Z"])], user, .schemaViolation, "/data/effectiveFrom"),
            ("non-finite", [AppendRequest(stream: "pricing-a100", type: "price.set", data: ["gpuType": "a100", "hourlyRate": .number(.infinity), "effectiveFrom": "2026-01-30T00:00:00.000Z"])], user, .invalidJSON, nil),
            ("one bad event spoils the batch", [started("seed"), AppendRequest(stream: "job-j", type: "job.started", data: ["job": 5])], user, .schemaViolation, "/data/job"),
            ("time from a client", [AppendRequest(stream: "job-j", type: "job.started", data: ["job": "j"], time: Timestamp(milliseconds: 0))], user, .invalidRequest, nil),
        ]
        for (name, request, policy, code, path) in cases {
            let e = await rejected { _ = try await log.append(request, policy: policy) }
            #expect(e?.code == code, "\(name): \(e.map(\.description) ?? "accepted")")
            if let path { #expect(e?.path == path, "\(name): \(e?.path ?? "no path")") }
            #expect(e?.message.isEmpty == false)
        }
        #expect(log.head == 1)
        try await log.close()
        #expect(try snapshot(dir.path + "/segments") == before)
    }

    @Test func decisionTypesNeedAProcessorOrTheAdminPath() async throws {
        let dir = TemporaryDirectory()
        let log = try SegmentLog.open(directory: dir.path, options: testOptions())
        let release = AppendRequest(stream: "job-j", type: "gpu.released", data: ["job": "j", "node": "n", "gpuType": "a100", "gpus": 1, "team": "t"])
        _ = try await log.append([release], policy: AppendPolicy(actor: "processor:scheduler"))
        let imported = AppendRequest(stream: "job-j", type: "gpu.released", data: ["job": "j", "node": "n", "gpuType": "a100", "gpus": 1, "team": "t"], time: Timestamp("2030-01-01T00:00:00.000Z"), actor: "processor:scheduler")
        _ = try await log.append([imported], policy: admin)
        let events = try readAll(log.cursor()).map { try $0.envelope() }
        #expect(events.map(\.actor) == ["processor:scheduler", "processor:scheduler"])
        #expect(events[1].time.description == "2030-01-01T00:00:00.000Z")
        // Times never go backwards, not even on the admin path.
        let late = AppendRequest(stream: "job-j", type: "job.started", data: ["job": "j"], time: Timestamp("2029-01-01T00:00:00.000Z"), actor: "svc:import")
        let e = await rejected { _ = try await log.append([late], policy: admin) }
        #expect(e?.code == .timeOrder)
        // Live appends after a future-dated import keep the log's time non-decreasing.
        let next = try await log.append([started("j")], policy: user)
        #expect(try readAll(log.cursor(from: next[0].offset))[0].envelope().time >= events[1].time)
        try await log.close()
    }
}

@Suite struct ReadersAndLockTests {
    @Test func oneWriterPerDirectory() async throws {
        let dir = TemporaryDirectory()
        let log = try SegmentLog.open(directory: dir.path, options: testOptions())
        #expect {
            _ = try SegmentLog.open(directory: dir.path, options: testOptions())
        } throws: { error in
            guard let e = error as? LedgerError else { return false }
            return e.code == .locked && e.message.contains("pid \(getpid())") && e.exitCode == 4
        }
        try await log.close()
        let again = try SegmentLog.open(directory: dir.path, options: testOptions())
        try await again.close()
    }

    @Test func externalReadersSeeDurableBatchesAndSeekByTime() async throws {
        let dir = TemporaryDirectory()
        let clock = TestClock("2026-11-30T00:00:00.000Z")
        var options = testOptions(clock: clock)
        options.segmentBytes = 3000
        let log = try SegmentLog.open(directory: dir.path, options: options)
        for i in 0..<50 {
            _ = try await log.append([queued("j\(i)")], policy: user)
            clock.advance(60_000)
        }
        let reader = try LogReader(directory: dir.path)
        #expect(reader.head == 50)
        #expect(try readAll(reader.cursor(from: 45)).map(\.offset) == [45, 46, 47, 48, 49])
        #expect(try readAll(reader.cursor(filter: EventFilter(stream: "job-j7"))).map(\.offset) == [7])
        #expect(try readAll(reader.cursor(filter: EventFilter(category: "job"))).count == 50)
        #expect(try readAll(reader.cursor(filter: EventFilter(type: "job.started"))).isEmpty)
        // Time seeks: the first event at or after an instant, across segments.
        #expect(try log.firstOffset(atOrAfter: Timestamp("2026-11-30T00:10:00.000Z")!) == 10)
        #expect(try log.firstOffset(atOrAfter: Timestamp("2026-11-30T00:10:00.001Z")!) == 11)
        #expect(try log.firstOffset(atOrAfter: Timestamp("2026-11-29T00:00:00.000Z")!) == 0)
        #expect(try log.firstOffset(atOrAfter: Timestamp("2026-12-30T00:00:00.000Z")!) == 50)
        #expect(try reader.firstOffset(atOrAfter: Timestamp("2026-11-30T00:33:00.000Z")!) == 33)
        // A reader keeps up as the writer appends (and rolls segments).
        let cursor = reader.cursor(from: 50)
        #expect(try cursor.next() == nil)
        _ = try await log.append([queued("late")], policy: user)
        let watcher = try reader.headWatcher()
        _ = watcher.wait(timeout: 0.1)
        #expect(try cursor.next()?.offset == 50)
        try await log.close()
    }

    @Test func inProcessTailWakesOnAppend() async throws {
        let dir = TemporaryDirectory()
        let log = try SegmentLog.open(directory: dir.path, options: testOptions())
        let updates = log.headUpdates()
        var iterator = updates.makeAsyncIterator()
        #expect(await iterator.next() == 0)
        _ = try await log.append([queued("j")], policy: user)
        #expect(await iterator.next() == 1)
        #expect(await BlockingPool.shared.run { log.waitForHead(beyond: 0, timeout: 1) } == 1)
        try await log.close()
    }
}
