import Foundation
import Testing
import LedgerCore
@testable import LedgerLog

@Suite struct SegmentLogTests {
    @Test func appendsReadsAndReopens() async throws {
        let dir = TemporaryDirectory()
        let clock = TestClock()
        var log = try SegmentLog.open(directory: dir.path, options: testOptions(clock: clock))
        let first = try await log.append([queued("j1"), started("j1")], policy: user)
        #expect(first.map(\.offset) == [0, 1])
        #expect(first.map(\.version) == [0, 1])
        clock.advance(1000)
        let second = try await log.append([queued("j2")], policy: user)
        #expect(second[0].offset == 2 && second[0].version == 0)
        #expect(log.head == 3)
        let events = try readAll(log.cursor())
        #expect(events.map(\.offset) == [0, 1, 2])
        #expect(events.map(\.type) == ["job.queued", "job.started", "job.queued"])
        let envelopes = try events.map { try $0.envelope() }
        #expect(envelopes[0].prevHash == .zero)
        #expect(envelopes[1].prevHash == envelopes[0].hash)
        #expect(envelopes[2].prevHash == envelopes[1].hash)
        for e in envelopes { #expect(try e.computeHash() == e.hash) }
        #expect(envelopes[0].actor == "user:test")
        #expect(envelopes[2].time.description == "2026-11-30T12:00:01.000Z")
        // The stored JSON is canonical.
        #expect(try CanonicalJSON.encode(envelopes[0].json) == events[0].json)
        try await log.close()

        log = try SegmentLog.open(directory: dir.path, options: testOptions(clock: clock))
        #expect(log.head == 3)
        let third = try await log.append([started("j2", expected: .exactly(0))], policy: user)
        #expect(third[0].offset == 3 && third[0].version == 1)
        let again = try readAll(log.cursor(from: 2))
        #expect(again.map(\.offset) == [2, 3])
        #expect(try again[1].envelope().prevHash == envelopes[2].hash)
        try await log.close()
    }
}
