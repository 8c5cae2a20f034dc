public import LedgerCore
public import LedgerLog
public import LedgerProcessors
public import LedgerProjections
public import Logging
import Synchronization

/// How an engine runs.
public struct EngineOptions: Sendable {
    /// The log's settings (fsync policy, limits, clock).
    public var log = LogOptions()
    /// Run the processors (scheduler, drift, slo, gate, rollout).
    public var processors = true
    /// Keep the SQLite projections.
    public var projections = true
    /// Restore the processors from their snapshots on open (false: fold the log from offset 0;
    /// decisions already in the log are re-derived, never rewritten).
    public var loadSnapshots = true
    /// Save processor snapshots once this many events were folded since the last save.
    public var snapshotEvery: Int64 = 200_000
    /// Events per processor round.
    public var chunk = 8192
    /// Continuous mode: the least time between two rounds of the processors, and between two
    /// catch-ups of the projector (what arrives meanwhile is folded together).
    public var processorInterval: Duration = .milliseconds(5)
    public var projectorInterval: Duration = .milliseconds(20)
    /// Called before the processors' Nth append (fault tests kill the process there).
    public var beforeProcessorAppend: (@Sendable (Int) -> Void)?
    public var logger = Logger(label: "ledger.engine")
    /// Where metrics go (nil: nowhere).
    public var metrics: EngineMetrics?

    public init() {}
}

/// One data directory's log with its processors and projections, run together: append, run the
/// processors to quiescence, bring the projections up — per event (`ledger demo`, `ledger
/// replay`), per batch (`ledger process`, `ledger project`), or continuously (`ledger serve`,
/// through ``services()``). The only place that wires the three together.
///
/// - Important: an engine has one owner at a time (a command, or the server's start-up, which
///   hands the processors and the projector to their services). Its ``log`` and ``store`` are
///   `Sendable` and may be shared.
public final class LedgerEngine {
    public let directory: String
    public let log: any EventLog
    /// The projections' database (nil when the engine keeps none).
    public let store: ProjectionStore?
    /// The processors (nil when the engine runs none).
    public let runner: ProcessorRunner?
    public let projector: Projector?
    public let options: EngineOptions
    var foldedSinceSnapshot: Int64 = 0
    /// A snapshot being encoded and written in the background (``startSnapshot()``).
    var snapshotWrite: Task<Void, any Error>?

    /// Opens (creating if needed) a data directory's segment log, takes its writer lock, and sets
    /// up the processors (restored from their snapshots) and the projections.
    public static func open(directory: String, options: EngineOptions = EngineOptions()) async throws -> LedgerEngine {
        var logOptions = options.log
        if let metrics = options.metrics {
            let earlier = logOptions.onSync
            logOptions.onSync = { report in
                metrics.synced(report)
                earlier?(report)
            }
        }
        let configured = logOptions
        let log = try await BlockingPool.shared.run { try SegmentLog.open(directory: directory, options: configured) }
        do {
            return try await LedgerEngine(log: log, directory: directory, options: options)
        } catch {
            try? await BlockingPool.shared.run { try log.close() }
            throw error
        }
    }

    /// An engine over a log opened elsewhere (another backend); `directory` holds the
    /// processors' snapshots and the projections.
    public init(log: any EventLog, directory: String, options: EngineOptions) async throws {
        self.directory = directory
        self.log = log
        self.options = options
        if options.processors {
            let runner = ProcessorRunner(log: log, dataDirectory: directory)
            runner.chunk = max(1, options.chunk)
            runner.beforeAppend = options.beforeProcessorAppend
            if options.loadSnapshots { try runner.loadSnapshots() }
            self.runner = runner
        } else {
            runner = nil
        }
        if options.projections {
            let (store, projector) = try await BlockingPool.shared.run { () -> (ProjectionStore, Projector) in
                let store = try ProjectionStore(dataDirectory: directory)
                return (store, try Projector(store: store, source: log, logger: options.logger))
            }
            self.store = store
            self.projector = projector
        } else {
            store = nil
            projector = nil
        }
    }

    /// The offset after the last durable event.
    public var head: Int64 { log.head }

    // MARK: appending

    /// Appends independent atomic requests (each lands whole or not at all); results in order.
    public func append(requests: [[AppendRequest]], policy: AppendPolicy) async -> [Result<[AppendResult], LedgerError>] {
        await log.append(requests: requests, policy: policy)
    }

