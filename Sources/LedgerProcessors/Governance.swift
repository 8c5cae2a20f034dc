import Foundation
public import LedgerCore

/// A promotion policy as `policy.set` carries it (`Schemas/events/policy.set.v1.json`; README,
/// Governance). The schema has already refused unknown rules, malformed thresholds and unknown
/// comparisons; this is the typed reading of a valid event.
public struct GovernancePolicy: Codable, Sendable, Equatable {
    public var name: String
    public var version: Int
    /// The `policy.set` event.
    public var id: EventID
    public var scope: Scope
    public var evaluation: Evaluation?
    public var approval: Approval?
    public var lineage: Lineage?
    public var classification: Classification?

    public struct Scope: Codable, Sendable, Equatable {
        public var models: [String]?
        public var teams: [String]?
        public var deployments: [String]?
        public var aliases: [String]?
    }

    public struct MetricRule: Codable, Sendable, Equatable {
        public var metric: String
        public var op: String
        public var threshold: Double

        /// `value op threshold`.
        public func holds(_ value: Double) -> Bool {
            switch op {
            case ">=": return value >= threshold
            case ">": return value > threshold
            case "<=": return value <= threshold
            case "<": return value < threshold
            default: return value == threshold
            }
        }

        /// The value, of several, that is furthest from meeting the rule.
        func worst(_ values: [Double]) -> Double {
            switch op {
            case ">=", ">": return values.min()!
            case "<=", "<": return values.max()!
            default: return values.first { !holds($0) } ?? values[0]
            }
        }
    }

    public struct Evaluation: Codable, Sendable, Equatable {
        public var metrics: [MetricRule]
        public var passed: Bool
        public var noWorseThanChampion: NoWorse?
    }

    public struct NoWorse: Codable, Sendable, Equatable {
        public var metric: String
        public var by: Double
        public var higherIsBetter: Bool
    }

    public struct Approval: Codable, Sendable, Equatable {
        public var minApprovers: Int
        public var role: String?
        public var independent: Bool
    }

    public struct Lineage: Codable, Sendable, Equatable {
        public var job: Bool
        public var succeeded: Bool
        public var datasets: Bool
    }

    public struct Classification: Codable, Sendable, Equatable {
        public var classifications: [String]
        public var role: String
    }

    /// The policy a valid `policy.set` event's data describes.
    public init?(data d: JSONObject, id: EventID) {
        guard let name = d.string("policy"), let version = d.int("version"), let rules = d.object("rules") else { return nil }
        self.name = name
        self.version = version
        self.id = id
        let s = d.object("scope") ?? [:]
        func names(_ key: String) -> [String]? { s.array(key).map { $0.compactMap(\.stringValue) } }
        scope = Scope(models: names("models"), teams: names("teams"), deployments: names("deployments"), aliases: names("aliases"))
        if let e = rules.object("evaluation") {
            let metrics = (e.array("metrics") ?? []).compactMap { m -> MetricRule? in
                guard let o = m.objectValue, let metric = o.string("metric"), let op = o.string("op"), let t = o.double("threshold") else { return nil }
                return MetricRule(metric: metric, op: op, threshold: t)
            }
            var noWorse: NoWorse?
            if let n = e.object("noWorseThanChampion"), let metric = n.string("metric"), let by = n.double("by") {
                noWorse = NoWorse(metric: metric, by: by, higherIsBetter: n.bool("higherIsBetter") ?? true)
            }
            evaluation = Evaluation(metrics: metrics, passed: e.bool("passed") ?? false, noWorseThanChampion: noWorse)
        }
        if let a = rules.object("approval") {
            approval = Approval(minApprovers: a.int("minApprovers") ?? 1, role: a.string("role"), independent: a.bool("independent") ?? true)
        }
        if let l = rules.object("lineage") {
            lineage = Lineage(job: l.bool("job") ?? true, succeeded: l.bool("succeeded") ?? true, datasets: l.bool("datasets") ?? true)
        }
        if let c = rules.object("classification"), let role = c.string("role") {
            classification = Classification(classifications: c.array("classifications")?.compactMap(\.stringValue) ?? ["pii"], role: role)
        }
    }

