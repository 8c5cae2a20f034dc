#if canImport(Glibc)
import Glibc
#endif
public import LedgerCore

/// What to simulate.
public struct SimulationConfig: Sendable {
    public var seed: UInt64 = 42
    public var days: Int = 7
    /// Midnight UTC of the first day (a Monday).
    public var start: Timestamp = Timestamp("2026-11-23T00:00:00.000Z")!
    /// Training jobs arriving per day at the peak rate (the fleet and quotas are sized for it).
    public var jobsPerDay: Double = 2100
    /// Whether the simulator also writes the platform's decisions (allocations, rollout steps,
    /// alerts) itself, as `processor:*` through the admin path. Until the processors exist this
    /// is the only source of decisions.
    public var includeDecisions = true
    /// How the teams' queues are served (their `quota.set` v2 `queueingStrategy`).
    public var queueing: Queueing = .bestEffort

    /// The teams' queueing strategies.
    public enum Queueing: String, Sendable, CaseIterable {
        /// Kueue's default for every team (`BestEffortFIFO`), except fraud, which asked for
        /// `StrictFIFO` (its jobs must run in the order submitted).
        case bestEffort = "best-effort"
        /// Every team on `StrictFIFO`: the same week, the other way.
        case strict
    }

    /// The team that asked for StrictFIFO.
    public static let strictTeam = "fraud"

    public init(seed: UInt64 = 42, days: Int = 7) {
        self.seed = seed
        self.days = days
    }
}

/// A seeded, realistic week (or N days) of an AI platform: teams with quotas in a cohort, GPU
/// nodes of three types and their prices (with a price change), thousands of training jobs with a
/// daily rhythm, datasets, models with versions, evaluations, approvals and aliases, deployments
/// with canary rollouts (some failing on error rate, some on latency, one on drift), serving
/// windows with one bad hour, feature histograms, SLOs and access grants — every type of the
/// catalog. The same seed gives the same events, ids and times.
public final class PlatformSimulator {
    public let config: SimulationConfig
    var rng: SeededRandom
    var events: [SimulatedEvent] = []
    var sequence: UInt64 = 0
    let namespace: EventID

    static let hour: Int64 = 3_600_000
    static let minute: Int64 = 60_000

    public init(config: SimulationConfig = SimulationConfig()) {
        self.config = config
        rng = SeededRandom(seed: config.seed)
        namespace = EventID.nameBased(namespace: EventID(high: 0x6ba7_b811_9dad_11d1, low: 0x80b4_00c0_4fd4_30c8), name: "platform-ledger/simulator/\(config.seed)")
    }

    var start: Int64 { config.start.milliseconds }
    var end: Int64 { start + Int64(config.days) * 24 * PlatformSimulator.hour }

    /// Every event of the simulation in time order (stable for equal times).
    public func run() -> [SimulatedEvent] {
        events = []
        sequence = 0
        setUpPlatform()
        simulateJobs()
        simulateModels()
        simulateServing()
        var indexed = events.enumerated().map { ($0.offset, $0.element) }
        indexed.sort { $0.1.time != $1.1.time ? $0.1.time < $1.1.time : $0.0 < $1.0 }
        return indexed.map(\.1)
    }

    /// Records one event; returns its id (deterministic: UUIDv5 of the seed and a sequence number).
    @discardableResult
    func emit(_ time: Int64, _ actor: String, _ stream: String, _ type: String, _ data: JSONObject, correlation: String? = nil, cause: EventID? = nil, schemaVersion: Int = 1) -> EventID {
        sequence += 1
        let id = EventID.nameBased(namespace: namespace, name: String(sequence))
        var event = SimulatedEvent(
            time: Timestamp(milliseconds: time), actor: actor, stream: stream, type: type, data: data, correlationId: correlation,
            causationId: cause)
        event.request.id = id
        event.request.schemaVersion = schemaVersion
        events.append(event)
        return id
    }

