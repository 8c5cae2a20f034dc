#if canImport(Glibc)
import Glibc
#endif
public import LedgerCore

/// Times each stage of the append path alone, on one core (`ledger bench stages`): where the
/// time of an append goes.
public enum StageBenchmark {
    public static func run(_ requests: [AppendRequest], policy: AppendPolicy) throws -> [(stage: String, nanosecondsPerEvent: Double)] {
        let events = Double(requests.count)
        var out: [(String, Double)] = []
        func now() -> Double {
            var ts = timespec()
            clock_gettime(CLOCK_MONOTONIC, &ts)
            return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
        }
        func time(_ name: String, _ body: () throws -> Void) rethrows {
            let t0 = now()
            try body()
            out.append((name, (now() - t0) / events * 1e9))
        }
        let catalog = EventCatalog.standard
        time("validate data (schema)") {
            for r in requests { _ = catalog.type(r.type)!.schema.validate(.object(r.data)) }
        }
        time("canonical JSON of data") { for r in requests { _ = try? CanonicalJSON.encode(.object(r.data)) } }
        time("envelope head + its SHA-256 state") {
            for r in requests { _ = try? EnvelopeHead(actor: policy.actor, causationId: nil, correlationId: nil, data: r.data) }
        }
        time("stream key (SHA-256 of the name)") { for r in requests { _ = streamKey(r.stream) } }
        var prepared: [PreparedEvent] = []
        try time("prepare = all three + checks") { prepared = try requests.map { try EventPreparer.prepare($0, policy: policy) } }
        var builder = BatchBuilder(baseOffset: 0, capacity: requests.count * 600)
        time("sequencer: envelope + SHA-256 chain") {
            var prev = Hash256.zero
            for (i, e) in prepared.enumerated() {
                let fields = EnvelopeFields(
                    actor: e.actor, causationId: nil, correlationId: nil, id: e.id ?? .random(), offset: Int64(i), prevHash: prev,
                    schemaVersion: 1, stream: e.stream, time: Timestamp(milliseconds: 1_800_000_000_000), type: e.type, version: 0)
                prev = builder.append(fields, head: e.head)
            }
        }
        var table = KeyTable(capacity: 1 << 16)
        time("sequencer: id and stream index inserts") {
            for (i, e) in prepared.enumerated() {
                table.set(IndexKey(id: e.id ?? EventID(high: UInt64(i), low: 0)), UInt64(i))
                table.set(IndexKey(hi: e.streamKey.0, lo: e.streamKey.1), 0)
            }
        }
        var sealed: [UInt8] = []
        time("writer: LZ4 + CRC-32C") {
            RecordBatch.seal(payload: builder.payload.bytes, baseOffset: 0, count: builder.count, firstTime: 0, lastTime: 0, lastHash: .zero, into: &sealed)
        }
        time("CRC-32C alone") { _ = sealed.withUnsafeBytes { CRC32C.checksum($0) } }
        out.append(("payload bytes per event", Double(builder.payloadBytes) / events))
        out.append(("stored bytes per event", Double(sealed.count) / events))
        return out
    }
}
