import Crypto

/// One event as stored in the log and printed by `ledger read` (EVENTS.md, `Schemas/envelope.v1.json`).
public struct Envelope: Sendable, Equatable {
    public var offset: Int64
    public var id: EventID
    public var stream: String
    public var version: Int64
    public var type: String
    public var schemaVersion: Int
    public var time: Timestamp
    public var actor: String
    public var causationId: EventID?
    public var correlationId: String?
    public var data: JSONObject
    public var prevHash: Hash256
    public var hash: Hash256

    public init(
        offset: Int64, id: EventID, stream: String, version: Int64, type: String, schemaVersion: Int = 1,
        time: Timestamp, actor: String, causationId: EventID? = nil, correlationId: String? = nil,
        data: JSONObject, prevHash: Hash256, hash: Hash256 = .zero
    ) {
        self.offset = offset
        self.id = id
        self.stream = stream
        self.version = version
        self.type = type
        self.schemaVersion = schemaVersion
        self.time = time
        self.actor = actor
        self.causationId = causationId
        self.correlationId = correlationId
        self.data = data
        self.prevHash = prevHash
        self.hash = hash
    }

    /// The category of the stream: the text before its first `-`.
    public var category: Substring { stream.prefix { $0 != "-" } }

    /// RFC 8785 canonical JSON of the envelope; without `hash` these are the bytes that are hashed.
    public func canonicalBytes(includingHash: Bool) throws(LedgerError) -> [UInt8] {
        let data = try CanonicalJSON.encode(.object(self.data))
        var out: [UInt8] = []
        out.reserveCapacity(data.count + 320)
        let fields = EnvelopeFields(
            actor: actor, causationId: causationId, correlationId: correlationId, id: id, offset: offset,
            prevHash: prevHash, schemaVersion: schemaVersion, stream: stream, time: time, type: type, version: version)
        fields.writeHead(data: data, into: &out)
        if includingHash { EnvelopeFields.writeHash(hash, into: &out) }
        fields.writeTail(into: &out)
        return out
    }

    /// SHA-256 of the canonical envelope without `hash` (`Schemas/hashing.md`).
    public func computeHash() throws(LedgerError) -> Hash256 {
        Hash256.of(try canonicalBytes(includingHash: false))
    }

    /// The envelope as a JSON object (with `hash`).
    public var json: JSONValue {
        var o = JSONObject()
        o["actor"] = .string(actor)
        if let causationId { o["causationId"] = .string(causationId.description) }
        if let correlationId { o["correlationId"] = .string(correlationId) }
        o["data"] = .object(data)
        o["hash"] = .string(hash.description)
        o["id"] = .string(id.description)
        o["offset"] = .number(Double(offset))
        o["prevHash"] = .string(prevHash.description)
        o["schemaVersion"] = .number(Double(schemaVersion))
        o["stream"] = .string(stream)
        o["time"] = .string(time.description)
        o["type"] = .string(type)
        o["version"] = .number(Double(version))
        return .object(o)
    }

    /// Reads an envelope from its JSON form (a stored record or a line of `ledger read`).
    public init(json value: JSONValue) throws(LedgerError) {
        guard case .object(let o) = value else { throw LedgerError(.invalidJSON, "an envelope must be a JSON object") }
        func field(_ name: String) throws(LedgerError) -> JSONValue {
            guard let v = o[name] else { throw LedgerError(.schemaViolation, "envelope member \"\(name)\" is missing", path: "/\(name)") }
            return v
        }
        func string(_ name: String) throws(LedgerError) -> String {
            let v = try field(name)
            guard let s = v.stringValue else {
                throw LedgerError(.schemaViolation, "envelope member \"\(name)\" must be a string", path: "/\(name)")
            }
            return s
        }
        func integer(_ name: String) throws(LedgerError) -> Int64 {
            let v = try field(name)
            guard let n = v.intValue, n >= 0 else {
                throw LedgerError(.schemaViolation, "envelope member \"\(name)\" must be a non-negative integer", path: "/\(name)")
            }
            return Int64(n)
        }
        func id(_ name: String) throws(LedgerError) -> EventID {
            guard let id = EventID(try string(name)) else {
                throw LedgerError(.schemaViolation, "envelope member \"\(name)\" must be a lowercase UUID", path: "/\(name)")
            }
            return id
        }
        func hash(_ name: String) throws(LedgerError) -> Hash256 {
            guard let h = Hash256(hex: try string(name)) else {
                throw LedgerError(.schemaViolation, "envelope member \"\(name)\" must be 64 lowercase hex digits", path: "/\(name)")
            }
            return h
        }
        guard case .object(let data)? = o["data"] else {
            throw LedgerError(.schemaViolation, "envelope member \"data\" must be an object", path: "/data")
        }
        guard let time = Timestamp(try string("time")) else {
            throw LedgerError(.schemaViolation, "envelope member \"time\" must be a UTC instant like 2026-11-30T12:00:00.000Z", path: "/time")
        }
        self.init(
            offset: try integer("offset"), id: try id("id"), stream: try string("stream"), version: try integer("version"),
            type: try string("type"), schemaVersion: Int(try integer("schemaVersion")), time: time,
            actor: try string("actor"), causationId: o["causationId"] == nil ? nil : try id("causationId"),
            correlationId: o["correlationId"] == nil ? nil : try string("correlationId"), data: data,
            prevHash: try hash("prevHash"), hash: try hash("hash"))
    }
}

