#if canImport(Glibc)
import Glibc
#endif
import LedgerCore
import LedgerLog

/// One event as the projector sees it: the record's binary fields, the two envelope members every
/// projection needs (actor, causationId, read from the front of the canonical JSON without parsing
/// it) and, only for the types that need it, the parsed envelope.
struct EventFacts: Sendable {
    /// The facts of the most frequent event types, read straight from the canonical JSON.
    enum Hot: Sendable {
        case jobQueued(job: String, team: String?, project: String?, gpuType: String?, gpus: Int?, model: String?, datasets: String?)
        case allocation(job: String, node: String, gpuType: String, gpus: Int, team: String?)
        case window(deployment: String, version: String?, start: Int64, end: Int64, requests: Int, errors: Int, slow: Int?, p99: Double?, gpuSeconds: Double?)
    }

    let offset: Int64
    let id: EventID
    let time: Int64
    let stream: String
    let type: String
    let actor: String
    let causationId: EventID?
    /// The offset of the event `causationId` names, when the log holds it before this one
    /// (resolved by the projector's reading thread; nil: the link is kept by id).
    var causeOffset: Int64?
    /// The parsed envelope (data, hash), for the other types that carry facts. Boxed: most
    /// events have none, and the facts of every event are copied into and out of a chunk.
    var envelope: Envelope? {
        get { envelopeBox?.envelope }
        set { envelopeBox = newValue.map(EnvelopeBox.init) }
    }
    private var envelopeBox: EnvelopeBox?
    final class EnvelopeBox: Sendable {
        let envelope: Envelope
        init(_ envelope: Envelope) { self.envelope = envelope }
    }
    var hot: Hot?
    /// The `hash` member: from the parsed envelope for the types whose rows carry it; the
    /// projector's reader reads it from the stored JSON for the last event of each chunk (the
    /// checkpoint's); nil otherwise — most events never need it.
    var storedHash: Hash256?
    var hash: String { storedHash?.description ?? "" }

    var data: JSONObject { envelope?.data ?? JSONObject() }

    /// An event with only its record's fields (tests of what is derived from them).
    init(offset: Int64, id: EventID, time: Int64, stream: String, type: String, actor: String, causationId: EventID? = nil) {
        self.offset = offset
        self.id = id
        self.time = time
        self.stream = stream
        self.type = type
        self.actor = actor
        self.causationId = causationId
    }

    init(_ view: RecordView, parse: Bool) throws {
        var names = TypeNames()
        try self.init(view, type: view.type, parse: parse, readHash: true, names: &names)
    }

    /// With the record's type already read as a string, and the actor made a string through
    /// `names` (the projector's reader interns both). The hash only with `readHash` or when the
    /// envelope is parsed anyway.
    init(_ view: RecordView, type: String, parse: Bool, readHash: Bool, names: inout TypeNames) throws {
        offset = view.offset
        id = view.id
        time = view.time.milliseconds
        stream = view.stream
        self.type = type
        (actor, causationId) = EventFacts.leadingMembers(view.json, names: &names)
        hot = parse ? EventFacts.hotFacts(type, view.json) : nil
        envelope = parse && hot == nil ? try view.envelope().upcast() : nil  // read as the newest version
        storedHash = envelope?.hash ?? (readHash ? view.storedHash : nil)
    }

    /// Type names and actors read from records, each made a string once: a reader sees a few
    /// dozen of each millions of times.
    struct TypeNames {
        private var entries: [(bytes: [UInt8], name: String, facts: Bool)] = []
        private var actors: [(bytes: [UInt8], name: String)] = []

        /// The actor's name (a shared string when it is one of the first 64 seen).
        mutating func actor(_ bytes: UnsafeRawBufferPointer) -> String {
            if let i = TypeNames.index(of: bytes, in: actors.lazy.map(\.bytes)) { return actors[i].name }
            let name = String(decoding: bytes, as: UTF8.self)
            if actors.count < 64 { actors.append((Array(bytes), name)) }
            return name
        }

