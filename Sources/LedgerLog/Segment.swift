#if canImport(Glibc)
import Glibc
#endif
import LedgerCore
import Synchronization

/// One segment file of the log, named by the offset of its first record (20 digits, Kafka style),
/// with its two sparse index files beside it.
final class Segment: Sendable {
    let baseOffset: Int64
    let logPath: String
    let indexPath: String
    let timeIndexPath: String
    let fd: Int32
    let writable: Bool
    /// Whether deinit closes `fd` (false for a temporary view sharing another's descriptor).
    private let owns = Atomic<Bool>(true)

    /// What grows as the writer appends. Readers take it under the lock; nothing blocks inside.
    struct State {
        /// Bytes of whole batches in the file.
        var size: Int64
        var nextOffset: Int64
        var firstTime: Int64?
        var lastTime: Int64?
        var lastHash: Hash256?
        var index: SegmentIndex
    }

    let state: Mutex<State>
    /// The writer's descriptors of the index files (nil for readers).
    let indexFDs: Mutex<(Int32, Int32)?>

    static func name(_ baseOffset: Int64) -> String {
        let digits = String(baseOffset)
        return String(repeating: "0", count: max(0, 20 - digits.count)) + digits
    }

    static func baseOffset(fromName name: String) -> Int64? {
        guard name.hasSuffix(".log") else { return nil }
        let stem = name.dropLast(4)
        guard stem.count == 20, stem.allSatisfy(\.isASCII), stem.allSatisfy(\.isNumber) else { return nil }
        return Int64(stem)
    }

    init(directory: String, baseOffset: Int64, fd: Int32, writable: Bool, state: State) {
        self.baseOffset = baseOffset
        let stem = directory + "/" + Segment.name(baseOffset)
        logPath = stem + ".log"
        indexPath = stem + ".index"
        timeIndexPath = stem + ".timeindex"
        self.fd = fd
        self.writable = writable
        self.state = Mutex(state)
        indexFDs = Mutex(nil)
    }

    /// Leaves `fd` open at deinit: another Segment owns it.
    func disown() { owns.store(false, ordering: .relaxed) }

    deinit {
        if owns.load(ordering: .relaxed) { close(fd) }
        indexFDs.withLock { fds in
            if let (a, b) = fds {
                close(a)
                close(b)
            }
        }
    }

    var snapshot: State { state.withLock { $0 } }

    /// Result of reading the batch that starts at a position.
    enum BatchRead {
        /// A whole batch with a good CRC, now in the buffer (header and payload).
        case batch(BatchHeader)
        /// The position is the end of the file.
        case end
        /// The file ends inside the batch.
        case truncated(available: Int64)
        /// Bytes that are not a batch, or a batch whose CRC fails.
        case damaged(String, header: BatchHeader?)
    }

    /// Reads the batch at `position` into `buffer`, checking its CRC. `fileSize` bounds the read.
    func readBatch(at position: Int64, fileSize: Int64, into buffer: inout [UInt8]) throws -> BatchRead {
        if position >= fileSize { return .end }
        let available = fileSize - position
        if available < Int64(BatchHeader.size) { return .truncated(available: available) }
        if buffer.count < BatchHeader.size { buffer = [UInt8](repeating: 0, count: 1 << 16) }
        let fd = self.fd
        let path = logPath
        _ = try buffer.withUnsafeMutableBytes { (b) -> Int in
            try FileIO.pread(fd, b.baseAddress!, BatchHeader.size, position, path)
        }
        let header: BatchHeader
        do {
            header = try buffer.withUnsafeBytes { (b) throws(BatchHeader.Defect) -> BatchHeader in
                try BatchHeader.decode(UnsafeRawBufferPointer(rebasing: b[0..<BatchHeader.size]))
            }
        } catch {
            return .damaged("not a batch header (\(error))", header: nil)
        }
        let total = header.totalSize
        if Int64(total) > available { return .truncated(available: available) }
        if buffer.count < total { buffer.append(contentsOf: repeatElement(0, count: total - buffer.count)) }
        _ = try buffer.withUnsafeMutableBytes { (b) -> Int in
            try FileIO.pread(fd, b.baseAddress! + BatchHeader.size, header.payloadLength, position + Int64(BatchHeader.size), path)
        }
        let crc = buffer.withUnsafeBytes { b in BatchHeader.computeCRC(UnsafeRawBufferPointer(rebasing: b[0..<total])) }
        guard crc == header.crc else {
            return .damaged(String(format8(crc: crc, header.crc)), header: header)
        }
        return .batch(header)
    }

    /// Reads only the header at `position` (no CRC check): for index rebuilds of sealed segments.
    func readHeader(at position: Int64, fileSize: Int64) throws -> BatchHeader? {
        guard fileSize - position >= Int64(BatchHeader.size) else { return nil }
        var raw = [UInt8](repeating: 0, count: BatchHeader.size)
        let fd = self.fd
        let path = logPath
        _ = try raw.withUnsafeMutableBytes { (b) -> Int in
            try FileIO.pread(fd, b.baseAddress!, BatchHeader.size, position, path)
        }
        guard let header = try? raw.withUnsafeBytes({ (b) throws(BatchHeader.Defect) -> BatchHeader in try BatchHeader.decode(b) }),
            Int64(header.totalSize) <= fileSize - position
        else { return nil }
        return header
    }
}

func format8(crc: UInt32, _ expected: UInt32) -> String {
    func hex(_ v: UInt32) -> String {
        let s = String(v, radix: 16)
        return String(repeating: "0", count: 8 - s.count) + s
    }
    return "CRC-32C mismatch (computed \(hex(crc)), stored \(hex(expected)))"
}