    /// Whether the policy gates `promotion` of a version of `model` (whose team is `team`).
    public func gates(model: String, team: String?, promotion: Promotion) -> Bool {
        if let models = scope.models, !models.contains(model) { return false }
        if let teams = scope.teams, !(team.map(teams.contains) ?? false) { return false }
        if scope.deployments == nil && scope.aliases == nil { return true }
        func listed(_ list: [String]?, _ name: String) -> Bool { list.map { $0.contains("*") || $0.contains(name) } ?? false }
        switch promotion.kind {
        case .deployment(let d): return listed(scope.deployments, d)
        case .alias(let a): return listed(scope.aliases, a)
        }
    }
}

/// What a gate is asked about: one promotion of one model version.
public struct Promotion: Codable, Sendable, Equatable {
    public enum Kind: Codable, Sendable, Equatable {
        case deployment(String)
        case alias(String)
    }

    /// `deployment.created`, `rollout.started` or `model.alias.set`.
    public var type: String
    public var model: String
    public var version: String
    public var kind: Kind

    public init(type: String, model: String, version: String, kind: Kind) {
        self.type = type
        self.model = model
        self.version = version
        self.kind = kind
    }

    /// The promotion `event` is, when it is one.
    public init?(_ event: Envelope) {
        switch event.type {
        case "deployment.created", "rollout.started", "model.alias.set": break
        default: return nil
        }
        let d = event.data
        guard let model = d.string("model") else { return nil }
        switch event.type {
        case "deployment.created":
            guard let deployment = d.string("deployment"), let version = d.string("version") else { return nil }
            self.init(type: event.type, model: model, version: version, kind: .deployment(deployment))
        case "rollout.started":
            guard let deployment = d.string("deployment"), let version = d.string("toVersion") else { return nil }
            self.init(type: event.type, model: model, version: version, kind: .deployment(deployment))
        case "model.alias.set":
            guard let alias = d.string("alias"), let version = d.string("version") else { return nil }
            self.init(type: event.type, model: model, version: version, kind: .alias(alias))
        default:
            return nil
        }
    }

    /// `deployment fraud-prod`, `alias champion`.
    public var target: String {
        switch kind {
        case .deployment(let d): return "deployment " + d
        case .alias(let a): return "alias " + a
        }
    }

    /// `gate.evaluated`'s subject.
    var subject: JSONObject {
        var s: JSONObject = ["model": .string(model), "version": .string(version)]
        switch kind {
        case .deployment(let d): s["deployment"] = .string(d)
        case .alias(let a): s["alias"] = .string(a)
        }
        return s
    }
}

/// One rule's verdict in a gate (`gate.evaluated`'s `rules`).
public struct RuleVerdict: Codable, Sendable, Equatable {
    public enum Verdict: String, Codable, Sendable {
        /// The evidence meets the rule.
        case passed
        /// The evidence misses the rule.
        case failed
        /// The evidence the rule needs is not (yet) in the log.
        case missing
        /// No evidence could meet the rule as written (a role nobody holds).
        case unsatisfiable
    }

    public enum Value: Codable, Sendable, Equatable {
        case number(Double)
        case text(String)
        case flag(Bool)

        var json: JSONValue {
            switch self {
            case .number(let n): return .number(n)
            case .text(let s): return .string(s)
            case .flag(let b): return .bool(b)
            }
        }

        init?(_ json: JSONValue?) {
            switch json {
            case .number(let n)?: self = .number(n)
            case .string(let s)?: self = .text(s)
            case .bool(let b)?: self = .flag(b)
            default: return nil
            }
        }

        public var text: String {
            switch self {
            case .number(let n): return RolloutController.text(n)
            case .text(let s): return s
            case .flag(let b): return b ? "true" : "false"
            }
        }
    }

    public var rule: String
    public var metric: String?
    public var verdict: Verdict
    public var value: Value?
    public var threshold: Value?
    public var reason: String

    /// `evaluation.metric auc`, `approval`.
    public var name: String { rule + (metric.map { " " + $0 } ?? "") }
    /// `evaluation.metric auc: auc 0.82 misses >= 0.85`.
    public var summary: String { name + ": " + reason }

