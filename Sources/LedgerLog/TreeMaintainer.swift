#if canImport(Glibc)
import Glibc
#endif
import LedgerCore
import Logging

/// Keeps the log's Merkle tree (``MerkleStore``, `<data-dir>/merkle/`) up with the log as it is
/// written: the writer hands over each batch's event hashes, and once the syncer has made them
/// durable this thread adds their leaves and the subtrees they complete — no event is read back.
/// Leaves are only ever added for durable events, so the tree never holds an event a crash could
/// take back (and a tree found longer than the log on open is cut back to it).
///
/// It runs a round at most every 10 ms (one lock and a few large writes per round, not one per
/// group commit), at nice 5 so that the appends' own threads run first; it syncs the tree about
/// once a second and when the log closes (``MerkleStore/sync()``). The tree is derived
/// data: if it cannot be written (a full disk, say) this logs why and stops, and the appends go
/// on; checkpoints and proofs then catch the tree up from the log as they did without it.
final class TreeMaintainer: @unchecked Sendable {
    // @unchecked: the state is behind the ConditionLock; `dataDirectory` and `logger` are constants.
    struct Feed {
        /// Contiguous runs of event hashes, the first at offset `base`.
        var runs: [(base: Int64, hashes: [Hash256])] = []
        var durable: Int64
        var closing = false
        var running = false
        var stopped = false

        /// Whether the first run is entirely durable.
        var ready: Bool { runs.first.map { $0.base + Int64($0.hashes.count) <= durable } ?? false }
    }

    static let interval: useconds_t = 10_000

    let dataDirectory: String
    let logger: Logger
    let feed: ConditionLock<Feed>

    init(dataDirectory: String, durable: Int64, logger: Logger) {
        self.dataDirectory = dataDirectory
        self.logger = logger
        feed = ConditionLock(Feed(durable: durable))
    }

    func start() {
        feed.update { $0.running = true }
        startThread(name: "ledger-merkle") { [self] in
            _ = lowerThreadPriority(nice: 5)
            loop()
        }
    }

    /// The writer wrote these events (mostly not yet durable). Wakes the thread only if they are
    /// already (the syncer can get there first): a wake-up per batch was a context switch per
    /// batch on two cores.
    func written(base: Int64, hashes: [Hash256]) {
        let ready = feed.withLock { f in
            if !f.stopped && !f.closing { f.runs.append((base, hashes)) }
            return f.ready
        }
        if ready { feed.broadcast() }
    }

    /// The syncer made everything before `head` durable.
    func durable(_ head: Int64) {
        let ready = feed.withLock { f in
            f.durable = head
            return f.ready
        }
        if ready { feed.broadcast() }
    }

    /// Adds what is durable and stops the thread (after the log's writer threads ended).
    func close() {
        feed.update { $0.closing = true }
        feed.broadcast()
        feed.wait(until: { !$0.running }) { _ in }
    }

    private func loop() {
        defer {
            feed.update { $0.running = false }
            feed.broadcast()
        }
        var tree: MerkleStore?
        var lastSync = monotonicSeconds()
        while true {
            let (base, runs, closing): (Int64, [[Hash256]], Bool) = feed.wait(until: { $0.ready || $0.closing }) { f in
                let base = f.runs.first?.base ?? 0
                var taken: [[Hash256]] = []
                while f.ready { taken.append(f.runs.removeFirst().hashes) }
                return (base, taken, f.closing)
            }
            if !runs.isEmpty {
                do {
                    if tree == nil { tree = try MerkleStore(dataDirectory: dataDirectory) }
                    let directory = dataDirectory
                    try tree!.extend(base: base, eventHashes: runs) { try LogReader(directory: directory) }
                    if closing || monotonicSeconds() - lastSync >= 1 {
                        try tree!.sync()
                        lastSync = monotonicSeconds()
                    }
                } catch {
                    logger.warning(
                        "the Merkle tree is no longer kept up as the log is written: \(LedgerError.wrap(error).message); checkpoints and proofs catch it up from the log")
                    feed.update {
                        $0.stopped = true
                        $0.runs = []
                    }
                    return
                }
            }
            if closing {
                if !feed.withLock({ $0.ready }) {
                    if let tree, (try? tree.sync()) == nil { logger.warning("the Merkle tree could not be synced at close; it is rebuilt from the log on open") }
                    return
                }
                continue
            }
            usleep(Self.interval)
        }
    }
}