    /// A decision, written only in the legacy mode without processors (`includeDecisions`).
    func decide(_ time: Int64, _ actor: String, _ stream: String, _ type: String, _ data: JSONObject, correlation: String? = nil, cause: EventID? = nil) {
        if config.includeDecisions { emit(time, actor, stream, type, data, correlation: correlation, cause: cause) }
    }

    // MARK: the platform: access, nodes, prices, quotas, datasets

    let teams = ["vision", "nlp", "speech", "recsys", "fraud", "search"]
    struct NodeSpec {
        var name: String
        var gpuType: String
        var gpus: Int
    }
    var nodes: [NodeSpec] = []
    var prices: [String: Double] = ["a100": 2.40, "h100": 4.10, "l4": 0.80]
    var datasets: [String] = []
    /// Succeeded training runs per model: (time, job, datasets) — the lineage of new versions.
    var completedTraining: [String: [(Int64, String, [String])]] = [:]
    let modelNames = [
        "fraud-detector", "churn-predictor", "image-tagger", "speech-to-text", "ranker", "query-rewriter", "recommender",
        "ocr", "sentiment", "translator", "anomaly-scorer", "ad-ctr", "face-blur", "toxicity", "summarizer", "embedder",
        "forecaster", "intent", "captioner", "spam-filter",
    ]
    /// Model versions known so far: model → [(version, created at)].
    var versions: [String: [(String, Int64)]] = [:]
    var modelTeam: [String: String] = [:]
    /// Versions that passed evaluation and were approved: model → [(version, approved at)].
    var approved: [String: [(String, Int64)]] = [:]
    /// "model@version" → whether the production policy's gate passes it (the simulator's mirror
    /// of the gate, so that a denied rollout gets no canary traffic): evaluation, independent
    /// approver, a training job, and the privacy approval when trained on PII.
    var gateReady: [String: Bool] = [:]
    /// The version trained for each planned rollout: "deployment index@time" → version.
    var plannedVersions: [String: String] = [:]