    public init(rule: String, metric: String? = nil, verdict: Verdict, value: Value? = nil, threshold: Value? = nil, reason: String) {
        self.rule = rule
        self.metric = metric
        self.verdict = verdict
        self.value = value
        self.threshold = threshold
        self.reason = reason
    }

    var json: JSONValue {
        var o: JSONObject = ["rule": .string(rule)]
        if let metric { o["metric"] = .string(metric) }
        o["verdict"] = .string(verdict.rawValue)
        if let value { o["value"] = value.json }
        if let threshold { o["threshold"] = threshold.json }
        o["reason"] = .string(reason)
        return .object(o)
    }

    /// The rule as it reads in a `gate.evaluated` event's data.
    public init?(json: JSONValue) {
        guard let o = json.objectValue, let rule = o.string("rule"), let v = o.string("verdict").flatMap(Verdict.init(rawValue:)),
            let reason = o.string("reason")
        else { return nil }
        self.init(rule: rule, metric: o.string("metric"), verdict: v, value: Value(o["value"]), threshold: Value(o["threshold"]), reason: reason)
    }
}

/// A gate's outcome: one policy on one promotion.
public struct GateOutcome: Sendable, Equatable {
    public var policy: String
    public var policyVersion: Int
    public var promotion: Promotion
    public var rules: [RuleVerdict]
    public var evidence: [EventID]
    public var passed: Bool { rules.allSatisfy { $0.verdict == .passed } }

    /// `gate.evaluated`'s data.
    public var data: JSONObject {
        ["policy": .string(policy), "policyVersion": .number(Double(policyVersion)), "promotion": .string(promotion.type),
         "subject": .object(promotion.subject), "result": .string(passed ? "passed" : "denied"), "rules": .array(rules.map(\.json)),
         "evidence": .ids(Array(evidence.prefix(1024)))]
    }

    /// `approval: 0 independent approvals of 1 needed; classification: …` — the rules that did not pass.
    public var reasons: String {
        rules.filter { $0.verdict != .passed }.map(\.summary).joined(separator: "; ")
    }
}

/// What the gate knows of the platform, folded from the log: policies, model teams, versions and
/// their creators, evaluations, approvals, grants, jobs, datasets, aliases. ``evaluate(_:promotion:)``
/// is a pure function of it, shared by the gate processor and `ledger policy check`.
public struct GovernanceState: Codable, Sendable {
    struct Version: Codable, Sendable {
        var creator: String
        var created: EventID
        var job: String?
        var datasets: [String]
    }

    struct Evaluation: Codable, Sendable {
        var metrics: [String: Double]
        var passed: Bool
        var id: EventID
        var offset: Int64
    }

    struct Approval: Codable, Sendable {
        var approver: String
        /// Who appended it: an approval counts only when the approver appended it themselves.
        var actor: String
        var id: EventID
        /// The roles the approver held for the model's stream when approving: role → grant id.
        var roles: [String: EventID]
    }

    struct Grant: Codable, Sendable {
        var role: String
        var streamPrefix: String
        var id: EventID
    }

    struct Job: Codable, Sendable {
        var queued: EventID?
        var datasets: [String] = []
        var outcome: String?
        var completed: EventID?

        mutating func queue(_ id: EventID, datasets: [String]) {
            queued = id
            self.datasets = datasets
        }
        mutating func complete(_ id: EventID, outcome: String?) {
            completed = id
            self.outcome = outcome
        }
    }

    struct Dataset: Codable, Sendable {
        var digest: String
        var classification: String?
        var id: EventID
    }

    /// name → the policy in force (the latest `policy.set` of that name).
    public internal(set) var policies: [String: GovernancePolicy] = [:]
    var teams: [String: String] = [:]
    /// "model@version" → …
    var versions: [String: Version] = [:]
    /// "model@version" → evaluator → the latest evaluation by that evaluator.
    var evaluations: [String: [String: Evaluation]] = [:]
    var approvals: [String: [Approval]] = [:]
    /// principal → grants in force.
    var grants: [String: [Grant]] = [:]
    var jobs: [String: Job] = [:]
    /// "name@version" → …
    var datasets: [String: Dataset] = [:]
    /// model → alias → version.
    var aliases: [String: [String: String]] = [:]

