#if canImport(Glibc)
import Glibc
#endif
import LedgerCore
import Logging

/// Opening a log for writing: every segment's index checked (rebuilt when missing or damaged), the
/// tail of each segment re-read with its CRCs, a torn tail cut back to the last whole batch (its
/// bytes kept in `quarantine/`), and corruption anywhere else refused.
struct Recovery {
    let dataDirectory: String
    let segmentsDirectory: String
    let logger: Logger
    private var acknowledged: Int64? = nil

    init(dataDirectory: String, segmentsDirectory: String, logger: Logger) {
        self.dataDirectory = dataDirectory
        self.segmentsDirectory = segmentsDirectory
        self.logger = logger
    }

    struct Outcome {
        var segments: [Segment]
        var head: Int64
        var lastHash: Hash256
        var lastTime: Int64
        /// Bytes cut from a torn tail (0 when the tail was clean).
        var truncatedBytes: Int64
    }

    mutating func run() throws -> Outcome {
        // The head the last writer acknowledged (HEAD is written after each fsync): a damaged batch
        // below it held acknowledged events, so it is corruption, never a torn write.
        acknowledged = HeadFile.read(dataDirectory)
        let names = try FileIO.list(segmentsDirectory)
        var bases = names.compactMap(Segment.baseOffset(fromName:)).sorted()
        for name in names where name.hasSuffix(".log") && Segment.baseOffset(fromName: name) == nil {
            throw LedgerError(.corrupt, "segments/\(name) is not a segment name (20 digits .log); move it out of the data directory")
        }
        if bases.isEmpty {
            bases = [0]
            let path = segmentsDirectory + "/" + Segment.name(0) + ".log"
            let fd = try FileIO.open(path, O_RDWR | O_CREAT)
            try FileIO.fsync(fd, path)
            close(fd)
            try FileIO.syncDirectory(segmentsDirectory)
        }
        var segments: [Segment] = []
        var expected: Int64 = bases[0]
        var lastHash = Hash256.zero
        var lastTime: Int64 = 0
        var truncated: Int64 = 0
        if bases[0] != 0 {
            throw LedgerError(.corrupt, "the first segment starts at offset \(bases[0]), not 0: earlier segments are missing")
        }
        for (i, base) in bases.enumerated() {
            let isLast = i == bases.count - 1
            guard base == expected else {
                // A gap at or above the acknowledged head: the previous segment's unsynced tail was
                // lost while this later, unacknowledged data reached the disk.
                if let acknowledged, expected >= acknowledged, let previous = segments.popLast() {
                    truncated += try quarantineSegments(bases[i...])
                    let writable = try reopenWritable(previous)
                    segments.append(writable)
                    break
                }
                throw LedgerError(.corrupt, "segment \(Segment.name(base)).log starts at offset \(base) but the segment before it ends at \(expected)")
            }
            var (segment, cut) = try recover(base: base, isLast: isLast)
            truncated += cut
            if !isLast && cut > 0 {
                // A power loss left a sealed segment's unacknowledged tail torn: every later
                // segment holds only unacknowledged events. Keep their bytes in quarantine/ and
                // make this segment the last again.
                truncated += try quarantineSegments(bases[(i + 1)...])
                segment = try reopenWritable(segment)
                segments.append(segment)
                expected = segment.snapshot.nextOffset
                if let h = segment.snapshot.lastHash {
                    lastHash = h
                    lastTime = segment.snapshot.lastTime ?? lastTime
                }
                break
            }
            let state = segment.snapshot
            expected = state.nextOffset
            if let h = state.lastHash {
                lastHash = h
                lastTime = state.lastTime ?? lastTime
            }
            segments.append(segment)
        }
        return Outcome(segments: segments, head: expected, lastHash: lastHash, lastTime: lastTime, truncatedBytes: truncated)
    }

