import Foundation
public import LedgerCore

/// The canary rollout controller (SEMANTICS.md, Rollout controller; Argo Rollouts canary with
/// analysis, Flagger): per-step tallies of the canary's serving windows, analysis when a step
/// reaches `minRequests`, a failure limit, promotion after the last step, and immediate rollback
/// on a `high` drift alert for the canary version or an SLO `page` alert for the deployment.
/// Every decision names the metrics, values and thresholds it used, and the ids of its evidence.
public final class RolloutController: Processor {
    public let name = "rollout"
    public let inputTypes = Set([
        "rollout.started", "serving.window.observed", "rollout.paused", "rollout.resumed", "rollout.promoted", "rollout.rolled_back",
        "drift.alerted", "slo.burn.alerted", "deployment.created",
    ]).union(GovernanceState.inputTypes)

    struct Step: Codable {
        var weight: Int
        var minRequests: Double
    }

    struct Rollout: Codable {
        var deployment: String
        var version: String
        var started: EventID
        var steps: [Step]
        var maxErrorRate: Double
        var maxP99Ms: Double
        var failureLimit: Int
        var step = 0
        var failures = 0
        var paused = false
        // The current step's tally.
        var requests = 0.0
        var errors = 0.0
        var worstP99 = 0.0
        var evidence: [EventID] = []
    }

    struct State: Codable, Sendable {
        /// deployment → the rollout in progress.
        var active: [String: Rollout] = [:]
        /// The gate's state, folded here too: the controller takes the gate's verdicts on a
        /// rollout at the `rollout.started` itself (the same pure evaluation, the same derived
        /// ids), so its decisions never depend on when the verdict events are read back.
        var governance = GovernanceState()
    }

    var state = State()

    public init() {}

    public func capture() -> StateCapture { StateCapture(state: state) }
    public func restore(_ bytes: [UInt8]) throws { state = try JSONDecoder().decode(State.self, from: Data(bytes)) }

    static func text(_ v: Double) -> String {
        let r = rounded(v)
        return r == r.rounded() ? String(Int(r)) : String(r)
    }

    public func apply(_ event: Envelope) -> [Decision] {
        let d = event.data
        var verdicts = DecisionBuilder(processor: "gate", trigger: event)
        // The gate's fold, for what it reads (its state and the promotions it judges).
        if Gate.folds.contains(event.type) { Gate.fold(&state.governance, event, &verdicts) }
        guard let deployment = d.string("deployment") else { return [] }
        var out = DecisionBuilder(processor: name, trigger: event)
        switch event.type {
        case "rollout.started":
            guard let version = d.string("toVersion"), let steps = d.array("steps"), let analysis = d.object("analysis") else { return [] }
            let parsed = steps.compactMap { s -> Step? in
                guard let o = s.objectValue, let w = o.int("weight"), let m = o.double("minRequests") else { return nil }
                return Step(weight: w, minRequests: m)
            }
            guard !parsed.isEmpty else { return [] }
            let r = Rollout(
                deployment: deployment, version: version, started: event.id, steps: parsed, maxErrorRate: analysis.double("maxErrorRate") ?? 1,
                maxP99Ms: analysis.double("maxP99Ms") ?? .greatestFiniteMagnitude, failureLimit: analysis.int("failureLimit") ?? 0)
            state.active[deployment] = r
            if let denied = verdicts.decisions.first(where: { $0.data.string("result") != "passed" }) {
                gateDenied(r, denied, &out)
            }
        case "rollout.paused":
            guard var r = state.active[deployment], d.string("version") == nil || d.string("version") == r.version else { return [] }
            r.paused = true
            state.active[deployment] = r
        case "rollout.resumed":
            guard var r = state.active[deployment], d.string("version") == nil || d.string("version") == r.version else { return [] }
            r.paused = false
            state.active[deployment] = r
        case "rollout.promoted", "rollout.rolled_back":
            // A client's (or an imported) end of the rollout; ours never reach here.
            if let r = state.active[deployment], d.string("version") == r.version { state.active[deployment] = nil }
        case "serving.window.observed":
            guard var r = state.active[deployment], d.string("version") == r.version, !r.paused, let requests = d.double("requests") else { return [] }
            r.requests += requests
            r.errors += d.double("errors") ?? 0
            r.worstP99 = max(r.worstP99, d.double("p99Ms") ?? 0)
            r.evidence.append(event.id)
            state.active[deployment] = r
            analyse(deployment, &out)
        case "drift.alerted":
            guard let r = state.active[deployment], d.string("severity") == "high", d.string("version") == r.version else { return [] }
            let feature = d.string("feature") ?? "?"
            let value = d.double("value") ?? 0
            let threshold = d.double("threshold") ?? DriftDetector.high
            out.add(stream: "deployment-" + deployment, type: "rollout.rolled_back",
                data: ["deployment": .string(deployment), "version": .string(r.version),
                       "reason": .string("high drift of feature \(feature) in version \(r.version): PSI \(RolloutController.text(value)) ≥ \(RolloutController.text(threshold))"),
                       "checks": [["metric": .string("psi." + feature), "value": .number(value), "threshold": .number(threshold)]],
                       "evidence": .ids([event.id])], correlation: r.started.description)
            state.active[deployment] = nil
        case "slo.burn.alerted":
            guard let r = state.active[deployment], d.string("severity") == "page" else { return [] }
            let slo = d.string("slo") ?? "?"
            let long = d.string("longWindow") ?? "?"
            let short = d.string("shortWindow") ?? "?"
            let threshold = d.double("threshold") ?? 0
            let burnLong = d.double("burnRateLong") ?? 0
            let burnShort = d.double("burnRateShort") ?? 0
            out.add(stream: "deployment-" + deployment, type: "rollout.rolled_back",
                data: ["deployment": .string(deployment), "version": .string(r.version),
                       "reason": .string("SLO \(slo) paged: burn rate \(RolloutController.text(burnLong)) over \(long) and \(RolloutController.text(burnShort)) over \(short) > \(RolloutController.text(threshold))"),
                       "checks": [["metric": .string("burnRate." + long), "value": .number(burnLong), "threshold": .number(threshold)],
                                  ["metric": .string("burnRate." + short), "value": .number(burnShort), "threshold": .number(threshold)]],
                       "evidence": .ids([event.id])], correlation: r.started.description)
            state.active[deployment] = nil
        default:
            break
        }
        return out.decisions
    }

