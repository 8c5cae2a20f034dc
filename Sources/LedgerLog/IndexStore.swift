#if canImport(Glibc)
import Glibc
#endif
import LedgerCore
import Logging

/// The log's two on-disk indexes — event id → offset and stream → last version — with their
/// manifest, the background flusher that turns full memtables into runs, and compaction.
///
/// Both indexes are derived from the log: the manifest records `indexedThrough`, the offset up to
/// which the runs hold every event; on open the log is replayed from there (a bounded amount:
/// at most one memtable). A missing, damaged or inconsistent index is rebuilt from the log.
/// Memory stays bounded as the log grows: a memtable of at most ``flushThreshold`` entries per
/// index, plus each run's Bloom filter (12 bits per key) and fence (one key per 256).
final class IndexStore: @unchecked Sendable {
    static let manifestName = "MANIFEST.json"

    let directory: String
    let ids: KeyIndex
    let streams: KeyIndex
    let flushThreshold: Int
    let logger: Logger

    /// Offset through which the manifest's runs hold every event (exclusive).
    private(set) var indexedThrough: Int64
    /// Next offset the sequencer will give; what a freeze covers.
    private var nextSequence: Int

    struct FlushState {
        var request: Int64? = nil  // throughOffset of a frozen memtable pair waiting to be written
        var running = false
        var stop = false
        var failure: LedgerError? = nil
    }
    private let flush = ConditionLock(FlushState())
    private var waitDurable: (@Sendable (Int64) -> Bool)?

    private init(directory: String, ids: [IndexRun], streams: [IndexRun], indexedThrough: Int64, nextSequence: Int, flushThreshold: Int, logger: Logger) {
        self.directory = directory
        self.ids = KeyIndex(kind: "ids", runs: ids)
        self.streams = KeyIndex(kind: "streams", runs: streams)
        self.indexedThrough = indexedThrough
        self.nextSequence = nextSequence
        self.flushThreshold = flushThreshold
        self.logger = logger
    }

    /// Opens the index of a log whose durable head is `head`; nil when it must be rebuilt
    /// (the caller then replays the whole log into a fresh one).
    static func open(directory: String, head: Int64, flushThreshold: Int, logger: Logger) throws -> IndexStore {
        try FileIO.makeDirectory(directory)
        let manifestPath = directory + "/" + manifestName
        if FileIO.exists(manifestPath) {
            do {
                let store = try load(directory: directory, manifestPath: manifestPath, head: head, flushThreshold: flushThreshold, logger: logger)
                store.removeUnlisted()
                return store
            } catch {
                logger.warning("index: \(LedgerError.wrap(error).message); rebuilding it from the log")
            }
        }
        // Fresh (or rebuilt) index: no runs, everything replays from offset 0.
        for name in (try? FileIO.list(directory)) ?? [] where name.hasSuffix(".run") || name.hasSuffix(".tmp") || name == manifestName {
            FileIO.remove(directory + "/" + name)
        }
        let store = IndexStore(directory: directory, ids: [], streams: [], indexedThrough: 0, nextSequence: 1, flushThreshold: flushThreshold, logger: logger)
        try store.writeManifest(ids: [], streams: [], through: 0)
        return store
    }

    private static func load(directory: String, manifestPath: String, head: Int64, flushThreshold: Int, logger: Logger) throws -> IndexStore {
        let manifest = try JSONParser.parse(try FileIO.readFile(manifestPath))
        guard manifest["format"]?.intValue == 1, let through = manifest["indexedThrough"]?.intValue,
            let idNames = manifest["ids"]?.arrayValue?.compactMap(\.stringValue),
            let streamNames = manifest["streams"]?.arrayValue?.compactMap(\.stringValue),
            let next = manifest["nextSequence"]?.intValue
        else { throw LedgerError(.corrupt, "index manifest \(manifestPath) is not readable") }
        guard Int64(through) <= head else {
            throw LedgerError(.corrupt, "index manifest covers offsets up to \(through), beyond the log head \(head)")
        }
        var idRuns: [IndexRun] = []
        var streamRuns: [IndexRun] = []
        for name in idNames { idRuns.append(try IndexRun(path: directory + "/" + name, name: name)) }
        for name in streamNames { streamRuns.append(try IndexRun(path: directory + "/" + name, name: name)) }
        return IndexStore(directory: directory, ids: idRuns, streams: streamRuns, indexedThrough: Int64(through), nextSequence: next, flushThreshold: flushThreshold, logger: logger)
    }