    private func recover(base: Int64, isLast: Bool) throws -> (Segment, Int64) {
        let stem = segmentsDirectory + "/" + Segment.name(base)
        let path = stem + ".log"
        let fd = try FileIO.open(path, O_RDWR)
        var size = try FileIO.size(fd, path)
        var index = SegmentIndex.load(offsetPath: stem + ".index", timePath: stem + ".timeindex", segmentSize: size)
        let probe = Segment(
            directory: segmentsDirectory, baseOffset: base, fd: fd, writable: isLast,
            state: Segment.State(size: size, nextOffset: base, index: SegmentIndex()))
        // The last index entry must point at a batch of this segment at the offset it claims.
        if let entry = index?.entries.last {
            let header = try probe.readHeader(at: Int64(entry.position), fileSize: size)
            if header?.baseOffset != base + Int64(entry.relativeOffset) || header?.firstTime != entry.firstTime {
                logger.warning("segment \(Segment.name(base)): index does not match the segment; rebuilding it")
                index = nil
            }
        } else if index != nil && size > 0 {
            index = nil
        }
        let rebuilt = index == nil
        var idx = index ?? SegmentIndex()
        var next = base
        var position: Int64 = 0
        var firstTime: Int64? = nil
        var lastTime: Int64? = nil
        var lastHash: Hash256? = nil
        if rebuilt {
            // Headers only, from the start, to rebuild the index; CRCs are checked from the tail on.
            if size > 0 { logger.warning("segment \(Segment.name(base)): rebuilding its index") }
        } else if let entry = idx.entries.last {
            position = Int64(entry.position)
            next = base + Int64(entry.relativeOffset)
            firstTime = idx.entries.first?.firstTime
        }
        var buffer: [UInt8] = []
        var cut: Int64 = 0
        scan: while true {
            let read: Segment.BatchRead
            if rebuilt && !isLast, let header = try probe.readHeader(at: position, fileSize: size),
                Int64(header.totalSize) + position < size
            {
                // Sealed segment, not its last batch: the header suffices to rebuild the index.
                read = .batch(header)
            } else {
                read = try probe.readBatch(at: position, fileSize: size, into: &buffer)
            }
            switch read {
            case .batch(let h):
                guard h.baseOffset == next else {
                    throw LedgerError(.corrupt, "segment \(Segment.name(base)).log at byte \(position): batch starts at offset \(h.baseOffset), expected \(next)")
                }
                if let lastTime, h.firstTime < lastTime {
                    throw LedgerError(.corrupt, "segment \(Segment.name(base)).log at byte \(position): time goes backwards at offset \(h.baseOffset)")
                }
                if rebuilt && idx.wants(position: position) {
                    idx.add(SegmentIndex.Entry(relativeOffset: UInt32(h.baseOffset - base), position: UInt32(position), firstTime: h.firstTime))
                } else if !rebuilt && Int64(idx.entries.last?.position ?? 0) < position && idx.wants(position: position) {
                    // A batch written after the last persisted index entry: index it now.
                    idx.add(SegmentIndex.Entry(relativeOffset: UInt32(h.baseOffset - base), position: UInt32(position), firstTime: h.firstTime))
                }
                firstTime = firstTime ?? h.firstTime
                lastTime = h.lastTime
                lastHash = h.lastHash
                next = h.nextOffset
                position += Int64(h.totalSize)
            case .end:
                break scan
            case .truncated, .damaged:
                let why: String
                switch read {
                case .damaged(let reason, _): why = reason
                case .truncated(let available): why = "the file ends \(available) bytes into the batch"
                default: why = ""
                }
                // Beyond the acknowledged head only unsynced, unacknowledged batches can lie: a power
                // loss may keep some of their pages and not others (a hole, then a whole batch), or
                // tear a sealed segment's tail when the writer had rolled to the next. Below it, or
                // without a HEAD to tell, damage is corruption.
                let unacknowledged = acknowledged.map { next >= $0 } ?? false
                if let acknowledged, next < acknowledged {
                    throw corrupt(base, position, next, "\(why), but the writer had acknowledged events up to offset \(acknowledged): an acknowledged batch is damaged")
                }
                guard isLast || unacknowledged else {
                    throw corrupt(base, position, next, "\(why); a sealed segment cannot have a torn tail")
                }
                if !unacknowledged, let later = try findValidBatch(in: probe, after: position, fileSize: size) {
                    throw corrupt(base, position, next, "\(why), and a whole batch follows at byte \(later): this is damage inside the log, not a torn write")
                }
                cut = size - position
                try quarantine(fd: fd, path: path, base: base, from: position, to: size)
                try FileIO.truncate(fd, position, path)
                try FileIO.fsync(fd, path)
                logger.warning("segment \(Segment.name(base)).log: cut a torn tail of \(cut) bytes at byte \(position) (\(why)); the bytes are kept in quarantine/")
                size = position
                break scan
            }
        }
        if rebuilt || cut > 0 || idx.entries.count != (index?.entries.count ?? -1) {
            idx.truncate(toPosition: size)
            try idx.write(offsetPath: stem + ".index", timePath: stem + ".timeindex")
        }
        let segment = Segment(
            directory: segmentsDirectory, baseOffset: base, fd: fd, writable: isLast,
            state: Segment.State(size: size, nextOffset: next, firstTime: firstTime, lastTime: lastTime, lastHash: lastHash, index: idx))
        // `probe` shares the descriptor: keep it from closing it.
        probe.disown()
        return (segment, cut)
    }

