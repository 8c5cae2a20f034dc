import Foundation
import GRDB
public import LedgerCore
public import LedgerLog

/// The audit read model: every event indexed by actor, stream, category, type, time and
/// causation; answers carry offsets and hashes (read back from the log, the only truth).
public enum Audit {
    public enum Key: String, Sendable, CaseIterable { case actor, stream, category, type }

    public struct Entry: Sendable {
        public var offset: Int64
        public var time: Timestamp
        public var actor: String
        public var stream: String
        public var type: String
        public var id: EventID
        public var hash: Hash256
        public var causationId: EventID?
        public var correlationId: String?
        public var data: JSONObject

        init(_ e: Envelope) {
            offset = e.offset
            time = e.time
            actor = e.actor
            stream = e.stream
            type = e.type
            id = e.id
            hash = e.hash
            causationId = e.causationId
            correlationId = e.correlationId
            data = e.data
        }

        public var json: JSONValue {
            var o: JSONObject = [
                "offset": .number(Double(offset)), "time": .string(time.description), "actor": .string(actor), "stream": .string(stream),
                "type": .string(type), "id": .string(id.description), "hash": .string(hash.description),
            ]
            if let causationId { o["causationId"] = .string(causationId.description) }
            if let correlationId { o["correlationId"] = .string(correlationId) }
            return .object(o)
        }
    }

    /// Offsets of the events with `key` = `value`, within [from, to] and the query's prefix.
    public static func offsets(_ q: QueryContext, _ key: Key, _ value: String, from: Int64 = 0, to: Int64? = nil) throws -> [Int64] {
        let upper = min(to ?? q.last, q.last)
        guard upper >= from else { return [] }
        return try q.read { db in
            var out: [Int64] = []
            let rows = try Row.fetchAll(db, sql: """
                SELECT bucket, offsets FROM audit_postings WHERE kind = ? AND key = ? AND bucket BETWEEN ? AND ? ORDER BY bucket
                """, arguments: [key.rawValue, value, from / FactWriter.bucketSize, upper / FactWriter.bucketSize])
            for row in rows {
                let bucket: Int64 = row[0]
                let bytes: Data = row[1]
                var i = bytes.startIndex
                while i + 1 < bytes.endIndex {
                    let offset = bucket * FactWriter.bucketSize + Int64(bytes[i]) + Int64(bytes[i + 1]) << 8
                    if offset >= from && offset <= upper { out.append(offset) }
                    i += 2
                }
            }
            return out
        }
    }

    /// The events with `key` = `value` (optionally within a time range), oldest first.
    public static func events(_ q: QueryContext, _ key: Key, _ value: String, fromTime: Timestamp? = nil, toTime: Timestamp? = nil, limit: Int? = nil) throws -> [Entry] {
        let from = try fromTime.map { try q.source.firstOffset(atOrAfter: $0) } ?? 0
        let to = try toTime.map { try q.source.lastOffset(atOrBefore: $0) }
        var offsets = try Self.offsets(q, key, value, from: from, to: to)
        if let limit, offsets.count > limit { offsets = Array(offsets.suffix(limit)) }
        return try offsets.compactMap { try q.envelope($0).map(Entry.init) }
    }

    /// The causal chain of an event: its causes back to the first (via causationId), and every
    /// event it caused, directly or not, within the query's prefix.
    public static func chain(_ q: QueryContext, offset: Int64, ids: any IDLookup) throws -> (causes: [Entry], event: Entry, effects: [Entry]) {
        guard offset <= q.last, let event = try q.envelope(offset) else {
            throw LedgerError(.notFound, "no event at offset \(offset) as of \(q.asOf)")
        }
        var causes: [Entry] = []
        var current = event
        var seen: Set<Int64> = [offset]
        while let cause = current.causationId, let at = try ids.offset(of: cause), at <= q.last, !seen.contains(at), let e = try q.envelope(at) {
            causes.insert(Entry(e), at: 0)
            seen.insert(at)
            current = e
        }
        var effects: [Entry] = []
        var frontier = [(event.id, offset)]
        while let (id, at) = frontier.popLast() {
            // Links by the cause's offset, and by id those whose cause was not resolved.
            let found = try q.read { db in
                let byID = try Int64.fetchAll(db, sql: "SELECT effect_offset FROM audit_causes WHERE cause_id = ? AND effect_offset <= ?", arguments: [Data(id.bytes), q.last])
                return Set(try EffectBlock.effects(db, of: at, last: q.last) + byID).sorted()
            }
            for next in found where !seen.contains(next) {
                seen.insert(next)
                if let e = try q.envelope(next) {
                    effects.append(Entry(e))
                    frontier.append((e.id, next))
                }
            }
        }
        effects.sort { $0.offset < $1.offset }
        return (causes, Entry(event), effects)
    }

    public struct Anomaly: Sendable {
        public var offset: Int64
        public var projection: String
        public var type: String
        public var message: String
        public var json: JSONValue {
            ["offset": .number(Double(offset)), "projection": .string(projection), "type": .string(type), "message": .string(message)]
        }
    }

    /// Events a projection could not apply, recorded instead of dropped.
    public static func anomalies(_ q: QueryContext) throws -> [Anomaly] {
        try q.read { db in
            try Row.fetchAll(db, sql: "SELECT offset, projection, type, message FROM anomalies WHERE offset <= ? ORDER BY offset, projection, message", arguments: [q.last])
                .map { Anomaly(offset: $0[0], projection: $0[1], type: $0[2], message: $0[3]) }
        }
    }
}
