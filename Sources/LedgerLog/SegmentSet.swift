#if canImport(Glibc)
import Glibc
#endif
import LedgerCore
import Synchronization

/// The segments of one log and the durable head: what every reader reads through.
///
/// In the writer's process the writer appends segments and advances `durableHead` itself. A
/// reader in another process (`read`, `tail`, `verify` alongside a running writer) learns the
/// head from `<data>/HEAD` and new segments from the directory, in ``refresh()``.
final class SegmentSet: Sendable {
    let dataDirectory: String
    let directory: String
    let segments: Mutex<[Segment]>
    let durable: Atomic<Int64>
    /// A reader in another process than the writer.
    let external: Bool

    init(dataDirectory: String, segments: [Segment], durable: Int64, external: Bool) {
        self.dataDirectory = dataDirectory
        directory = dataDirectory + "/segments"
        self.segments = Mutex(segments)
        self.durable = Atomic(durable)
        self.external = external
    }

    var durableHead: Int64 { durable.load(ordering: .acquiring) }
    var all: [Segment] { segments.withLock { $0 } }

    /// The segment that holds `offset` (the last with base ≤ offset).
    func segment(for offset: Int64) -> (Int, Segment)? {
        segments.withLock { list -> (Int, Segment)? in
            var lo = 0
            var hi = list.count
            while lo < hi {
                let mid = (lo + hi) / 2
                if list[mid].baseOffset <= offset { lo = mid + 1 } else { hi = mid }
            }
            return lo == 0 ? nil : (lo - 1, list[lo - 1])
        }
    }

    func segment(at index: Int) -> Segment? {
        segments.withLock { index < $0.count ? $0[index] : nil }
    }

    /// The first offset whose event time is at or after `time` (the head if there is none): a
    /// binary search over segments and their time indexes, then a scan of at most one index
    /// interval. Times are non-decreasing along the log, so this is well defined.
    func firstOffset(atOrAfter time: Timestamp) throws -> Int64 {
        let head = durableHead
        let list = all
        let t = time.milliseconds
        // The last segment whose first event is before `time`: the answer is in it or at its end.
        var lo = 0
        var hi = list.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if let first = list[mid].snapshot.index.entries.first?.firstTime, first < t { lo = mid + 1 } else { hi = mid }
        }
        guard lo > 0 else { return list.first?.baseOffset ?? 0 }
        let segment = list[lo - 1]
        let state = segment.snapshot
        var position = Int64(state.index.floor(timeBefore: t)?.position ?? 0)
        let size = try FileIO.size(segment.fd, segment.logPath)
        var raw: [UInt8] = []
        let payload = PayloadBuffer()
        while true {
            guard case .batch(let h) = try segment.readBatch(at: position, fileSize: size, into: &raw), h.baseOffset < head else {
                return min(head, lo < list.count ? list[lo].baseOffset : head)
            }
            if h.lastTime >= t {
                try raw.withUnsafeBytes { r in try payload.fill(header: h, stored: UnsafeRawBufferPointer(rebasing: r[BatchHeader.size..<h.totalSize])) }
                var recordPosition = 0
                for offset in h.baseOffset..<h.nextOffset {
                    let (view, next) = try payload.parse(at: recordPosition, offset: offset)
                    if view.time.milliseconds >= t { return offset }
                    recordPosition = next
                }
            }
            position += Int64(h.totalSize)
        }
    }

    /// Opens the segments of a data directory for reading only (no lock, no recovery, no writes).
    static func openExternal(dataDirectory: String) throws -> SegmentSet {
        let set = SegmentSet(dataDirectory: dataDirectory, segments: [], durable: 0, external: true)
        guard FileIO.exists(set.directory) else {
            throw LedgerError(.notFound, "\(dataDirectory) holds no ledger (no segments/ folder)")
        }
        try set.refresh()
        return set
    }

    /// External readers: picks up new segments and the writer's latest durable head.
    func refresh() throws {
        guard external else { return }
        let names = try FileIO.list(directory).filter { $0.hasSuffix(".log") }
        let known = Set(all.map(\.baseOffset))
        var added: [Segment] = []
        for name in names {
            guard let base = Segment.baseOffset(fromName: name), !known.contains(base) else { continue }
            let path = directory + "/" + name
            let fd = try FileIO.open(path, O_RDONLY)
            let size = try FileIO.size(fd, path)
            let stem = directory + "/" + Segment.name(base)
            let index = SegmentIndex.load(offsetPath: stem + ".index", timePath: stem + ".timeindex", segmentSize: size)
                ?? SegmentIndex()
            added.append(Segment(
                directory: directory, baseOffset: base, fd: fd, writable: false,
                state: Segment.State(size: size, nextOffset: base, index: index)))
        }
        if !added.isEmpty {
            segments.withLock { list in
                list += added
                list.sort { $0.baseOffset < $1.baseOffset }
            }
        }
        if let head = HeadFile.read(dataDirectory) {
            durable.store(head, ordering: .releasing)
        } else {
            durable.store(try scanEnd(), ordering: .releasing)
        }
    }

    /// Without a HEAD file (a copied directory): the end of the last whole, CRC-valid batch.
    private func scanEnd() throws -> Int64 {
        guard let last = all.last else { return 0 }
        let size = try FileIO.size(last.fd, last.logPath)
        var position = Int64(last.snapshot.index.entries.last?.position ?? 0)
        var next = last.baseOffset
        var buffer: [UInt8] = []
        while case .batch(let header) = try last.readBatch(at: position, fileSize: size, into: &buffer) {
            next = header.nextOffset
            position += Int64(header.totalSize)
        }
        if next == last.baseOffset && position == 0, all.count >= 2 {
            return last.baseOffset
        }
        return next
    }
}

