import Foundation
import LedgerCore
import LedgerEngine
import LedgerLog
@testable import LedgerServer
import LedgerSimulator
import Testing

@Suite struct CloudEventTests {
    /// The CloudEvent built from a record's bytes equals, byte for byte, the canonical encoding of
    /// the one built from the parsed envelope — over a simulated day (every type of event the
    /// simulator writes, decisions with causation and correlation) and over awkward data.
    @Test func fastEncodingEqualsTheCanonicalOne() async throws {
        let dir = TemporaryDirectory("ce-fast")
        var options = EngineOptions()
        options.log.fsync = .never
        options.projections = false
        let engine = try await LedgerEngine.open(directory: dir.path, options: options)
        let play = PlatformPlay(config: SimulationConfig(seed: 9, days: 1))
        _ = try await engine.drive(policy: AppendPolicy(actor: "user:test", mode: .admin), next: { play.next()?.request }) { d in
            play.observe(type: d.decision.type, data: d.decision.data, time: d.decision.notBefore)
        }
        // Data whose strings hold the very keys the fast path looks for.
        let tricky = #"x","hash":"y","data":{"prevHash":"z","schemaVersion":9"#
        _ = try await engine.append(
            [AppendRequest(stream: "job-tricky", type: "job.cancelled", data: ["job": "tricky", "reason": .string(tricky)], causationId: .random(), correlationId: "wf:1")],
            policy: AppendPolicy(actor: "user:x"))
        let source = "/ledger \"quoted\""
        let sourceJSON = try CanonicalJSON.encode(.string(source))
        let cursor = engine.log.cursor(from: 0)
        var checked = 0
        var types: Set<String> = []
        while let view = try cursor.next() {
            var fast: [UInt8] = []
            #expect(CloudEvent.appendFast(view, source: sourceJSON, into: &fast), "offset \(view.offset)")
            let slow = try CanonicalJSON.encode(CloudEvent.make(try view.envelope(), source: source))
            #expect(fast == slow, "offset \(view.offset) (\(view.type)):\n fast \(String(decoding: fast, as: UTF8.self))\n slow \(String(decoding: slow, as: UTF8.self))")
            if fast != slow { break }
            checked += 1
            types.insert(view.type)
        }
        #expect(checked > 10_000)
        #expect(types.count > 20)
        try await engine.close()
    }
}