    /// Moves whole segments that hold only unacknowledged events (after a torn tail or a gap above
    /// the acknowledged head) to `quarantine/`; returns their bytes.
    @discardableResult
    private func quarantineSegments(_ bases: ArraySlice<Int64>) throws -> Int64 {
        var bytes: Int64 = 0
        for later in bases {
            let path = segmentsDirectory + "/" + Segment.name(later) + ".log"
            let fd = try FileIO.open(path, O_RDONLY)
            let size = try FileIO.size(fd, path)
            try quarantine(fd: fd, path: path, base: later, from: 0, to: size)
            close(fd)
            bytes += size
            for suffix in [".log", ".index", ".timeindex"] { FileIO.remove(segmentsDirectory + "/" + Segment.name(later) + suffix) }
            logger.warning("segment \(Segment.name(later)).log held only unacknowledged events after a torn tail or a gap: moved to quarantine/")
        }
        try FileIO.syncDirectory(segmentsDirectory)
        return bytes
    }

    /// The same segment, now the last: it takes appends.
    private func reopenWritable(_ segment: Segment) throws -> Segment {
        let state = segment.snapshot
        let copy = Segment(
            directory: segmentsDirectory, baseOffset: segment.baseOffset, fd: segment.fd, writable: true,
            state: Segment.State(size: state.size, nextOffset: state.nextOffset, firstTime: state.firstTime, lastTime: state.lastTime, lastHash: state.lastHash, index: state.index))
        segment.disown()
        return copy
    }

    private func corrupt(_ base: Int64, _ position: Int64, _ offset: Int64, _ why: String) -> LedgerError {
        let name = Segment.name(base) + ".log"
        let message = "segment \(name) at byte \(position) (offset \(offset)): \(why)"
        CorruptionMarker.write(dataDirectory, message: message, offset: offset, segment: name)
        return LedgerError(.corrupt, message + "; the log is read-only until it is repaired (README, 'Corruption')")
    }

    /// The position of a CRC-valid batch header somewhere after `position`, if any.
    private func findValidBatch(in segment: Segment, after position: Int64, fileSize: Int64) throws -> Int64? {
        var buffer: [UInt8] = []
        let chunkSize = 1 << 20
        var start = position + 1
        var chunk = [UInt8](repeating: 0, count: chunkSize + 4)
        while start + Int64(BatchHeader.size) <= fileSize {
            let n = try chunk.withUnsafeMutableBytes { try FileIO.pread(segment.fd, $0.baseAddress!, chunkSize + 4, start, segment.logPath) }
            if n < 4 { break }
            for i in 0..<(n - 3) where chunk[i] == 0x50 && chunk[i + 1] == 0x4C && chunk[i + 2] == 0x42 && chunk[i + 3] == 0x31 {
                if case .batch = try segment.readBatch(at: start + Int64(i), fileSize: fileSize, into: &buffer) {
                    return start + Int64(i)
                }
            }
            start += Int64(chunkSize)
        }
        return nil
    }

    private func quarantine(fd: Int32, path: String, base: Int64, from: Int64, to: Int64) throws {
        let directory = dataDirectory + "/quarantine"
        try FileIO.makeDirectory(directory)
        let target = directory + "/\(Segment.name(base))-at-\(from)-\(getpid())-\(UInt64.random(in: 0..<UInt64.max) % 1_000_000).bin"
        try FileIO.copyRange(fd, path, from: from, to: to, into: target)
        try FileIO.syncDirectory(directory)
    }
}
