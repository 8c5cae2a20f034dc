#if canImport(Glibc)
import Glibc
#endif
public import LedgerCore

/// The fixed 80-byte header of a record batch (`Schemas/segment-format.md`). All integers are
/// little-endian.
///
/// ```
///  0  4  magic "PLB1"
///  4  1  format version (1)
///  5  1  codec (0 none, 1 LZ4 block)
///  6  2  reserved, 0
///  8  4  payload length (bytes stored after the header)
/// 12  4  CRC-32C of bytes 0..<12 and 16..<80+payload length
/// 16  8  base offset (offset of the first record)
/// 24  4  record count
/// 28  4  uncompressed payload length
/// 32  8  first record time (ms since the epoch)
/// 40  8  last record time
/// 48 32  SHA-256 `hash` of the last record
/// ```
struct BatchHeader: Equatable {
    static let size = 80
    static let magic: [UInt8] = Array("PLB1".utf8)
    static let formatVersion: UInt8 = 1

    enum Codec: UInt8 {
        case none = 0
        case lz4 = 1
    }

    var codec: Codec
    var payloadLength: Int
    var crc: UInt32
    var baseOffset: Int64
    var count: Int
    var uncompressedLength: Int
    var firstTime: Int64
    var lastTime: Int64
    var lastHash: Hash256

    var nextOffset: Int64 { baseOffset + Int64(count) }
    var totalSize: Int { BatchHeader.size + payloadLength }

    /// Why a run of bytes is not a batch header.
    enum Defect: Error, Equatable {
        case truncated
        case badMagic
        case unsupportedVersion(UInt8)
        case badCodec(UInt8)
        case implausible(String)
    }

    /// Reads a header; checks its shape but not the CRC (which needs the payload).
    static func decode(_ p: UnsafeRawBufferPointer) throws(Defect) -> BatchHeader {
        guard p.count >= size, let b = UnsafeRawPointer(p.baseAddress) else { throw .truncated }
        guard b.load(as: UInt8.self) == magic[0], b.load(fromByteOffset: 1, as: UInt8.self) == magic[1],
            b.load(fromByteOffset: 2, as: UInt8.self) == magic[2], b.load(fromByteOffset: 3, as: UInt8.self) == magic[3]
        else { throw .badMagic }
        let version = b.load(fromByteOffset: 4, as: UInt8.self)
        guard version == formatVersion else { throw .unsupportedVersion(version) }
        let codecByte = b.load(fromByteOffset: 5, as: UInt8.self)
        guard let codec = Codec(rawValue: codecByte) else { throw .badCodec(codecByte) }
        let header = BatchHeader(
            codec: codec, payloadLength: Int(b.le(8, as: UInt32.self)), crc: b.le(12, as: UInt32.self),
            baseOffset: b.le(16, as: Int64.self), count: Int(b.le(24, as: UInt32.self)),
            uncompressedLength: Int(b.le(28, as: UInt32.self)), firstTime: b.le(32, as: Int64.self),
            lastTime: b.le(40, as: Int64.self),
            lastHash: Hash256(bytes: UnsafeRawBufferPointer(start: b + 48, count: 32)))
        guard header.count > 0, header.baseOffset >= 0, header.payloadLength <= RecordBatch.maxStoredBytes,
            header.uncompressedLength <= RecordBatch.maxStoredBytes, header.firstTime <= header.lastTime
        else { throw .implausible("count \(header.count), payload \(header.payloadLength) bytes") }
        return header
    }

    /// Writes the header into the first 80 bytes of `p`, CRC field zero (see ``RecordBatch/seal``).
    func encode(into p: UnsafeMutableRawPointer) {
        for i in 0..<4 { p.storeBytes(of: BatchHeader.magic[i], toByteOffset: i, as: UInt8.self) }
        p.storeBytes(of: BatchHeader.formatVersion, toByteOffset: 4, as: UInt8.self)
        p.storeBytes(of: codec.rawValue, toByteOffset: 5, as: UInt8.self)
        p.putLE(UInt16(0), at: 6)
        p.putLE(UInt32(payloadLength), at: 8)
        p.putLE(crc, at: 12)
        p.putLE(baseOffset, at: 16)
        p.putLE(UInt32(count), at: 24)
        p.putLE(UInt32(uncompressedLength), at: 28)
        p.putLE(firstTime, at: 32)
        p.putLE(lastTime, at: 40)
        let hash = lastHash.bytes
        for i in 0..<32 { p.storeBytes(of: hash[i], toByteOffset: 48 + i, as: UInt8.self) }
    }

