#if canImport(Glibc)
import Glibc
#endif
import Foundation
import LedgerCore
public import LedgerLog

/// A decision the runner appended (or found already in the log, for a re-derived one).
public struct AppendedDecision: Sendable {
    public var processor: String
    public var decision: Decision
    public var offset: Int64
}

/// Runs the processors over the log (SEMANTICS.md, processor runner).
///
/// Each processor has its own checkpoint (the next offset it reads), its own state and the set
/// of its decisions it has made but not yet read back. A *round* takes the next slice of the log
/// (from the lowest checkpoint, at most ``chunk`` events) and folds it through the processors in
/// their fixed order — scheduler, drift, slo, gate, rollout —, each appending its outputs (one atomic
/// request per trigger) before the next processor runs; rounds repeat until every checkpoint is
/// at the head. Outputs go through the validated, idempotent append path with
/// `expectedVersion` `any`, with ids derived from processor, trigger and index: a processor
/// restarted from an older snapshot re-derives the same ids and the log writes nothing twice.
public final class ProcessorRunner {
    public let log: any EventLog
    public let processors: [any Processor]
    /// Where snapshots live (`<data-dir>/processors`), or nil for none.
    public let directory: String?
    public private(set) var checkpoints: [Int64]
    var pending: [Set<EventID>]
    /// Events per round.
    public var chunk = 8192
    /// Called before each append with the number of appends so far: a fault-injection point for
    /// the tests that kill a processor between deciding and appending.
    public var beforeAppend: ((Int) -> Void)?
    private var appendCount = 0

    /// The processors in SEMANTICS.md's fixed order.
    public static func standard() -> [any Processor] { [Scheduler(), DriftDetector(), SLOBurn(), Gate(), RolloutController()] }

    public init(log: any EventLog, dataDirectory: String?, processors: [any Processor] = ProcessorRunner.standard()) {
        self.log = log
        self.processors = processors
        directory = dataDirectory.map { $0 + "/processors" }
        checkpoints = Array(repeating: 0, count: processors.count)
        pending = Array(repeating: [], count: processors.count)
    }

    struct SnapshotFile: Codable {
        var processor: String
        var checkpoint: Int64
        var pending: [EventID]
        var state: Data
    }

    /// Restores each processor from its snapshot, when there is one that fits this log.
    public func loadSnapshots() throws {
        guard let directory else { return }
        for (i, p) in processors.enumerated() {
            let path = directory + "/\(p.name).snapshot.json"
            guard let bytes = FileManager.default.contents(atPath: path) else { continue }
            let file: SnapshotFile
            do { file = try JSONDecoder().decode(SnapshotFile.self, from: bytes) } catch {
                throw LedgerError(.corrupt, "processor snapshot \(path) is unreadable (\(error)); delete it to refold from offset 0")
            }
            guard file.processor == p.name, file.checkpoint <= log.head else {
                throw LedgerError(.corrupt, "processor snapshot \(path) is at offset \(file.checkpoint), beyond the log head \(log.head); delete it to refold")
            }
            try p.restore(Array(file.state))
            checkpoints[i] = file.checkpoint
            pending[i] = Set(file.pending)
        }
    }

    /// Every processor's state as files to write: cheap to take (no I/O), written later with
    /// ``Snapshots/write()`` off the async path. Take it only when the decisions made up to the
    /// checkpoints are durable (after ``runToQuiescence(maxEvents:)`` returns, they are).
    public func takeSnapshots() throws -> Snapshots {
        guard let directory else { return Snapshots(directory: nil, files: []) }
        var files: [(String, [UInt8])] = []
        for (i, p) in processors.enumerated() {
            let file = SnapshotFile(processor: p.name, checkpoint: checkpoints[i], pending: pending[i].sorted(), state: Data(try p.snapshot()))
            files.append((directory + "/\(p.name).snapshot.json", try encodeState(file)))
        }
        return Snapshots(directory: directory, files: files)
    }

    /// Takes and writes every processor's snapshot (atomically and durably).
    @available(*, noasync, message: "fsyncs: take the snapshots with takeSnapshots() and write them on a thread of their own")
    public func saveSnapshots() throws { try takeSnapshots().write() }