    func setUpPlatform() {
        let t0 = start - 2 * PlatformSimulator.hour
        let admins = ["user:alice", "user:bob", "user:carol", "user:dana", "user:erik", "svc:ci", "svc:serving", "svc:eval"]
        for (i, principal) in admins.enumerated() {
            let role = ["admin", "writer", "writer", "finops", "auditor", "writer", "writer", "writer"][i]
            var data: JSONObject = ["principal": .string(principal), "role": .string(role)]
            if principal == "svc:serving" { data["streamPrefix"] = "deployment-" }
            emit(t0, "user:alice", "principal-" + principal, "access.granted", data)
        }
        // Governance roles (access.granted v2): who may approve a promotion, and the privacy officer.
        for (principal, role) in [("user:bob", "model-approver"), ("user:carol", "model-approver"), ("user:pat", "privacy")] {
            emit(t0 + 500, "user:alice", "principal-" + principal, "access.granted", ["principal": .string(principal), "role": .string(role)], schemaVersion: 2)
        }
        // The fleet is sized to the demand, as a platform team would: a few hours of queue at the
        // weekday peak, drained overnight and over the weekend.
        let layout: [(String, Int, Int)] = [("a100", 22, 8), ("h100", 9, 8), ("l4", 11, 8)]
        for (type, count, gpus) in layout {
            for i in 1...count {
                let node = NodeSpec(name: "\(type)-node-\(i < 10 ? "0" : "")\(i)", gpuType: type, gpus: gpus)
                nodes.append(node)
                emit(t0 + Int64(nodes.count) * 1000, "svc:ci", "node-" + node.name, "node.registered",
                    ["node": .string(node.name), "gpuType": .string(type), "gpuCount": .number(Double(gpus)), "pool": "training"])
            }
        }
        for (type, rate) in prices.sorted(by: { $0.key < $1.key }) {
            emit(t0 + 90_000, "user:dana", "pricing-" + type, "price.set",
                ["gpuType": .string(type), "hourlyRate": .number(rate), "currency": "USD", "effectiveFrom": .string(Timestamp(milliseconds: start - 24 * PlatformSimulator.hour).description)])
        }
        // A price change in the middle of the week (announced in the morning, in force from noon),
        // and a late correction of an earlier price (FinOps fixes a day already closed).
        let day = 24 * PlatformSimulator.hour
        if config.days >= 4 {
            emit(start + 3 * day + 9 * PlatformSimulator.hour, "user:dana", "pricing-h100", "price.set",
                ["gpuType": "h100", "hourlyRate": 3.60, "currency": "USD", "effectiveFrom": .string(Timestamp(milliseconds: start + 3 * day + 12 * PlatformSimulator.hour).description)])
        }
        if config.days >= 6 {
            emit(start + 5 * day + 10 * PlatformSimulator.hour, "user:dana", "pricing-l4", "price.set",
                ["gpuType": "l4", "hourlyRate": 0.85, "currency": "USD", "effectiveFrom": .string(Timestamp(milliseconds: start + 4 * day).description)])
        }
        // Quotas: nominal shares of each type in proportion to each team's demand (they add up to
        // the fleet), borrowing within the cohort; fraud has no cohort.
        let shares: [String: (Int, Int, Int)] = [
            "vision": (36, 16, 6), "nlp": (25, 40, 0), "speech": (30, 0, 20), "recsys": (30, 0, 20), "fraud": (26, 0, 34),
            "search": (29, 16, 8),
        ]
        for team in teams {
            let (a, h, l) = shares[team]!
            for (type, nominal) in [("a100", a), ("h100", h), ("l4", l)] {
                var data: JSONObject = ["team": .string(team), "gpuType": .string(type), "nominal": .number(Double(nominal))]
                if team != "fraud" {
                    data["cohort"] = "research"
                    data["borrowingLimit"] = .number(Double(nominal))
                }
                if team == "nlp" { data["weight"] = 2 }
                let strict = config.queueing == .strict || team == SimulationConfig.strictTeam
                data["queueingStrategy"] = .string(strict ? "StrictFIFO" : "BestEffortFIFO")
                emit(t0 + 100_000, "user:alice", "team-" + team, "quota.set", data, schemaVersion: 2)
            }
        }
        let sources = ["transactions", "imagenet", "librispeech", "clicks", "queries", "reviews"]
        for (i, name) in sources.enumerated() {
            for month in ["2026-10", "2026-11"] {
                let digest = "sha256:" + Hash256.of(utf8: "\(name)@\(month)/\(config.seed)").description
                emit(t0 + 110_000 + Int64(i) * 1000, "svc:ci", "dataset-" + name, "dataset.registered",
                    ["name": .string(name), "version": .string(month), "digest": .string(digest), "source": .string("s3://datasets/\(name)/\(month)/"),
                     "classification": .string(["pii", "public", "public", "internal", "internal", "internal"][i])])
                datasets.append("\(name)@\(month)")
            }
        }
    }

    /// The hour of the simulated day (fractional) and whether the day is a weekend day.
    func weekPosition(_ time: Int64) -> (hourOfDay: Double, weekend: Bool) {
        let hourOfDay = Double((time - start) % (24 * PlatformSimulator.hour)) / Double(PlatformSimulator.hour)
        let day = Int((time - start) / (24 * PlatformSimulator.hour))
        return (hourOfDay, day % 7 >= 5)
    }

    /// Training arrivals per hour-of-week factor (at most 1.2): working hours busiest, nights at
    /// two thirds of the peak (pipelines and sweeps), weekends at four fifths of a weekday.
    func jobRhythm(_ time: Int64) -> Double {
        let (hourOfDay, weekend) = weekPosition(time)
        let daily = 0.9 + 0.2 * max(0, sin(Double.pi * (hourOfDay - 6) / 14))
        return (weekend ? 0.9 : 1.0) * daily
    }

    /// Requests per hour-of-week factor: busy working hours UTC, quieter nights and weekends.
    func rhythm(_ time: Int64) -> Double {
        let (hourOfDay, weekend) = weekPosition(time)
        let daily = 0.35 + 1.3 * max(0, sin(Double.pi * (hourOfDay - 6) / 14))
        return (weekend ? 0.35 : 1.0) * daily
    }
}