/// Which events a cursor yields.
public struct EventFilter: Sendable, Equatable {
    public var stream: String?
    public var category: String?
    public var type: String?

    public init(stream: String? = nil, category: String? = nil, type: String? = nil) {
        self.stream = stream
        self.category = category
        self.type = type
    }

    public static let all = EventFilter()
    var isEmpty: Bool { stream == nil && category == nil && type == nil }

    public func matches(_ view: RecordView) -> Bool {
        if let stream, !Self.equal(view.streamBytes, stream) { return false }
        if let type, !Self.equal(view.typeBytes, type) { return false }
        if let category, !Self.equal(view.categoryBytes, category) { return false }
        return true
    }

    @inline(__always) static func equal(_ bytes: UnsafeRawBufferPointer, _ s: String) -> Bool {
        var s = s
        return s.withUTF8 { u in u.count == bytes.count && (u.count == 0 || memcmp(u.baseAddress!, bytes.baseAddress!, u.count) == 0) }
    }
}

/// Reads events in offset order from a starting offset, seeing only whole, durable batches.
///
/// A ``RecordView`` returned by ``next()`` points into the cursor's own buffer and is valid until
/// the next call; copy it with ``RecordView/stored()`` to keep it. Memory stays at one batch
/// whatever the number of events read.
public final class LogCursor: EventCursor {
    let set: SegmentSet
    /// The offset the next call starts looking at.
    public private(set) var nextOffset: Int64
    let end: Int64?
    let filter: EventFilter
    private var segmentIndex = -1
    private var segment: Segment?
    /// Byte position of the current (or next) batch in `segment`.
    private var position: Int64 = 0
    private var raw: [UInt8] = []
    private let payload = PayloadBuffer()
    private var header: BatchHeader?
    private var recordPosition = 0
    private var recordOffset: Int64 = 0
    /// Past a batch wholly before the wanted offset: stepping over the next ones by headers.
    private var seeking = false

    init(set: SegmentSet, from: Int64, end: Int64?, filter: EventFilter) {
        self.set = set
        nextOffset = max(0, from)
        self.end = end
        self.filter = filter
    }

    /// The next matching event, or nil at the end of what is durable (or at `end`). Calling again
    /// later continues from there (this is how tailing works).
    public func next() throws -> RecordView? {
        while true {
            if let h = header {
                if recordOffset < h.nextOffset {
                    if let end, recordOffset >= end { return nil }
                    let (view, after) = try payload.parse(at: recordPosition, offset: recordOffset)
                    recordPosition = after
                    recordOffset += 1
                    if view.offset < nextOffset { continue }
                    nextOffset = view.offset + 1
                    if filter.matches(view) { return view }
                    continue
                }
                position += Int64(h.totalSize)
                header = nil
            }
            guard try loadBatch() else { return nil }
        }
    }

