public import LedgerCore

/// Reading a log: what projections, processors, subscriptions and replays need, whichever the
/// backend (the embedded segment log, in the writer's process or beside it).
public protocol LogSource: Sendable {
    /// The offset after the last durable event.
    var head: Int64 { get }
    /// A cursor over durable events from `from` up to `end` (exclusive) that match `filter`.
    func cursor(from: Int64, end: Int64?, filter: EventFilter) -> LogCursor
    /// The first offset whose time is at or after `time` (the head if none is).
    func firstOffset(atOrAfter time: Timestamp) throws -> Int64
}

extension LogSource {
    /// The event at `offset`, if it is in the log.
    public func event(at offset: Int64) throws -> StoredEvent? {
        guard offset >= 0 else { return nil }
        let cursor = self.cursor(from: offset, end: offset + 1, filter: .all)
        guard let view = try cursor.next(), view.offset == offset else { return nil }
        return view.stored()
    }

    /// The last offset whose event time is at or before `time` (−1 if none is): what `--as-of TIME` means.
    public func lastOffset(atOrBefore time: Timestamp) throws -> Int64 {
        try firstOffset(atOrAfter: time.adding(milliseconds: 1)) - 1
    }
}

/// Reads events by offset, in any order, decompressing each batch once for nearby reads.
public final class EventReader {
    let source: any LogSource
    private var cursor: LogCursor?

    public init(source: any LogSource) { self.source = source }

    public func event(at offset: Int64) throws -> StoredEvent? {
        guard offset >= 0, offset < source.head else { return nil }
        let cursor = self.cursor ?? source.cursor(from: offset, end: nil, filter: .all)
        self.cursor = cursor
        cursor.seek(to: offset)
        guard let view = try cursor.next(), view.offset == offset else { return nil }
        return view.stored()
    }
}

extension SegmentLog: LogSource {}
extension LogReader: LogSource {}
