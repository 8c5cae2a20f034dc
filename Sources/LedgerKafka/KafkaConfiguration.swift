public import LedgerCore
public import Logging

/// Where a Kafka-backed ledger lives and how its writer talks to Kafka.
public struct KafkaConfiguration: Sendable {
    /// `bootstrap.servers`: `host:port[,host:port…]`.
    public var brokers: String
    /// The topic that holds the log. The ledger writes and reads its partition 0 only.
    public var topic: String
    /// The ledger's name; the writer's `transactional.id` is `ledger-<name>`, so a second writer
    /// of the same ledger fences the first. Default: the topic.
    public var name: String?
    /// Extra librdkafka properties (`-X key=value`), applied after the ledger's own; the ones the
    /// ledger's guarantees rest on (`enable.idempotence`, `acks`, `isolation.level`,
    /// `transactional.id`) cannot be overridden.
    public var properties: [String: String] = [:]
    /// Where the writer keeps its snapshot (stream versions, the id index, the chain's head and
    /// the Kafka offset they cover), so that start-up reads only the topic's tail. Nil: none,
    /// start-up folds the whole topic.
    public var stateDirectory: String?
    /// Write the snapshot again once this many events were appended since the last one.
    public var snapshotEvery: Int64 = 100_000
    /// `transaction.timeout.ms`, and how long one commit may take before it is retried.
    public var transactionTimeoutMs: Int32 = 60_000
    /// A batch that keeps failing is tried this many times before the writer stops for good.
    public var maxAttempts = 8
    /// Replicas of a topic the ledger creates (−1: the cluster's default).
    public var replicationFactor = -1
    /// Read-only ledgers (another process's writer): how often to look for a new head.
    public var headPollInterval: Double = 0.1
    /// The limits of the segment log's writer, the same here.
    public var maxDataBytes = AppendPolicy.defaultMaxDataBytes
    public var maxRequestBytes = 16 << 20
    /// Where events without a time of their own get it from.
    public var clock: @Sendable () -> Timestamp = { Timestamp.now() }
    /// The CloudEvents `source` of every record (`ce_source`).
    public var source = "/platform-ledger"
    public var logger = Logger(label: "ledger.kafka")

    public init(brokers: String, topic: String) {
        self.brokers = brokers
        self.topic = topic
    }

    var ledgerName: String { name ?? topic }
    var transactionalID: String { "ledger-" + ledgerName }

    static let guarded: Set<String> = ["enable.idempotence", "acks", "isolation.level", "transactional.id", "enable.partition.eof"]

    /// The user's properties, minus the guarded ones (refused with a clear error).
    func userProperties() throws -> [(String, String)] {
        for key in properties.keys where Self.guarded.contains(key) {
            throw LedgerError(.usage, "kafka property \(key) is set by the ledger (its guarantees rest on it) and cannot be overridden")
        }
        return properties.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
    }

    func producerProperties() throws -> [(String, String)] {
        [
            ("bootstrap.servers", brokers), ("client.id", "ledger-writer-" + ledgerName),
            ("enable.idempotence", "true"), ("acks", "all"), ("transactional.id", transactionalID),
            ("transaction.timeout.ms", String(transactionTimeoutMs)), ("linger.ms", "1"),
            ("message.max.bytes", String(max(1 << 20, maxRequestBytes + (1 << 20)))),
        ] + (try userProperties())
    }

    func consumerProperties(group: String? = nil) throws -> [(String, String)] {
        [
            ("bootstrap.servers", brokers), ("client.id", "ledger-reader-" + ledgerName),
            ("group.id", group ?? "ledger-reader-" + ledgerName), ("enable.auto.commit", "false"),
            ("enable.auto.offset.store", "false"), ("isolation.level", "read_committed"), ("enable.partition.eof", "true"),
            ("fetch.wait.max.ms", "10"), ("fetch.error.backoff.ms", "50"),
        ] + (try userProperties())
    }
}