    /// Appends one atomic request.
    public func append(_ events: [AppendRequest], policy: AppendPolicy) async throws -> [AppendResult] {
        try await log.append(events, policy: policy)
    }

    // MARK: deciding

    /// Runs the processors until none has more to append; returns what they appended (decisions
    /// re-derived after a restart included, with their original offsets). Saves snapshots, off
    /// the async path, once ``EngineOptions/snapshotEvery`` events were folded since the last.
    @discardableResult
    public func decide() async throws -> [AppendedDecision] {
        guard let runner else { return [] }
        var all: [AppendedDecision] = []
        while true {
            let before = runner.checkpoints.min() ?? 0
            let made = try await runner.runToQuiescence(maxEvents: options.snapshotEvery)
            all += made
            options.metrics?.decisions.increment(by: made.count)
            foldedSinceSnapshot += (runner.checkpoints.min() ?? 0) - before
            if foldedSinceSnapshot >= options.snapshotEvery { try await startSnapshot() }
            if runner.isAtHead { break }
        }
        recordProcessorLag()
        return all
    }

    /// Appends one client event, then runs the processors to quiescence (SEMANTICS.md,
    /// interleaving: each decision sits right after its trigger).
    public func appendAndDecide(_ request: AppendRequest, policy: AppendPolicy) async throws -> (AppendResult, [AppendedDecision]) {
        let result = try await log.append([request], policy: policy)
        return (result[0], try await decide())
    }

    /// Per-event mode, driven by a caller that plays the clients: takes the next client event,
    /// appends it, runs the processors to quiescence and shows the caller each decision, until
    /// `next` returns nil.
    public func drive(policy: AppendPolicy, next: () -> AppendRequest?, observe: (AppendedDecision) -> Void) async throws -> (inputs: Int, decisions: Int) {
        var inputs = 0
        var decisions = 0
        while let request = next() {
            do {
                _ = try await log.append([request], policy: policy)
            } catch {
                throw LedgerError(.internal, "the log refused an event (\(request.type) on \(request.stream)): \(LedgerError.wrap(error).description)")
            }
            inputs += 1
            for d in try await decide() {
                decisions += 1
                observe(d)
            }
        }
        return (inputs, decisions)
    }

    /// Writes every processor's snapshot (durably, on a thread of its own) and returns when it
    /// is written.
    public func saveSnapshots() async throws {
        guard let runner else { return }
        try await finishSnapshot()
        try await runner.saveSnapshots()
        foldedSinceSnapshot = 0
    }

    /// Takes every processor's snapshot and has it encoded and written in the background while
    /// the processors go on (the next snapshot, ``saveSnapshots()`` and ``close()`` wait for it
    /// and report its failure).
    func startSnapshot() async throws {
        guard let runner else { return }
        try await finishSnapshot()
        let snapshots = try runner.takeSnapshots()
        snapshotWrite = Task.detached { try await BlockingPool.shared.run { try snapshots.write() } }
        foldedSinceSnapshot = 0
    }

    /// Waits for a snapshot being written in the background.
    func finishSnapshot() async throws {
        guard let writing = snapshotWrite else { return }
        snapshotWrite = nil
        try await writing.value
    }

    func recordProcessorLag() {
        guard let runner, let metrics = options.metrics else { return }
        let head = log.head
        for (i, p) in runner.processors.enumerated() { metrics.processorLag[p.name]?.record(max(0, head - runner.checkpoints[i])) }
    }

    // MARK: projecting

    /// Brings the projections up to the head (or `end`); returns their checkpoint.
    @discardableResult
    public func project(to end: Int64? = nil) async throws -> ProjectionStore.Checkpoint? {
        guard let projector else { return nil }
        let checkpoint = try await projector.catchUp(to: end)
        options.metrics?.projectionLag.record(max(0, log.head - checkpoint.nextOffset))
        return checkpoint
    }

    /// Drops the projections and folds the log into them again.
    @discardableResult
    public func rebuildProjections() async throws -> ProjectionStore.Checkpoint? {
        guard let projector else { return nil }
        return try await projector.rebuild()
    }

    // MARK: closing

    /// Saves the processors' snapshots, drains the log and releases the data directory.
    public func close() async throws {
        var failure: (any Error)?
        do { try await saveSnapshots() } catch { failure = error }
        projector?.close()
        let log = self.log
        do { try await BlockingPool.shared.run { try log.close() } } catch { failure = failure ?? error }
        if let failure { throw failure }
    }
}

