import CRdKafka
public import Logging

/// librdkafka's mock cluster: Kafka brokers inside this process, on localhost ports, speaking
/// the real protocol — for tests, `ledger kafka mock` and `ledger bench kafka`. Lives as long as
/// this object.
public final class KafkaMockCluster: Sendable {
    /// Kafka requests whose answers can be made to fail.
    public enum Request: Int16, Sendable {
        case produce = 0
        case fetch = 1
        case listOffsets = 2
        case metadata = 3
        case findCoordinator = 10
        case initProducerID = 22
        case addPartitionsToTransaction = 24
        case endTransaction = 26
    }

    /// Kafka error codes to answer with (the protocol's numbers).
    public enum Failure: Int32, Sendable {
        case notLeaderForPartition = 6
        case requestTimedOut = 7
        case coordinatorNotAvailable = 15
        case notCoordinator = 16
        case notEnoughReplicas = 19
        case notEnoughReplicasAfterAppend = 20
        case concurrentTransactions = 51
    }

    private let cluster: RDKafkaMockCluster

    public init(brokers: Int = 3, logger: Logger = Logger(label: "ledger.kafka.mock")) throws {
        cluster = try RDKafkaMockCluster(brokers: brokers, logger: logger)
    }

    public var brokerCount: Int { cluster.brokers }
    /// `host:port,…` to give as `--kafka`.
    public var bootstrapServers: String { cluster.bootstrapServers }

    public func createTopic(_ name: String, partitions: Int = 1, replicationFactor: Int = 3) throws {
        try cluster.createTopic(name, partitions: partitions, replicationFactor: min(replicationFactor, cluster.brokers))
    }

    /// Takes broker `id` (1-based) down or brings it back.
    public func setBroker(_ id: Int, up: Bool) throws { try cluster.setBroker(Int32(id), up: up) }

    /// Moves the leadership of a partition to broker `id`.
    public func setLeader(topic: String, partition: Int = 0, broker id: Int) throws {
        try cluster.setLeader(topic: topic, partition: Int32(partition), broker: Int32(id))
    }

    /// Makes the next `failures.count` requests of this kind fail with these errors, in order.
    public func inject(_ request: Request, _ failures: [Failure]) {
        cluster.pushRequestErrors(apiKey: request.rawValue, failures.map { rd_kafka_resp_err_t(rawValue: $0.rawValue) })
    }

    /// Puts the transaction coordinator of `transactionalID` on broker `id`.
    public func setTransactionCoordinator(_ transactionalID: String, broker id: Int) throws {
        try cluster.setCoordinator(transactionalID: transactionalID, broker: Int32(id))
    }
}