    /// Deletes run files the manifest does not list (left by a crash mid-flush or mid-compaction).
    private func removeUnlisted() {
        let listed = Set(ids.levels.withLock { $0.runs.map(\.name) } + streams.levels.withLock { $0.runs.map(\.name) })
        for name in (try? FileIO.list(directory)) ?? [] where (name.hasSuffix(".run") && !listed.contains(name)) || name.hasSuffix(".tmp") {
            FileIO.remove(directory + "/" + name)
        }
    }

    /// Starts the flusher. `waitDurable(offset)` blocks until the log is durable through `offset`
    /// (exclusive) and returns false if the log failed: runs never hold entries the log could lose.
    func start(waitDurable: @escaping @Sendable (Int64) -> Bool) {
        self.waitDurable = waitDurable
        startThread(name: "ledger-index") { [self] in flusherLoop() }
    }

    /// Called by the sequencer after it has added the entries of all events before `next`.
    /// Freezes the memtables when they are full; blocks only if the previous flush is still running
    /// and the memtables have grown to twice the threshold (back-pressure).
    func sequenced(through next: Int64) {
        let full = ids.memtable.count >= flushThreshold || streams.memtable.count >= flushThreshold
        guard full else { return }
        let mustWait = ids.memtable.count >= 2 * flushThreshold || streams.memtable.count >= 2 * flushThreshold
        let idle = flush.withLock { $0.request == nil && !$0.running }
        if idle {
            // Freeze first, then hand over: the flusher must find the frozen tables in place.
            freeze()
            flush.update { $0.request = next }
        } else if mustWait {
            flush.wait(until: { ($0.request == nil && !$0.running) || $0.stop }) { _ in }
            sequenced(through: next)
        }
    }

    private func freeze() {
        let idTable = ids.memtable
        let streamTable = streams.memtable
        // A log that filled one memtable will fill the next: made at its full size, it never grows
        // (growing rehashed three entries in four on the sequencing thread, a miss each).
        ids.memtable = KeyTable(capacity: max(1 << 16, flushThreshold))
        streams.memtable = KeyTable(capacity: max(1 << 16, flushThreshold))
        ids.levels.withLock { $0.frozen = idTable }
        streams.levels.withLock { $0.frozen = streamTable }
        ids.refreshView()
        streams.refreshView()
    }

    /// Flushes the memtables synchronously when they hold at least `minimum` entries. On close
    /// (`closing`), runs are merged only once there are more than ``runsLeftAtClose`` of them:
    /// merging is what keeps lookups to O(log n) runs, but at close it is serial time the process
    /// waits for (a third of a second after a million events), and the next flush merges anyway.
    func flushNow(through next: Int64, minimum: Int, closing: Bool = false) throws {
        guard ids.memtable.count >= minimum || streams.memtable.count >= minimum,
            ids.memtable.count + streams.memtable.count > 0
        else { return }
        flush.wait(until: { $0.request == nil && !$0.running }) { _ in }
        freeze()
        try writeFrozen(through: next, compacting: !closing || max(ids.runCount, streams.runCount) >= Self.runsLeftAtClose)
    }

    /// More runs than this (per index) are merged even at close.
    static let runsLeftAtClose = 8

    func stop() {
        flush.update { $0.stop = true }
        flush.wait(until: { !$0.running }) { _ in }
    }

    var failure: LedgerError? { flush.withLock { $0.failure } }

    private func flusherLoop() {
        while true {
            let through: Int64? = flush.wait(until: { $0.request != nil || $0.stop }) { state in
                if state.stop && state.request == nil { return nil }
                state.running = true
                return state.request
            }
            guard let through else { return }
            do {
                guard waitDurable?(through) ?? true else {
                    throw LedgerError(.writerFailed, "the log failed before the index could be flushed")
                }
                try writeFrozen(through: through)
                flush.update {
                    $0.request = nil
                    $0.running = false
                }
            } catch {
                let failure = LedgerError.wrap(error)
                logger.error("index flush failed: \(failure.message)")
                flush.update {
                    $0.failure = failure
                    $0.request = nil
                    $0.running = false
                }
            }
        }
    }

