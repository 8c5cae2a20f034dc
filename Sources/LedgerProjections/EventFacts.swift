import LedgerCore
import LedgerLog

/// One event as the projector sees it: the record's binary fields, the two envelope members every
/// projection needs (actor, causationId, read from the front of the canonical JSON without parsing
/// it) and, only for the types that need it, the parsed envelope.
struct EventFacts {
    let offset: Int64
    let id: EventID
    let time: Int64
    let stream: String
    let type: String
    let actor: String
    let causationId: EventID?
    /// The parsed envelope (data, hash), for types that carry facts.
    var envelope: Envelope?
    /// The `hash` member (64 hex digits), read from the stored JSON without parsing it.
    let hash: String

    var data: JSONObject { envelope?.data ?? JSONObject() }

    init(_ view: RecordView, parse: Bool) throws {
        offset = view.offset
        id = view.id
        time = view.time.milliseconds
        stream = view.stream
        type = view.type
        (actor, causationId) = EventFacts.leadingMembers(view.json)
        envelope = parse ? try view.envelope() : nil
        hash = envelope?.hash.description ?? EventFacts.hashMember(view.json)
    }

    /// The top-level `,"hash":"…"` of a canonical envelope, found from the end: the members after
    /// it (id, offset, prevHash, schemaVersion, stream, time, type, version) cannot contain that text.
    static func hashMember(_ json: UnsafeRawBufferPointer) -> String {
        let marker = Array(",\"hash\":\"".utf8)
        var i = json.count - marker.count - 64
        while i >= 0 {
            if json[i] == 0x2C && json[i + 1] == 0x22 && json[i + 2] == 0x68 && json[i + 3] == 0x61
                && UnsafeRawBufferPointer(rebasing: json[i..<(i + marker.count)]).elementsEqual(marker)
            {
                return String(decoding: UnsafeRawBufferPointer(rebasing: json[(i + marker.count)..<(i + marker.count + 64)]), as: UTF8.self)
            }
            i -= 1
        }
        return ""
    }

    /// `{"actor":"…"[,"causationId":"…"]`: the canonical JSON of an envelope always begins so
    /// (members sorted; principals and ids contain nothing to escape).
    static func leadingMembers(_ json: UnsafeRawBufferPointer) -> (String, EventID?) {
        let prefix = Array("{\"actor\":\"".utf8)
        guard json.count > prefix.count, json.starts(with: prefix) else { return ("", nil) }
        var i = prefix.count
        while i < json.count && json[i] != 0x22 { i += 1 }
        let actor = String(decoding: UnsafeRawBufferPointer(rebasing: json[prefix.count..<i]), as: UTF8.self)
        let causation = Array(",\"causationId\":\"".utf8)
        let start = i + 1
        guard json.count >= start + causation.count + 36,
            UnsafeRawBufferPointer(rebasing: json[start..<(start + causation.count)]).elementsEqual(causation)
        else { return (actor, nil) }
        let idStart = start + causation.count
        let text = String(decoding: UnsafeRawBufferPointer(rebasing: json[idStart..<(idStart + 36)]), as: UTF8.self)
        return (actor, EventID(text))
    }

    /// Types whose data the projections read (all others only go to the audit postings).
    static let factTypes: Set<String> = [
        "dataset.registered", "model.registered", "model.version.created", "model.version.evaluated", "model.version.approved",
        "model.alias.set", "model.alias.removed", "model.version.archived", "deployment.created", "rollout.started",
        "rollout.step.advanced", "rollout.paused", "rollout.resumed", "rollout.promoted", "rollout.rolled_back",
        "drift.alerted", "node.registered", "node.removed", "price.set", "job.queued", "gpu.allocated", "gpu.released",
        "serving.window.observed", "slo.defined", "slo.burn.alerted", "slo.burn.resolved",
    ]
}

extension JSONObject {
    func string(_ key: String) -> String? { self[key]?.stringValue }
    func int(_ key: String) -> Int? { self[key]?.intValue }
    func double(_ key: String) -> Double? { self[key]?.doubleValue }

    /// A member as canonical JSON text (for columns that keep structured values).
    func json(_ key: String) -> String? {
        guard let v = self[key] else { return nil }
        return v.description
    }
}

extension Timestamp {
    static func parse(_ text: String?) -> Int64? { text.flatMap { Timestamp($0)?.milliseconds } }
}
