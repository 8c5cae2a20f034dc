public import CoreMetrics
import LedgerLog
import Metrics

/// The metrics the engine and the log record (swift-metrics; the executable chooses the backend,
/// `ledger serve` exports them as Prometheus text). Names are Prometheus-ready.
public struct EngineMetrics: Sendable {
    /// Label → help text of every metric below, for backends that want one (Prometheus' `# HELP`).
    public static let help: [String: String] = [
        "ledger_events_appended_total": "Events made durable in the log.",
        "ledger_bytes_appended_total": "Bytes of record batches made durable (compressed, as stored).",
        "ledger_group_commits_total": "Group commits (one fsync each when the policy is always).",
        "ledger_fsync_seconds": "Time spent in fdatasync per group commit.",
        "ledger_group_commit_events": "Events per group commit.",
        "ledger_head_offset": "The offset after the last durable event.",
        "ledger_projection_lag_events": "Durable events the projections have not applied yet.",
        "ledger_processor_lag_events": "Durable events a processor has not folded yet.",
        "ledger_decisions_total": "Decisions the processors appended.",
    ]

    public static let fsyncLabel = "ledger_fsync_seconds"
    public static let groupCommitLabel = "ledger_group_commit_events"

    let events: Counter
    let bytes: Counter
    let commits: Counter
    let fsync: Metrics.Timer
    let groupSize: Recorder
    let head: Gauge
    let projectionLag: Gauge
    let processorLag: [String: Gauge]
    let decisions: Counter

    public init(factory: any MetricsFactory = MetricsSystem.factory, processors: [String] = ["scheduler", "drift", "slo", "rollout"]) {
        events = Counter(label: "ledger_events_appended_total", factory: factory)
        bytes = Counter(label: "ledger_bytes_appended_total", factory: factory)
        commits = Counter(label: "ledger_group_commits_total", factory: factory)
        fsync = Metrics.Timer(label: Self.fsyncLabel, dimensions: [], preferredDisplayUnit: .seconds, factory: factory)
        groupSize = Recorder(label: Self.groupCommitLabel, dimensions: [], aggregate: true, factory: factory)
        head = Gauge(label: "ledger_head_offset", factory: factory)
        projectionLag = Gauge(label: "ledger_projection_lag_events", factory: factory)
        var lags: [String: Gauge] = [:]
        for p in processors { lags[p] = Gauge(label: "ledger_processor_lag_events", dimensions: [("processor", p)], factory: factory) }
        processorLag = lags
        decisions = Counter(label: "ledger_decisions_total", factory: factory)
    }

    /// Records one group commit (the log's ``LogOptions/onSync`` hook).
    func synced(_ report: SyncReport) {
        events.increment(by: Int(report.events))
        bytes.increment(by: Int(report.bytes))
        commits.increment()
        fsync.recordNanoseconds(Int64(report.fsyncSeconds * 1e9))
        groupSize.record(report.events)
        head.record(report.head)
    }
}
