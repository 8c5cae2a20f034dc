import LedgerCore

/// An uncompressed record batch being filled by the sequencer: records are written straight into
/// the payload, and each event's envelope is hashed from the same bytes (head + tail, without
/// re-encoding).
struct BatchBuilder {
    let baseOffset: Int64
    private(set) var count = 0
    private(set) var payload: [UInt8] = []
    private(set) var recordStarts: [Int] = []
    private(set) var firstTime: Int64 = 0
    private(set) var lastTime: Int64 = 0
    private(set) var lastHash: Hash256 = .zero
    private var tail: [UInt8] = []

    init(baseOffset: Int64, capacity: Int) {
        self.baseOffset = baseOffset
        payload.reserveCapacity(capacity)
        tail.reserveCapacity(512)
    }

    var nextOffset: Int64 { baseOffset + Int64(count) }
    var isEmpty: Bool { count == 0 }

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
        payload.removeLast(payload.count - mark.payloadCount)
        recordStarts.removeLast(recordStarts.count - mark.count)
        lastTime = mark.lastTime
        firstTime = mark.firstTime
        lastHash = mark.lastHash
    }

    /// Appends one event's record and returns its `hash`.
    mutating func append(_ fields: EnvelopeFields, data: [UInt8]) -> Hash256 {
        let start = payload.count
        recordStarts.append(start)
        payload.appendLE(UInt32(0))  // length, patched below
        payload.append(0)
        payload.appendLE(fields.id.high.bigEndian)
        payload.appendLE(fields.id.low.bigEndian)
        payload.appendLE(fields.time.milliseconds)
        payload.appendLE(fields.version)
        payload.appendLE(UInt16(fields.stream.utf8.count))
        payload.append(contentsOf: fields.stream.utf8)
        payload.appendLE(UInt16(fields.type.utf8.count))
        payload.append(contentsOf: fields.type.utf8)
        let jsonStart = payload.count
        fields.writeHead(data: data, into: &payload)
        let headEnd = payload.count
        tail.removeAll(keepingCapacity: true)
        fields.writeTail(into: &tail)
        let hash = payload.withUnsafeBytes { p in
            tail.withUnsafeBytes { t in Hash256.of(UnsafeRawBufferPointer(rebasing: p[jsonStart..<headEnd]), t) }
        }
        EnvelopeFields.writeHash(hash, into: &payload)
        payload.append(contentsOf: tail)
        let length = UInt32(payload.count - start - 4)
        payload.withUnsafeMutableBytes { $0.baseAddress!.putLE(length, at: start) }
        if count == 0 { firstTime = fields.time.milliseconds }
        lastTime = fields.time.milliseconds
        lastHash = hash
        count += 1
        return hash
    }

    /// The record of `offset` (which must be in this batch).
    func withRecord<R>(at offset: Int64, _ body: (RecordView) throws -> R) throws -> R {
        let i = Int(offset - baseOffset)
        return try payload.withUnsafeBytes { p in
            let (view, _) = try RecordView.parse(p, at: recordStarts[i], offset: offset)
            return try body(view)
        }
    }
}