    public init() {}

    /// The event types the fold reads (beside the promotions it gates).
    public static let inputTypes: Set<String> = [
        "policy.set", "model.registered", "model.version.created", "model.version.evaluated", "model.version.approved", "access.granted",
        "access.revoked", "job.queued", "job.completed", "dataset.registered", "model.alias.set", "model.alias.removed",
    ]

    /// Folds one event (upcast to its newest version).
    public mutating func apply(_ event: Envelope) {
        let d = event.data
        switch event.type {
        case "policy.set":
            if let p = GovernancePolicy(data: d, id: event.id) { policies[p.name] = p }
        case "model.registered":
            if let m = d.string("model"), let t = d.string("team") { teams[m] = t }
        case "model.version.created":
            guard let m = d.string("model"), let v = d.string("version") else { return }
            versions[m + "@" + v] = Version(creator: event.actor, created: event.id, job: d.string("job"),
                datasets: d.array("datasets")?.compactMap(\.stringValue) ?? [])
        case "model.version.evaluated":
            guard let m = d.string("model"), let v = d.string("version") else { return }
            var metrics: [String: Double] = [:]
            for member in d.object("metrics") ?? [:] { if let n = member.value.doubleValue { metrics[member.key] = n } }
            evaluations[m + "@" + v, default: [:]][d.string("evaluator") ?? event.actor] =
                Evaluation(metrics: metrics, passed: d.bool("passed") ?? false, id: event.id, offset: event.offset)
        case "model.version.approved":
            guard let m = d.string("model"), let v = d.string("version"), let approver = d.string("approver") else { return }
            var roles: [String: EventID] = [:]
            for g in grants[approver] ?? [] where ("model-" + m).hasPrefix(g.streamPrefix) && roles[g.role] == nil { roles[g.role] = g.id }
            approvals[m + "@" + v, default: []].append(Approval(approver: approver, actor: event.actor, id: event.id, roles: roles))
        case "access.granted":
            guard let p = d.string("principal"), let role = d.string("role") else { return }
            let prefix = d.string("streamPrefix") ?? ""
            grants[p, default: []].removeAll { $0.role == role && $0.streamPrefix == prefix }
            grants[p, default: []].append(Grant(role: role, streamPrefix: prefix, id: event.id))
        case "access.revoked":
            guard let p = d.string("principal"), let role = d.string("role") else { return }
            grants[p]?.removeAll { $0.role == role }
            if grants[p]?.isEmpty == true { grants[p] = nil }
        case "job.queued":
            guard let j = d.string("job") else { return }
            jobs[j, default: Job()].queue(event.id, datasets: d.array("datasets")?.compactMap(\.stringValue) ?? [])
        case "job.completed":
            guard let j = d.string("job") else { return }
            jobs[j, default: Job()].complete(event.id, outcome: d.string("outcome"))
        case "dataset.registered":
            guard let n = d.string("name"), let v = d.string("version"), let digest = d.string("digest") else { return }
            datasets[n + "@" + v] = Dataset(digest: digest, classification: d.string("classification"), id: event.id)
        case "model.alias.set":
            // Recorded by the gate through ``aliasMoved(_:)`` when the move passed.
            break
        case "model.alias.removed":
            if let m = d.string("model"), let a = d.string("alias") { aliases[m]?[a] = nil }
        default:
            break
        }
    }

    /// An alias move that every gate passed (or none gated): the version it names is the one a
    /// later `noWorseThanChampion` compares with. A denied move is in the log and shown as denied,
    /// but does not lower the bar for the next candidate.
    public mutating func aliasMoved(_ event: Envelope) {
        let d = event.data
        if let m = d.string("model"), let a = d.string("alias"), let v = d.string("version") { aliases[m, default: [:]][a] = v }
    }

