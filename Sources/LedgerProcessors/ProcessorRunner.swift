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

    /// Every processor's state as files to write: cheap to take (no I/O, no encoding: each state
    /// is captured as a value), encoded and written later with ``Snapshots/write()`` off the async
    /// path. Take it only when the decisions made up to the checkpoints are durable (after
    /// ``runToQuiescence(maxEvents:)`` returns, they are).
    public func takeSnapshots() throws -> Snapshots {
        guard let directory else { return Snapshots(directory: nil, files: []) }
        let files = processors.enumerated().map { i, p in
            Snapshots.File(path: directory + "/\(p.name).snapshot.json", processor: p.name, checkpoint: checkpoints[i],
                pending: pending[i].sorted(), state: p.capture())
        }
        return Snapshots(directory: directory, files: files)
    }

    /// Takes and writes every processor's snapshot (atomically and durably).
    @available(*, noasync, message: "fsyncs: take the snapshots with takeSnapshots() and write them on a thread of their own")
    public func saveSnapshots() throws { try takeSnapshots().write() }

    /// Takes and writes every processor's snapshot, the encoding and writing on the blocking pool.
    public func saveSnapshots() async throws {
        let snapshots = try takeSnapshots()
        try await BlockingPool.shared.run { try snapshots.write() }
    }

    /// Runs rounds until every processor is at the head and a full pass appends nothing — or,
    /// with `maxEvents`, until at least that many events were folded (call again to go on).
    ///
    /// On a large slice the work of a round is spread over the cores: the next slice of what is
    /// already in the log is read and decoded ahead; the processors fold the slice side by side
    /// (each on its own state: nothing one appends is read before a later round); and the
    /// previous round's decisions are appended, in the fixed processor order, while this round
    /// folds. A round's slice ends at the head as it was before the previous round's decisions
    /// were appended, and decisions land after everything folded so far, round after round, in
    /// processor order: the log is the same whether a round runs side by side or in turn (small
    /// slices, the demo's event-by-event rounds, run in turn). When the runner reaches the head
    /// with decisions still to append, it appends them and reads on.
    @discardableResult
    public func runToQuiescence(maxEvents: Int64? = nil) async throws -> [AppendedDecision] {
        var appended: [AppendedDecision] = []
        var folded: Int64 = 0
        let masks = typeMasks()
        let cursor = log.cursor(from: checkpoints.min() ?? 0)
        var ahead = prefetched
        prefetched = nil
        defer {
            // A read-ahead still running when this returns or throws is kept for the next call.
            if let ahead { prefetched = ahead }
        }
        /// The last round's decisions, folded but not yet appended.
        var unappended: Round?
        while true {
            let head = log.head
            let low = checkpoints.min() ?? head
            guard low < head else {
                // At the head, but decisions still to append: append them and go on reading.
                guard let round = unappended else { break }
                unappended = nil
                try await appendAndStopWaiting(round, into: &appended)
                continue
            }
            let high = min(head, low + Int64(chunk))
            // The slice, decoded once: only the types some processor wants.
            var slice = DecodedSlice()
            if let task = ahead {
                ahead = nil
                if task.range.lowerBound == low { slice = try await task.task.value }
            }
            if slice.end < high {
                try slice.read(cursor, from: max(low, slice.end), to: high, masks: masks)
            }
            // Read the next slice ahead while this one is folded.
            let nextEnd = min(head, high + Int64(chunk))
            if nextEnd - high >= parallelMinimum, maxEvents.map({ folded + (high - low) < $0 }) ?? true {
                let log = self.log
                let from = high
                ahead = ReadAhead(range: from..<nextEnd, task: Task.detached(executorPreference: executor) {
                    var next = DecodedSlice()
                    try next.read(log.cursor(from: from, end: nextEnd, filter: .all), from: from, to: nextEnd, masks: masks)
                    return next
                })
            }
            // The slice's bounds were taken before the previous round's decisions are appended,
            // whether they are appended while this round folds (a large slice) or before.
            let large = high - low >= parallelMinimum
            var outputs: [FoldOutput]
            if large, let round = unappended {
                unappended = nil
                let jobs = foldJobs()
                async let folding = ProcessorRunner.fold(jobs, slice, parallel: true)
                let rederived = try await append(round, into: &appended)
                outputs = await folding
                for (i, id) in rederived { outputs[i].pending.remove(id) }
            } else {
                if let round = unappended {
                    unappended = nil
                    try await appendAndStopWaiting(round, into: &appended)
                }
                outputs = await ProcessorRunner.fold(foldJobs(), slice, parallel: large)
            }
            for i in processors.indices {
                pending[i] = outputs[i].pending
                checkpoints[i] = max(checkpoints[i], high)
            }
            unappended = Round(checkpoints: checkpoints, made: outputs.map(\.made))
            folded += high - low
            if let maxEvents, folded >= maxEvents { break }
        }
        if let round = unappended {
            try await appendAndStopWaiting(round, into: &appended)
        }
        return appended
    }

    /// Appends a round's decisions when nothing folds meanwhile: the re-derived ones are no
    /// longer waited for at once.
    private func appendAndStopWaiting(_ round: Round, into appended: inout [AppendedDecision]) async throws {
        for (i, id) in try await append(round, into: &appended) { pending[i].remove(id) }
    }

    /// One round's decisions, per processor, and the checkpoints it left.
    struct Round {
        var checkpoints: [Int64]
        var made: [[[Decision]]]
    }

    /// Appends a round's decisions, processor by processor in the fixed order, one atomic
    /// request per trigger. Returns the decisions that were already in the log before the
    /// round's checkpoint (re-derived after a restart): they will not be read back, so the
    /// caller stops waiting for them.
    private func append(_ round: Round, into appended: inout [AppendedDecision]) async throws -> [(Int, EventID)] {
        var rederived: [(Int, EventID)] = []
        for (i, p) in processors.enumerated() {
            let made = round.made[i]
            guard !made.isEmpty else { continue }
            let requests = made.map { decisions in
                decisions.map {
                    var r = AppendRequest(stream: $0.stream, type: $0.type, data: $0.data, id: $0.id, expectedVersion: .any,
                        causationId: $0.causationId, correlationId: $0.correlationId)
                    r.notBefore = $0.notBefore
                    return r
                }
            }
            beforeAppend?(appendCount)
            appendCount += 1
            let results = await log.append(requests: requests, policy: AppendPolicy(actor: "processor:" + p.name))
            for (k, result) in results.enumerated() {
                switch result {
                case .success(let positions):
                    for (d, pos) in zip(made[k], positions) {
                        appended.append(AppendedDecision(processor: p.name, decision: d, offset: pos.offset))
                        if pos.offset < round.checkpoints[i] { rederived.append((i, d.id)) }
                    }
                case .failure(let error):
                    throw LedgerError(error.code, "processor \(p.name) could not append its decision \(made[k].first?.type ?? "?") caused by \(made[k].first?.causationId.description ?? "?"): \(error.message)")
                }
            }
        }
        return rederived
    }

    /// What one processor made of a slice: its decisions (one list per trigger) and the decisions
    /// of its own it still waits to read back.
    struct FoldOutput: Sendable {
        var made: [[Decision]] = []
        var pending: Set<EventID>
    }

    /// Every processor's fold of the next slice, from its checkpoint and what it waits for.
    private func foldJobs() -> [FoldJob] {
        processors.indices.map { i in
            FoldJob(processor: processors[i], bit: 1 << UInt32(i), checkpoint: checkpoints[i], pending: pending[i])
        }
    }

    /// Folds `slice` through every processor, side by side when `parallel`.
    private static func fold(_ jobs: [FoldJob], _ slice: DecodedSlice, parallel: Bool) async -> [FoldOutput] {
        guard parallel else { return jobs.map { $0.run(slice) } }
        return await withTaskGroup(of: (Int, FoldOutput).self) { group in
            for (i, job) in jobs.enumerated() {
                group.addTask { (i, job.run(slice)) }
            }
            var outputs = Array(repeating: FoldOutput(pending: []), count: jobs.count)
            for await (i, output) in group { outputs[i] = output }
            return outputs
        }
    }

    /// One processor's fold of a slice, handed to a task of its own. The processor is a class
    /// without locks: while folds run, each processor is touched by its own task only, and the
    /// runner waits for all of them before it touches any processor again.
    struct FoldJob: @unchecked Sendable {
        let processor: any Processor
        let bit: UInt32
        let checkpoint: Int64
        let pending: Set<EventID>

        func run(_ slice: DecodedSlice) -> FoldOutput {
            var output = FoldOutput(pending: pending)
            for j in slice.offsets.indices where slice.offsets[j] >= checkpoint {
                let mask = slice.masks[j]
                // Our own decision, read back: it is not folded again.
                if mask & DecodedSlice.byProcessor != 0, !output.pending.isEmpty, output.pending.remove(slice.ids[j]) != nil { continue }
                guard mask & bit != 0 else { continue }
                let decisions = processor.apply(slice.envelopes[Int(slice.envelopeIndex[j])])
                guard !decisions.isEmpty else { continue }
                for d in decisions { output.pending.insert(d.id) }
                output.made.append(decisions)
            }
            return output
        }
    }

    /// Slices shorter than this are neither read ahead nor folded side by side (the demo's
    /// event-by-event rounds): starting tasks would cost more than it saves. (The tests set it
    /// out of reach to compare the two ways of running a round.)
    public var parallelMinimum: Int64 = 1024

    /// Where the rounds' side work (the read-ahead) runs: the executor the caller's rounds
    /// prefer (the server: ``BlockingPool/background``); nil: the cooperative pool.
    public var executor: (any TaskExecutor)?

    /// A slice being read and decoded on another core.
    struct ReadAhead {
        var range: Range<Int64>
        var task: Task<DecodedSlice, any Error>
    }
    private var prefetched: ReadAhead?

    /// Event type → a bit per processor that reads it.
    private func typeMasks() -> [String: UInt32] {
        if let cachedMasks { return cachedMasks }
        var masks: [String: UInt32] = [:]
        for (i, p) in processors.enumerated() {
            for type in p.inputTypes { masks[type, default: 0] |= 1 << UInt32(i) }
        }
        cachedMasks = masks
        return masks
    }
    private var cachedMasks: [String: UInt32]?

    /// Whether every processor has folded the log up to its head.
    public var isAtHead: Bool { (checkpoints.min() ?? 0) >= log.head }
}

