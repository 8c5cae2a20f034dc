#if canImport(Glibc)
import Glibc
#endif
import LedgerCore
import Logging
import Synchronization

/// The single writer of a segment log, as three threads behind the callers:
///
/// 1. callers prepare their requests in parallel (validation, canonical JSON: ``EventPreparer``);
/// 2. the **sequencer** takes whatever is queued, checks ids and expected versions, assigns
///    offsets, versions and times, and hashes the chain in order into a record batch;
/// 3. the **writer** compresses the batch (LZ4), seals it with its CRC-32C and writes it,
///    rolling segments; the **syncer** fsyncs what was written and only then acknowledges it.
///
/// Everything queued while an fsync runs goes into the next batch and shares the next fsync:
/// group commit. An I/O error stops the writer for good: nothing is retried, every pending and
/// later append fails with the reason.
final class AppendPipeline: @unchecked Sendable {
    // @unchecked: each mutable stored property is owned by exactly one thread (noted below) or
    // guarded by one of the ConditionLocks.
    typealias Completion = @Sendable ([Result<[AppendResult], LedgerError>]) -> Void

    struct Submission {
        var requests: [Result<[PreparedEvent], LedgerError>]
        var completion: Completion
        /// The index keys of each request's first event, when the caller computed them (one per
        /// request — nil for one refused before sequencing — or none): the sequencer prefetches
        /// the index slots of requests ahead.
        var keys: [RequestKeys?] = []
    }

    struct Inbox {
        var queue: [Submission] = []
        var closed = false
        var failure: LedgerError?
    }

    struct WriteQueue {
        var batches: [BatchBuilder] = []
        var closed = false
        /// Requests the sequencer is done with, released on the writer's thread: freeing every
        /// prepared event's buffers (allocated on the preparing threads) was a tenth of the one
        /// sequencing thread's time.
        var retired: [[Submission]] = []
    }

    struct Waiting {
        var need: Int64
        var results: [Result<[AppendResult], LedgerError>]
        var completion: Completion
    }

    struct SyncState {
        var written: Int64
        var durable: Int64
        var dirty: [Segment] = []
        var directoryDirty = false
        var waiting: [Waiting] = []
        var writerDone = false
        var failure: LedgerError?
        var threadsRunning = 3
        /// Written since the last sync (for ``SyncReport``).
        var unsyncedBatches = 0
        var unsyncedBytes: Int64 = 0
    }

    let options: LogOptions
    let segmentSet: SegmentSet
    let index: IndexStore
    let logger: Logger
    let inbox = ConditionLock(Inbox())
    let writeQueue = ConditionLock(WriteQueue())
    let sync: ConditionLock<SyncState>
    let heads: HeadSignal
    /// Keeps the Merkle tree up with what becomes durable (``LogOptions/maintainTree``).
    let tree: TreeMaintainer?

    /// Payload buffers the writer has finished with, for the sequencer to fill again.
    private let recycled = ConditionLock<[ByteWriter]>([])
    // Sequencer thread only.
    private let tailWriter = ByteWriter(capacity: 512)
    private var fetchCursor: LogCursor?
    @exclusivity(unchecked) private var chain: ChainSequencer

    init(
        options: LogOptions, set: SegmentSet, index: IndexStore, head: Int64, lastHash: Hash256, lastTime: Int64, heads: HeadSignal,
        tree: TreeMaintainer?
    ) {
        self.options = options
        self.tree = tree
        self.segmentSet = set
        self.index = index
        logger = options.logger
        chain = ChainSequencer(next: head, lastHash: lastHash, lastTime: lastTime, maxRequestBytes: options.maxRequestBytes)
        self.heads = heads
        sync = ConditionLock(SyncState(written: head, durable: head))
        headFD = (try? FileIO.open(HeadFile.path(segmentSet.dataDirectory), O_WRONLY | O_CREAT)) ?? -1
    }

