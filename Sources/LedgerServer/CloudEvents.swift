public import LedgerCore
import LedgerLog
import NIOCore
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
    static func sseMessage(_ view: RecordView, source: String, sourceJSON: [UInt8]? = nil) throws -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(view.json.count + 400)
        out += Array("id: \(view.offset)\nevent: ".utf8)
        out += view.typeBytes
        out += Array("\ndata: ".utf8)
        let quoted = try sourceJSON ?? CanonicalJSON.encode(.string(source))
        if !appendFast(view, source: quoted, into: &out) {
            out += try CanonicalJSON.encode(make(try view.envelope(), source: source))
        }
        out += [0x0A, 0x0A]
        return out
    }

    /// The CloudEvent JSON of a stored record straight from its canonical bytes, in the canonical
    /// form ``make(_:source:)`` gives (a test holds the two equal over whole logs): the envelope's
    /// fields are found by their keys, which canonical JSON puts in a fixed order, and `data` is
    /// copied as it is stored. False if the record is not of the expected shape.
    static func appendFast(_ view: RecordView, source: [UInt8], into out: inout [UInt8]) -> Bool {
        let j = view.json
        /// The first (or, backwards, the last) place of `key` within [from, to).
        func find(_ key: StaticString, from: Int = 0, to: Int? = nil, backwards: Bool = false) -> Int? {
            let k = UnsafeBufferPointer(start: key.utf8Start, count: key.utf8CodeUnitCount)
            let last = min(to ?? j.count, j.count) - k.count
            guard last >= from else { return nil }
            func matches(_ i: Int) -> Bool {
                for t in 0..<k.count where j[i + t] != k[t] { return false }
                return true
            }
            if backwards {
                var i = last
                while i >= from {
                    if j[i] == k[0] && matches(i) { return i }
                    i -= 1
                }
            } else {
                var i = from
                while i <= last {
                    if j[i] == k[0] && matches(i) { return i }
                    i += 1
                }
            }
            return nil
        }
        func until(_ start: Int, _ byte: UInt8) -> Int? {
            var i = start
            while i < j.count {
                if j[i] == byte { return i }
                i += 1
            }
            return nil
        }
        func digits(_ start: Int) -> ArraySlice<UInt8> {
            var i = start
            while i < j.count, j[i] >= 0x30, j[i] <= 0x39 { i += 1 }
            return Array(j[start..<i])[...]
        }
        let actorKey = Array(#"{"actor":""#.utf8)
        guard j.count > actorKey.count, Array(j[0..<actorKey.count]) == actorKey, let actorEnd = until(actorKey.count, 0x22),
            let dataKey = find(#","data":{"#), let hashKey = find(#","hash":""#, from: dataKey, backwards: true),
            let prevKey = find(#","prevHash":""#, from: hashKey, backwards: true),
            let schemaKey = find(#","schemaVersion":"#, from: prevKey, backwards: true)
        else { return false }
        let causation = find(#","causationId":""#, to: dataKey)
        let correlation = find(#","correlationId":""#, to: dataKey)
        func bytes(_ s: String) { out += Array(s.utf8) }
        func raw(_ r: Range<Int>) { out += j[r] }
        bytes(#"{"actor":""#)
        raw(actorKey.count..<actorEnd)
        bytes("\"")
        if let c = causation {
            bytes(#","causationid":""#)
            raw((c + 16)..<(c + 16 + 36))
            bytes("\"")
        }
        if let c = correlation, let end = until(c + 18, 0x22) {
            bytes(#","correlationid":""#)
            raw((c + 18)..<end)
            bytes("\"")
        }
        bytes(#","data":"#)
        raw((dataKey + 8)..<hashKey)
        bytes(#","datacontenttype":"application/json","dataschema":"https://platform-ledger.dev/schemas/events/"#)
        out += view.typeBytes
        bytes(".v")
        let schema = digits(schemaKey + 17)
        out += schema
        bytes(#".json","id":""#)
        bytes(view.id.description)
        bytes(#"","ledgerhash":""#)
        raw((hashKey + 9)..<(hashKey + 9 + 64))
        bytes(#"","ledgeroffset":"#)
        bytes(String(view.offset))
        bytes(#","ledgerprevhash":""#)
        raw((prevKey + 13)..<(prevKey + 13 + 64))
        bytes(#"","ledgerschemaversion":"#)
        out += schema
        bytes(#","ledgerversion":"#)
        bytes(String(view.version))
        bytes(#","source":"#)
        out += source
        bytes(#","specversion":"1.0","subject":""#)
        out += view.streamBytes
        bytes(#"","time":""#)
        bytes(view.time.description)
        bytes(#"","type":""#)
        out += view.typeBytes
        bytes("\"}")
        return true
    }
}

/// The SSE messages of the most recent events, encoded once for every subscriber: when the head
/// moves, the new events become one chunk of messages (one `ByteBuffer`); a subscriber at the
/// head writes the chunk itself (a buffer shared by reference, not copied) or, with a filter, the
/// messages of it that match. A bounded ring of chunks: a subscriber behind it reads from the log.
final class MessageFeed: Sendable {
    struct Entry: Sendable {
        var offset: Int64
        var stream: String
        var type: String
        /// The message's bytes within the chunk.
        var range: Range<Int>
    }

    struct Chunk: Sendable {
        var start: Int64
        var end: Int64
        var bytes: ByteBuffer
        var entries: [Entry]
    }

    private struct State {
        var chunks: [Chunk] = []
        var events = 0
        var end: Int64
        var bytes = 0
    }

    private let state: Mutex<State>
    let maxEvents: Int
    let maxBytes: Int

    init(start: Int64, maxEvents: Int = 50_000, maxBytes: Int = 32 << 20) {
        state = Mutex(State(end: start))
        self.maxEvents = maxEvents
        self.maxBytes = maxBytes
    }

    /// Where the feed ends (the next offset it will encode).
    var end: Int64 { state.withLock { $0.end } }

    /// Encodes the events from the feed's end up to `head` (called by one task only).
    func extend(to head: Int64, log: any EventLog, cursor: inout (any EventCursor)?, source: String) throws {
        let from = end
        guard from < head else { return }
        if cursor == nil { cursor = log.cursor(from: from, end: nil, filter: .all) }
        cursor!.seek(to: from)
        var buffer = ByteBuffer()
        var entries: [Entry] = []
        var next = from
        let sourceJSON = try CanonicalJSON.encode(.string(source))
        while next < head, let view = try cursor!.next() {
            let message = try CloudEvent.sseMessage(view, source: source, sourceJSON: sourceJSON)
            let at = buffer.writerIndex
            buffer.writeBytes(message)
            entries.append(Entry(offset: view.offset, stream: view.stream, type: view.type, range: at..<buffer.writerIndex))
            next = view.offset + 1
        }
        guard !entries.isEmpty else { return }
        let chunk = Chunk(start: from, end: next, bytes: buffer, entries: entries)
        state.withLock { s in
            s.chunks.append(chunk)
            s.events += entries.count
            s.bytes += buffer.readableBytes
            s.end = next
            while s.chunks.count > 1 && (s.events > maxEvents || s.bytes > maxBytes) {
                let old = s.chunks.removeFirst()
                s.events -= old.entries.count
                s.bytes -= old.bytes.readableBytes
            }
        }
    }

    /// The chunks holding `position` and after, or nil when `position` is before the ring (read
    /// from the log instead).
    func chunks(from position: Int64) -> [Chunk]? {
        state.withLock { s in
            guard let first = s.chunks.first, position >= first.start else { return s.chunks.isEmpty && position >= s.end ? [] : nil }
            guard let i = s.chunks.firstIndex(where: { $0.end > position }) else { return [] }
            return Array(s.chunks[i...])
        }
    }
}