/// Processor snapshots taken in memory, to be encoded and written atomically and durably.
public struct Snapshots: Sendable {
    struct File: Sendable {
        var path: String
        var processor: String
        var checkpoint: Int64
        var pending: [EventID]
        var state: StateCapture
    }
    let directory: String?
    let files: [File]

    @available(*, noasync, message: "encodes and fsyncs: call it from a thread of its own")
    public func write() throws {
        guard let directory else { return }
        try FileIO.makeDirectory(directory)
        for file in files {
            let bytes = try encodeState(ProcessorRunner.SnapshotFile(
                processor: file.processor, checkpoint: file.checkpoint, pending: file.pending, state: Data(try file.state.encode())))
            try FileIO.writeAtomically(file.path, bytes, directory: directory)
        }
        // Encoding a large state takes memory for a moment: give it back to the system rather
        // than leaving the heap at its high-water mark.
        releaseFreeMemory()
    }
}

/// Consecutive events of the log as the processors see them: offset, id, the processors that
/// read the event's type (a bit each) and, for those, the envelope upcast to its newest version.
struct DecodedSlice: Sendable {
    var offsets: [Int64] = []
    var ids: [EventID] = []
    /// A bit per processor that reads the event's type, and ``byProcessor``.
    var masks: [UInt32] = []
    /// Where the event's envelope is in ``envelopes`` (-1 when no processor reads it).
    var envelopeIndex: [Int32] = []
    /// A `ContiguousArray`: from an `Array` the compiler copies each envelope (a dozen
    /// reference-counted fields) to pass it to a processor; from this it passes it in place.
    var envelopes: ContiguousArray<Envelope> = []
    /// The offset after the last event read.
    var end: Int64 = 0