/// The envelope's fields other than `data` and `hash`, written in RFC 8785 order around them.
///
/// Canonical member order is actor, causationId, correlationId, data, hash, id, offset, prevHash,
/// schemaVersion, stream, time, type, version: the *head* runs up to the end of `data`, the *tail*
/// from `id` on, and `hash` sits between them. The hashed bytes are head + tail; the stored bytes
/// are head + `,"hash":"…"` + tail. The writer uses this to hash and store without re-encoding.
public struct EnvelopeFields: Sendable {
    public var actor: String
    public var causationId: EventID?
    public var correlationId: String?
    public var id: EventID
    public var offset: Int64
    public var prevHash: Hash256
    public var schemaVersion: Int
    public var stream: String
    public var time: Timestamp
    public var type: String
    public var version: Int64

    public init(
        actor: String, causationId: EventID?, correlationId: String?, id: EventID, offset: Int64, prevHash: Hash256,
        schemaVersion: Int, stream: String, time: Timestamp, type: String, version: Int64
    ) {
        self.actor = actor
        self.causationId = causationId
        self.correlationId = correlationId
        self.id = id
        self.offset = offset
        self.prevHash = prevHash
        self.schemaVersion = schemaVersion
        self.stream = stream
        self.time = time
        self.type = type
        self.version = version
    }

    /// `{"actor":…,["causationId":…,]["correlationId":…,]"data":<data>` (data already canonical).
    public func writeHead(data: [UInt8], into out: inout [UInt8]) {
        let w = ByteWriter(capacity: data.count + 128)
        Self.writeHead(actor: actor, causationId: causationId, correlationId: correlationId, into: w)
        w.append(data)
        out.append(contentsOf: w.bytes)
    }

    /// The head up to `"data":` — the data's canonical bytes follow.
    public static func writeHead(actor: String, causationId: EventID?, correlationId: String?, into w: ByteWriter) {
        w.append("{\"actor\":")
        w.appendJSONString(actor)
        if let causationId {
            w.append(",\"causationId\":\"")
            causationId.append(to: w)
            w.append(UInt8(ascii: "\""))
        }
        if let correlationId {
            w.append(",\"correlationId\":")
            w.appendJSONString(correlationId)
        }
        w.append(",\"data\":")
    }

    /// `,"hash":"<64 hex>"`.
    public static func writeHash(_ hash: Hash256, into w: ByteWriter) {
        w.append(",\"hash\":\"")
        hash.appendHex(to: w)
        w.append(UInt8(ascii: "\""))
    }

    public static func writeHash(_ hash: Hash256, into out: inout [UInt8]) {
        let w = ByteWriter(capacity: 80)
        writeHash(hash, into: w)
        out.append(contentsOf: w.bytes)
    }

    /// `,"id":…,"offset":…,"prevHash":…,"schemaVersion":…,"stream":…,"time":…,"type":…,"version":…}`.
    public func writeTail(into w: ByteWriter) {
        Self.writeTail(id: id, offset: offset, prevHash: prevHash, schemaVersion: schemaVersion, stream: stream, time: time, type: type, version: version, into: w)
    }