    /// The policies in force that gate `promotion`, by name.
    public func policies(gating promotion: Promotion) -> [GovernancePolicy] {
        policies.values.filter { $0.gates(model: promotion.model, team: teams[promotion.model], promotion: promotion) }.sorted { $0.name < $1.name }
    }

    /// The team that registered `model`.
    public func team(of model: String) -> String? { teams[model] }

    /// Whether anyone holds `role` for the streams of `model` now.
    func roleIsHeld(_ role: String, model: String) -> Bool {
        grants.values.contains { $0.contains { $0.role == role && ("model-" + model).hasPrefix($0.streamPrefix) } }
    }

    /// `policy` on `promotion`, as of the state's position in the log.
    public func evaluate(_ policy: GovernancePolicy, promotion: Promotion) -> GateOutcome {
        var rules: [RuleVerdict] = []
        var evidence: [EventID] = [policy.id]
        func cite(_ id: EventID?) { if let id, !evidence.contains(id) { evidence.append(id) } }
        let key = promotion.model + "@" + promotion.version
        let version = versions[key]
        cite(version?.created)
        // The latest evaluation per evaluator, in the order they were appended.
        let evals = (evaluations[key] ?? [:]).values.sorted { $0.offset < $1.offset }

        if let e = policy.evaluation {
            for m in e.metrics {
                let reporting = evals.filter { $0.metrics[m.metric] != nil }
                let threshold = "\(m.op) \(RolloutController.text(m.threshold))"
                guard !reporting.isEmpty else {
                    rules.append(RuleVerdict(rule: "evaluation.metric", metric: m.metric, verdict: .missing, threshold: .number(m.threshold),
                        reason: "no evaluation of \(key) reports \(m.metric) (needs \(threshold))"))
                    continue
                }
                reporting.forEach { cite($0.id) }
                let worst = m.worst(reporting.map { $0.metrics[m.metric]! })
                let ok = reporting.allSatisfy { m.holds($0.metrics[m.metric]!) }
                rules.append(RuleVerdict(rule: "evaluation.metric", metric: m.metric, verdict: ok ? .passed : .failed, value: .number(worst),
                    threshold: .number(m.threshold),
                    reason: "\(m.metric) \(RolloutController.text(worst)) \(ok ? "meets" : "misses") \(threshold)"
                        + (reporting.count > 1 ? " (the worst of \(reporting.count) evaluations)" : "")))
            }
            if e.passed {
                if evals.isEmpty {
                    rules.append(RuleVerdict(rule: "evaluation.passed", verdict: .missing, threshold: .flag(true), reason: "\(key) has no evaluation"))
                } else {
                    evals.forEach { cite($0.id) }
                    let failed = evals.filter { !$0.passed }.count
                    rules.append(RuleVerdict(rule: "evaluation.passed", verdict: failed == 0 ? .passed : .failed, value: .flag(failed == 0), threshold: .flag(true),
                        reason: failed == 0 ? "every evaluation passed (\(evals.count))" : "\(failed) of \(evals.count) evaluations did not pass"))
                }
            }
            if let n = e.noWorseThanChampion {
                rules.append(noWorse(n, key: key, evals: evals, model: promotion.model, version: promotion.version, cite: cite))
            }
        }

        if let a = policy.approval {
            rules.append(approval(a, key: key, version: version, model: promotion.model, cite: cite))
        }

        if let l = policy.lineage {
            let job = version?.job.flatMap { j in jobs[j].map { (j, $0) } }
            if l.job {
                if version == nil {
                    rules.append(RuleVerdict(rule: "lineage.job", verdict: .missing, reason: "\(key) was never created (no model.version.created)"))
                } else if let name = version?.job {
                    if let (_, facts) = job, let queued = facts.queued {
                        cite(queued)
                        rules.append(RuleVerdict(rule: "lineage.job", verdict: .passed, value: .text(name), reason: "trained by job \(name)"))
                    } else {
                        rules.append(RuleVerdict(rule: "lineage.job", verdict: .failed, value: .text(name), reason: "job \(name) is not in the log"))
                    }
                } else {
                    rules.append(RuleVerdict(rule: "lineage.job", verdict: .failed, reason: "\(key) names no training job"))
                }
            }
            if l.succeeded {
                if let (name, facts) = job {
                    cite(facts.completed)
                    switch facts.outcome {
                    case "succeeded"?:
                        rules.append(RuleVerdict(rule: "lineage.succeeded", verdict: .passed, value: .text("succeeded"), threshold: .text("succeeded"), reason: "job \(name) succeeded"))
                    case let outcome?:
                        rules.append(RuleVerdict(rule: "lineage.succeeded", verdict: .failed, value: .text(outcome), threshold: .text("succeeded"), reason: "job \(name) \(outcome)"))
                    case nil:
                        rules.append(RuleVerdict(rule: "lineage.succeeded", verdict: .missing, threshold: .text("succeeded"), reason: "job \(name) has not completed"))
                    }
                } else {
                    rules.append(RuleVerdict(rule: "lineage.succeeded", verdict: version == nil ? .missing : .failed, threshold: .text("succeeded"),
                        reason: "no training job of \(key) in the log to have succeeded"))
                }
            }
            if l.datasets {
                let named = usedDatasets(version)
                let unregistered = named.filter { datasets[$0] == nil }
                named.forEach { cite(datasets[$0]?.id) }
                if unregistered.isEmpty {
                    rules.append(RuleVerdict(rule: "lineage.datasets", verdict: version == nil ? .missing : .passed, value: .number(Double(named.count)),
                        reason: version == nil ? "\(key) was never created" : named.isEmpty ? "\(key) names no dataset" : "every dataset is registered with its digest (\(named.joined(separator: ", ")))"))
                } else {
                    rules.append(RuleVerdict(rule: "lineage.datasets", verdict: .failed, value: .number(Double(named.count - unregistered.count)),
                        threshold: .number(Double(named.count)), reason: "not registered: \(unregistered.joined(separator: ", "))"))
                }
            }
        }

        if let c = policy.classification {
            rules.append(classification(c, key: key, version: version, model: promotion.model, cite: cite))
        }
        return GateOutcome(policy: policy.name, policyVersion: policy.version, promotion: promotion, rules: rules, evidence: evidence)
    }

