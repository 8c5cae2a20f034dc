public import Logging

/// How `ledger serve` listens, authenticates and limits.
public struct ServerConfiguration: Sendable {
    public var host = "127.0.0.1"
    public var port = 8480
    /// The tokens file; nil: no authentication, and the server refuses to listen beyond loopback.
    public var tokensPath: String?
    /// PEM certificate chain and key: serve HTTPS.
    public var tlsCertificatePath: String?
    public var tlsKeyPath: String?
    /// The CloudEvents `source` of every event this ledger serves.
    public var source = "/platform-ledger"

    // Limits (INTERFACES.md: 413, 429, 503 with Retry-After).
    /// Largest request body, in bytes (16 MiB: the largest atomic request).
    public var maxBodyBytes = 16 << 20
    /// Most events in one `POST /v1/append` request.
    public var maxEventsPerRequest = 10_000
    /// Largest canonical `data` of one event.
    public var maxDataBytes = 1 << 20
    /// Open subscriptions per principal.
    public var maxSubscriptionsPerPrincipal = 64
    /// Requests in flight (subscriptions not counted); above it requests are shed with 503.
    public var maxConcurrentRequests = 512
    /// Events a page of `GET /v1/events` returns at most.
    public var maxReadLimit = 10_000

    // Subscriptions.
    /// Seconds between heartbeat comments on an idle subscription.
    public var heartbeatSeconds: Double = 15
    /// Events a subscriber may be behind the head before it is told it is `lagging`.
    public var lagBound: Int64 = 10_000
    /// Events read from the log per step of a subscription (the most one subscriber holds).
    public var subscriptionChunk = 512

    /// `/readyz` answers 503 while the projections are further behind the head than this.
    public var readyLagBound: Int64 = 10_000

    public var logger = Logger(label: "ledger.server")

    public init() {}

    /// Whether `host` is a loopback address (where an open server may listen).
    public var isLoopback: Bool { host == "127.0.0.1" || host == "::1" || host == "localhost" || host.hasPrefix("127.") }
}
