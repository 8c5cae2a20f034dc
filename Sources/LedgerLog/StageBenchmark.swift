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
        func now() -> Double { monotonicSeconds() }
        func time(_ name: String, _ body: () throws -> Void) rethrows {
            let t0 = now()
            try body()
            out.append((name, (now() - t0) / events * 1e9))
        }
        let catalog = EventCatalog.standard
        let lines = requests.map { (try? CanonicalJSON.encode($0.requestJSON)) ?? [] }
        time("parse an NDJSON request line") {
            for line in lines { _ = line.withUnsafeBytes { b in (try? JSONParser.parse(b)).flatMap { try? AppendRequest(json: $0) } } }
        }
        let tape = JSONTape.Storage()
        let lineScratch = ByteWriter(capacity: 4096)
        time("ingest: line to prepared event (one pass, the tape)") {
            for line in lines { _ = line.withUnsafeBytes { LineIngest.prepare($0, policy: policy, mode: .append, scratch: lineScratch, tape: tape) } }
        }
        time("ingest: line to prepared event (through the tree)") {
            for line in lines { _ = line.withUnsafeBytes { b in (try? JSONParser.parse(b)).flatMap { try? AppendRequest(json: $0) }.flatMap { try? EventPreparer.prepare($0, policy: policy, scratch: lineScratch) } } }
        }
        time("tape: parse the line") { for line in lines { _ = line.withUnsafeBytes { JSONTape.parse($0, storage: tape) } } }
        var taken = 0
        for line in lines where line.withUnsafeBytes({ EventPreparer.prepare(line: $0, policy: policy, tape: tape, scratch: lineScratch) }) != nil { taken += 1 }
        out.append(("lines the tape took (of \(lines.count))", Double(taken)))
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
        // Payload buffers touched once beforehand, as the pipeline's recycled ones are: the stages
        // measure the work, not the kernel's first-touch page faults.
        func touched() -> ByteWriter {
            let w = ByteWriter(capacity: requests.count * 600)
            w.base.initialize(repeating: 0, count: w.capacity)
            return w
        }
        var builder = BatchBuilder(baseOffset: 0, payload: touched(), tail: ByteWriter(capacity: 512))
        time("sequencer: record + envelope tail + SHA-256 chain") {
            var prev = Hash256.zero
            prepared.withUnsafeBufferPointer { ev in
                for i in 0..<ev.count {
                    prev = builder.append(
                        ev.baseAddress! + i, id: ev[i].id ?? .random(), offset: Int64(i), prevHash: prev,
                        time: Timestamp(milliseconds: 1_800_000_000_000), version: 0)
                }
            }
        }
        // The whole step as the sequencing thread runs it: idempotency and version checks, the
        // chain, the record, the index updates — for one-event requests and for 1,000-event ones.
        let scratch = touched()
        func whole(_ size: Int) {
            var chain = ChainSequencer(next: 0, lastHash: .zero, lastTime: 0, maxRequestBytes: LogOptions().maxRequestBytes)
            let tables = MemorySequencer.Tables()
            var step = BatchBuilder(baseOffset: 0, payload: scratch, tail: ByteWriter(capacity: 512))
            var i = 0
            while i < prepared.count {
                let request = Array(prepared[i..<min(prepared.count, i + size)])
                _ = chain.sequence(request, now: 1_800_000_000_000, builder: &step, index: tables) { _ in throw LedgerError(.internal, "no retries here") }
                i += size
            }
        }
        time("sequencer: whole step, one-event requests") { whole(1) }
        time("sequencer: whole step, 1,000-event requests") { whole(1000) }
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
