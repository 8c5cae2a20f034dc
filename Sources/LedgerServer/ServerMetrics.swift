public import CoreMetrics
import Metrics
import Synchronization

/// The server's metrics (swift-metrics): HTTP status counts per route, request durations,
/// subscriptions and how far behind they are, shed requests.
public final class ServerMetrics: Sendable {
    public static let help: [String: String] = [
        "ledger_http_requests_total": "HTTP requests answered, by route and status.",
        "ledger_http_request_duration_seconds": "Time to answer an HTTP request (for a subscription, until it started streaming).",
        "ledger_http_shed_total": "Requests refused with 503 because too many were in flight.",
        "ledger_subscriptions": "Open subscriptions.",
        "ledger_subscription_lag_events": "Events between a subscriber's position and the head, sampled each time it wakes.",
        "ledger_subscription_events_total": "Events delivered to subscribers.",
    ]
    public static let requestDurationLabel = "ledger_http_request_duration_seconds"
    public static let subscriptionLagLabel = "ledger_subscription_lag_events"

    let factory: any MetricsFactory
    private let statusCounters = Mutex<[String: Counter]>([:])
    let duration: Metrics.Timer
    let shed: Counter
    let subscriptions: Gauge
    let subscriptionLag: Recorder
    let delivered: Counter
    private let open = Atomic<Int>(0)

    public init(factory: any MetricsFactory = MetricsSystem.factory) {
        self.factory = factory
        duration = Metrics.Timer(label: Self.requestDurationLabel, dimensions: [], preferredDisplayUnit: .seconds, factory: factory)
        shed = Counter(label: "ledger_http_shed_total", factory: factory)
        subscriptions = Gauge(label: "ledger_subscriptions", factory: factory)
        subscriptionLag = Recorder(label: Self.subscriptionLagLabel, dimensions: [], aggregate: true, factory: factory)
        delivered = Counter(label: "ledger_subscription_events_total", factory: factory)
        subscriptions.record(0)
    }

    func answered(route: String, status: Int, nanoseconds: Int64) {
        let key = route + " " + String(status)
        let counter = statusCounters.withLock { counters in
            if let c = counters[key] { return c }
            let c = Counter(label: "ledger_http_requests_total", dimensions: [("route", route), ("status", String(status))], factory: factory)
            counters[key] = c
            return c
        }
        counter.increment()
        duration.recordNanoseconds(nanoseconds)
    }

    func subscriptionOpened() { subscriptions.record(open.add(1, ordering: .relaxed).newValue) }
    func subscriptionClosed() { subscriptions.record(open.subtract(1, ordering: .relaxed).newValue) }
}
