#if canImport(Glibc)
import Glibc
#endif
import GRDB
import Foundation
import LedgerCore
public import LedgerLog
public import Logging

/// Folds the log into the projections: reads from the checkpoint, applies events in transactions
/// of many events, and writes the checkpoint in the same transaction as the rows.
///
/// - Important: one projector per data directory at a time (`projections/LOCK`); queries read
///   alongside it through the database pool.
public final class Projector {
    public let store: ProjectionStore
    let source: any LogSource
    let logger: Logger
    private let lockFD: Int32
    private let writer = FactWriter()

    /// Events per transaction.
    public var chunkSize = 16_384

    public init(store: ProjectionStore, source: any LogSource, logger: Logger = Logger(label: "ledger.projections")) throws {
        self.store = store
        self.source = source
        self.logger = logger
        let lockPath = NSStringPath(store.path).directory + "/LOCK"
        lockFD = open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard lockFD >= 0 else { throw LedgerError(.io, "open \(lockPath): \(String(cString: strerror(errno)))") }
        guard flock(lockFD, LOCK_EX | LOCK_NB) == 0 else {
            close(lockFD)
            throw LedgerError(.locked, "the projections of this data directory are being updated by another process (\(lockPath))")
        }
    }

    deinit {
        flock(lockFD, LOCK_UN)
        close(lockFD)
    }

    /// Applies every durable event up to `end` (default: the head). Returns the new checkpoint.
    @discardableResult
    public func catchUp(to end: Int64? = nil, progress: ((Int64) -> Void)? = nil) throws -> ProjectionStore.Checkpoint {
        var checkpoint = try store.checkpoint()
        try verifyCheckpoint(checkpoint)
        let target = end ?? source.head
        guard checkpoint.nextOffset < target else { return checkpoint }
        try store.pool.writeWithoutTransaction { db in try writer.load(db) }
        // Two threads: this one applies and commits; a reader decodes the next chunk meanwhile.
        let queue = ChunkQueue()
        let source = self.source
        let from = checkpoint.nextOffset
        let chunkSize = self.chunkSize
        let reader = Thread {
            let cursor = source.cursor(from: from, end: target, filter: .all)
            var batch: [EventFacts] = []
            batch.reserveCapacity(chunkSize)
            do {
                while let view = try cursor.next() {
                    batch.append(try EventFacts(view, parse: EventFacts.factTypes.contains(view.type)))
                    if batch.count >= chunkSize {
                        guard queue.put(batch) else { return }
                        batch = []
                        batch.reserveCapacity(chunkSize)
                    }
                }
                if !batch.isEmpty { _ = queue.put(batch) }
                queue.finish(nil)
            } catch {
                queue.finish(LedgerError.wrap(error))
            }
        }
        reader.start()
        defer { queue.cancel() }
        do {
            while let batch = try queue.take() {
                guard let last = batch.last else { continue }
                try store.pool.write { db in
                    for e in batch { try writer.apply(db, e) }
                    try writer.flush(db)
                    for projection in ProjectionSchema.projections {
                        try db.execute(
                            sql: "INSERT INTO checkpoints VALUES (?, ?, ?, ?) ON CONFLICT(projection) DO UPDATE SET next_offset = excluded.next_offset, last_hash = excluded.last_hash, last_time = excluded.last_time",
                            arguments: [projection, last.offset + 1, last.hash, last.time])
                    }
                }
                checkpoint = ProjectionStore.Checkpoint(nextOffset: last.offset + 1, lastHash: last.hash, lastTime: last.time)
                progress?(checkpoint.nextOffset)
            }
        } catch let error as DatabaseError {
            // A failed transaction rolled back: reload the in-memory state before any retry.
            try? store.pool.writeWithoutTransaction { db in try writer.load(db) }
            throw LedgerError(.io, "projections: \(error.message ?? "\(error)")")
        } catch {
            try? store.pool.writeWithoutTransaction { db in try writer.load(db) }
            throw error
        }
        return checkpoint
    }

    /// Drops every projection row and folds the log again from offset 0.
    @discardableResult
    public func rebuild(progress: ((Int64) -> Void)? = nil) throws -> ProjectionStore.Checkpoint {
        try store.pool.write { db in
            for (table, _) in ProjectionSchema.tables { try db.execute(sql: "DELETE FROM \(table)") }
        }
        return try catchUp(progress: progress)
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


/// Chunks of decoded events from the reader thread to the applying one (at most two waiting).
final class ChunkQueue: @unchecked Sendable {
    // @unchecked: every field is guarded by `condition`.
    private let condition = NSCondition()
    private var chunks: [[EventFacts]] = []
    private var done = false
    private var cancelled = false
    private var failure: LedgerError?

    /// False when the consumer has gone.
    func put(_ chunk: [EventFacts]) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        while chunks.count >= 2 && !cancelled { condition.wait() }
        guard !cancelled else { return false }
        chunks.append(chunk)
        condition.broadcast()
        return true
    }

    func finish(_ error: LedgerError?) {
        condition.lock()
        done = true
        failure = error
        condition.broadcast()
        condition.unlock()
    }

    func cancel() {
        condition.lock()
        cancelled = true
        condition.broadcast()
        condition.unlock()
    }

    /// The next chunk; nil at the end.
    func take() throws -> [EventFacts]? {
        condition.lock()
        defer { condition.unlock() }
        while chunks.isEmpty && !done { condition.wait() }
        if !chunks.isEmpty {
            let chunk = chunks.removeFirst()
            condition.broadcast()
            return chunk
        }
        if let failure { throw failure }
        return nil
    }
}
