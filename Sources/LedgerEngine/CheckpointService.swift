public import LedgerCore
public import LedgerLog
public import LedgerProjections
public import Logging
public import ServiceLifecycle

/// Signs the checkpoints that fall due while the server runs (`ledger serve --signing-key`):
/// every `interval` it extends the Merkle tree and signs each checkpoint due (every
/// `policy.every` events, each UTC day close) up to what the projections have folded, so that the
/// read models' digests can be attested with it. Work runs on the blocking pool.
public struct CheckpointService: Service {
    let log: any EventLog
    let dataDirectory: String
    let store: ProjectionStore?
    let key: SigningKey
    let policy: Checkpoints.Policy
    let interval: Duration
    let logger: Logger

    public init(log: any EventLog, dataDirectory: String, store: ProjectionStore?, key: SigningKey, policy: Checkpoints.Policy,
                interval: Duration = .seconds(2), logger: Logger) {
        self.log = log
        self.dataDirectory = dataDirectory
        self.store = store
        self.key = key
        self.policy = policy
        self.interval = interval
        self.logger = logger
    }

    /// One pass: the checkpoints due now (used by `run` and by the tests).
    @available(*, noasync, message: "fsyncs: call it from a thread of its own")
    public func signDue() throws -> [Checkpoint] {
        let tree = try MerkleStore(dataDirectory: dataDirectory)
        let projected = try store.map { try $0.checkpoint().nextOffset }
        let store = self.store
        let log = self.log
        return try Checkpoints(dataDirectory: dataDirectory).createDue(
            log, tree: tree, key: key, policy: policy, upTo: projected,
            attest: store.map { s in { size in try Attestation.lines(store: s, source: log, size: size) } })
    }

    public func run() async throws {
        while !Task.isCancelled {
            do {
                let interval = self.interval
                try await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
            } catch {
                break
            }
            if Task.isShuttingDownGracefully { break }
            do {
                let made = try await BlockingPool.shared.run { try self.signDue() }
                for c in made { logger.notice("signed checkpoint \(c.size) root \(c.root)") }
            } catch {
                logger.error("checkpoints not signed (retrying in \(interval)): \(error)")
            }
        }
    }
}
