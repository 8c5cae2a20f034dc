import LedgerCore

/// An uncompressed record batch being filled by the sequencer: records are written straight into
/// the payload; each prepared event brings its canonical envelope head and the SHA-256 state
/// after it, so only the tail (id, offset, prevHash, …) is written and hashed here.
struct BatchBuilder {
    let baseOffset: Int64
    private(set) var count = 0
    /// The payload; recycled between batches (see ``AppendPipeline``).
    let payload: ByteWriter
    private(set) var recordStarts: [Int] = []
    private(set) var firstTime: Int64 = 0
    private(set) var lastTime: Int64 = 0
    private(set) var lastHash: Hash256 = .zero
    /// Every record's `hash`, in order: the Merkle tree's leaves are made from them
    /// (``TreeMaintainer``) without reading the log back.
    private(set) var hashes: [Hash256] = []
    private let tail: ByteWriter

    init(baseOffset: Int64, payload: ByteWriter, tail: ByteWriter) {
        self.baseOffset = baseOffset
        self.payload = payload
        self.tail = tail
        payload.reset()
    }

    init(baseOffset: Int64, capacity: Int) {
        self.init(baseOffset: baseOffset, payload: ByteWriter(capacity: capacity), tail: ByteWriter(capacity: 512))
    }

    var nextOffset: Int64 { baseOffset + Int64(count) }
    var isEmpty: Bool { count == 0 }
    var payloadBytes: Int { payload.count }

    struct Mark {
        var count: Int
        var payloadCount: Int
        var lastTime: Int64
        var firstTime: Int64
        var lastHash: Hash256
    }

    func mark() -> Mark { Mark(count: count, payloadCount: payload.count, lastTime: lastTime, firstTime: firstTime, lastHash: lastHash) }

    /// Drops everything appended since `mark` (a request that failed part-way).
    mutating func rollback(to mark: Mark) {
        count = mark.count
        payload.truncate(to: mark.payloadCount)
        recordStarts.removeLast(recordStarts.count - mark.count)
        hashes.removeLast(hashes.count - mark.count)
        lastTime = mark.lastTime
        firstTime = mark.firstTime
        lastHash = mark.lastHash
    }

    /// Appends one event's record from an unprepared head (tests, tools) and returns its `hash`.
    mutating func append(_ fields: EnvelopeFields, data: [UInt8]) -> Hash256 {
        var head: [UInt8] = []
        fields.writeHead(data: data, into: &head)
        return appendRecord(fields, head: head) { tail in head.withUnsafeBytes { h in Hash256.of(h, tail) } }
    }

    /// Appends one prepared event's record and returns its `hash`.
    mutating func append(_ fields: EnvelopeFields, head: EnvelopeHead) -> Hash256 {
        appendRecord(fields, head: head.bytes) { head.hash(tail: $0) }
    }

    /// Appends the record of a prepared event at `offset` (the sequencer's hot path: the event is
    /// read in place, nothing of it copied) and returns its `hash`.
    mutating func append(
        _ e: UnsafePointer<PreparedEvent>, id: EventID, offset: Int64, prevHash: Hash256, time: Timestamp, version: Int64
    ) -> Hash256 {
        appendRecord(
            id: id, offset: offset, prevHash: prevHash, schemaVersion: e.pointee.schemaVersion, stream: e.pointee.stream, time: time,
            type: e.pointee.type, version: version, head: e.pointee.head.bytes
        ) { e.pointee.head.hash(tail: $0) }
    }

    private mutating func appendRecord(_ fields: EnvelopeFields, head: [UInt8], hash computeHash: (UnsafeRawBufferPointer) -> Hash256) -> Hash256 {
        appendRecord(
            id: fields.id, offset: fields.offset, prevHash: fields.prevHash, schemaVersion: fields.schemaVersion, stream: fields.stream,
            time: fields.time, type: fields.type, version: fields.version, head: head, hash: computeHash)
    }

    /// The one record writer: binary header, head, `hash` and tail (hashed head + tail).
    @inline(__always)
    private mutating func appendRecord(
        id: EventID, offset: Int64, prevHash: Hash256, schemaVersion: Int, stream: String, time: Timestamp, type: String, version: Int64,
        head: [UInt8], hash computeHash: (UnsafeRawBufferPointer) -> Hash256
    ) -> Hash256 {
        let p = payload
        let start = p.count
        recordStarts.append(start)
        p.appendLE(UInt32(0))  // length, patched below
        p.append(0)
        p.appendLE(id.high.bigEndian)
        p.appendLE(id.low.bigEndian)
        p.appendLE(time.milliseconds)
        p.appendLE(version)
        p.appendLE(UInt16(stream.utf8.count))
        p.append(utf8: stream)
        p.appendLE(UInt16(type.utf8.count))
        p.append(utf8: type)
        p.append(head)
        tail.reset()
        EnvelopeFields.writeTail(
            id: id, offset: offset, prevHash: prevHash, schemaVersion: schemaVersion, stream: stream, time: time, type: type, version: version,
            into: tail)
        let hash = computeHash(tail.bytes)
        EnvelopeFields.writeHash(hash, into: p)
        p.append(tail.bytes)
        p.patchLE(UInt32(p.count - start - 4), at: start)
        if count == 0 { firstTime = time.milliseconds }
        lastTime = time.milliseconds
        lastHash = hash
        hashes.append(hash)
        count += 1
        return hash
    }

    /// The record of `offset` (which must be in this batch).
    func withRecord<R>(at offset: Int64, _ body: (RecordView) throws -> R) throws -> R {
        let i = Int(offset - baseOffset)
        let (view, _) = try RecordView.parse(payload.bytes, at: recordStarts[i], offset: offset)
        return try body(view)
    }
}
