#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
public import LedgerCore

/// The log's Merkle tree on disk (`<data-dir>/merkle/`, `Schemas/proofs.md`): one file per level,
/// `level-NN.bin`, holding the 32-byte hashes of the complete, aligned subtrees of that level in
/// order (level 0: the leaf hashes). Appending a leaf writes it and every subtree it completes —
/// O(log n) at worst, two hashes per event on average — so the tree follows the log incrementally
/// and is never rebuilt. It is derived data: it can always be recomputed from the log, which
/// `ledger verify` does, and a torn write is cut back on open.
///
/// The level files are not synced with every append: `merkle/SYNCED` holds the number of leaves
/// whose nodes were last fdatasynced (``sync()``: the log's writer does it about once a second
/// and on close, a catch-up when it ends). After a power loss whatever lies beyond it may be
/// garbage, so the log's writer cuts the tree back to it on open and the leaves are added again
/// from the log.
///
/// Every operation takes an exclusive `flock` on `merkle/LOCK` for its duration and rereads the
/// levels' sizes, so a server and a CLI on the same data directory can both extend and read it.
/// One instance is not for sharing between threads.
public final class MerkleStore: MerkleNodes {
    public let directory: String
    fileprivate var fds: [Int32] = []
    fileprivate var counts: [Int64] = []
    private let lockFD: Int32
    private var locked = false

    public static func directory(dataDirectory: String) -> String { dataDirectory + "/merkle" }

    /// Opens (creating) the tree of the log in `dataDirectory`.
    public init(dataDirectory: String) throws {
        directory = MerkleStore.directory(dataDirectory: dataDirectory)
        try FileIO.makeDirectory(directory)
        lockFD = try FileIO.open(directory + "/LOCK", O_RDWR | O_CREAT)
    }

    deinit {
        for fd in fds { close(fd) }
        close(lockFD)
    }

    fileprivate func path(_ level: Int) -> String { directory + "/level-" + (level < 10 ? "0" : "") + String(level) + ".bin" }

    /// Runs `body` holding the tree's lock, with the levels' sizes reread (and a torn tail cut).
    public func withLock<T>(_ body: () throws -> T) throws -> T {
        if locked { return try body() }
        while flock(lockFD, LOCK_EX) != 0 {
            guard errno == EINTR else { throw LedgerError(.io, "flock \(directory)/LOCK: \(FileIO.errorText())") }
        }
        locked = true
        defer {
            locked = false
            flock(lockFD, LOCK_UN)
        }
        try reload()
        return try body()
    }

    private func reload() throws {
        var level = fds.count
        while FileIO.exists(path(level)) {
            fds.append(try FileIO.open(path(level), O_RDWR))
            counts.append(0)
            level += 1
        }
        if fds.isEmpty {
            fds.append(try FileIO.open(path(0), O_RDWR | O_CREAT))
            counts.append(0)
        }
        for l in fds.indices { counts[l] = try FileIO.size(fds[l], path(l)) / 32 }
        // Consistent sizes: level l holds exactly size >> l nodes. A crash between the writes of
        // one append leaves a level short (or a torn tail): cut every level back to agree.
        var size = counts[0]
        for l in counts.indices.dropFirst() { size = min(size, (counts[l] << Int64(l)) | ((1 << Int64(l)) - 1)) }
        size = min(size, (1 << Int64(counts.count)) - 1)  // a level not yet created holds no node
        try truncateLocked(to: size)
    }

    /// The number of leaves.
    public var size: Int64 { get throws { try withLock { counts[0] } } }

    public func node(level: Int, index: Int64) throws -> Hash256 {
        try withLock {
            guard level < fds.count, index >= 0, index < counts[level] else {
                throw LedgerError(.notFound, "no complete Merkle subtree at level \(level), index \(index) (tree of \(counts[0]) leaves)")
            }
            return try read(level, index)
        }
    }

    fileprivate func read(_ level: Int, _ index: Int64) throws -> Hash256 {
        var buffer = [UInt8](repeating: 0, count: 32)
        let n = try buffer.withUnsafeMutableBytes { try FileIO.pread(fds[level], $0.baseAddress!, 32, index * 32, path(level)) }
        guard n == 32 else { throw LedgerError(.corrupt, "\(path(level)) ends before node \(index)") }
        return Hash256(bytes: buffer)
    }

    /// Cuts the tree back to `size` leaves (a log truncated below it, a torn write).
    public func truncate(to size: Int64) throws { try withLock { try truncateLocked(to: size) } }

    fileprivate var syncedPath: String { directory + "/SYNCED" }

    /// Leaves whose nodes are known to be on disk (0 if the tree was never synced).
    public var syncedSize: Int64 { HeadFile.read(file: syncedPath) ?? 0 }

    /// fdatasyncs every level, then records their size in `SYNCED`. Returns the size synced.
    @discardableResult
    public func sync() throws -> Int64 {
        try withLock {
            if syncedSize == counts[0] { return counts[0] }
            for l in fds.indices { try FileIO.fdatasync(fds[l], path(l)) }
            try FileIO.writeAtomically(syncedPath, HeadFile.encode(counts[0]), directory: directory)
            return counts[0]
        }
    }

    /// What the log's writer does on open: the tree cut back to what was synced and what the log
    /// holds (`head`). Returns the leaves cut.
    @discardableResult
    public func recover(head: Int64) throws -> Int64 {
        try withLock {
            let keep = min(counts[0], head, syncedSize)
            let cut = counts[0] - keep
            if cut > 0 { try truncateLocked(to: keep) }
            return cut
        }
    }