    deinit { if headFD >= 0 { Glibc.close(headFD) } }

    func start() {
        startThread(name: "ledger-sequencer") { [self] in sequencerLoop() }
        startThread(name: "ledger-writer") { [self] in writerLoop() }
        startThread(name: "ledger-syncer") { [self] in syncerLoop() }
    }

    /// Queues independent atomic requests; `completion` runs once all are decided and the accepted
    /// ones are durable (on the syncer thread: keep it short).
    func submit(_ requests: [Result<[PreparedEvent], LedgerError>], keys: [RequestKeys?] = [], completion: @escaping Completion) {
        let refused: LedgerError? = inbox.update { box in
            if let failure = box.failure { return failure }
            if box.closed { return LedgerError(.closed, "the log is closed") }
            box.queue.append(Submission(requests: requests, completion: completion, keys: keys.count == requests.count ? keys : []))
            return nil
        }
        if let refused { completion(requests.map { _ in .failure(refused) }) }
    }

    /// Blocks until offsets before `offset` are durable; false if the log failed first.
    func waitDurable(_ offset: Int64) -> Bool {
        sync.wait(until: { $0.durable >= offset || $0.failure != nil || ($0.writerDone && $0.threadsRunning == 0) }) {
            $0.durable >= offset
        }
    }

    var failure: LedgerError? { sync.withLock { $0.failure } }

    /// Stops accepting, drains what is queued, and waits for the threads to finish.
    func close() {
        inbox.update { $0.closed = true }
        sync.wait(until: { $0.threadsRunning == 0 }) { _ in }
    }

    // MARK: failure

    func fail(_ error: LedgerError) {
        logger.critical("the log writer stopped: \(error.message)")
        let stranded: [Waiting] = sync.update { state in
            if state.failure == nil { state.failure = error }
            let w = state.waiting
            state.waiting = []
            return w
        }
        let queued: [Submission] = inbox.update { box in
            if box.failure == nil { box.failure = error }
            let q = box.queue
            box.queue = []
            return q
        }
        for w in stranded { w.completion(w.results.map { _ in .failure(error) }) }
        for s in queued { s.completion(s.requests.map { _ in .failure(error) }) }
        heads.publish(failed: true)
    }

    // MARK: sequencer

    private func sequencerLoop() {
        defer {
            writeQueue.update { $0.closed = true }
            sync.update { $0.threadsRunning -= 1 }
        }
        while true {
            let (taken, closed): ([Submission], Bool) = inbox.wait(until: { !$0.queue.isEmpty || $0.closed || $0.failure != nil }) { box in
                let q = box.queue
                box.queue = []
                return (q, box.closed || box.failure != nil)
            }
            if taken.isEmpty && closed { return }
            if let failure = sync.withLock({ $0.failure }) {
                for s in taken { s.completion(s.requests.map { _ in .failure(failure) }) }
                continue
            }
            index.ids.refreshView()
            index.streams.refreshView()
            let now = max(options.clock().milliseconds, chain.lastTime)
            var builder = newBuilder(at: chain.next)
            for submission in taken {
                var results: [Result<[AppendResult], LedgerError>] = []
                results.reserveCapacity(submission.requests.count)
                var need: Int64 = 0
                let keys = submission.keys
                for j in 0..<min(ChainSequencer.prefetchDistance, keys.count) { prefetch(keys[j]) }
                for (j, request) in submission.requests.enumerated() {
                    if j + ChainSequencer.prefetchDistance < keys.count { prefetch(keys[j + ChainSequencer.prefetchDistance]) }
                    switch request {
                    case .failure(let e):
                        results.append(.failure(e))
                    case .success(let events):
                        let (result, needs) = chain.sequence(events, now: now, builder: &builder, index: index, fetch: fetch)
                        results.append(result)
                        need = max(need, needs)
                    }
                    if builder.payloadBytes >= options.maxBatchBytes {
                        hand(&builder)
                    }
                }
                park(Waiting(need: need, results: results, completion: submission.completion))
            }
            hand(&builder)
            index.sequenced(through: chain.next)
            // No wake-up: the writer releases them when it next wakes for a batch.
            writeQueue.withLock { q in if q.retired.count < 64 && !q.closed { q.retired.append(taken) } }
        }
    }