    /// Writes the frozen memtables as runs, compacts, and publishes a new manifest.
    private func writeFrozen(through: Int64, compacting: Bool = true) throws {
        var newIDs = ids.levels.withLock { $0.runs }
        var newStreams = streams.levels.withLock { $0.runs }
        if let frozen = ids.levels.withLock({ $0.frozen }), !frozen.isEmpty {
            newIDs.insert(try writeRun(frozen, kind: "ids"), at: 0)
        }
        if let frozen = streams.levels.withLock({ $0.frozen }), !frozen.isEmpty {
            newStreams.insert(try writeRun(frozen, kind: "streams"), at: 0)
        }
        let obsolete = compacting ? try compact(&newIDs, kind: "ids") + compact(&newStreams, kind: "streams") : []
        try writeManifest(ids: newIDs.map(\.name), streams: newStreams.map(\.name), through: through)
        indexedThrough = through
        let publishedIDs = newIDs
        let publishedStreams = newStreams
        ids.levels.withLock {
            $0.frozen = nil
            $0.runs = publishedIDs
        }
        streams.levels.withLock {
            $0.frozen = nil
            $0.runs = publishedStreams
        }
        for path in obsolete { FileIO.remove(path) }
    }

    private func nextRunName(_ kind: String) -> String {
        let digits = String(nextSequence)
        nextSequence += 1
        return kind + "-" + String(repeating: "0", count: max(0, 10 - digits.count)) + digits + ".run"
    }

    private func writeRun(_ table: KeyTable, kind: String) throws -> IndexRun {
        let sorted = table.sortedEntries()
        let name = nextRunName(kind)
        let path = directory + "/" + name
        let written = try IndexRun.write(path: path + ".tmp", count: sorted.count) { sorted[$0] }
        try FileIO.rename(path + ".tmp", path)
        return try IndexRun(written: written, path: path, name: name)
    }

    /// Size-tiered compaction: while the newest run is at least half the size of the next, merge
    /// them (the newer value wins). Keeps O(log n) runs. Returns the paths of merged-away runs.
    private func compact(_ runs: inout [IndexRun], kind: String) throws -> [String] {
        var obsolete: [String] = []
        while runs.count >= 2 && runs[0].count * 2 >= runs[1].count {
            let newer = runs[0]
            let older = runs[1]
            var merged: [(IndexKey, UInt64)] = []
            merged.reserveCapacity(newer.count + older.count)
            var i = 0
            var j = 0
            while i < newer.count || j < older.count {
                if j >= older.count || (i < newer.count && newer.key(at: i) <= older.key(at: j)) {
                    let k = newer.key(at: i)
                    merged.append((k, newer.value(i)))
                    if j < older.count && older.key(at: j) == k { j += 1 }
                    i += 1
                } else {
                    merged.append((older.key(at: j), older.value(j)))
                    j += 1
                }
            }
            let name = nextRunName(kind)
            let path = directory + "/" + name
            let written = try IndexRun.write(path: path + ".tmp", count: merged.count) { merged[$0] }
            try FileIO.rename(path + ".tmp", path)
            let run = try IndexRun(written: written, path: path, name: name)
            runs.replaceSubrange(0...1, with: [run])
            obsolete += [newer.path, older.path]
        }
        return obsolete
    }

    private func writeManifest(ids: [String], streams: [String], through: Int64) throws {
        let manifest: JSONValue = [
            "format": 1, "indexedThrough": .number(Double(through)), "nextSequence": .number(Double(nextSequence)),
            "ids": .array(ids.map { .string($0) }), "streams": .array(streams.map { .string($0) }),
        ]
        try FileIO.writeAtomically(directory + "/" + IndexStore.manifestName, try CanonicalJSON.encode(manifest), directory: directory)
    }
}
