public import Hummingbird
import LedgerCore
public import LedgerLog
public import LedgerProjections
import Logging
import NIOCore
import Synchronization

/// Everything the HTTP routes share: the log, the projections, the tokens, the limits, the
/// subscriptions. `Sendable`; the routes are ``buildRouter(_:)``.
public final class LedgerAPI: Sendable {
    public let log: any EventLog
    public let store: ProjectionStore?
    public let configuration: ServerConfiguration
    public let tokens: TokenStore?
    /// Who a request is without a tokens file (the server then listens on loopback only).
    public let openPrincipal: Principal
    public let metrics: ServerMetrics
    public let hub: SubscriptionHub
    /// The segment log's directory, for `GET /v1/verify` (nil: not a segment log).
    public let dataDirectory: String?
    let inFlight = InFlightCounter()
    let subscriptions = Mutex<[String: Int]>([:])
    let pool: BlockingPool

    public init(
        log: any EventLog, store: ProjectionStore?, configuration: ServerConfiguration, tokens: TokenStore?,
        openPrincipal: Principal = Principal(name: "user:local", roles: Set(Role.allCases)), metrics: ServerMetrics = ServerMetrics(),
        dataDirectory: String?, pool: BlockingPool = .shared
    ) {
        self.log = log
        self.store = store
        self.configuration = configuration
        self.tokens = tokens
        self.openPrincipal = openPrincipal
        self.metrics = metrics
        self.dataDirectory = dataDirectory
        self.pool = pool
        hub = SubscriptionHub(log: log, heartbeatSeconds: configuration.heartbeatSeconds, source: configuration.source)
    }

    /// Runs blocking work (log reads, SQLite) on the blocking pool.
    func blocking<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await pool.run(body)
    }
}

/// The routes of the HTTP API (INTERFACES.md; `Schemas/openapi.yaml`), with auth, load
/// shedding, error bodies and metrics. The tests call it with `app.test(.router)`.
public func buildRouter(_ api: LedgerAPI) -> Router<LedgerRequestContext> {
    let router = Router(context: LedgerRequestContext.self)
    router.add(middleware: ErrorAndMetricsMiddleware(metrics: api.metrics))
    router.add(middleware: LoadSheddingMiddleware(limit: api.configuration.maxConcurrentRequests, inFlight: api.inFlight, metrics: api.metrics))
    router.add(middleware: AuthMiddleware(tokens: api.tokens, open: api.openPrincipal))

    router.get("/healthz") { _, _ in JSONResponse.make(["status": "ok"]) }
    router.get("/readyz") { _, _ in try await api.readiness() }
    router.get("/metrics") { _, _ in api.prometheusText() }

    router.post("/v1/append") { request, context in try await api.append(request, context) }
    router.post("/v1/import") { request, context in try await api.importRecords(request, context) }
    router.get("/v1/events") { request, context in try await api.events(request, context) }
    router.get("/v1/streams/{stream}") { request, context in try await api.stream(request, context) }
    router.get("/v1/subscribe") { request, context in try await api.subscribe(request, context) }
    router.get("/v1/verify") { request, context in try await api.verify(request, context) }

    router.get("/v1/registry/models") { request, context in try await api.registryModels(request, context) }
    router.get("/v1/registry/models/{model}") { request, context in try await api.registryModel(request, context) }
    router.get("/v1/registry/deployments") { request, context in try await api.registryDeployments(request, context) }
    router.get("/v1/chargeback") { request, context in try await api.chargeback(request, context) }
    router.get("/v1/slo") { request, context in try await api.slo(request, context) }
    router.get("/v1/audit/events") { request, context in try await api.auditEvents(request, context) }
    router.get("/v1/audit/chain/{offset}") { request, context in try await api.auditChain(request, context) }
    router.get("/v1/audit/anomalies") { request, context in try await api.auditAnomalies(request, context) }
    router.get("/v1/lineage/{model}/{version}") { request, context in try await api.lineage(request, context) }
    router.get("/v1/decisions") { request, context in try await api.decisions(request, context) }
    router.get("/v1/explain/{offset}") { request, context in try await api.explain(request, context) }
    router.get("/v1/checkpoints") { request, context in try await api.checkpoints(request, context) }
    router.get("/v1/proofs/inclusion") { request, context in try await api.inclusionProof(request, context) }
    router.get("/v1/proofs/consistency") { request, context in try await api.consistencyProof(request, context) }
    return router
}

