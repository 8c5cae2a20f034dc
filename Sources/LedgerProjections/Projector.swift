#if canImport(Glibc)
import Glibc
#endif
import GRDB
import Foundation
import LedgerCore
import Synchronization
public import LedgerLog
public import Logging

/// Folds the log into the projections: reads from the checkpoint, applies events in transactions
/// of many events, and writes the checkpoint in the same transaction as the rows.
///
/// - Important: one projector per data directory at a time (`projections/LOCK`); queries read
///   alongside it through the database pool.
public final class Projector: Sendable {
    public let store: ProjectionStore
    let source: any LogSource
    let logger: Logger
    private let lockFD: Int32
    /// Held for the whole of a catch-up, so that calls from several threads run one after the
    /// other; `writer` (the in-memory state of the fact tables) is touched only under it.
    private let serial = Mutex(())
    nonisolated(unsafe) private let writer = FactWriter()
    /// The checkpoint the writer's in-memory state was last loaded or advanced to (nil: load it
    /// before use). Consecutive catch-ups of a live projector skip reloading it from the
    /// tables — nothing else writes them while the projections' lock is held. Under `serial`.
    nonisolated(unsafe) private var writerAt: Int64?
    /// What the reading thread keeps from one catch-up to the next: its cursor (a live projector
    /// continues where it stopped, without seeking into the log again) and the causation ids of
    /// recently read events — a cache of facts of the immutable log, valid whatever happens to
    /// the projections.
    ///
    /// In a box of its own: the reading thread holds the box, not the projector, so a projector
    /// dropped right after a catch-up releases the projections' lock at once even if its reading
    /// thread has yet to return (a new projector opened next would otherwise find it locked).
    private let reading: ReadingBox
    final class ReadingBox: Sendable {
        let state: Mutex<ReadState>
        init(_ state: ReadState) { self.state = Mutex(state) }
    }
    struct ReadState: @unchecked Sendable {
        // @unchecked: reached only through `reading`, by one reading thread at a time.
        var causes: CauseResolver
        var cursor: (any EventCursor)?
        var types = EventFacts.TypeNames()
    }
    private let chunk = Atomic<Int>(16_384)

    private let bulk = Atomic<Int64>(50_000)
    /// A catch-up from offset 0 to at least this many events builds the secondary indexes once at
    /// its end instead of row by row (tests lower it).
    var bulkMinimum: Int64 {
        get { bulk.load(ordering: .relaxed) }
        set { bulk.store(newValue, ordering: .relaxed) }
    }

    /// Events per transaction.
    public var chunkSize: Int {
        get { chunk.load(ordering: .relaxed) }
        set { chunk.store(max(1, newValue), ordering: .relaxed) }
    }

    public init(store: ProjectionStore, source: any LogSource, logger: Logger = Logger(label: "ledger.projections")) throws {
        self.store = store
        self.source = source
        self.logger = logger
        reading = ReadingBox(ReadState(causes: CauseResolver(source: source)))
        let lockPath = NSStringPath(store.path).directory + "/LOCK"
        lockFD = open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard lockFD >= 0 else { throw LedgerError(.io, "open \(lockPath): \(String(cString: strerror(errno)))") }
        guard flock(lockFD, LOCK_EX | LOCK_NB) == 0 else {
            Glibc.close(lockFD)
            throw LedgerError(.locked, "the projections of this data directory are being updated by another process (\(lockPath))")
        }
    }

    deinit { close() }

    private let closed = Atomic<Bool>(false)

    /// Releases the projections' lock (another projector may then open them). Catching up after
    /// this is an error.
    public func close() {
        guard closed.compareExchange(expected: false, desired: true, ordering: .acquiringAndReleasing).exchanged else { return }
        serial.withLock { _ in
            flock(lockFD, LOCK_UN)
            Glibc.close(lockFD)
        }
    }

    /// Applies every durable event up to `end` (default: the head). Returns the new checkpoint.
    @available(*, noasync, message: "reads on a thread of its own and waits for it; call it from a thread of its own")
    @discardableResult
    public func catchUp(to end: Int64? = nil, progress: ((Int64) -> Void)? = nil) throws -> ProjectionStore.Checkpoint {
        try serial.withLock { _ in try catchUp(writer: writer, to: end, progress: progress) }
    }

    /// ``catchUp(to:progress:)`` from async code: on the blocking pool, the caller suspended.
    @discardableResult
    public func catchUp(to end: Int64? = nil) async throws -> ProjectionStore.Checkpoint {
        try await BlockingPool.shared.run { try self.catchUp(to: end, progress: nil) }
    }

    /// ``rebuild(progress:)`` from async code.
    @discardableResult
    public func rebuild() async throws -> ProjectionStore.Checkpoint {
        try await BlockingPool.shared.run { try self.rebuild(progress: nil) }
    }

