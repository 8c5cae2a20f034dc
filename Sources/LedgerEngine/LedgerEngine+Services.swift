import LedgerCore
import LedgerLog
import LedgerProcessors
import LedgerProjections
import Logging
public import ServiceLifecycle
import Synchronization

extension LedgerEngine {
    /// Continuous mode (`ledger serve`): the processors and the projector as services that wake
    /// whenever the durable head moves, and the log itself, closed last. Hands the engine's
    /// processors and projector to the services: after this call the engine is only a holder of
    /// ``log`` and ``store``.
    ///
    /// Run them in a `ServiceGroup` after the services that append (the HTTP server), so that on
    /// shutdown the appenders stop first, the processors and the projector then finish what is
    /// durable and checkpoint, and the log closes last.
    public func services() -> (processors: ProcessorService?, projector: ProjectorService?, log: LogService) {
        let processors = runner.map { _ in ProcessorService(engine: EngineBox(self)) }
        let projector = self.projector.map { ProjectorService(projector: $0, log: log, metrics: options.metrics, logger: options.logger, interval: options.projectorInterval) }
        return (processors, projector, LogService(log: log, logger: options.logger))
    }

    /// Whether the processors have folded everything durable (false without processors: nothing to wait for).
    public var processorsAtHead: Bool { runner?.isAtHead ?? true }
}

/// Hands a non-`Sendable` engine to the one service that will own it.
final class EngineBox: @unchecked Sendable {
    // @unchecked: `engine` is taken exactly once (guarded by `taken`) and then used only by the
    // task that took it.
    private let engine: LedgerEngine
    private let taken = Atomic<Bool>(false)
    init(_ engine: LedgerEngine) { self.engine = engine }

    func take() -> LedgerEngine? {
        taken.compareExchange(expected: false, desired: true, ordering: .acquiringAndReleasing).exchanged ? engine : nil
    }
}

/// Runs the processors continuously: whenever the durable head moves, to quiescence; snapshots
/// as the engine's options say, and once more at shutdown.
public struct ProcessorService: Service {
    let engine: EngineBox

    public func run() async throws {
        guard let engine = engine.take() else { throw LedgerError(.internal, "the processor service runs once") }
        let logger = engine.options.logger
        // The rounds run on the background threads, below the priority of appends and
        // subscriptions (their child tasks follow the preference).
        let executor = BlockingPool.background
        engine.runner?.executor = executor
        for await _ in engine.log.headUpdates().cancelOnGracefulShutdown() {
            do {
                _ = try await withTaskExecutorPreference(executor) { try await engine.decide() }
            } catch {
                logger.critical("the processors stopped: \(LedgerError.wrap(error).description)")
                throw error
            }
            // Under load, fold what arrived in the meantime in one round rather than one per
            // group commit (the heads in between coalesce).
            try? await Task.sleep(for: engine.options.processorInterval)
        }
        if let failure = engine.log.failure {
            logger.critical("the processors stopped with the log: \(failure.description)")
            throw failure
        }
        // Shutting down (the appenders have stopped): decide on what is durable, and keep it in
        // the snapshots.
        try await engine.decide()
        try await engine.saveSnapshots()
        logger.info("processors stopped at the head, snapshots saved")
    }
}

/// Runs the projector continuously: whenever the durable head moves, the projections catch up
/// (each transaction commits its rows with its checkpoint, so a stop loses nothing).
public struct ProjectorService: Service {
    let projector: Projector
    let log: any EventLog
    let metrics: EngineMetrics?
    let logger: Logger
    let interval: Duration
    /// The catch-ups' thread, below the priority of appends and subscriptions (the projector's
    /// reading thread, started from it, inherits its priority); one for the process.
    static let pool = BlockingPool(name: "ledger-projector", threads: 1, nice: BlockingPool.backgroundNice)

    public func run() async throws {
        for await _ in log.headUpdates().cancelOnGracefulShutdown() {
            // Up to the head as it is now (not the value that woke us: it may be old).
            let head = log.head
            let projector = self.projector
            let checkpoint = try await Self.pool.run { try projector.catchUp(to: head, progress: nil) }
            metrics?.projectionLag.record(max(0, log.head - checkpoint.nextOffset))
            // Small transactions when caught up, but not one per group commit under load.
            try? await Task.sleep(for: interval)
        }
        projector.close()
        logger.info("projector stopped")
    }
}

/// Holds the log open while the server runs and closes it (draining pending appends, writing out
/// the index, releasing the lock) when the group shuts down.
public struct LogService: Service {
    let log: any EventLog
    let logger: Logger

    public func run() async throws {
        // Open until the group shuts down (after the services that use the log have stopped).
        try? await gracefulShutdown()
        let log = self.log
        try await BlockingPool.shared.run { try log.close() }
        if let failure = log.failure { throw failure }
        logger.info("log closed")
    }
}
