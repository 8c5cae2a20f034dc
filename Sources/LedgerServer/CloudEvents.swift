public import LedgerCore
import LedgerLog
import Synchronization

/// Events as CloudEvents 1.0 (structured JSON mode), as subscriptions deliver them.
///
/// Context attributes: `specversion` 1.0, `id` (the event id), `source` (the ledger's, configured),
/// `type`, `subject` (the stream), `time`, `datacontenttype` `application/json`, `dataschema`
/// (the `$id` of the event's schema in `Schemas/events/`),
/// `data`; extensions `ledgeroffset`, `ledgerversion` (the stream version), `ledgerhash`,
/// `ledgerprevhash`, `ledgerschemaversion`, `actor`, and `causationid` / `correlationid` when the
/// event has them — everything needed to recompute the event's hash (`Schemas/hashing.md`).
public enum CloudEvent {
    /// The CloudEvents JSON object of a stored envelope.
    public static func make(_ e: Envelope, source: String) -> JSONValue {
        var o: JSONObject = [
            "specversion": "1.0",
            "id": .string(e.id.description),
            "source": .string(source),
            "type": .string(e.type),
            "subject": .string(e.stream),
            "time": .string(e.time.description),
            "datacontenttype": "application/json",
            "dataschema": .string("https://platform-ledger.dev/schemas/events/\(e.type).v\(e.schemaVersion).json"),
            "data": .object(e.data),
            "ledgeroffset": .number(Double(e.offset)),
            "ledgerversion": .number(Double(e.version)),
            "ledgerhash": .string(e.hash.description),
            "ledgerprevhash": .string(e.prevHash.description),
            "ledgerschemaversion": .number(Double(e.schemaVersion)),
            "actor": .string(e.actor),
        ]
        if let c = e.causationId { o["causationid"] = .string(c.description) }
        if let c = e.correlationId { o["correlationid"] = .string(c) }
        return .object(o)
    }

    /// One Server-Sent Events message: `id: <offset>`, `event: <type>`, `data: <CloudEvent JSON>`.
    static func sseMessage(_ view: RecordView, source: String) throws -> [UInt8] {
        let envelope = try view.envelope()
        var out: [UInt8] = []
        out.reserveCapacity(view.json.count + 400)
        out += Array("id: \(view.offset)\nevent: \(envelope.type)\ndata: ".utf8)
        out += try CanonicalJSON.encode(make(envelope, source: source))
        out += [0x0A, 0x0A]
        return out
    }
}

/// The SSE messages of the most recent events, shared by every subscriber (each event is turned
/// into a CloudEvent once, not once per subscriber). A ring keyed by offset.
final class MessageCache: Sendable {
    struct Entry: Sendable {
        var offset: Int64
        var stream: String
        var type: String
        var message: [UInt8]
    }

    private let slots: Mutex<[Entry?]>
    let capacity: Int

    init(capacity: Int = 16_384) {
        self.capacity = capacity
        slots = Mutex(Array(repeating: nil, count: capacity))
    }

    func get(_ offset: Int64) -> Entry? {
        slots.withLock { s in
            guard let e = s[Int(offset % Int64(capacity))], e.offset == offset else { return nil }
            return e
        }
    }

    func put(_ entry: Entry) {
        slots.withLock { $0[Int(entry.offset % Int64(capacity))] = entry }
    }
}
