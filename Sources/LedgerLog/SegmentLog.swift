#if canImport(Glibc)
import Glibc
#endif
public import LedgerCore
public import Logging

/// Settings of a segment log.
public struct LogOptions: Sendable {
    /// Roll to a new segment once the active one would pass this size (default 128 MiB).
    public var segmentBytes: Int64 = 128 << 20
    public var fsync: FsyncPolicy = .always
    /// Largest canonical `data` of one event (default 1 MiB).
    public var maxDataBytes: Int = AppendPolicy.defaultMaxDataBytes
    /// Largest atomic request, summed over its events' data (default 16 MiB).
    public var maxRequestBytes: Int = 16 << 20
    /// The sequencer cuts a record batch once its payload reaches this size.
    public var maxBatchBytes: Int = 4 << 20
    /// Entries per index memtable before it is written out as a run.
    public var indexFlushThreshold: Int = 256 * 1024
    /// The wall clock the ledger stamps `time` with (tests set their own).
    public var clock: @Sendable () -> Timestamp = { Timestamp.now() }
    public var logger: Logger = Logger(label: "ledger.log")
    /// Keep the Merkle tree (`<data-dir>/merkle/`, `Schemas/proofs.md`) up with the log as it is
    /// written, from the hashes the writer computed (on by default). Off, checkpoints and proofs
    /// catch the tree up by reading the log when they need it.
    public var maintainTree = true
    /// Called after every group commit, on the syncer thread (metrics).
    public var onSync: (@Sendable (SyncReport) -> Void)?

    public init() {}
}

extension Timestamp {
    /// The wall clock, to the millisecond. Only the log's writer reads it (to stamp `time`);
    /// projections and processors never do.
    public static func now() -> Timestamp {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Timestamp(milliseconds: Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000)
    }
}

/// The embedded event log: a directory of segment files with one writer (this object) and any
/// number of readers.
///
/// - Important: an append is acknowledged only once its bytes are fsynced (``FsyncPolicy/always``),
///   and concurrent appends share fsyncs. One process at a time may hold a data directory for
///   writing; ``openReader(directory:)`` reads alongside it.
public final class SegmentLog: Sendable {
    public let directory: String
    public let options: LogOptions
    let segmentSet: SegmentSet
    let pipeline: AppendPipeline
    let index: IndexStore
    let lock: WriterLock
    let heads: HeadSignal
    /// What recovery did on open (bytes cut from a torn tail).
    public let recoveredBytes: Int64

    /// Opens (creating if needed) a data directory for writing: takes its lock, recovers its
    /// tail, loads its indexes and starts the writer threads.
    public static func open(directory: String, options: LogOptions = LogOptions()) throws -> SegmentLog {
        try FileIO.makeDirectory(directory)
        let lock = try WriterLock.acquire(directory: directory, holder: WriterLock.describeCurrentProcess(now: options.clock()))
        if let message = CorruptionMarker.read(directory) {
            throw LedgerError(.corrupt, "the log is marked corrupt: \(message); it refuses writes until it is repaired and `ledger verify` passes (README, 'Corruption')")
        }
        for sub in ["segments", "index", "quarantine"] { try FileIO.makeDirectory(directory + "/" + sub) }
        var recovery = Recovery(dataDirectory: directory, segmentsDirectory: directory + "/segments", logger: options.logger)
        let outcome = try recovery.run()
        let set = SegmentSet(dataDirectory: directory, segments: outcome.segments, durable: outcome.head, external: false)
        let index = try IndexStore.open(directory: directory + "/index", head: outcome.head, flushThreshold: options.indexFlushThreshold, logger: options.logger)
        try catchUp(index: index, set: set, from: index.indexedThrough, to: outcome.head)
        // HEAD is replaced before the syncer opens it for its in-place updates.
        try FileIO.writeAtomically(HeadFile.path(directory), HeadFile.encode(outcome.head), directory: directory)
        let heads = HeadSignal(head: outcome.head)
        // The tree only ever holds durable events, and only what was synced is trusted after a
        // crash: it is cut back to both, and the writer adds the rest again from the log.
        if FileIO.exists(MerkleStore.directory(dataDirectory: directory) + "/level-00.bin") {
            let cut = try MerkleStore(dataDirectory: directory).recover(head: outcome.head)
            if cut > 0 { options.logger.info("the Merkle tree was cut back by \(cut) leaves not known to be synced; they are added again from the log") }
        }
        let tree = options.maintainTree ? TreeMaintainer(dataDirectory: directory, durable: outcome.head, logger: options.logger) : nil
        let pipeline = AppendPipeline(
            options: options, set: set, index: index, head: outcome.head, lastHash: outcome.lastHash,
            lastTime: outcome.lastTime, heads: heads, tree: tree)
        let log = SegmentLog(directory: directory, options: options, set: set, pipeline: pipeline, index: index, lock: lock, heads: heads, recovered: outcome.truncatedBytes)
        tree?.start()
        pipeline.start()
        // Weak: the pipeline holds the index, a strong capture would keep both (and every segment
        // descriptor) alive after close.
        index.start(waitDurable: { [weak pipeline] in pipeline?.waitDurable($0) ?? false })
        return log
    }

    private init(directory: String, options: LogOptions, set: SegmentSet, pipeline: AppendPipeline, index: IndexStore, lock: WriterLock, heads: HeadSignal, recovered: Int64) {
        self.directory = directory
        self.options = options
        self.segmentSet = set
        self.pipeline = pipeline
        self.index = index
        self.lock = lock
        self.heads = heads
        recoveredBytes = recovered
    }

