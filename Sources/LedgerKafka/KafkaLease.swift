#if canImport(Glibc)
import Glibc
#endif
import LedgerCore
import LedgerLog
import Logging
import Synchronization

/// One role of a ledger (the projector) held by one process at a time, through a Kafka consumer
/// group: every candidate joins group `ledger-<name>-<role>` on the ledger's topic, and the member
/// the group gives partition 0 holds the role. When it dies, the group notices within the session
/// timeout and gives the partition — the role — to a standby, which resumes from the committed
/// checkpoint of its projections.
public final class KafkaLease: Sendable {
    public let role: String
    private let consumer: Mutex<RDKafkaConsumer?>
    private let held = Atomic<Bool>(false)
    private let stopped = Atomic<Bool>(false)
    private let topic: String
    let logger: Logger

    /// Joins the group; does not wait for the role (``waitUntilHeld(timeout:)``).
    public init(configuration: KafkaConfiguration, role: String, sessionTimeoutMs: Int = 6000) throws {
        self.role = role
        topic = configuration.topic
        logger = configuration.logger
        let properties = try configuration.consumerProperties(group: "ledger-\(configuration.ledgerName)-\(role)").filter { $0.0 != "enable.partition.eof" } + [
            ("session.timeout.ms", String(sessionTimeoutMs)), ("heartbeat.interval.ms", String(max(100, sessionTimeoutMs / 20))),
            // Incremental rebalancing: a standby joining does not take the role from its holder.
            ("partition.assignment.strategy", "cooperative-sticky"),
        ]
        let c = try RDKafkaConsumer(properties: properties, logger: configuration.logger)
        try c.subscribe(topic: configuration.topic)
        consumer = Mutex(c)
        startThread(name: "ledger-kafka-lease") { [self] in pollLoop() }
    }

    /// Whether this process holds the role now.
    public var isHeld: Bool { held.load(ordering: .acquiring) }

    /// Blocks until the group gives this process the role (nil timeout: as long as it takes);
    /// false on timeout.
    @available(*, noasync, message: "waits for the consumer group; call it from a thread of its own")
    public func waitUntilHeld(timeout: Double? = nil) -> Bool {
        let deadline = timeout.map { monotonicSeconds() + $0 }
        while !isHeld {
            if stopped.load(ordering: .acquiring) { return false }
            if let deadline, monotonicSeconds() > deadline { return false }
            usleep(50_000)
        }
        return true
    }

    /// Leaves the group (the role passes to a standby at once).
    public func release() {
        stopped.store(true, ordering: .releasing)
        consumer.withLock { $0 = nil }
        held.store(false, ordering: .releasing)
    }

    /// Polls the group consumer (which keeps the membership alive and runs rebalances); records
    /// it never uses are dropped.
    private func pollLoop() {
        while !stopped.load(ordering: .acquiring) {
            let now: Bool? = consumer.withLock { c in
                guard let c else { return nil }
                if let m = c.poll(timeoutMs: 100) { m.destroy() }
                return c.isAssigned(topic: topic)
            }
            guard let now else { return }
            let before = held.exchange(now, ordering: .acquiringAndReleasing)
            if before != now {
                if now { logger.notice("kafka: this process now holds the \(role) role of \(topic)") } else { logger.warning("kafka: this process lost the \(role) role of \(topic)") }
            }
        }
    }
}