    /// The tail from its parts (the sequencer's hot path writes it without building the fields).
    @inline(__always)
    public static func writeTail(
        id: EventID, offset: Int64, prevHash: Hash256, schemaVersion: Int, stream: String, time: Timestamp, type: String, version: Int64,
        into w: ByteWriter
    ) {
        var stream = stream
        var type = type
        stream.withUTF8 { s in
            type.withUTF8 { t in
                writeTail(id: id, offset: offset, prevHash: prevHash, schemaVersion: schemaVersion, stream: s, time: time, type: t, version: version, into: w)
            }
        }
    }

    /// The tail with the stream and type as UTF-8 bytes (as a record's binary header holds them:
    /// `verify` rebuilds the tail from there without making strings).
    @inline(__always)
    public static func writeTail(
        id: EventID, offset: Int64, prevHash: Hash256, schemaVersion: Int, stream: UnsafeBufferPointer<UInt8>, time: Timestamp,
        type: UnsafeBufferPointer<UInt8>, version: Int64, into w: ByteWriter
    ) {
        w.append(",\"id\":\"")
        id.append(to: w)
        w.append("\",\"offset\":")
        w.appendDecimal(offset)
        w.append(",\"prevHash\":\"")
        prevHash.appendHex(to: w)
        w.append("\",\"schemaVersion\":")
        w.appendDecimal(Int64(schemaVersion))
        w.append(",\"stream\":")
        w.appendJSONString(utf8: stream)
        w.append(",\"time\":\"")
        time.append(to: w)
        w.append("\",\"type\":")
        w.appendJSONString(utf8: type)
        w.append(",\"version\":")
        w.appendDecimal(version)
        w.append(UInt8(ascii: "}"))
    }

    public func writeTail(into out: inout [UInt8]) {
        let w = ByteWriter(capacity: 320)
        writeTail(into: w)
        out.append(contentsOf: w.bytes)
    }

    @inline(__always)
    static func literal(_ s: StaticString, _ out: inout [UInt8]) {
        out.append(contentsOf: UnsafeBufferPointer(start: s.utf8Start, count: s.utf8CodeUnitCount))
    }
}

/// The canonical head of an envelope (every member up to and including `data`) with the SHA-256
/// state after it. Prepared in parallel ahead of the writer, so that the writer only hashes the tail.
public struct EnvelopeHead: Sendable {
    /// `{"actor":…,"data":<canonical data>`.
    public let bytes: [UInt8]
    /// Where the canonical data starts in `bytes`.
    public let dataStart: Int
    private let hasher: SHA256State

    public init(actor: String, causationId: EventID?, correlationId: String?, data: JSONObject, scratch: ByteWriter? = nil) throws(LedgerError) {
        var failure: LedgerError? = nil
        let head = EnvelopeHead(actor: actor, causationId: causationId, correlationId: correlationId, scratch: scratch ?? ByteWriter(capacity: 512)) { w in
            do throws(LedgerError) {
                try CanonicalJSON.write(.object(data), into: w)
                return true
            } catch {
                failure = error
                return false
            }
        }
        guard let head else { throw failure! }
        self = head
    }

    /// The head of data whose canonical bytes `writeData` appends (the tape's path); nil when it
    /// cannot.
    public init?(actor: String, causationId: EventID?, correlationId: String?, scratch w: ByteWriter, writeData: (ByteWriter) -> Bool) {
        w.reset()
        EnvelopeFields.writeHead(actor: actor, causationId: causationId, correlationId: correlationId, into: w)
        dataStart = w.count
        guard writeData(w) else { return nil }
        var h = SHA256State()
        h.update(w.bytes)
        hasher = h
        bytes = w.array()
    }

    /// Size of the canonical data.
    public var dataCount: Int { bytes.count - dataStart }

    /// The canonical data.
    public var data: ArraySlice<UInt8> { bytes[dataStart...] }

    /// SHA-256 of head + `tail`: the envelope's `hash`.
    @inline(__always)
    public func hash(tail: UnsafeRawBufferPointer) -> Hash256 {
        var h = hasher
        h.update(tail)
        return h.finalize()
    }
}