    private func catchUp(writer: FactWriter, to end: Int64?, progress: ((Int64) -> Void)?) throws -> ProjectionStore.Checkpoint {
        guard !closed.load(ordering: .acquiring) else { throw LedgerError(.closed, "the projector is closed") }
        var checkpoint = try store.checkpoint()
        // A checkpoint this projector committed itself was checked when its events were read,
        // and its in-memory state is that checkpoint's.
        let inSync = writerAt == checkpoint.nextOffset
        if !inSync { try verifyCheckpoint(checkpoint) }
        let target = end ?? source.head
        guard checkpoint.nextOffset < target else { return checkpoint }
        if !inSync {
            writerAt = nil
            try store.pool.writeWithoutTransaction { db in try writer.load(db) }
        }
        // A build from offset 0 (a rebuild, a first projection of a long log) builds the
        // secondary indexes once at the end; nothing can read these projections before then.
        let bulk = checkpoint.nextOffset == 0 && target >= bulkMinimum
        if bulk { try store.pool.write { db in try ProjectionSchema.deferIndexes(db) } }
        // Two threads: this one applies and commits; a reader decodes the next chunk meanwhile.
        let queue = ChunkQueue()
        let source = self.source
        let from = checkpoint.nextOffset
        let chunkSize = self.chunkSize
        let reading = self.reading
        startThread(name: "ledger-project") {
            // Causation ids are resolved to offsets here too, off the applying thread.
            var batch = Chunk()
            batch.events.reserveCapacity(chunkSize)
            do {
                // Held while reading: a reader of an abandoned catch-up still finishing would
                // otherwise share it with the next one's.
                let completed: Bool = try reading.state.withLock { state in
                    if let kept = state.cursor {
                        if kept.nextOffset != from { kept.seek(to: from) }
                    } else {
                        state.cursor = state.causes.source.cursor(from: from, end: nil, filter: .all)
                    }
                    let cursor = state.cursor!
                    while cursor.nextOffset < target, let view = try cursor.next() {
                        let (type, parse) = state.types.name(view.typeBytes)
                        // The hash is read for the last event of a chunk only (the checkpoint's).
                        let last = batch.events.count + 1 >= chunkSize || view.offset + 1 >= target
                        var facts = try EventFacts(view, type: type, parse: parse, readHash: last, names: &state.types)
                        facts.causeOffset = try state.causes.resolve(facts)
                        batch.events.append(facts)
                        if batch.events.count >= chunkSize {
                            guard queue.put(batch) else { return false }
                            batch = Chunk()
                            batch.events.reserveCapacity(chunkSize)
                        }
                    }
                    return true
                }
                guard completed else { return }
                if !batch.events.isEmpty { _ = queue.put(batch) }
                queue.finish(nil)
            } catch {
                queue.finish(LedgerError.wrap(error))
            }
        }
        defer { queue.cancel() }
        // A chunk's audit postings are gathered on a third thread while this one applies it: the
        // reading and applying threads each keep a core busy, and neither has the time to spare.
        let gatherer = target - from > Int64(chunkSize) ? PostingsGatherer() : nil
        defer { gatherer?.stop() }
        do {
            while let batch = try queue.take() {
                guard var last = batch.events.last else { continue }
                if last.storedHash == nil { last.storedHash = try source.event(at: last.offset)?.envelope().hash }
                guard last.storedHash != nil else {
                    throw LedgerError(.corrupt, "projections: the event at offset \(last.offset) has no readable hash")
                }
                gatherer?.submit(batch.events)
                try store.pool.write { db in
                    for i in batch.events.indices { try writer.apply(db, batch.events[i]) }
                    try writer.flush(db, postings: gatherer?.result() ?? Postings(batch.events))
                    for projection in ProjectionSchema.projections {
                        try db.execute(
                            sql: "INSERT INTO checkpoints VALUES (?, ?, ?, ?) ON CONFLICT(projection) DO UPDATE SET next_offset = excluded.next_offset, last_hash = excluded.last_hash, last_time = excluded.last_time",
                            arguments: [projection, last.offset + 1, last.hash, last.time])
                    }
                }
                checkpoint = ProjectionStore.Checkpoint(nextOffset: last.offset + 1, lastHash: last.hash, lastTime: last.time)
                writerAt = checkpoint.nextOffset
                progress?(checkpoint.nextOffset)
            }
            // The indexes a build from offset 0 deferred (this one, or one cut short earlier).
            try store.pool.write { db in try ProjectionSchema.restoreIndexes(db) }
        } catch {
            // A failed transaction rolled back: reload the in-memory state before any retry.
            writerAt = nil
            try? store.pool.writeWithoutTransaction { db in try writer.load(db) }
            if let error = error as? DatabaseError { throw LedgerError(.io, "projections: \(error.message ?? "\(error)")") }
            throw error
        }
        return checkpoint
    }

    /// Empties the projections and folds the log again from offset 0.
    @available(*, noasync, message: "call it from a thread of its own")
    @discardableResult
    public func rebuild(progress: ((Int64) -> Void)? = nil) throws -> ProjectionStore.Checkpoint {
        try serial.withLock { _ in
            writerAt = nil
            try store.erase()
            return try catchUp(writer: writer, to: nil, progress: progress)
        }
    }

