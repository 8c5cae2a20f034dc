import LedgerCore

/// What `ledger stats` prints.
public struct LogStatistics: Sendable {
    public struct SegmentInfo: Sendable {
        public var name: String
        public var baseOffset: Int64
        public var bytes: Int64
    }

    public var segments: [SegmentInfo]
    public var events: Int64
    public var bytesOnDisk: Int64
    /// Sum of the uncompressed payloads of all batches.
    public var uncompressedBytes: Int64
    public var batches: Int64
    public var streams: Int64
    public var head: Int64

    public var compressionRatio: Double { bytesOnDisk == 0 ? 1 : Double(uncompressedBytes) / Double(bytesOnDisk) }

    static func compute(set: SegmentSet, index: IndexStore?) throws -> LogStatistics {
        let head = set.durableHead
        var infos: [SegmentInfo] = []
        var disk: Int64 = 0
        var raw: Int64 = 0
        var batches: Int64 = 0
        for segment in set.all {
            let size = try FileIO.size(segment.fd, segment.logPath)
            infos.append(SegmentInfo(name: Segment.name(segment.baseOffset) + ".log", baseOffset: segment.baseOffset, bytes: size))
            disk += size
            var position: Int64 = 0
            while let header = try segment.readHeader(at: position, fileSize: size), header.baseOffset < head {
                raw += Int64(header.uncompressedLength + BatchHeader.size)
                batches += 1
                position += Int64(header.totalSize)
            }
        }
        // Every stream's first event has version 0, and ids are unique: count those.
        var streams: Int64 = 0
        let cursor = LogCursor(set: set, from: 0, end: head, filter: .all)
        while let view = try cursor.next() {
            if view.version == 0 { streams += 1 }
        }
        return LogStatistics(
            segments: infos, events: head, bytesOnDisk: disk, uncompressedBytes: raw, batches: batches,
            streams: streams, head: head)
    }
}
