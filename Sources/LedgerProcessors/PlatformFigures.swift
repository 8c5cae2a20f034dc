public import LedgerCore
public import LedgerLog

/// What the processors did over a period, read back from the log: the scheduler's metrics of
/// SEMANTICS.md (queue wait per team, GPU utilisation), rejections and preemptions, every rollout
/// outcome and every alert. `ledger demo` prints it; the server could serve it.
public struct PlatformFigures: Sendable {
    public struct Rollout: Sendable {
        public var offset: Int64
        public var deployment: String
        public var version: String
        public var promoted: Bool
        public var reason: String?
        public var evidence: Int
        /// The gates' verdict on the rollout (`passed`, `denied`), nil when none gated it.
        public var gate: String?
        var correlation: String?
    }

    /// One gate verdict (`gate.evaluated`).
    public struct GateVerdict: Sendable {
        public var offset: Int64
        public var time: Timestamp
        public var promotion: String
        public var subject: String
        public var policy: String
        public var passed: Bool
        /// The rules that did not pass, with their reasons.
        public var reasons: [String]
        var correlation: String?
    }

    public struct Alert: Sendable {
        public var offset: Int64
        public var time: Timestamp
        public var envelope: Envelope
    }

    /// Events per type over the whole log.
    public var counts: [String: Int] = [:]
    /// Queue waits (seconds, from `job.admitted`'s `waitedSeconds`) per team.
    public var waits: [String: [Double]] = [:]
    public var rejections: [String: Int] = [:]
    public var preemptions: [String: Int] = [:]
    /// GPU-milliseconds allocated and registered within the period.
    public var allocatedGPUms: Double = 0
    public var capacityGPUms: Double = 0
    public var rollouts: [Rollout] = []
    public var alerts: [Alert] = []
    public var gates: [GateVerdict] = []

    /// Allocated ÷ registered GPU time over the period (nil without capacity).
    public var utilisation: Double? { capacityGPUms > 0 ? allocatedGPUms / capacityGPUms : nil }

    /// The `q` quantile (nearest rank) of a team's queue waits, in seconds.
    public func wait(_ team: String, quantile q: Double) -> Double? {
        guard let values = waits[team], !values.isEmpty else { return nil }
        let sorted = values.sorted()
        return sorted[min(sorted.count - 1, Int(Double(sorted.count) * q))]
    }

    /// Folds the whole log; utilisation counts GPU time within [from, to).
    public static func compute(_ source: any LogSource, from: Timestamp, to: Timestamp) throws -> PlatformFigures {
        var f = PlatformFigures()
        var teamOf: [String: String] = [:]
        var allocatedAt: [String: (Int64, Int)] = [:]
        var nodeSince: [String: (Int64, Int)] = [:]
        let first = from.milliseconds
        let last = to.milliseconds
        func overlap(_ a: Int64, _ b: Int64) -> Double { Double(max(0, min(b, last) - max(a, first))) }
        let cursor = source.cursor(from: 0, end: source.head, filter: .all)
        while let view = try cursor.next() {
            let type = view.type
            f.counts[type, default: 0] += 1
            switch type {
            case "job.queued", "job.admitted", "job.rejected", "job.preempted", "gpu.allocated", "gpu.released", "node.registered", "node.removed",
                "rollout.promoted", "rollout.rolled_back", "drift.alerted", "slo.burn.alerted", "slo.burn.resolved", "gate.evaluated":
                let e = try view.envelope()
                let d = e.data
                func s(_ k: String) -> String { d[k]?.stringValue ?? "" }
                let t = e.time.milliseconds
                switch type {
                case "job.queued": teamOf[s("job")] = s("team")
                case "job.admitted": f.waits[teamOf[s("job")] ?? "?", default: []].append(d["waitedSeconds"]?.doubleValue ?? 0)
                case "job.rejected": f.rejections[s("reason"), default: 0] += 1
                case "job.preempted": f.preemptions[s("reason"), default: 0] += 1
                case "gpu.allocated": allocatedAt[s("job")] = (t, d["gpus"]?.intValue ?? 0)
                case "gpu.released":
                    if let (since, gpus) = allocatedAt.removeValue(forKey: s("job")) { f.allocatedGPUms += overlap(since, t) * Double(gpus) }
                case "node.registered": nodeSince[s("node")] = (t, d["gpuCount"]?.intValue ?? 0)
                case "node.removed":
                    if let (since, gpus) = nodeSince.removeValue(forKey: s("node")) { f.capacityGPUms += overlap(since, t) * Double(gpus) }
                case "rollout.promoted", "rollout.rolled_back":
                    f.rollouts.append(Rollout(
                        offset: e.offset, deployment: s("deployment"), version: s("version"), promoted: type == "rollout.promoted",
                        reason: d["reason"]?.stringValue, evidence: d["evidence"]?.arrayValue?.count ?? 0, correlation: e.correlationId))
                case "gate.evaluated":
                    let subject = d["subject"]?.objectValue ?? [:]
                    let target = subject["deployment"]?.stringValue.map { "deployment " + $0 } ?? subject["alias"]?.stringValue.map { "alias " + $0 } ?? ""
                    let reasons = (d["rules"]?.arrayValue ?? []).compactMap(RuleVerdict.init(json:)).filter { $0.verdict != .passed }
                        .map(\.summary)
                    f.gates.append(GateVerdict(
                        offset: e.offset, time: e.time, promotion: s("promotion"),
                        subject: "\(subject["model"]?.stringValue ?? "?")@\(subject["version"]?.stringValue ?? "?") → \(target)",
                        policy: "\(s("policy")) v\(d["policyVersion"]?.intValue ?? 0)", passed: s("result") == "passed", reasons: reasons, correlation: e.correlationId))
                default:
                    f.alerts.append(Alert(offset: e.offset, time: e.time, envelope: e))
                }
            default: break
            }
        }
        for i in f.rollouts.indices {
            let gates = f.gates.filter { $0.promotion == "rollout.started" && $0.correlation != nil && $0.correlation == f.rollouts[i].correlation }
            if !gates.isEmpty { f.rollouts[i].gate = gates.allSatisfy(\.passed) ? "passed" : "denied" }
        }
        for (_, (since, gpus)) in allocatedAt { f.allocatedGPUms += overlap(since, last) * Double(gpus) }
        for (_, (since, gpus)) in nodeSince { f.capacityGPUms += overlap(since, last) * Double(gpus) }
        return f
    }
}