    /// The projections must have been built from this log: the event before the checkpoint must
    /// still be there with the same hash.
    private func verifyCheckpoint(_ checkpoint: ProjectionStore.Checkpoint) throws {
        guard checkpoint.nextOffset > 0 else { return }
        guard let event = try source.event(at: checkpoint.nextOffset - 1) else {
            throw LedgerError(.corrupt, "the projections are built up to offset \(checkpoint.nextOffset), beyond this log's head \(source.head): they belong to another log; run `ledger project --rebuild`")
        }
        let hash = try event.envelope().hash.description
        guard hash == checkpoint.lastHash else {
            throw LedgerError(.corrupt, "the projections were built from another log (the event at offset \(checkpoint.nextOffset - 1) has hash \(hash), they recorded \(checkpoint.lastHash)); run `ledger project --rebuild`")
        }
    }
}

/// Path helpers without Foundation's URL.
struct NSStringPath: ExpressibleByStringLiteral {
    let path: String
    init(stringLiteral value: String) { path = value }
    init(_ path: String) { self.path = path }
    var directory: String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return String(path[..<slash])
    }
}


/// Causation id → offset of the cause, for events read in order: the ids of recently read events
/// in memory (most causes are a few events back; two generations, so that the last
/// `remembered` ids are always there), the log's id index for the others. Only a cause before
/// its effect counts.
struct CauseResolver {
    let source: any LogSource
    private var recent = KeyTable()
    private var older = KeyTable(capacity: 16)
    private var ids: (any IDLookup)?
    static let remembered = 1 << 18

    init(source: any LogSource) { self.source = source }

    mutating func resolve(_ e: EventFacts) throws -> Int64? {
        if recent.count >= CauseResolver.remembered {
            // The older generation's slots are reused: a new table would grow (rehashing every
            // id read so far) all over again.
            swap(&older, &recent)
            if recent.capacity < older.capacity { recent = KeyTable(capacity: CauseResolver.remembered) } else { recent.removeAll() }
        }
        recent.set(IndexKey(hi: e.id.high, lo: e.id.low), UInt64(e.offset))
        guard let cause = e.causationId else { return nil }
        let key = IndexKey(hi: cause.high, lo: cause.low)
        if let at = recent.lookup(key) ?? older.lookup(key) { return Int64(at) < e.offset ? Int64(at) : nil }
        if ids == nil { ids = try source.idLookup() }
        guard let at = try ids!.offset(of: cause), at < e.offset else { return nil }
        return at
    }
}

/// Gathers the audit postings of one chunk at a time on a thread of its own.
final class PostingsGatherer: Sendable {
    private struct State {
        var input: ContiguousArray<EventFacts>?
        var output: Postings?
        var stopped = false
    }
    private let state = ConditionLock(State())

    init() {
        let state = self.state
        startThread(name: "ledger-postings") {
            while true {
                let events: ContiguousArray<EventFacts>? = state.wait(until: { $0.input != nil || $0.stopped }) { s in
                    defer { s.input = nil }
                    return s.stopped ? nil : s.input
                }
                guard let events else { return }
                let postings = Postings(events)
                state.update { $0.output = postings }
                state.broadcast()
            }
        }
    }

    func submit(_ events: ContiguousArray<EventFacts>) {
        state.update { $0.input = events }
        state.broadcast()
    }

    /// The postings of the chunk submitted last (waits for them).
    func result() -> Postings {
        state.wait(until: { $0.output != nil }) { s in
            defer { s.output = nil }
            return s.output!
        }
    }

    func stop() {
        state.update { $0.stopped = true }
        state.broadcast()
    }
}

/// Decoded events of one transaction.
struct Chunk: Sendable {
    var events = ContiguousArray<EventFacts>()
}

/// Chunks of decoded events from the reader thread to the applying one (at most two waiting).
final class ChunkQueue: Sendable {
    private struct State {
        var chunks: [Chunk] = []
        var done = false
        var cancelled = false
        var failure: LedgerError?
    }
    private let state = ConditionLock(State())

    /// False when the consumer has gone.
    func put(_ chunk: Chunk) -> Bool {
        let accepted = state.wait(until: { $0.chunks.count < 2 || $0.cancelled }) { s -> Bool in
            guard !s.cancelled else { return false }
            s.chunks.append(chunk)
            return true
        }
        state.broadcast()
        return accepted
    }

    func finish(_ error: LedgerError?) {
        state.update { s in
            s.done = true
            s.failure = error
        }
    }

    func cancel() { state.update { $0.cancelled = true } }

    /// The next chunk; nil at the end.
    func take() throws -> Chunk? {
        let (chunk, failure): (Chunk?, LedgerError?) = state.wait(until: { !$0.chunks.isEmpty || $0.done }) { s in
            if !s.chunks.isEmpty { return (s.chunks.removeFirst(), nil) }
            return (nil, s.failure)
        }
        state.broadcast()
        if let failure { throw failure }
        return chunk
    }
}