    /// CRC-32C of a whole stored batch (header and payload), skipping the CRC field itself.
    static func computeCRC(_ batch: UnsafeRawBufferPointer) -> UInt32 {
        let first = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: batch[0..<12]))
        return CRC32C.checksum(UnsafeRawBufferPointer(rebasing: batch[16...]), continuing: first)
    }
}

/// Records inside a batch payload, one after another:
///
/// ```
/// 4  length of the rest of the record
/// 1  flags (0)
/// 16 id (UUID bytes)
/// 8  time (ms since the epoch)
/// 8  stream version
/// 2  stream length, then the stream name (UTF-8)
/// 2  type length, then the type name
/// …  the rest: the event's RFC 8785 canonical JSON envelope, with `hash` (what `ledger read` prints)
/// ```
enum RecordBatch {
    /// Upper bound on a stored or uncompressed payload; larger values in a header mean damage.
    static let maxStoredBytes = 256 << 20
    /// Fixed part of a record after its length field.
    static let fixedRecordBytes = 1 + 16 + 8 + 8 + 2 + 2

    /// Appends one record to an uncompressed payload.
    static func appendRecord(
        to payload: inout [UInt8], id: EventID, time: Timestamp, version: Int64, stream: String, type: String,
        json: UnsafeRawBufferPointer
    ) {
        let streamCount = stream.utf8.count
        let typeCount = type.utf8.count
        payload.appendLE(UInt32(fixedRecordBytes + streamCount + typeCount + json.count))
        payload.append(0)
        payload.appendLE(id.high.bigEndian)
        payload.appendLE(id.low.bigEndian)
        payload.appendLE(time.milliseconds)
        payload.appendLE(version)
        payload.appendLE(UInt16(streamCount))
        payload.append(contentsOf: stream.utf8)
        payload.appendLE(UInt16(typeCount))
        payload.append(contentsOf: type.utf8)
        payload.append(contentsOf: json)
    }
}

/// One record of a decoded batch, pointing into the batch's buffer (valid only while it is).
public struct RecordView {
    public let offset: Int64
    public let id: EventID
    public let time: Timestamp
    public let version: Int64
    public let streamBytes: UnsafeRawBufferPointer
    public let typeBytes: UnsafeRawBufferPointer
    /// The canonical JSON envelope, with `hash`.
    public let json: UnsafeRawBufferPointer

    public var stream: String { String(decoding: streamBytes, as: UTF8.self) }
    public var type: String { String(decoding: typeBytes, as: UTF8.self) }

    /// The category of the stream (bytes before the first `-`).
    public var categoryBytes: UnsafeRawBufferPointer {
        let end = streamBytes.firstIndex(of: UInt8(ascii: "-")) ?? streamBytes.count
        return UnsafeRawBufferPointer(rebasing: streamBytes[0..<end])
    }

    /// Where the top-level `,"hash":"` member starts in `json`, read without parsing it: first
    /// where it stands when the members after it have the lengths the record's fields give (a
    /// one-digit schemaVersion), else the last occurrence — no member after `hash` (names, ids,
    /// numbers, times) can hold that text. The 64 hex digits follow the 9 bytes of the marker.
    public var hashMemberStart: Int? {
        let marker: StaticString = ",\"hash\":\""
        let m = marker.utf8CodeUnitCount
        func at(_ i: Int) -> Bool { i >= 0 && i + m + 65 <= json.count && memcmp(json.baseAddress! + i, marker.utf8Start, m) == 0 }
        let digits = RecordView.decimalDigits
        // ,"id":"<36>","offset":N,"prevHash":"<64>","schemaVersion":1,"stream":"S","time":"<24>","type":"T","version":V}
        let tail = 7 + 36 + 11 + digits(offset) + 13 + 64 + 18 + 1 + 11 + streamBytes.count + 10 + 24 + 10 + typeBytes.count + 12 + digits(version) + 1
        let expected = json.count - tail - 65 - m
        if at(expected) && json[expected + m + 64] == 0x22 { return expected }
        var i = json.count - m - 65
        while i >= 0 {
            if json[i] == 0x2C && json[i + 1] == 0x22 && json[i + 2] == 0x68 && at(i) { return i }
            i -= 1
        }
        return nil
    }

