#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import LedgerCore
import LedgerEngine
import LedgerKafka
import LedgerLog
import LedgerServer
import Logging
import Metrics
import Prometheus
import ServiceLifecycle

struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "The server: the HTTP API, with the processors and the projections running continuously.",
        discussion: """
            Serves the HTTP API of INTERFACES.md (Schemas/openapi.yaml): appends (durable before \
            they are answered, through the same single writer and group commit as `ledger append`), \
            reads, subscriptions as Server-Sent Events carrying CloudEvents, the read models, \
            decisions, verify, /metrics (Prometheus), /healthz and /readyz. The processors and the \
            projector run beside it, waking whenever the log's head moves.

            --tokens FILE maps SHA-256 digests of bearer tokens to principals, roles and stream \
            prefixes (README, "Tokens"); SIGHUP reloads it. Without --tokens the server is open and \
            listens on loopback only. SIGTERM or SIGINT: stops accepting, ends subscriptions, drains \
            in-flight appends, lets the processors and projector checkpoint, closes the log, exits 0.
            """)

    @OptionGroup var data: DataDirectory
    @OptionGroup var kafka: KafkaOptions
    @Option(help: ArgumentHelp("all: the writer, the processors and the projections; projector (with --kafka): only the projections, held by one process of a consumer group at a time — start several, one works, the others stand by and take over within seconds when it dies.", valueName: "ROLE"))
    var role: ServeRole = .all
    @Option(name: .customLong("role-timeout"), help: ArgumentHelp("With --role projector: seconds after which the group gives the role of a process that stopped answering to a standby (Kafka's session.timeout.ms; brokers refuse less than their group.min.session.timeout.ms, 6 by default).", valueName: "SECONDS"))
    var roleTimeout: Double = 6
    @Option(help: ArgumentHelp("Where to listen.", valueName: "HOST:PORT"))
    var listen: String = "127.0.0.1:8480"
    @Option(help: ArgumentHelp("The tokens file (JSON; README, \"Tokens\").", valueName: "FILE"))
    var tokens: String?
    @Option(name: .customLong("tls-cert"), help: ArgumentHelp("PEM certificate chain: serve HTTPS.", valueName: "FILE"))
    var tlsCert: String?
    @Option(name: .customLong("tls-key"), help: ArgumentHelp("PEM private key of --tls-cert.", valueName: "FILE"))
    var tlsKey: String?
    @Option(help: "The CloudEvents source of this ledger's events.")
    var source: String = "/platform-ledger"
    @Option(help: "Largest request body, in bytes.")
    var maxBodyBytes: Int = 16 << 20
    @Option(help: "Most events in one append request.")
    var maxEventsPerRequest: Int = 10_000
    @Option(help: "Largest canonical data of one event, in bytes.")
    var maxDataBytes: Int = AppendPolicy.defaultMaxDataBytes
    @Option(help: "Open subscriptions per principal.")
    var maxSubscriptions: Int = 64
    @Option(help: "Requests in flight before new ones are shed with 503.")
    var maxConcurrentRequests: Int = 512
    @Option(help: "Seconds between heartbeats on an idle subscription.")
    var heartbeat: Double = 15
    @Option(help: "Events a subscriber may fall behind before it is told it is lagging.")
    var lagBound: Int64 = 10_000
    @Option(name: .customLong("signing-key"), help: ArgumentHelp("Sign checkpoints as they fall due with this key (outside the data directory; `ledger checkpoint keygen`).", valueName: "FILE"))
    var signingKey: String?
    @Option(name: .customLong("checkpoint-every"), help: "With --signing-key: a checkpoint at least every this many events (and at each UTC day close).")
    var checkpointEvery: Int64 = 100_000
    @Option(help: "Events the projections may be behind before /readyz answers 503.")
    var readyLagBound: Int64 = 10_000
    @Flag(help: "Run without the processors (a ledger that records, and decides nothing).")
    var noProcessors = false
    @Flag(help: "Run without the projections (the read-model endpoints answer 404).")
    var noProjections = false

    func validate() throws {
        guard parseListen() != nil else { throw ValidationError("--listen takes HOST:PORT, e.g. 127.0.0.1:8480 or [::1]:8480") }
        guard maxBodyBytes > 0, maxEventsPerRequest > 0, maxSubscriptions > 0, maxConcurrentRequests > 0, heartbeat > 0, lagBound > 0 else {
            throw ValidationError("limits must be positive")
        }
    }

    func parseListen() -> (String, Int)? {
        guard let colon = listen.lastIndex(of: ":"), let port = Int(listen[listen.index(after: colon)...]), (0...65535).contains(port) else { return nil }
        var host = String(listen[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        return host.isEmpty ? nil : (host, port)
    }

    func run() async throws {
        var logger = Logger(label: "ledger.serve")
        logger.logLevel = ProcessInfoLite.environment("LEDGER_LOG_LEVEL").flatMap(Logger.Level.init(rawValue:)) ?? .info
        let factory = LedgerMetricsFactory()
        MetricsSystem.bootstrap(factory)

        var configuration = ServerConfiguration()
        (configuration.host, configuration.port) = parseListen()!
        configuration.tokensPath = tokens
        configuration.tlsCertificatePath = tlsCert
        configuration.tlsKeyPath = tlsKey
        configuration.source = source
        configuration.maxBodyBytes = maxBodyBytes
        configuration.maxEventsPerRequest = maxEventsPerRequest
        configuration.maxDataBytes = maxDataBytes
        configuration.maxSubscriptionsPerPrincipal = maxSubscriptions
        configuration.maxConcurrentRequests = maxConcurrentRequests
        configuration.heartbeatSeconds = heartbeat
        configuration.lagBound = lagBound
        configuration.readyLagBound = readyLagBound
        configuration.logger = logger
        let tokenStore = try tokens.map { try TokenStore(path: $0) }
        if tokenStore == nil {
            guard configuration.isLoopback else {
                throw LedgerError(.usage, "without --tokens the server is open to anyone who can reach it: it listens on loopback only (127.0.0.1 or ::1), not \(configuration.host)")
            }
            logger.warning("no --tokens: the server is open (every request acts as \(ProcessInfoLite.localActor) with every role); it listens on \(configuration.host) only")
        }

        let checkpointKey = try signingKey.map { try loadSigningKey($0, dataDirectory: data.resolved) }
        guard checkpointEvery > 0 else { throw ValidationError("--checkpoint-every must be positive") }
        var options = EngineOptions()
        options.processors = !noProcessors
        options.projections = !noProjections
        options.logger = logger
        options.metrics = EngineMetrics(factory: factory)
        options.log.maxDataBytes = maxDataBytes
        options.log.logger = logger
        let engine: LedgerEngine
        if role == .projector {
            guard kafka.isKafka else { throw ValidationError("--role projector needs --kafka: the role is held through the topic's consumer group") }
            engine = try await openProjectorRole(options: options, logger: logger)
        } else {
            engine = try await openEngine(data, kafka: kafka, options: options)
        }
        let api = LedgerAPI(
            log: engine.log, store: engine.store, configuration: configuration, tokens: tokenStore,
            openPrincipal: Principal(name: ProcessInfoLite.localActor, roles: [.reader, .writer, .auditor, .finops, .admin]),
            metrics: ServerMetrics(factory: factory), dataDirectory: data.resolved)
        let app: any Service
        do {
            let scheme = tlsCert == nil ? "http" : "https"
            let host = configuration.host.contains(":") ? "[\(configuration.host)]" : configuration.host
            app = try buildApplication(api) { port in
                // One line on stdout once the socket is bound (with --listen HOST:0, the port chosen).
                Terminal.line("ledger serve: listening on \(scheme)://\(host):\(port)")
                Terminal.flush()
            }
        } catch {
            try? await engine.close()
            throw error
        }
        let (processors, projector, logService) = engine.services()
        // Shut down in reverse: token reloads and subscriptions end first, then the HTTP server
        // drains its in-flight appends, then the processors and the projector checkpoint, and
        // the log closes last.
        var services: [any Service] = [logService]
        if let projector { services.append(projector) }
        if let processors { services.append(processors) }
        services.append(app)
        services.append(api.hub)
        if let tokenStore { services.append(TokenReloadService(tokens: tokenStore, logger: logger)) }
        if let key = checkpointKey {
            services.append(CheckpointService(log: engine.log, dataDirectory: data.resolved, store: engine.store, key: key,
                policy: Checkpoints.Policy(every: checkpointEvery), logger: logger))
        }
        let group = ServiceGroup(configuration: ServiceGroupConfiguration(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        logger.notice("serving \(data.resolved) on \(configuration.tlsCertificatePath == nil ? "http" : "https")://\(listen) (head \(engine.head))")
        try await group.run()
        logger.notice("stopped cleanly")
    }
}

enum ServeRole: String, ExpressibleByArgument, CaseIterable {
    case all, projector
}

extension ServeCommand {
    /// Waits for the projector role in the topic's consumer group, then opens the topic for
    /// reading with the projections only. Losing the role ends the process (exit 1): two
    /// projectors never write the same projections.
    func openProjectorRole(options: EngineOptions, logger: Logger) async throws -> LedgerEngine {
        guard let configuration = try kafka.configuration(data) else { throw ValidationError("no --kafka") }
        try FileIO_makeOwnerOnlyDirectory(data.resolved)
        let lease = try KafkaLease(configuration: configuration, role: "projector", sessionTimeoutMs: Int(roleTimeout * 1000))
        Terminal.line("ledger serve: standby for the projector role of \(configuration.topic)")
        Terminal.flush()
        _ = await BlockingPool.shared.run { lease.waitUntilHeld() }
        Terminal.line("ledger serve: holding the projector role of \(configuration.topic)")
        Terminal.flush()
        startThread(name: "ledger-lease-watch") {
            while lease.isHeld { usleep(100_000) }
            Terminal.error("error: fenced: this process lost the projector role of \(configuration.topic) to another; stopping")
            exitProcess(1)
        }
        var options = options
        options.processors = false
        options.projections = true
        let log = try await BlockingPool.shared.run { try kafka.openReader(data) }
        return try await LedgerEngine(log: log, directory: data.resolved, options: options)
    }
}