    /// Takes and writes every processor's snapshot, the writing on the blocking pool.
    public func saveSnapshots() async throws {
        let snapshots = try takeSnapshots()
        try await BlockingPool.shared.run { try snapshots.write() }
    }

    /// Runs rounds until every processor is at the head and a full pass appends nothing — or,
    /// with `maxEvents`, until at least that many events were folded (call again to go on).
    @discardableResult
    public func runToQuiescence(maxEvents: Int64? = nil) async throws -> [AppendedDecision] {
        var appended: [AppendedDecision] = []
        var folded: Int64 = 0
        let wanted = processors.reduce(into: Set<String>()) { $0.formUnion($1.inputTypes) }
        let cursor = log.cursor(from: checkpoints.min() ?? 0)
        while true {
            let head = log.head
            let low = checkpoints.min() ?? head
            guard low < head else { break }
            let high = min(head, low + Int64(chunk))
            // The slice, parsed once: only the types some processor wants.
            var slice: [(offset: Int64, id: EventID, envelope: Envelope?)] = []
            cursor.seek(to: low)
            while cursor.nextOffset < high, let view = try cursor.next() {
                if view.offset >= high { break }
                // Processors read every type as its newest version (Schemas/evolution.md).
                let env = wanted.contains(view.type) ? try view.envelope().upcast() : nil
                slice.append((view.offset, view.id, env))
            }
            for (i, p) in processors.enumerated() {
                var requests: [[AppendRequest]] = []
                var made: [[Decision]] = []
                for item in slice where item.offset >= checkpoints[i] {
                    if pending[i].remove(item.id) != nil { continue }  // our own decision, read back
                    guard let env = item.envelope, p.inputTypes.contains(env.type) else { continue }
                    let decisions = p.apply(env)
                    guard !decisions.isEmpty else { continue }
                    for d in decisions { pending[i].insert(d.id) }
                    made.append(decisions)
                    requests.append(decisions.map {
                        var r = AppendRequest(stream: $0.stream, type: $0.type, data: $0.data, id: $0.id, expectedVersion: .any,
                            causationId: $0.causationId, correlationId: $0.correlationId)
                        r.notBefore = $0.notBefore
                        return r
                    })
                }
                checkpoints[i] = max(checkpoints[i], high)
                guard !requests.isEmpty else { continue }
                beforeAppend?(appendCount)
                appendCount += 1
                let results = await log.append(requests: requests, policy: AppendPolicy(actor: "processor:" + p.name))
                for (k, result) in results.enumerated() {
                    switch result {
                    case .success(let positions):
                        for (d, pos) in zip(made[k], positions) {
                            appended.append(AppendedDecision(processor: p.name, decision: d, offset: pos.offset))
                            // A decision already in the log (re-derived after a restart) sits before
                            // the checkpoint: it will not be read back, so stop waiting for it.
                            if pos.offset < checkpoints[i] { pending[i].remove(d.id) }
                        }
                    case .failure(let error):
                        throw LedgerError(error.code, "processor \(p.name) could not append its decision \(made[k].first?.type ?? "?") caused by \(made[k].first?.causationId.description ?? "?"): \(error.message)")
                    }
                }
            }
            folded += high - low
            if let maxEvents, folded >= maxEvents { break }
        }
        return appended
    }

    /// Whether every processor has folded the log up to its head.
    public var isAtHead: Bool { (checkpoints.min() ?? 0) >= log.head }
}

/// Processor snapshots taken in memory, to be written atomically and durably.
public struct Snapshots: Sendable {
    let directory: String?
    let files: [(String, [UInt8])]

    @available(*, noasync, message: "fsyncs: call it from a thread of its own")
    public func write() throws {
        guard let directory else { return }
        try FileIO.makeDirectory(directory)
        for (path, bytes) in files { try FileIO.writeAtomically(path, bytes, directory: directory) }
        // Encoding a large state takes memory for a moment: give it back to the system rather
        // than leaving the heap at its high-water mark.
        releaseFreeMemory()
    }
}