    @inline(__always) private func prefetch(_ keys: RequestKeys?) {
        guard let keys else { return }
        if let id = keys.id { index.prefetch(id: id) }
        index.prefetch(stream: keys.stream)
    }

    /// Hands a non-empty batch to the writer (blocking while too many are in flight).
    private func hand(_ builder: inout BatchBuilder) {
        guard !builder.isEmpty else { return }
        let full = builder
        builder = newBuilder(at: full.nextOffset)
        writeQueue.wait(until: { $0.batches.count < 4 }) { $0.batches.append(full) }
        writeQueue.broadcast()
    }

    /// A builder over a recycled payload buffer (the writer hands them back once written).
    private func newBuilder(at offset: Int64) -> BatchBuilder {
        let payload = recycled.withLock { $0.popLast() } ?? ByteWriter(capacity: 1 << 20)
        return BatchBuilder(baseOffset: offset, payload: payload, tail: tailWriter)
    }

    /// Completes now if nothing needs to become durable, else when the syncer gets there — or at
    /// once with the writer's failure if it stopped meanwhile (it drained the waiters before this
    /// one came: parked now, it would wait forever).
    private func park(_ w: Waiting) {
        let (now, failure): (Bool, LedgerError?) = sync.withLock { state in
            if state.durable >= w.need { return (true, nil) }
            if let failure = state.failure { return (false, failure) }
            state.waiting.append(w)
            return (false, nil)
        }
        if now {
            w.completion(w.results)
        } else if let failure {
            // Accepted but not durable: never acknowledged. Refusals keep their own reason.
            w.completion(w.results.map { r in
                if case .success = r { return .failure(failure) }
                return r
            })
        }
    }

    /// Reads back an event an earlier batch wrote (an idempotent retry of it), once durable.
    /// One cursor is kept (sequencer thread only): it keeps the batch it read in memory, so a
    /// file appended again — every line a retry, in order — decompresses each batch once, not
    /// once per event (a million retries took many minutes that way).
    private func fetch(_ offset: Int64) throws -> OriginalEvent {
        guard waitDurable(offset + 1) else { throw failure ?? LedgerError(.writerFailed, "the log writer stopped") }
        let cursor = fetchCursor ?? LogCursor(set: segmentSet, from: offset, end: nil, filter: .all)
        fetchCursor = cursor
        cursor.seek(to: offset)
        guard let view = try cursor.next(), view.offset == offset else {
            throw LedgerError(.internal, "the id index points at offset \(offset), which cannot be read")
        }
        return try OriginalEvent(view)
    }

    // MARK: writer

    private func writerLoop() {
        defer {
            sync.update {
                $0.writerDone = true
                $0.threadsRunning -= 1
            }
        }
        var stored: [UInt8] = []
        while true {
            let (batch, retired): (BatchBuilder?, [[Submission]]) = writeQueue.wait(until: { !$0.batches.isEmpty || $0.closed }) { q in
                defer { q.retired = [] }
                return (q.batches.isEmpty ? nil : q.batches.removeFirst(), q.retired)
            }
            // Released here, at the end of this iteration.
            _ = retired
            writeQueue.broadcast()
            guard let batch else { return }
            if sync.withLock({ $0.failure }) != nil { continue }
            do {
                try write(batch, buffer: &stored)
                tree?.written(base: batch.baseOffset, hashes: batch.hashes)
                let payload = batch.payload
                recycled.withLock { if $0.count < 8 { $0.append(payload) } }
            } catch {
                fail(LedgerError(.writerFailed, "writing offsets \(batch.baseOffset)..<\(batch.nextOffset): \(LedgerError.wrap(error).message); the log accepts no more appends (restart to recover)"))
            }
        }
    }