    /// The datasets a version was trained on: those it names and those its job names.
    func usedDatasets(_ version: Version?) -> [String] {
        guard let version else { return [] }
        var names = version.datasets
        for n in version.job.flatMap({ jobs[$0]?.datasets }) ?? [] where !names.contains(n) { names.append(n) }
        return names
    }

    private func noWorse(_ n: GovernancePolicy.NoWorse, key: String, evals: [Evaluation], model: String, version: String,
                         cite: (EventID?) -> Void) -> RuleVerdict {
        let rule = "evaluation.noWorseThanChampion"
        guard let champion = aliases[model]?["champion"], champion != version else {
            return RuleVerdict(rule: rule, metric: n.metric, verdict: .passed, reason: aliases[model]?["champion"] == nil
                ? "\(model) has no champion to compare with" : "\(key) is the champion")
        }
        // The conservative reading: the candidate's worst evaluation against the champion's best.
        func values(_ list: [Evaluation]) -> [Double] { list.compactMap { $0.metrics[n.metric] } }
        let candidate = values(evals)
        guard !candidate.isEmpty else {
            return RuleVerdict(rule: rule, metric: n.metric, verdict: .missing, reason: "no evaluation of \(key) reports \(n.metric) to compare with champion \(champion)")
        }
        let championEvals = (evaluations[model + "@" + champion] ?? [:]).values.sorted { $0.offset < $1.offset }.filter { $0.metrics[n.metric] != nil }
        guard !championEvals.isEmpty else {
            return RuleVerdict(rule: rule, metric: n.metric, verdict: .passed, reason: "champion \(champion) has no \(n.metric) to compare with")
        }
        evals.filter { $0.metrics[n.metric] != nil }.forEach { cite($0.id) }
        championEvals.forEach { cite($0.id) }
        let c = n.higherIsBetter ? candidate.min()! : candidate.max()!
        let ref = n.higherIsBetter ? values(championEvals).max()! : values(championEvals).min()!
        let bound = rounded(n.higherIsBetter ? ref - n.by : ref + n.by, 6)
        let ok = n.higherIsBetter ? c >= bound : c <= bound
        return RuleVerdict(rule: rule, metric: n.metric, verdict: ok ? .passed : .failed, value: .number(c), threshold: .number(bound),
            reason: "\(n.metric) \(RolloutController.text(c)) against champion \(champion)'s \(RolloutController.text(ref)) \(ok ? "is within" : "is worse by more than") \(RolloutController.text(n.by))")
    }

