import LedgerCore
import Synchronization

/// A key → value index that lives on disk with bounded memory: a small in-memory table of recent
/// entries (the memtable) in front of immutable sorted runs (``IndexRun``), newest first; newer
/// entries win. Used for ids → offset and stream → last version.
///
/// - Important: `memtable` and `view` belong to the writer's sequencer thread; the flusher
///   publishes new levels through `levels` and the sequencer picks them up with ``refreshView()``.
final class KeyIndex: @unchecked Sendable {
    struct Levels {
        /// A memtable being written out as a run.
        var frozen: KeyTable?
        var runs: [IndexRun]
    }

    let kind: String
    @exclusivity(unchecked) var memtable = KeyTable(capacity: 1 << 16)
    let levels: Mutex<Levels>
    @exclusivity(unchecked) private(set) var view: Levels

    init(kind: String, runs: [IndexRun]) {
        self.kind = kind
        levels = Mutex(Levels(frozen: nil, runs: runs))
        view = Levels(frozen: nil, runs: runs)
    }

    /// Picks up levels the flusher published (call once per batch, not per lookup).
    func refreshView() { view = levels.withLock { $0 } }

    @inline(__always) func lookup(_ key: IndexKey) -> UInt64? {
        if let v = memtable.lookup(key) { return v }
        if let frozen = view.frozen, let v = frozen.lookup(key) { return v }
        for run in view.runs {
            if let v = run.lookup(key) { return v }
        }
        return nil
    }

    /// Starts loading what a lookup of `key` will read — its memtable slot, the frozen table's,
    /// each run's Bloom block — so that the lookup a few requests later finds them in the cache
    /// (ids and stream keys are random: every one of those reads was a cache miss).
    @inline(__always) func prefetch(_ key: IndexKey) {
        memtable.prefetch(key)
        if let frozen = view.frozen { frozen.prefetch(key) }
        for run in view.runs { run.bloom.prefetch(key) }
    }

    @inline(__always) func insert(_ key: IndexKey, _ value: UInt64) { memtable.set(key, value) }

    var runCount: Int { levels.withLock { $0.runs.count } }
    var entriesOnDisk: Int { levels.withLock { $0.runs.reduce(0) { $0 + $1.count } } }
}