    /// Analyses the current step's tally once it has `minRequests`: advance, promote, count a
    /// failure or roll back.
    func analyse(_ deployment: String, _ out: inout DecisionBuilder) {
        guard var r = state.active[deployment] else { return }
        let step = r.steps[r.step]
        guard r.requests >= step.minRequests else { return }
        var checks: [JSONValue] = []
        var failing: [String] = []
        let errorRate = r.requests > 0 ? r.errors / r.requests : 0
        if errorRate > r.maxErrorRate {
            checks.append(["metric": "errorRate", "value": .number(rounded(errorRate, 6)), "threshold": .number(r.maxErrorRate)])
            failing.append("error rate \(RolloutController.text(errorRate * 100))% > \(RolloutController.text(r.maxErrorRate * 100))%")
        }
        if r.worstP99 > r.maxP99Ms {
            checks.append(["metric": "p99Ms", "value": .number(r.worstP99), "threshold": .number(r.maxP99Ms)])
            failing.append("p99 latency \(RolloutController.text(r.worstP99)) ms > \(RolloutController.text(r.maxP99Ms)) ms")
        }
        let evidence = JSONValue.ids(Array(r.evidence.suffix(1024)))
        let where_ = "step \(r.step + 1) of \(r.steps.count) at weight \(step.weight)%"
        if failing.isEmpty {
            if r.step + 1 < r.steps.count {
                r.step += 1
                out.add(stream: "deployment-" + deployment, type: "rollout.step.advanced",
                    data: ["deployment": .string(deployment), "version": .string(r.version), "weight": .number(Double(r.steps[r.step].weight)),
                           "evidence": evidence], correlation: r.started.description)
                r.requests = 0
                r.errors = 0
                r.worstP99 = 0
                r.evidence = []
                state.active[deployment] = r
            } else {
                out.add(stream: "deployment-" + deployment, type: "rollout.promoted",
                    data: ["deployment": .string(deployment), "version": .string(r.version), "evidence": evidence], correlation: r.started.description)
                state.active[deployment] = nil
            }
        } else {
            r.failures += 1
            if r.failures > r.failureLimit {
                let reason = "analysis failed at \(where_) over \(Int(r.requests)) requests: " + failing.joined(separator: "; ")
                    + " (failure \(r.failures), limit \(r.failureLimit))"
                out.add(stream: "deployment-" + deployment, type: "rollout.rolled_back",
                    data: ["deployment": .string(deployment), "version": .string(r.version), "reason": .string(reason), "checks": .array(checks),
                           "evidence": evidence], correlation: r.started.description)
                state.active[deployment] = nil
            } else {
                // Within the failure limit: the step starts over with a fresh tally.
                r.requests = 0
                r.errors = 0
                r.worstP99 = 0
                r.evidence = []
                state.active[deployment] = r
            }
        }
    }

    /// A gate denied the rollout: it is rolled back at once with the gate's reasons, evidence
    /// the verdict (its derived id: the gate, before this processor in the runner's order, has
    /// appended it) and the verdict's own evidence.
    func gateDenied(_ r: Rollout, _ verdict: Decision, _ out: inout DecisionBuilder) {
        let d = verdict.data
        let rules = (d.array("rules") ?? []).compactMap(RuleVerdict.init(json:)).filter { $0.verdict != .passed }
        var checks: [JSONValue] = []
        for rule in rules {
            guard case .number(let v)? = rule.value, case .number(let t)? = rule.threshold else { continue }
            checks.append(["metric": .string("gate." + rule.rule + (rule.metric.map { "." + $0 } ?? "")), "value": .number(v), "threshold": .number(t)])
        }
        let reasons = rules.map(\.summary).joined(separator: "; ")
        var evidence = [verdict.id]
        for id in (d.array("evidence") ?? []).compactMap({ $0.stringValue.flatMap(EventID.init) }) where !evidence.contains(id) { evidence.append(id) }
        out.add(stream: "deployment-" + r.deployment, type: "rollout.rolled_back",
            data: ["deployment": .string(r.deployment), "version": .string(r.version),
                   "reason": .string(String("gate denied by policy \(d.string("policy") ?? "?") v\(d.int("policyVersion") ?? 0): \(reasons)".prefix(1000))),
                   "checks": .array(Array(checks.prefix(64))), "evidence": .ids(Array(evidence.prefix(1024)))], correlation: r.started.description)
        state.active[r.deployment] = nil
    }
}
