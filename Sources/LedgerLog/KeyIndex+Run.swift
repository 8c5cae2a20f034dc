#if canImport(Glibc)
import Glibc
#endif
import LedgerCore

/// An immutable, sorted file of (key, value) entries with a Bloom filter: one level of the
/// on-disk indexes (``KeyIndex``).
///
/// ```
///  0  4  magic "PLIR"
///  4  4  format version (1)
///  8  8  entry count n
/// 16  8  Bloom filter words m
/// 24 36  reserved, 0
/// 60  4  CRC-32C of bytes 0..<60
/// 64     n entries of 24 bytes: key high u64, key low u64, value u64 (little-endian), sorted by key
///  …     m Bloom words (u64)
/// end-4  CRC-32C of the entries and the Bloom words
/// ```
/// Entries are memory-mapped (only the pages a lookup touches are read); the Bloom filter and a
/// sparse fence of every 256th key are held in memory.
final class IndexRun: @unchecked Sendable {
    // @unchecked: immutable after init; the mapping is read-only and unmapped in deinit.
    static let headerSize = 64
    static let entrySize = 24
    static let fenceStride = 256
    static let magic: [UInt8] = Array("PLIR".utf8)

    let path: String
    let name: String
    let count: Int
    let bloom: BloomFilter
    let fence: [IndexKey]
    private let map: UnsafeRawPointer?
    private let mapLength: Int

    var fileSize: Int { mapLength }

