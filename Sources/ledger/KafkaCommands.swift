#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import LedgerCore
import LedgerKafka
import LedgerLog
import Logging

/// `--kafka BROKERS --topic T`: the log on a Kafka topic in place of `--data-dir`'s segments.
struct KafkaOptions: ParsableArguments {
    @Option(name: .customLong("kafka"), help: ArgumentHelp("Keep the log on Kafka (bootstrap servers host:port,…) instead of the data directory's segment files.", valueName: "BROKERS"))
    var brokers: String?
    @Option(name: .customLong("topic"), help: ArgumentHelp("With --kafka: the topic (the ledger uses its partition 0).", valueName: "T"))
    var topic: String = "ledger"
    @Option(name: .customLong("kafka-name"), help: ArgumentHelp("With --kafka: the ledger's name; its writer's transactional.id is ledger-<name> (default: the topic).", valueName: "NAME"))
    var name: String?
    @Option(name: .customShort("X"), help: ArgumentHelp("With --kafka: a librdkafka property (repeatable), e.g. -X security.protocol=SASL_SSL.", valueName: "KEY=VALUE"))
    var properties: [String] = []

    var isKafka: Bool { brokers != nil }

    /// The configuration, with the writer's snapshot kept in `<data-dir>/kafka`.
    func configuration(_ data: DataDirectory) throws -> KafkaConfiguration? {
        guard let brokers else { return nil }
        var c = KafkaConfiguration(brokers: brokers, topic: topic)
        c.name = name
        for p in properties {
            guard let eq = p.firstIndex(of: "="), eq != p.startIndex else { throw ValidationError("-X takes KEY=VALUE, not \(p)") }
            c.properties[String(p[..<eq])] = String(p[p.index(after: eq)...])
        }
        c.stateDirectory = data.resolved + "/kafka"
        c.logger = Logger(label: "ledger.kafka")
        return c
    }

    /// Opens the topic as its single writer (fencing any other).
    func openWriter(_ data: DataDirectory, maxDataBytes: Int = AppendPolicy.defaultMaxDataBytes) throws -> KafkaLog {
        guard var c = try configuration(data) else { throw LedgerError(.usage, "no --kafka") }
        c.maxDataBytes = maxDataBytes
        try FileIO_makeOwnerOnlyDirectory(data.resolved)
        return try KafkaLog.openWriter(c)
    }

    /// Opens the topic for reading (another process may be its writer).
    func openReader(_ data: DataDirectory) throws -> KafkaLog {
        guard let c = try configuration(data) else { throw LedgerError(.usage, "no --kafka") }
        return try KafkaLog.openReader(c)
    }
}

func FileIO_makeOwnerOnlyDirectory(_ path: String) throws {
    if mkdir(path, 0o700) != 0 && errno != EEXIST {
        throw LedgerError(.io, "cannot create \(path): \(String(cString: strerror(errno)))")
    }
}

struct KafkaCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kafka", abstract: "Kafka mode's helpers.", subcommands: [KafkaMockCommand.self])
}

struct KafkaMockCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mock",
        abstract: "Run librdkafka's mock Kafka cluster (the real protocol, on localhost ports) until interrupted.",
        discussion: """
            Prints `bootstrap: HOST:PORT,…` on standard output once the brokers listen; give it to \
            --kafka (or to kcat -b). The topic is created with one partition. Everything is in \
            memory and gone when the command ends.
            """)

    @Option(help: "Brokers in the cluster.")
    var brokers: Int = 3
    @Option(help: "A topic to create with one partition (replicated to every broker, up to 3).")
    var topic: String = "ledger"

    func run() throws {
        // Block the stop signals first, so that sigwait gets them (threads inherit the mask).
        var stop = sigset_t()
        sigemptyset(&stop)
        sigaddset(&stop, SIGINT)
        sigaddset(&stop, SIGTERM)
        pthread_sigmask(SIG_BLOCK, &stop, nil)
        let cluster = try KafkaMockCluster(brokers: brokers)
        try cluster.createTopic(topic, partitions: 1, replicationFactor: min(3, brokers))
        Terminal.line("bootstrap: \(cluster.bootstrapServers)")
        Terminal.line("topic: \(topic) (1 partition)")
        Terminal.flush()
        var signal: Int32 = 0
        sigwait(&stop, &signal)
        withExtendedLifetime(cluster) {}
    }
}