/// Every route and its methods, for `405 Method Not Allowed` with `Allow` on a known path asked
/// with another method (the router alone would answer 404).
enum RouteTable {
    static let routes: [(segments: [Substring], methods: String)] = [
        ("/healthz", "GET"), ("/readyz", "GET"), ("/metrics", "GET"),
        ("/v1/append", "POST"), ("/v1/import", "POST"), ("/v1/events", "GET"), ("/v1/streams/*", "GET"), ("/v1/subscribe", "GET"),
        ("/v1/verify", "GET"), ("/v1/registry/models", "GET"), ("/v1/registry/models/*", "GET"), ("/v1/registry/deployments", "GET"),
        ("/v1/chargeback", "GET"), ("/v1/slo", "GET"), ("/v1/audit/events", "GET"), ("/v1/audit/chain/*", "GET"),
        ("/v1/audit/anomalies", "GET"), ("/v1/lineage/*/*", "GET"), ("/v1/decisions", "GET"), ("/v1/explain/*", "GET"),
        ("/v1/checkpoints", "GET"), ("/v1/proofs/inclusion", "GET"), ("/v1/proofs/consistency", "GET"),
    ].map { ($0.0.split(separator: "/"), $0.1) }

    /// The methods a path allows, if it is a route.
    static func methods(for path: String) -> String? {
        let parts = path.split(separator: "/")
        for route in routes where route.segments.count == parts.count {
            if zip(route.segments, parts).allSatisfy({ $0 == "*" || $0 == $1 }) { return route.methods }
        }
        return nil
    }
}

// MARK: query parameters

/// Typed access to query parameters with the API's errors.
struct Query {
    let request: Request
    init(_ request: Request) { self.request = request }

    func string(_ name: String) -> String? {
        request.uri.queryParameters.get(name)
    }

    func offset(_ name: String) throws -> Int64? {
        guard let text = string(name) else { return nil }
        guard let n = Int64(text), n >= 0 else { throw APIError.badRequest("invalid_parameter", "\(name) must be an offset (an integer ≥ 0), not \"\(text.prefix(40))\"") }
        return n
    }

    func limit(default value: Int, max: Int) throws -> Int {
        guard let text = string("limit") else { return value }
        guard let n = Int(text), n >= 1, n <= max else { throw APIError.badRequest("invalid_parameter", "limit must be an integer from 1 to \(max), not \"\(text.prefix(40))\"") }
        return n
    }

    func bool(_ name: String) throws -> Bool {
        guard let text = string(name) else { return false }
        switch text {
        case "true", "1", "": return true
        case "false", "0": return false
        default: throw APIError.badRequest("invalid_parameter", "\(name) must be true or false, not \"\(text.prefix(40))\"")
        }
    }

    func name(_ name: String) throws -> String? {
        guard let text = string(name) else { return nil }
        guard !text.isEmpty, text.utf8.count <= 300 else { throw APIError.badRequest("invalid_parameter", "\(name) must be 1–300 characters") }
        return text
    }

    func asOf() throws -> AsOf {
        guard let text = string("asOf") else { return .head }
        do { return try AsOf(parsing: text, option: "asOf") } catch { throw APIError.badRequest("invalid_parameter", error.message) }
    }

    func time(_ name: String) throws -> QueryTime? {
        guard let text = string(name) else { return nil }
        guard let t = QueryTime(text) else { throw APIError.badRequest("invalid_parameter", QueryTime.explain(text, option: name)) }
        return t
    }
}

extension Parameters {
    func required(_ name: String) throws -> String {
        guard let v = get(name) else { throw APIError.badRequest("invalid_parameter", "missing path parameter \(name)") }
        return v
    }
}

// MARK: health and metrics

extension LedgerAPI {
    func readiness() async throws -> Response {
        var checks: JSONObject = [:]
        var ready = true
        if let failure = log.failure {
            ready = false
            checks["log"] = .string("failed: \(failure.message)")
        } else {
            checks["log"] = "open"
        }
        let head = log.head
        checks["head"] = .number(Double(head))
        if let store {
            let projected = try await blocking { try store.checkpoint().nextOffset }
            let lag = head - projected
            checks["projectionLag"] = .number(Double(max(0, lag)))
            if lag > configuration.readyLagBound {
                ready = false
                checks["projections"] = .string("\(lag) events behind the head (the bound is \(configuration.readyLagBound))")
            } else {
                checks["projections"] = "caught up"
            }
        }
        var body: JSONObject = ["status": .string(ready ? "ready" : "not ready")]
        body["checks"] = .object(checks)
        var response = JSONResponse.make(.object(body), status: ready ? .ok : .serviceUnavailable)
        if !ready { response.headers[.retryAfter] = "5" }
        return response
    }

    func prometheusText() -> Response {
        guard let factory = metrics.factory as? LedgerMetricsFactory else {
            return JSONResponse.raw([], contentType: "text/plain; version=0.0.4; charset=utf-8")
        }
        var bytes: [UInt8] = []
        factory.registry.emit(into: &bytes)
        return JSONResponse.raw(bytes, contentType: "text/plain; version=0.0.4; charset=utf-8")
    }
}
