#if canImport(Glibc)
import Glibc
#endif
import LedgerCore

/// The sparse indexes of one segment: every batch that starts at least ``interval`` bytes after the
/// previous indexed one (and the first) gets an entry, so seeks read a bounded run of headers.
///
/// `<base>.index` holds (relative offset u32, position u32) pairs; `<base>.timeindex` holds
/// (first time i64, relative offset u32) of the same batches. Both are derived data: they are not
/// fsynced, and a missing, short or inconsistent pair is rebuilt from the segment on open.
struct SegmentIndex {
    struct Entry: Equatable {
        var relativeOffset: UInt32
        var position: UInt32
        var firstTime: Int64
    }

    /// Bytes of log between index entries.
    static let interval: Int64 = 32 * 1024
    static let offsetEntrySize = 8
    static let timeEntrySize = 12

    var entries: [Entry] = []
    var lastIndexedPosition: Int64 = -1

    /// Whether a batch at `position` gets an entry.
    func wants(position: Int64) -> Bool {
        lastIndexedPosition < 0 || position - lastIndexedPosition >= SegmentIndex.interval
    }

    mutating func add(_ entry: Entry) {
        entries.append(entry)
        lastIndexedPosition = Int64(entry.position)
    }

    /// The last entry at or before `relativeOffset`.
    func floor(relativeOffset: UInt32) -> Entry? {
        var lo = 0
        var hi = entries.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if entries[mid].relativeOffset <= relativeOffset { lo = mid + 1 } else { hi = mid }
        }
        return lo == 0 ? nil : entries[lo - 1]
    }

    /// The last entry whose batch starts strictly before `time` (a batch before it cannot hold an
    /// event at or after `time`... except the one it starts).
    func floor(timeBefore time: Int64) -> Entry? {
        var lo = 0
        var hi = entries.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if entries[mid].firstTime < time { lo = mid + 1 } else { hi = mid }
        }
        return lo == 0 ? nil : entries[lo - 1]
    }

    /// Drops entries at or after `position` (after a truncation).
    mutating func truncate(toPosition position: Int64) {
        while let last = entries.last, Int64(last.position) >= position { entries.removeLast() }
        lastIndexedPosition = entries.last.map { Int64($0.position) } ?? -1
    }

    /// Reads the two index files; nil when either is missing or they are not a consistent,
    /// increasing pair within `segmentSize` bytes.
    static func load(offsetPath: String, timePath: String, segmentSize: Int64) -> SegmentIndex? {
        guard let offsets = try? FileIO.readFile(offsetPath), let times = try? FileIO.readFile(timePath) else { return nil }
        let count = min(offsets.count / offsetEntrySize, times.count / timeEntrySize)
        guard offsets.count / offsetEntrySize == count || offsets.count / offsetEntrySize == count + 1 else { return nil }
        var index = SegmentIndex()
        var ok = true
        offsets.withUnsafeBytes { o in
            times.withUnsafeBytes { t in
                let ob = o.baseAddress!
                let tb = t.baseAddress!
                for i in 0..<count {
                    let rel = ob.le(i * 8, as: UInt32.self)
                    let pos = ob.le(i * 8 + 4, as: UInt32.self)
                    let time = tb.le(i * 12, as: Int64.self)
                    let rel2 = tb.le(i * 12 + 8, as: UInt32.self)
                    let entry = Entry(relativeOffset: rel, position: pos, firstTime: time)
                    if rel != rel2 || Int64(pos) >= segmentSize { ok = false; return }
                    if let last = index.entries.last,
                        rel <= last.relativeOffset || pos <= last.position || time < last.firstTime
                    { ok = false; return }
                    if index.entries.isEmpty && pos != 0 { ok = false; return }
                    index.entries.append(entry)
                }
            }
        }
        guard ok else { return nil }
        index.lastIndexedPosition = index.entries.last.map { Int64($0.position) } ?? -1
        return index
    }

    /// Writes both files from scratch (after a rebuild).
    func write(offsetPath: String, timePath: String) throws {
        var o: [UInt8] = []
        var t: [UInt8] = []
        o.reserveCapacity(entries.count * 8)
        t.reserveCapacity(entries.count * 12)
        for e in entries {
            o.appendLE(e.relativeOffset)
            o.appendLE(e.position)
            t.appendLE(e.firstTime)
            t.appendLE(e.relativeOffset)
        }
        for (path, bytes) in [(offsetPath, o), (timePath, t)] {
            let fd = try FileIO.open(path, O_WRONLY | O_CREAT | O_TRUNC)
            defer { close(fd) }
            try bytes.withUnsafeBytes { (b) in try FileIO.write(fd, b, path) }
        }
    }

    static func encode(_ e: Entry) -> (offset: [UInt8], time: [UInt8]) {
        var o: [UInt8] = []
        var t: [UInt8] = []
        o.appendLE(e.relativeOffset)
        o.appendLE(e.position)
        t.appendLE(e.firstTime)
        t.appendLE(e.relativeOffset)
        return (o, t)
    }
}