    private func truncateLocked(to size: Int64) throws {
        for l in fds.indices {
            let keep = size >> Int64(l)
            let bytes = try FileIO.size(fds[l], path(l))
            if counts[l] != keep || bytes != keep * 32 {
                try FileIO.truncate(fds[l], keep * 32, path(l))
                counts[l] = keep
            }
        }
    }

    /// Appends the leaves of the events `counts[0] ..< end` of `source` (default: its head): their
    /// leaf hashes and every subtree they complete. Returns the new size.
    @discardableResult
    public func catchUp(_ source: any LogSource, to end: Int64? = nil) throws -> Int64 {
        try withLock {
            let target = min(end ?? source.head, source.head)
            if counts[0] >= target { return counts[0] }
            var appender = try Appender(self)
            let cursor = source.cursor(from: counts[0], end: target, filter: .all)
            while let view = try cursor.next() {
                guard let hash = view.storedHash else {
                    throw LedgerError(.corrupt, "the event at offset \(view.offset) has no readable hash")
                }
                try appender.add(BulkSHA256.leaf(hash))
            }
            try appender.flush()
            try sync()
            return counts[0]
        }
    }

    /// Appends the leaves of events `base ..< base + n` from their event hashes, handed over by
    /// the log's writer once they are durable (``TreeMaintainer``): what another process already
    /// added is skipped, a gap before `base` is filled from `source` first. Returns the new size.
    @discardableResult
    public func extend(base: Int64, eventHashes runs: [[Hash256]], source: () throws -> any LogSource) throws -> Int64 {
        try withLock {
            if counts[0] < base { _ = try catchUp(try source(), to: base) }
            guard counts[0] >= base else {
                throw LedgerError(.internal, "the Merkle tree has \(counts[0]) leaves and cannot reach offset \(base) from the log")
            }
            var skip = counts[0] - base
            var appender = try Appender(self)
            for run in runs {
                if skip >= Int64(run.count) {
                    skip -= Int64(run.count)
                    continue
                }
                for hash in run.dropFirst(Int(skip)) { try appender.add(BulkSHA256.leaf(hash)) }
                skip = 0
            }
            try appender.flush()
            return counts[0]
        }
    }

    /// Appends leaf hashes that belong to no log (benchmarks, tests). Returns the new size.
    @discardableResult
    public func append(leafHashes: some Sequence<Hash256>) throws -> Int64 {
        try withLock {
            var appender = try Appender(self)
            for leaf in leafHashes { try appender.add(leaf) }
            try appender.flush()
            return counts[0]
        }
    }

    /// Buffers new nodes level by level and writes them every 4,096 leaves (256 KiB over all
    /// levels: small enough to stay in a core's cache, beside the appends' own work). The right edge — the
    /// last node of each level whose count is odd — waits for its sibling.
    private struct Appender {
        let store: MerkleStore
        var edge: [Hash256?] = []
        var buffers: [[UInt8]] = []
        var pending = 0

        init(_ store: MerkleStore) throws {
            self.store = store
            for l in store.fds.indices { edge.append(store.counts[l] % 2 == 1 ? try store.read(l, store.counts[l] - 1) : nil) }
            buffers = Array(repeating: [], count: store.fds.count)
        }

        mutating func add(_ leaf: Hash256) throws {
            var level = 0
            var hash = leaf
            while true {
                while buffers.count <= level { buffers.append([]) }
                while edge.count <= level { edge.append(nil) }
                withUnsafeBytes(of: hash.bigEndianBytes) { buffers[level].append(contentsOf: $0) }
                guard let left = edge[level] else {
                    edge[level] = hash
                    break
                }
                edge[level] = nil
                hash = BulkSHA256.node(left, hash)
                level += 1
            }
            pending += 1
            if pending == 4096 { try flush() }
        }

        mutating func flush() throws {
            for l in buffers.indices where !buffers[l].isEmpty {
                if l >= store.fds.count {
                    store.fds.append(try FileIO.open(store.path(l), O_RDWR | O_CREAT))
                    store.counts.append(0)
                }
                try buffers[l].withUnsafeBytes { try FileIO.pwrite(store.fds[l], $0, store.counts[l] * 32, store.path(l)) }
                store.counts[l] += Int64(buffers[l].count / 32)
                buffers[l].removeAll(keepingCapacity: true)
            }
            pending = 0
        }
    }

    // MARK: proofs

    /// The root of the first `size` leaves.
    public func root(size: Int64) throws -> Hash256 {
        try withLock {
            guard size <= counts[0] else { throw LedgerError(.notFound, "the tree has \(counts[0]) leaves, not \(size)") }
            return try Merkle.root(self, size: size)
        }
    }

    public func inclusionProof(index: Int64, size: Int64) throws -> [Hash256] {
        try withLock {
            guard size <= counts[0] else { throw LedgerError(.notFound, "the tree has \(counts[0]) leaves, not \(size)") }
            guard index >= 0, index < size else { throw LedgerError(.usage, "offset \(index) is not in a tree of \(size) events") }
            return try Merkle.inclusionProof(self, index: index, size: size)
        }
    }

    public func consistencyProof(first: Int64, second: Int64) throws -> [Hash256] {
        try withLock {
            guard second <= counts[0] else { throw LedgerError(.notFound, "the tree has \(counts[0]) leaves, not \(second)") }
            guard first > 0, first <= second else { throw LedgerError(.usage, "a consistency proof needs 0 < M ≤ N, not M \(first), N \(second)") }
            return try Merkle.consistencyProof(self, first: first, second: second)
        }
    }

    /// The leaf hash at `index`.
    public func leaf(_ index: Int64) throws -> Hash256 { try node(level: 0, index: index) }
}