    /// Moves the cursor so that the next call starts at `offset`, keeping the batch in memory when
    /// it holds that offset (random reads of nearby events decompress each batch once).
    public func seek(to offset: Int64) {
        if let h = header, offset >= h.baseOffset, offset < h.nextOffset {
            if offset < recordOffset {
                recordPosition = 0
                recordOffset = h.baseOffset
            }
            nextOffset = offset
            return
        }
        header = nil
        segment = nil
        nextOffset = max(0, offset)
    }

    private var limit: Int64 { min(end ?? Int64.max, set.durableHead) }

    private func loadBatch() throws -> Bool {
        if nextOffset >= limit {
            if set.external { try set.refresh() }
            if nextOffset >= limit { return false }
        }
        if segment == nil {
            guard let (i, s) = set.segment(for: nextOffset) else { return false }
            segmentIndex = i
            segment = s
            let rel = UInt32(clamping: nextOffset - s.baseOffset)
            position = Int64(s.snapshot.index.floor(relativeOffset: rel)?.position ?? 0)
        }
        while let segment {
            let size = try FileIO.size(segment.fd, segment.logPath)
            // When the batch at the index point lies wholly before the wanted offset (the index of
            // a segment still being written, as another process sees it, may be far behind), the
            // batches up to it are stepped over by their headers: never returned, so not read or
            // checked. (The batch at the index point itself usually holds the offset: read whole.)
            if seeking {
                if let h = try segment.readHeader(at: position, fileSize: size), h.nextOffset <= nextOffset {
                    position += Int64(h.totalSize)
                    continue
                }
                seeking = false
            }
            let read = try segment.readBatch(at: position, fileSize: size, into: &raw)
            switch read {
            case .batch(let h):
                if h.nextOffset <= nextOffset {
                    position += Int64(h.totalSize)
                    seeking = true
                    continue
                }
                if h.baseOffset >= limit { return false }
                if h.baseOffset > nextOffset {
                    throw corruption(segment, "expected offset \(nextOffset) but found a batch starting at \(h.baseOffset)")
                }
                do {
                    try raw.withUnsafeBytes { r in
                        try payload.fill(header: h, stored: UnsafeRawBufferPointer(rebasing: r[BatchHeader.size..<h.totalSize]))
                    }
                } catch let defect as RecordDefect {
                    throw corruption(segment, defect.message)
                }
                header = h
                recordPosition = 0
                recordOffset = h.baseOffset
                return true
            case .end:
                if set.external { try set.refresh() }
                guard let next = set.segment(at: segmentIndex + 1) else { return false }
                segmentIndex += 1
                self.segment = next
                position = 0
            case .truncated, .damaged:
                if nextOffset >= set.durableHead { return false }
                if case .damaged(let why, _) = read { throw corruption(segment, why) }
                throw corruption(segment, "the file ends inside a batch holding durable offset \(nextOffset)")
            }
        }
        return false
    }

    private func corruption(_ segment: Segment, _ why: String) -> LedgerError {
        let name = Segment.name(segment.baseOffset) + ".log"
        let message = "segment \(name) at byte \(position) (offset \(nextOffset)): \(why)"
        CorruptionMarker.write(set.dataDirectory, message: message, offset: nextOffset, segment: name)
        return LedgerError(.corrupt, message)
    }
}

/// A growable buffer that owns the uncompressed payload of the current batch; record views
/// point into it until it is refilled.
final class PayloadBuffer {
    private(set) var base: UnsafeMutableRawPointer
    private var capacity: Int
    private(set) var length = 0

    init() {
        capacity = 1 << 16
        base = .allocate(byteCount: capacity, alignment: 16)
    }

    deinit { base.deallocate() }

    var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: length) }

    func reserve(_ count: Int) {
        guard count > capacity else { return }
        base.deallocate()
        capacity = max(count, capacity * 2)
        base = .allocate(byteCount: capacity, alignment: 16)
    }

    /// Decompresses (or copies) a stored payload whose CRC has been checked.
    func fill(header: BatchHeader, stored: UnsafeRawBufferPointer) throws {
        reserve(header.uncompressedLength)
        length = try RecordBatch.decompress(header: header, stored: stored, into: UnsafeMutableRawBufferPointer(start: base, count: capacity))
    }

    @inline(__always) func parse(at position: Int, offset: Int64) throws -> (RecordView, Int) {
        try RecordView.parse(bytes, at: position, offset: offset)
    }
}