    private func write(_ batch: BatchBuilder, buffer stored: inout [UInt8]) throws {
        RecordBatch.seal(
            payload: batch.payload.bytes, baseOffset: batch.baseOffset, count: batch.count, firstTime: batch.firstTime,
            lastTime: batch.lastTime, lastHash: batch.lastHash, into: &stored)
        var active = segmentSet.all.last!
        var size = active.snapshot.size
        if size > 0 && size + Int64(stored.count) > options.segmentBytes {
            active = try roll(after: active)
            size = 0
        }
        try stored.withUnsafeBytes { try FileIO.pwrite(active.fd, $0, size, active.logPath) }
        let position = size
        let entry: SegmentIndex.Entry? = active.state.withLock { s in
            s.size += Int64(stored.count)
            s.nextOffset = batch.nextOffset
            if s.firstTime == nil { s.firstTime = batch.firstTime }
            s.lastTime = batch.lastTime
            s.lastHash = batch.lastHash
            guard s.index.wants(position: position) else { return nil }
            let e = SegmentIndex.Entry(
                relativeOffset: UInt32(batch.baseOffset - active.baseOffset), position: UInt32(position), firstTime: batch.firstTime)
            s.index.add(e)
            return e
        }
        if let entry { try appendIndex(entry, to: active) }
        let segment = active
        let bytes = Int64(stored.count)
        sync.update { state in
            state.written = batch.nextOffset
            state.unsyncedBatches += 1
            state.unsyncedBytes += bytes
            if !state.dirty.contains(where: { $0 === segment }) { state.dirty.append(segment) }
        }
    }

    private func appendIndex(_ entry: SegmentIndex.Entry, to segment: Segment) throws {
        let fds: (Int32, Int32) = try segment.indexFDs.withLock { fds in
            if let fds { return fds }
            let a = try FileIO.open(segment.indexPath, O_WRONLY | O_CREAT | O_APPEND)
            let b = try FileIO.open(segment.timeIndexPath, O_WRONLY | O_CREAT | O_APPEND)
            fds = (a, b)
            return (a, b)
        }
        let (o, t) = SegmentIndex.encode(entry)
        try o.withUnsafeBytes { try FileIO.write(fds.0, $0, segment.indexPath) }
        try t.withUnsafeBytes { try FileIO.write(fds.1, $0, segment.timeIndexPath) }
    }

    private func roll(after old: Segment) throws -> Segment {
        let base = old.snapshot.nextOffset
        let stem = segmentSet.directory + "/" + Segment.name(base)
        let fd = try FileIO.open(stem + ".log", O_RDWR | O_CREAT | O_EXCL)
        for path in [stem + ".index", stem + ".timeindex"] {
            let f = try FileIO.open(path, O_WRONLY | O_CREAT | O_TRUNC)
            Glibc.close(f)
        }
        let segment = Segment(
            directory: segmentSet.directory, baseOffset: base, fd: fd, writable: true,
            state: Segment.State(size: 0, nextOffset: base, index: SegmentIndex()))
        segmentSet.segments.withLock { $0.append(segment) }
        sync.update { $0.directoryDirty = true }
        logger.info("rolled to segment \(Segment.name(base)).log")
        return segment
    }

    // MARK: syncer

