public import LedgerCore

/// Reading a log: what projections, processors, subscriptions and replays need, whichever the
/// backend (the embedded segment log, in the writer's process or beside it).
public protocol LogSource: Sendable {
    associatedtype Cursor: EventCursor
    /// The offset after the last durable event.
    var head: Int64 { get }
    /// A cursor over durable events from `from` up to `end` (exclusive) that match `filter`.
    func cursor(from: Int64, end: Int64?, filter: EventFilter) -> Cursor
    /// The first offset whose time is at or after `time` (the head if none is).
    func firstOffset(atOrAfter time: Timestamp) throws -> Int64
    /// Event id → offset, for causal chains and evidence.
    func idLookup() throws -> any IDLookup
}

/// Finds events by id (not safe to share between threads: make one per reader).
public protocol IDLookup: AnyObject {
    /// The offset of the event with this id, if it is in the log.
    func offset(of id: EventID) throws -> Int64?
}

/// Writing a log: the single writer's side, whichever the backend (the embedded segment log, or
/// Kafka). Processors, projectors, the engine and the server take this protocol, never a concrete
/// log.
///
/// - Important: an append's result is returned only once its events are durable (fsynced, or
///   acknowledged by the backend), and every accepted request lands whole, in order, or not at all.
public protocol EventLog: LogSource {
    /// Appends independent atomic requests in one go; each succeeds or fails on its own, and the
    /// results come back in the order of `requests`.
    func append(requests: [[AppendRequest]], policy: AppendPolicy) async -> [Result<[AppendResult], LedgerError>]
    /// Durable heads as they advance, newest only: a slow consumer skips values, never events
    /// (it reads the events from the log by offset). The stream ends when the log stops.
    func headUpdates() -> AsyncStream<Int64>
    /// Why the writer stopped for good, if it did.
    var failure: LedgerError? { get }
    /// Drains pending appends, makes everything durable and releases the log.
    @available(*, noasync, message: "close() waits for the writer threads and fsyncs; call it from a thread of its own")
    func close() throws
}

extension EventLog {
    /// ``close()`` from async code: on a thread of its own, the caller suspended.
    public func close() async throws {
        try await BlockingPool.shared.run { try self.close() }
    }

    /// Appends one atomic request: all its events land, in order, in one batch — or none does.
    public func append(_ events: [AppendRequest], policy: AppendPolicy) async throws -> [AppendResult] {
        let results = await append(requests: [events], policy: policy)
        return try results[0].get()
    }
}

/// A log that takes requests already checked by ``EventPreparer`` (the stateless half, done by
/// the callers in parallel) and calls back once the accepted ones are durable: what bulk
/// ingestion (``LineIngest``) feeds.
public protocol PreparedAppender: Sendable {
    /// Queues prepared requests; `completion` runs (on a thread of the log's, keep it short) once
    /// every request is decided and the accepted ones are durable.
    func submit(_ prepared: [Result<[PreparedEvent], LedgerError>], completion: @escaping @Sendable ([Result<[AppendResult], LedgerError>]) -> Void)
    /// The largest canonical `data` of one event this log accepts.
    var maxDataBytes: Int { get }
}

/// What the log reports after each group commit (for metrics; called on the syncer thread, keep
/// it short).
public struct SyncReport: Sendable {
    /// Events made durable by this commit.
    public var events: Int64
    /// Record batches and their bytes (compressed, as stored).
    public var batches: Int
    public var bytes: Int64
    /// Seconds spent in fdatasync (0 when the policy defers it).
    public var fsyncSeconds: Double
    /// The durable head after this commit.
    public var head: Int64
}

/// Reads events in offset order from a starting offset, seeing only durable events.
///
/// A ``RecordView`` returned by ``next()`` points into the cursor's own buffer and is valid until
/// the next call; copy it with ``RecordView/stored()`` to keep it.
public protocol EventCursor: AnyObject {
    /// The offset the next call starts looking at.
    var nextOffset: Int64 { get }
    /// The next matching event, or nil at the end of what is durable (or at the cursor's end).
    /// Calling again later continues from there (this is how tailing works).
    func next() throws -> RecordView?
    /// Moves the cursor so that the next call starts at `offset`.
    func seek(to offset: Int64)
}

extension LogSource {
    /// A cursor over every durable event from `from`.
    public func cursor(from: Int64) -> Cursor { cursor(from: from, end: nil, filter: .all) }

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
    private var cursor: (any EventCursor)?

    public init(source: any LogSource) { self.source = source }

    /// The head as last asked: asking per event cost a reader of another process's log a
    /// directory listing each time (three quarters of a 180,000-event audit trail).
    private var knownHead: Int64 = 0

    public func event(at offset: Int64) throws -> StoredEvent? {
        guard offset >= 0 else { return nil }
        if offset >= knownHead {
            knownHead = source.head
            guard offset < knownHead else { return nil }
        }
        let cursor = self.cursor ?? source.cursor(from: offset, end: nil, filter: .all)
        self.cursor = cursor
        cursor.seek(to: offset)
        guard let view = try cursor.next(), view.offset == offset else { return nil }
        return view.stored()
    }
}

extension SegmentLog: EventLog, PreparedAppender {
    public var maxDataBytes: Int { options.maxDataBytes }
}
extension LogReader: LogSource {}