    /// Set in ``masks`` for an event a processor appended (actor `processor:…`), or one whose
    /// stored form is not the canonical layout that tells: only those can be a processor's own
    /// decision read back, so only those are looked up among the pending ones.
    static let byProcessor: UInt32 = 1 << 31

    mutating func read(_ cursor: any EventCursor, from low: Int64, to high: Int64, masks typeMasks: [String: UInt32]) throws {
        if offsets.isEmpty { end = low }
        precondition(end == low, "a decoded slice is extended only at its end")
        cursor.seek(to: low)
        let count = Int(high - low)
        offsets.reserveCapacity(offsets.count + count)
        ids.reserveCapacity(ids.count + count)
        masks.reserveCapacity(masks.count + count)
        envelopeIndex.reserveCapacity(envelopeIndex.count + count)
        envelopes.reserveCapacity(envelopes.count + count)
        while cursor.nextOffset < high, let view = try cursor.next() {
            if view.offset >= high { break }
            var mask = typeMasks[view.type] ?? 0
            if DecodedSlice.mayBeByProcessor(view.json) { mask |= DecodedSlice.byProcessor }
            offsets.append(view.offset)
            ids.append(view.id)
            masks.append(mask)
            if mask & ~DecodedSlice.byProcessor != 0 {
                // Processors read every type as its newest version (Schemas/evolution.md).
                envelopeIndex.append(Int32(envelopes.count))
                envelopes.append(try view.envelope().upcast())
            } else {
                envelopeIndex.append(-1)
            }
            end = view.offset + 1
        }
    }

    /// False only when the stored envelope visibly starts with an actor other than `processor:…`.
    static func mayBeByProcessor(_ json: UnsafeRawBufferPointer) -> Bool {
        let actor: StaticString = #"{"actor":""#
        let processor: StaticString = #"{"actor":"processor:"#
        func starts(with prefix: StaticString) -> Bool {
            let n = prefix.utf8CodeUnitCount
            guard json.count >= n else { return false }
            for i in 0..<n where json[i] != prefix.utf8Start[i] { return false }
            return true
        }
        return !starts(with: actor) || starts(with: processor)
    }
}