    /// How many digits the decimal form of a non-negative `n` has.
    @inline(__always) static func decimalDigits(_ n: Int64) -> Int {
        var n = n
        var d = 1
        while n >= 10 {
            n /= 10
            d += 1
        }
        return d
    }

    /// The stored `hash` member (64 hex digits), read in place.
    public var storedHash: Hash256? {
        guard let i = hashMemberStart else { return nil }
        return Hash256(hexBytes: UnsafeRawBufferPointer(rebasing: json[(i + 9)..<(i + 73)]))
    }

    /// A copy that owns its bytes.
    public func stored() -> StoredEvent {
        StoredEvent(offset: offset, id: id, time: time, version: version, stream: stream, type: type, json: Array(json))
    }

    /// Parses the JSON envelope.
    public func envelope() throws -> Envelope {
        try Envelope(stored: json)
    }

    /// Parses the record at `position` of an uncompressed payload; returns it and the position of
    /// the next one. Throws a description of the malformation.
    @inline(__always)
    static func parse(_ payload: UnsafeRawBufferPointer, at position: Int, offset: Int64) throws -> (RecordView, Int) {
        guard let base = payload.baseAddress, payload.count - position >= 4 else {
            throw RecordDefect("record at offset \(offset) has a truncated length")
        }
        let length = Int(base.le(position, as: UInt32.self))
        let start = position + 4
        guard length >= RecordBatch.fixedRecordBytes, length <= payload.count - start else {
            throw RecordDefect("record at offset \(offset) claims \(length) bytes, beyond its batch")
        }
        let p = base + start
        // Layout after the length: flags 0, id 1..<17, time 17, version 25, stream length 33.
        let streamCount = Int(p.le(33, as: UInt16.self))
        guard 35 + streamCount + 2 <= length else { throw RecordDefect("record at offset \(offset) has a bad stream length") }
        let typeCount = Int(p.le(35 + streamCount, as: UInt16.self))
        let jsonStart = 37 + streamCount + typeCount
        guard jsonStart <= length else { throw RecordDefect("record at offset \(offset) has a bad type length") }
        let view = RecordView(
            offset: offset,
            id: EventID(high: UInt64(bigEndian: p.le(1, as: UInt64.self)), low: UInt64(bigEndian: p.le(9, as: UInt64.self))),
            time: Timestamp(milliseconds: p.le(17, as: Int64.self)), version: p.le(25, as: Int64.self),
            streamBytes: UnsafeRawBufferPointer(start: p + 35, count: streamCount),
            typeBytes: UnsafeRawBufferPointer(start: p + 37 + streamCount, count: typeCount),
            json: UnsafeRawBufferPointer(start: p + jsonStart, count: length - jsonStart))
        return (view, start + length)
    }
}

struct RecordDefect: Error {
    var message: String
    init(_ message: String) { self.message = message }
}

/// An event read from the log, owning its bytes.
public struct StoredEvent: Sendable, Equatable {
    public var offset: Int64
    public var id: EventID
    public var time: Timestamp
    public var version: Int64
    public var stream: String
    public var type: String
    /// The canonical JSON envelope with `hash`: exactly what `ledger read` prints.
    public var json: [UInt8]

    public func envelope() throws -> Envelope {
        try json.withUnsafeBytes { b throws(LedgerError) in try Envelope(stored: b) }
    }
}