        /// Where `bytes` is among the byte strings already seen.
        @inline(__always)
        private static func index(of bytes: UnsafeRawBufferPointer, in seen: some Collection<[UInt8]>) -> Int? {
            for (i, e) in seen.enumerated() where e.count == bytes.count {
                if bytes.isEmpty || e.withUnsafeBytes({ memcmp($0.baseAddress!, bytes.baseAddress!, bytes.count) == 0 }) { return i }
            }
            return nil
        }

        /// The type's name and whether the projections read its data.
        mutating func name(_ bytes: UnsafeRawBufferPointer) -> (String, Bool) {
            if let i = TypeNames.index(of: bytes, in: entries.lazy.map(\.bytes)) { return (entries[i].name, entries[i].facts) }
            let name = String(decoding: bytes, as: UTF8.self)
            let facts = EventFacts.factTypes.contains(name)
            if entries.count < 256 { entries.append((Array(bytes), name, facts)) }
            return (name, facts)
        }
    }

    static func hotFacts(_ type: String, _ json: UnsafeRawBufferPointer) -> Hot? {
        switch type {
        case "job.queued":
            guard let f = CanonicalFields(json), let job = f.string("job") else { return nil }
            return .jobQueued(job: job, team: f.string("team"), project: f.string("project"), gpuType: f.string("gpuType"), gpus: f.int("gpus"), model: f.string("model"), datasets: f.raw("datasets"))
        case "gpu.allocated", "gpu.released":
            guard let f = CanonicalFields(json), let job = f.string("job"), let node = f.string("node"), let gpuType = f.string("gpuType"), let gpus = f.int("gpus") else { return nil }
            return .allocation(job: job, node: node, gpuType: gpuType, gpus: gpus, team: f.string("team"))
        case "serving.window.observed":
            guard let f = CanonicalFields(json), let deployment = f.string("deployment"),
                let start = f.timestamp("windowStart"), let end = f.timestamp("windowEnd"),
                let requests = f.int("requests"), let errors = f.int("errors")
            else { return nil }
            return .window(deployment: deployment, version: f.string("version"), start: start, end: end, requests: requests, errors: errors, slow: f.int("slowRequests"), p99: f.double("p99Ms"), gpuSeconds: f.double("gpuSeconds"))
        default:
            return nil
        }
    }

    /// `{"actor":"…"[,"causationId":"…"]`: the canonical JSON of an envelope always begins so
    /// (members sorted; principals and ids contain nothing to escape).
    static func leadingMembers(_ json: UnsafeRawBufferPointer, names: inout TypeNames) -> (String, EventID?) {
        let prefix: StaticString = "{\"actor\":\""
        let prefixCount = prefix.utf8CodeUnitCount
        guard json.count > prefixCount, memcmp(json.baseAddress!, prefix.utf8Start, prefixCount) == 0 else { return ("", nil) }
        var i = prefixCount
        while i < json.count && json[i] != 0x22 { i += 1 }
        let actor = names.actor(UnsafeRawBufferPointer(rebasing: json[prefixCount..<i]))
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
        "serving.window.observed", "slo.defined", "slo.burn.alerted", "slo.burn.resolved", "gate.evaluated",
        "feature.histogram.observed",
    ]
}

/// An event whose data lacks a member a projection needs, or has it with another type (a log
/// written under a looser contract): recorded as an anomaly row, never applied in part, never a crash.
struct Unappliable: Error {
    var message: String
    init(_ message: String) { self.message = message }
}

extension JSONObject {
    func required(_ key: String) throws(Unappliable) -> String {
        guard let v = self[key]?.stringValue else { throw Unappliable("data member \"\(key)\" is missing or not a string") }
        return v
    }

    func requiredInt(_ key: String) throws(Unappliable) -> Int {
        guard let v = self[key]?.intValue else { throw Unappliable("data member \"\(key)\" is missing or not an integer") }
        return v
    }

    func requiredDouble(_ key: String) throws(Unappliable) -> Double {
        guard let v = self[key]?.doubleValue else { throw Unappliable("data member \"\(key)\" is missing or not a number") }
        return v
    }

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