    /// Replays the log from the index's checkpoint to the head into the memtables.
    private static func catchUp(index: IndexStore, set: SegmentSet, from: Int64, to head: Int64) throws {
        guard from < head else { return }
        let cursor = LogCursor(set: set, from: from, end: head, filter: .all)
        while let view = try cursor.next() {
            index.ids.insert(IndexKey(id: view.id), UInt64(view.offset))
            index.streams.insert(IndexKey(stream: view.stream), UInt64(view.version))
            if index.ids.memtable.count >= index.flushThreshold {
                try index.flushNow(through: view.offset + 1, minimum: 0)
            }
        }
    }

    /// The offset after the last durable event (= the number of events in the log).
    public var head: Int64 { segmentSet.durableHead }

    /// Appends independent atomic requests in one go (each succeeds or fails on its own).
    public func append(requests: [[AppendRequest]], policy: AppendPolicy) async -> [Result<[AppendResult], LedgerError>] {
        let prepared = requests.map { prepare($0, policy: policy) }
        return await appendPrepared(prepared)
    }

    /// Appends requests already prepared with ``prepare(_:policy:)`` (callers that parallelise the
    /// preparation themselves).
    public func appendPrepared(_ prepared: [Result<[PreparedEvent], LedgerError>]) async -> [Result<[AppendResult], LedgerError>] {
        await withCheckedContinuation { continuation in
            pipeline.submit(prepared) { continuation.resume(returning: $0) }
        }
    }

    /// Like ``appendPrepared(_:)`` with a callback, run on the log's syncer thread once the
    /// accepted requests are durable.
    public func submit(_ prepared: [Result<[PreparedEvent], LedgerError>], completion: @escaping @Sendable ([Result<[AppendResult], LedgerError>]) -> Void) {
        pipeline.submit(prepared, completion: completion)
    }

    /// ``submit(_:completion:)`` with each request's index keys (``LineIngest`` computes them
    /// on its preparing threads).
    func submit(_ prepared: [Result<[PreparedEvent], LedgerError>], keys: [RequestKeys?], completion: @escaping @Sendable ([Result<[AppendResult], LedgerError>]) -> Void) {
        pipeline.submit(prepared, keys: keys, completion: completion)
    }

    /// The stateless checks of one atomic request (see ``EventPreparer``), with `index` set on
    /// errors of multi-event requests.
    public func prepare(_ events: [AppendRequest], policy: AppendPolicy, recorded: [RecordedPosition?]? = nil) -> Result<[PreparedEvent], LedgerError> {
        var policy = policy
        policy.maxDataBytes = min(policy.maxDataBytes, options.maxDataBytes)
        return EventPreparer.prepare(request: events, policy: policy, recorded: recorded)
    }

    /// A cursor over the durable events from `from` up to `end` (exclusive) that match `filter`.
    public func cursor(from: Int64 = 0, end: Int64? = nil, filter: EventFilter = .all) -> LogCursor {
        LogCursor(set: segmentSet, from: from, end: end, filter: filter)
    }

    /// The first offset whose time is at or after `time` (the head if none is): seeks with the
    /// time indexes, without scanning the log.
    public func firstOffset(atOrAfter time: Timestamp) throws -> Int64 { try segmentSet.firstOffset(atOrAfter: time) }

    /// Blocks until the durable head passes `offset`, the log fails, or `timeout` seconds pass.
    @available(*, noasync, message: "waits on a condition variable; call it from a thread of its own")
    public func waitForHead(beyond offset: Int64, timeout: Double) -> Int64 { heads.wait(beyond: offset, timeout: timeout) }

    /// Durable heads as they advance (newest only: a slow consumer skips values, never events).
    public func headUpdates() -> AsyncStream<Int64> { heads.stream() }

    /// Why the writer stopped, if it did.
    public var failure: LedgerError? { pipeline.failure }

    /// Statistics of the data directory.
    public func statistics() throws -> LogStatistics { try LogStatistics.compute(set: segmentSet, index: index) }

    /// Drains pending appends, writes out the index, and releases the directory.
    @available(*, noasync, message: "close() waits for the writer threads and fsyncs; call it from a thread of its own")
    public func close() throws {
        pipeline.close()
        pipeline.tree?.close()
        let failure = pipeline.failure
        if failure == nil {
            try index.flushNow(through: head, minimum: 16 * 1024, closing: true)
        }
        index.stop()
        lock.release()
        if let failure { throw failure }
    }
}

/// Read-only access to a data directory, alongside a writer in another process or without one:
/// `ledger read`, `tail`, `verify`. Takes no lock, recovers nothing, writes nothing (except the
/// corruption marker when it finds corruption).
public final class LogReader: Sendable {
    public let directory: String
    let segmentSet: SegmentSet

    public init(directory: String) throws {
        self.directory = directory
        segmentSet = try SegmentSet.openExternal(dataDirectory: directory)
    }

    /// The durable head the writer last published.
    public var head: Int64 {
        try? segmentSet.refresh()
        return segmentSet.durableHead
    }

    public func cursor(from: Int64 = 0, end: Int64? = nil, filter: EventFilter = .all) -> LogCursor {
        LogCursor(set: segmentSet, from: from, end: end, filter: filter)
    }

    /// The first offset whose time is at or after `time` (the head if none is).
    public func firstOffset(atOrAfter time: Timestamp) throws -> Int64 { try segmentSet.firstOffset(atOrAfter: time) }

    /// Watches `<data>/HEAD` with inotify; each call of the returned closure blocks until the
    /// writer publishes a new head (or `timeout` seconds pass).
    public func headWatcher() throws -> HeadWatcher { try HeadWatcher(directory: directory) }

    public func statistics() throws -> LogStatistics { try LogStatistics.compute(set: segmentSet, index: nil) }
}