    /// Opens and fully checks a run file.
    init(path: String, name: String) throws {
        self.path = path
        self.name = name
        let fd = try FileIO.open(path, O_RDONLY)
        defer { close(fd) }
        let size = Int(try FileIO.size(fd, path))
        guard size >= IndexRun.headerSize + 4 else { throw LedgerError(.corrupt, "index run \(path) is truncated") }
        var header = [UInt8](repeating: 0, count: IndexRun.headerSize)
        _ = try header.withUnsafeMutableBytes { (b) -> Int in try FileIO.pread(fd, b.baseAddress!, IndexRun.headerSize, 0, path) }
        let (n, m, headerOK) = header.withUnsafeBytes { b -> (Int, Int, Bool) in
            let p = b.baseAddress!
            let ok = Array(b[0..<4]) == IndexRun.magic && p.le(4, as: UInt32.self) == 1
                && CRC32C.checksum(UnsafeRawBufferPointer(rebasing: b[0..<60])) == p.le(60, as: UInt32.self)
            return (Int(p.le(8, as: UInt64.self)), Int(p.le(16, as: UInt64.self)), ok)
        }
        guard headerOK, n >= 0, m >= 8, size == IndexRun.headerSize + n * IndexRun.entrySize + m * 8 + 4 else {
            throw LedgerError(.corrupt, "index run \(path) has a damaged header")
        }
        // One pass over the file with a bounded buffer (through the page cache, never into this
        // process's memory): the body's CRC, the fence (every 256th key) and the Bloom words. The
        // mapping below is then touched only by lookups.
        var crc: UInt32 = 0
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        let entriesEnd = IndexRun.headerSize + n * IndexRun.entrySize
        let bodyEnd = size - 4
        var fence: [IndexKey] = []
        fence.reserveCapacity(n / IndexRun.fenceStride + 1)
        var bloomBytes: [UInt8] = []
        bloomBytes.reserveCapacity(m * 8)
        var position = IndexRun.headerSize
        while position < bodyEnd {
            // Chunks end on entry boundaries, so each key lies whole in one chunk.
            var chunk = min(buffer.count - buffer.count % IndexRun.entrySize, bodyEnd - position)
            if position < entriesEnd { chunk = min(chunk, entriesEnd - position) }
            let start = position
            let count = chunk
            _ = try buffer.withUnsafeMutableBytes { (b) -> Int in try FileIO.pread(fd, b.baseAddress!, count, Int64(start), path) }
            buffer.withUnsafeBytes { b in
                crc = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: b[0..<count]), continuing: crc)
                if start < entriesEnd {
                    let first = (start - IndexRun.headerSize) / IndexRun.entrySize
                    var i = (first + IndexRun.fenceStride - 1) / IndexRun.fenceStride * IndexRun.fenceStride
                    while i < first + count / IndexRun.entrySize {
                        let p = b.baseAddress! + (i - first) * IndexRun.entrySize
                        fence.append(IndexKey(hi: p.le(0, as: UInt64.self), lo: p.le(8, as: UInt64.self)))
                        i += IndexRun.fenceStride
                    }
                } else {
                    bloomBytes.append(contentsOf: b[0..<count])
                }
            }
            position += chunk
        }
        var stored: UInt32 = 0
        _ = try withUnsafeMutableBytes(of: &stored) { (b) -> Int in try FileIO.pread(fd, b.baseAddress!, 4, Int64(bodyEnd), path) }
        guard crc == UInt32(littleEndian: stored), bloomBytes.count == m * 8 else {
            throw LedgerError(.corrupt, "index run \(path) fails its CRC-32C")
        }
        let mapped = mmap(nil, size, PROT_READ, MAP_SHARED, fd, 0)
        guard let mapped, mapped != MAP_FAILED else { throw FileIO.fail("mmap", path) }
        map = UnsafeRawPointer(mapped)
        mapLength = size
        count = n
        bloom = BloomFilter(words: bloomBytes.withUnsafeBytes { raw in (0..<m).map { raw.baseAddress!.le($0 * 8, as: UInt64.self) } })
        self.fence = fence
    }

    /// Opens a run this process has just written and synced (``write(path:count:entries:)``): its
    /// Bloom filter and fence come from the writing, so the file is not read back and checked again
    /// (that pass was a fifth of the index's work while appending). Runs found on disk at start-up
    /// go through the full check of ``init(path:name:)``.
    init(written: Written, path: String, name: String) throws {
        self.path = path
        self.name = name
        let fd = try FileIO.open(path, O_RDONLY)
        defer { close(fd) }
        let size = Int(try FileIO.size(fd, path))
        guard size == IndexRun.headerSize + written.count * IndexRun.entrySize + written.bloom.words.count * 8 + 4 else {
            throw LedgerError(.corrupt, "index run \(path) is not the size it was written with")
        }
        let mapped = mmap(nil, size, PROT_READ, MAP_SHARED, fd, 0)
        guard let mapped, mapped != MAP_FAILED else { throw FileIO.fail("mmap", path) }
        map = UnsafeRawPointer(mapped)
        mapLength = size
        count = written.count
        bloom = written.bloom
        fence = written.fence
    }

    /// What writing a run produced: its entry count, Bloom filter and fence.
    struct Written {
        var count: Int
        var bloom: BloomFilter
        var fence: [IndexKey]
    }

    deinit {
        if let map { munmap(UnsafeMutableRawPointer(mutating: map), mapLength) }
    }

    @inline(__always) static func key(_ base: UnsafeRawPointer, _ i: Int) -> IndexKey {
        let p = base + headerSize + i * entrySize
        return IndexKey(hi: p.le(0, as: UInt64.self), lo: p.le(8, as: UInt64.self))
    }

    @inline(__always) func value(_ i: Int) -> UInt64 {
        (map! + IndexRun.headerSize + i * IndexRun.entrySize).le(16, as: UInt64.self)
    }

    func key(at i: Int) -> IndexKey { IndexRun.key(map!, i) }

    /// The value stored for `key`, if any.
    func lookup(_ key: IndexKey) -> UInt64? {
        guard count > 0, bloom.mayContain(key) else { return nil }
        // Fence: the last fence key ≤ key bounds a block of at most fenceStride entries.
        var lo = 0
        var hi = fence.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if fence[mid] <= key { lo = mid + 1 } else { hi = mid }
        }
        guard lo > 0 else { return nil }
        var start = (lo - 1) * IndexRun.fenceStride
        var end = min(count, start + IndexRun.fenceStride)
        let base = map!
        while start < end {
            let mid = (start + end) / 2
            let k = IndexRun.key(base, mid)
            if k == key { return value(mid) }
            if k < key { start = mid + 1 } else { end = mid }
        }
        return nil
    }

    /// Writes a run from entries sorted by key with unique keys, durably (fsync, then the caller
    /// renames it into place).
    @discardableResult
    static func write(path: String, count: Int, entries: (Int) -> (IndexKey, UInt64)) throws -> Written {
        var bloom = BloomFilter(capacity: count)
        var fence: [IndexKey] = []
        fence.reserveCapacity(count / fenceStride + 1)
        let fd = try FileIO.open(path, O_WRONLY | O_CREAT | O_TRUNC)
        defer { close(fd) }
        var header = [UInt8](repeating: 0, count: headerSize)
        header.withUnsafeMutableBytes { b in
            let p = b.baseAddress!
            for i in 0..<4 { p.storeBytes(of: magic[i], toByteOffset: i, as: UInt8.self) }
            p.putLE(UInt32(1), at: 4)
            p.putLE(UInt64(count), at: 8)
            p.putLE(UInt64(bloom.words.count), at: 16)
            p.putLE(CRC32C.checksum(UnsafeRawBufferPointer(rebasing: b[0..<60])), at: 60)
        }
        try header.withUnsafeBytes { (b) in try FileIO.write(fd, b, path) }
        var crc: UInt32 = 0
        var chunk: [UInt8] = []
        chunk.reserveCapacity(1 << 20)
        func flush() throws {
            crc = chunk.withUnsafeBytes { CRC32C.checksum($0, continuing: crc) }
            try chunk.withUnsafeBytes { (b) in try FileIO.write(fd, b, path) }
            chunk.removeAll(keepingCapacity: true)
        }
        for i in 0..<count {
            let (key, value) = entries(i)
            bloom.insert(key)
            if i % fenceStride == 0 { fence.append(key) }
            chunk.appendLE(key.hi)
            chunk.appendLE(key.lo)
            chunk.appendLE(value)
            if chunk.count >= 1 << 20 - entrySize { try flush() }
        }
        for w in bloom.words {
            chunk.appendLE(w)
            if chunk.count >= 1 << 20 - 8 { try flush() }
        }
        try flush()
        chunk.appendLE(crc)
        try chunk.withUnsafeBytes { (b) in try FileIO.write(fd, b, path) }
        try FileIO.fsync(fd, path)
        return Written(count: count, bloom: bloom, fence: fence)
    }
}