    private func approval(_ a: GovernancePolicy.Approval, key: String, version: Version?, model: String, cite: (EventID?) -> Void) -> RuleVerdict {
        if let role = a.role, !roleIsHeld(role, model: model) {
            return RuleVerdict(rule: "approval", verdict: .unsatisfiable, value: .number(0), threshold: .number(Double(a.minApprovers)),
                reason: "nobody holds role \(role): no approval can count")
        }
        var counted: [String] = []
        var refused: [String] = []
        var disqualified = false
        for ap in approvals[key] ?? [] {
            guard !counted.contains(ap.approver) else { continue }
            if ap.actor != ap.approver {
                refused.append("\(ap.approver) (appended by \(ap.actor), not by the approver)")
                disqualified = true
            } else if a.independent, ap.approver == version?.creator {
                refused.append("\(ap.approver) (the version's creator)")
                disqualified = true
            } else if let role = a.role, ap.roles[role] == nil {
                refused.append("\(ap.approver) (did not hold \(role) when approving)")
            } else {
                counted.append(ap.approver)
                cite(ap.id)
                if let role = a.role { cite(ap.roles[role]) }
            }
        }
        let needs = "\(a.minApprovers)\(a.independent ? " independent" : "") approval\(a.minApprovers == 1 ? "" : "s")\(a.role.map { " by " + $0 } ?? "")"
        if counted.count >= a.minApprovers {
            return RuleVerdict(rule: "approval", verdict: .passed, value: .number(Double(counted.count)), threshold: .number(Double(a.minApprovers)),
                reason: "approved by \(counted.joined(separator: ", ")) (needs \(needs))")
        }
        let refusedText = refused.isEmpty ? "" : "; not counted: " + refused.joined(separator: ", ")
        return RuleVerdict(rule: "approval", verdict: disqualified ? .failed : .missing, value: .number(Double(counted.count)),
            threshold: .number(Double(a.minApprovers)), reason: "\(counted.count) of \(needs)\(refusedText)")
    }

    private func classification(_ c: GovernancePolicy.Classification, key: String, version: Version?, model: String, cite: (EventID?) -> Void) -> RuleVerdict {
        guard roleIsHeld(c.role, model: model) else {
            return RuleVerdict(rule: "classification", verdict: .unsatisfiable, threshold: .text(c.role), reason: "nobody holds role \(c.role): no approval can count")
        }
        let sensitive = usedDatasets(version).filter { datasets[$0]?.classification.map(c.classifications.contains) ?? false }
        guard !sensitive.isEmpty else {
            return RuleVerdict(rule: "classification", verdict: version == nil ? .missing : .passed,
                reason: version == nil ? "\(key) was never created" : "trained on no \(c.classifications.joined(separator: "/")) dataset")
        }
        sensitive.forEach { cite(datasets[$0]?.id) }
        let what = sensitive.map { "\($0) (\(datasets[$0]!.classification!))" }.joined(separator: ", ")
        if let ap = (approvals[key] ?? []).first(where: { $0.actor == $0.approver && $0.roles[c.role] != nil && $0.approver != version?.creator }) {
            cite(ap.id)
            cite(ap.roles[c.role])
            return RuleVerdict(rule: "classification", verdict: .passed, value: .text(ap.approver), threshold: .text(c.role),
                reason: "trained on \(what); approved by \(ap.approver), who holds \(c.role)")
        }
        return RuleVerdict(rule: "classification", verdict: .missing, threshold: .text(c.role),
            reason: "trained on \(what): needs an approval by a holder of \(c.role) other than the creator")
    }
}