    private func syncerLoop() {
        defer { sync.update { $0.threadsRunning -= 1 } }
        var lastMarkerCheck: Int64 = 0
        while true {
            let work: (Int64, [Segment], Bool, SyncReport)? = sync.wait(
                until: { $0.written > $0.durable || $0.writerDone || $0.failure != nil }
            ) { state in
                if state.failure != nil { return nil }
                if state.written == state.durable && state.writerDone { return nil }
                let report = SyncReport(events: state.written - state.durable, batches: state.unsyncedBatches, bytes: state.unsyncedBytes, fsyncSeconds: 0, head: state.written)
                state.unsyncedBatches = 0
                state.unsyncedBytes = 0
                let w = (state.written, state.dirty, state.directoryDirty, report)
                // The active segment stays dirty only if written again; sealed ones are done after this sync.
                state.dirty = []
                state.directoryDirty = false
                return w
            }
            guard let (target, segments, directory, report) = work else {
                finalSync()
                return
            }
            var synced = report
            do {
                if options.fsync == .always {
                    var started = timespec()
                    clock_gettime(CLOCK_MONOTONIC, &started)
                    for segment in segments { try FileIO.fdatasync(segment.fd, segment.logPath) }
                    if directory { try FileIO.syncDirectory(segmentSet.directory) }
                    var ended = timespec()
                    clock_gettime(CLOCK_MONOTONIC, &ended)
                    synced.fsyncSeconds = Double(ended.tv_sec - started.tv_sec) + Double(ended.tv_nsec - started.tv_nsec) / 1e9
                } else if directory && options.fsync == .onClose {
                    pendingDirectorySync = true
                }
                if options.fsync == .onClose { pendingSegments += segments.filter { s in !pendingSegments.contains { $0 === s } } }
                let bytes = HeadFile.encode(target)
                try bytes.withUnsafeBytes { try FileIO.pwrite(headFD, $0, 0, HeadFile.path(segmentSet.dataDirectory)) }
            } catch {
                fail(LedgerError(.writerFailed, "fsync before acknowledging offsets up to \(target): \(LedgerError.wrap(error).message); the log accepts no more appends (restart to recover)"))
                continue
            }
            segmentSet.durable.store(target, ordering: .releasing)
            tree?.durable(target)
            let ready: [Waiting] = sync.update { state in
                state.durable = target
                var ready: [Waiting] = []
                var keep: [Waiting] = []
                for w in state.waiting { if w.need <= target { ready.append(w) } else { keep.append(w) } }
                state.waiting = keep
                return ready
            }
            for w in ready { w.completion(w.results) }
            heads.publish(head: target)
            options.onSync?(synced)
            let clock = options.clock().milliseconds
            if clock - lastMarkerCheck >= 1000 {
                lastMarkerCheck = clock
                if let message = CorruptionMarker.read(segmentSet.dataDirectory) {
                    fail(LedgerError(.corrupt, "corruption was found in the log: \(message)"))
                }
            }
        }
    }

    // Syncer thread only: what `.onClose` defers.
    private var pendingSegments: [Segment] = []
    private var pendingDirectorySync = false
    private let headFD: Int32

    private func finalSync() {
        guard options.fsync == .onClose, sync.withLock({ $0.failure }) == nil else { return }
        do {
            for segment in pendingSegments { try FileIO.fsync(segment.fd, segment.logPath) }
            if pendingDirectorySync { try FileIO.syncDirectory(segmentSet.directory) }
            pendingSegments = []
        } catch {
            fail(LedgerError(.writerFailed, "fsync at close: \(LedgerError.wrap(error).message)"))
        }
    }
}

/// xoshiro256** — a fast generator for the ids the ledger assigns, seeded from the system's.
struct Xoshiro256: RandomNumberGenerator {
    var s: (UInt64, UInt64, UInt64, UInt64)

    init(seed: inout some RandomNumberGenerator) {
        s = (seed.next(), seed.next(), seed.next(), seed.next())
        if s == (0, 0, 0, 0) { s.0 = 1 }
    }

    mutating func next() -> UInt64 {
        let result = ((s.1 &* 5) << 7 | (s.1 &* 5) >> 57) &* 9
        let t = s.1 << 17
        s.2 ^= s.0
        s.3 ^= s.1
        s.1 ^= s.2
        s.0 ^= s.3
        s.2 ^= t
        s.3 = s.3 << 45 | s.3 >> 19
        return result
    }
}
