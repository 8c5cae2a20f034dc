#if canImport(Glibc)
import Glibc
#endif
import LedgerCore

extension PlatformSimulator {
    enum CanaryFate {
        case healthy, errors, slow, drifts
    }

    struct Rollout {
        var deployment: Int
        var at: Int64
        var fate: CanaryFate
        var pause: Bool
        /// The gate denies it: its version was trained on PII data and has no privacy approval
        /// yet. No canary traffic; the privacy officer approves later and the team retries.
        var privacyHold = false
        /// A retry of an earlier rollout's version (no new version is trained for it).
        var retry = false
    }

    /// When the held rollout's privacy approval arrives, and when the team retries.
    static let privacyApprovalDelay: Int64 = 3 * PlatformSimulator.hour
    static let retryDelay: Int64 = 3 * PlatformSimulator.hour + 10 * PlatformSimulator.minute

    struct Deployment {
        var name: String
        var model: String
        var stable: String
        var baseRate: Double
        var slos: [String]
    }

    static let deployedModels = ["fraud-detector", "ranker", "recommender", "image-tagger", "query-rewriter", "churn-predictor", "sentiment", "ad-ctr"]

    /// The canary rollouts of the simulation (within its days): a mix of fates.
    var rolloutPlan: [Rollout] {
        let day = 24 * PlatformSimulator.hour
        let hour = PlatformSimulator.hour
        let plan = [
            Rollout(deployment: 0, at: start + 1 * day + 10 * hour, fate: .healthy, pause: false),
            Rollout(deployment: 1, at: start + 1 * day + 15 * hour, fate: .errors, pause: false),
            Rollout(deployment: 2, at: start + 2 * day + 11 * hour, fate: .healthy, pause: false),
            Rollout(deployment: 3, at: start + 2 * day + 16 * hour, fate: .slow, pause: false),
            Rollout(deployment: 4, at: start + 3 * day + 10 * hour, fate: .drifts, pause: false),
            Rollout(deployment: 5, at: start + 3 * day + 13 * hour, fate: .healthy, pause: true),
            Rollout(deployment: 6, at: start + 4 * day + 11 * hour, fate: .errors, pause: false),
            Rollout(deployment: 7, at: start + 4 * day + 15 * hour, fate: .healthy, pause: false),
            Rollout(deployment: 0, at: start + 5 * day + 10 * hour, fate: .healthy, pause: false, privacyHold: true),
            Rollout(deployment: 0, at: start + 5 * day + 10 * hour + PlatformSimulator.retryDelay, fate: .healthy, pause: false, retry: true),
            Rollout(deployment: 2, at: start + 6 * day + 12 * hour, fate: .healthy, pause: false),
        ]
        return plan.filter { $0.at < end - 6 * hour }
    }

    /// Deployments, SLOs, five-minute serving windows, hourly feature histograms and canary
    /// rollouts: some pass, some fail on error rate or on latency, one drifts; one bad hour.
    func simulateServing() {
        let deployed = PlatformSimulator.deployedModels
        var deployments: [Deployment] = []
        let t0 = start - 20 * PlatformSimulator.minute
        for (i, model) in deployed.enumerated() {
            let name = model.split(separator: "-").first.map(String.init)! + "-api"
            var d = Deployment(name: name, model: model, stable: "1", baseRate: Double(rng.int(400...2400)), slos: [])
            emit(t0 + Int64(i) * 1000, "svc:serving", "deployment-" + name, "deployment.created",
                ["deployment": .string(name), "model": .string(model), "version": "1", "team": .string(modelTeam[model]!),
                 "service": .string(name + "-svc"), "gpuType": "l4"])
            let availability = name + "-availability"
            emit(t0 + Int64(i) * 1000 + 500, "user:dana", "slo-" + availability, "slo.defined",
                ["slo": .string(availability), "deployment": .string(name), "objective": 0.999, "periodDays": 30, "sli": "availability"])
            d.slos.append(availability)
            if i % 2 == 0 {
                let latency = name + "-latency"
                emit(t0 + Int64(i) * 1000 + 700, "user:dana", "slo-" + latency, "slo.defined",
                    ["slo": .string(latency), "deployment": .string(name), "objective": 0.99, "sli": "latency"])
                d.slos.append(latency)
            }
            deployments.append(d)
        }
        let day = 24 * PlatformSimulator.hour
        let hour = PlatformSimulator.hour
        let rollouts = rolloutPlan
        // The bad hour: the first deployment serves errors for an hour on the second day.
        let badStart = start + 1 * day + 14 * hour
        let badEnd = badStart + hour

        for (di, _) in deployments.enumerated() {
            var canary: (version: String, fate: CanaryFate, started: EventID, step: Int, tally: Int, errors: Int, maxP99: Double,
                evidence: [EventID], paused: Bool, weight: Int, steps: [(Int, Int)])? = nil
            var nextRollout = rollouts.filter { $0.deployment == di }.makeIterator()
            var pending = nextRollout.next()
            var resumeAt: Int64? = nil
            var alertOpen = false
            var driftAlerted = false
            var t = start
            var window = 0
            while t < end {
                let d = deployments[di]
                let windowEnd = t + 5 * PlatformSimulator.minute
                // A rollout begins.
                if canary == nil, let r = pending, r.at <= t {
                    pending = nextRollout.next()
                    if let version = plannedVersions["\(di)@\(r.at)"] ?? latestApproved(d.model, before: r.at), version != d.stable {
                        let steps = [(10, 3000), (50, 8000)]
                        let started = emit(t, "user:\(modelTeam[d.model]!)-ml", "deployment-" + d.name, "rollout.started",
                            ["deployment": .string(d.name), "model": .string(d.model), "toVersion": .string(version),
                             "steps": .array(steps.map { ["weight": .number(Double($0.0)), "minRequests": .number(Double($0.1))] }),
                             "analysis": ["maxErrorRate": 0.01, "maxP99Ms": 300, "failureLimit": 0]])
                        if r.privacyHold {
                            // The gate denies it at once and the controller rolls it back: no
                            // traffic. The privacy officer reviews it and approves; the team retries.
                            gateReady["\(d.model)@\(version)"] = true
                            emit(r.at + PlatformSimulator.privacyApprovalDelay, "user:pat", "model-" + d.model, "model.version.approved",
                                ["model": .string(d.model), "version": .string(version), "approver": "user:pat"], correlation: started.description)
                        } else if gateReady["\(d.model)@\(version)"] ?? false {
                            canary = (version, r.fate, started, 0, 0, 0, 0, [], false, steps[0].0, steps)
                        }
                        if r.pause { resumeAt = t + 40 * PlatformSimulator.minute }
                    }
                }
                if let at = resumeAt, var c = canary {
                    if !c.paused && t >= at - 30 * PlatformSimulator.minute && t < at {
                        emit(t, "user:\(modelTeam[d.model]!)-ml", "deployment-" + d.name, "rollout.paused",
                            ["deployment": .string(d.name), "version": .string(c.version), "reason": "holding while the on-call checks a dashboard"],
                            correlation: c.started.description)
                        c.paused = true
                        canary = c
                    } else if c.paused && t >= at {
                        emit(t, "user:\(modelTeam[d.model]!)-ml", "deployment-" + d.name, "rollout.resumed",
                            ["deployment": .string(d.name), "version": .string(c.version)], correlation: c.started.description)
                        c.paused = false
                        resumeAt = nil
                        canary = c
                    }
                }
                // Traffic for this window.
                let total = max(1, rng.poisson(d.baseRate * rhythm(t)))
                let canaryShare = canary.map { Double($0.weight) / 100 } ?? 0
                let canaryRequests = canary == nil ? 0 : Int((Double(total) * canaryShare).rounded())
                let stableRequests = total - canaryRequests
                let bad = di == 0 && t >= badStart && t < badEnd
                func observe(_ version: String, _ requests: Int, errorRate: Double, p99: Double, slowShare: Double) -> (EventID, Int, Double) {
                    let errors = min(requests, rng.poisson(Double(requests) * errorRate))
                    let slow = min(requests, rng.poisson(Double(requests) * slowShare))
                    let p = (p99 * (1 + 0.08 * rng.normal()) * 10).rounded() / 10
                    let id = emit(windowEnd, "svc:serving", "deployment-" + d.name, "serving.window.observed",
                        ["deployment": .string(d.name), "version": .string(version), "windowStart": .string(Timestamp(milliseconds: t).description),
                         "windowEnd": .string(Timestamp(milliseconds: windowEnd).description), "requests": .number(Double(requests)),
                         "errors": .number(Double(errors)), "slowRequests": .number(Double(slow)), "p99Ms": .number(max(1, p)),
                         "gpuSeconds": .number((Double(requests) * 0.02 * 100).rounded() / 100)])
                    return (id, errors, max(1, p))
                }
                let stableObservation = observe(d.stable, stableRequests, errorRate: bad ? 0.05 : 0.0003, p99: 140, slowShare: bad ? 0.03 : 0.004)
                if config.includeDecisions && di == 0 {
                    // Until the SLO processor exists: the page alert of the bad hour, opened and resolved.
                    if bad && !alertOpen && t >= badStart + 5 * PlatformSimulator.minute {
                        alertOpen = true
                        emit(windowEnd, "processor:slo", "slo-" + d.slos[0], "slo.burn.alerted",
                            ["slo": .string(d.slos[0]), "deployment": .string(d.name), "severity": "page", "longWindow": "1h", "shortWindow": "5m",
                             "burnRateLong": 25.0, "burnRateShort": 50.0, "threshold": 14.4, "evidence": [.string(stableObservation.0.description)]],
                            cause: stableObservation.0)
                    } else if alertOpen && t >= badEnd + 30 * PlatformSimulator.minute {
                        alertOpen = false
                        emit(windowEnd, "processor:slo", "slo-" + d.slos[0], "slo.burn.resolved",
                            ["slo": .string(d.slos[0]), "deployment": .string(d.name), "severity": "page", "longWindow": "1h", "shortWindow": "5m"],
                            cause: stableObservation.0)
                    }
                }
                if var c = canary, canaryRequests > 0 {
                    let (errorRate, p99): (Double, Double)
                    switch c.fate {
                    case .errors: (errorRate, p99) = (0.03, 150)
                    case .slow: (errorRate, p99) = (0.0003, 420)
                    case .healthy, .drifts: (errorRate, p99) = (0.0003, 135)
                    }
                    let (id, errors, p) = observe(c.version, canaryRequests, errorRate: errorRate, p99: p99, slowShare: 0.004)
                    if !c.paused {
                        c.tally += canaryRequests
                        c.errors += errors
                        c.maxP99 = max(c.maxP99, p)
                        c.evidence.append(id)
                    }
                    canary = c
                    // Drift: the canary's inputs shift; the histogram every 30 minutes shows it.
                    if window % 6 == 5 {
                        let shifted: [Double] = c.fate == .drifts ? [0.05, 0.10, 0.15, 0.30, 0.40] : PlatformSimulator.amountBaseline
                        let histogram = emit(windowEnd, "svc:serving", "deployment-" + d.name, "feature.histogram.observed",
                            ["deployment": .string(d.name), "model": .string(d.model), "version": .string(c.version), "feature": "amount",
                             "bins": .array(PlatformSimulator.amountBins), "counts": counts(shifted, total: max(100, canaryRequests * 6)),
                             "windowEnd": .string(Timestamp(milliseconds: windowEnd).description)])
                        if c.fate == .drifts && !driftAlerted {
                            driftAlerted = true
                            canary = nil  // the drift processor alerts and the controller rolls back
                        }
                        if config.includeDecisions && c.fate == .drifts && canary == nil {
                            let psi = PlatformSimulator.psi(observed: shifted, baseline: PlatformSimulator.amountBaseline)
                            let alert = emit(windowEnd, "processor:drift", "deployment-" + d.name, "drift.alerted",
                                ["deployment": .string(d.name), "model": .string(d.model), "version": .string(c.version), "feature": "amount", "method": "psi",
                                 "value": .number((psi * 10000).rounded() / 10000), "threshold": 0.25, "severity": "high", "evidence": [.string(histogram.description)]],
                                cause: histogram)
                            emit(windowEnd, "processor:rollout", "deployment-" + d.name, "rollout.rolled_back",
                                ["deployment": .string(d.name), "version": .string(c.version),
                                 "reason": .string("drift alert (high) on feature amount: PSI \((psi * 1000).rounded() / 1000) ≥ 0.25"),
                                 "evidence": [.string(alert.description)]], correlation: c.started.description, cause: alert)
                            canary = nil
                        }
                    }
                }
                // What the rollout controller will decide (the rules of SEMANTICS.md), so that the
                // simulated traffic follows it; the decisions themselves are written only in the
                // legacy mode that has no processors.
                if var c = canary, !c.paused, c.tally >= c.steps[c.step].1 {
                    let rate = Double(c.errors) / Double(max(1, c.tally))
                    var checks: [JSONValue] = []
                    var reasons: [String] = []
                    if rate > 0.01 {
                        checks.append(["metric": "errorRate", "value": .number((rate * 10000).rounded() / 10000), "threshold": 0.01])
                        reasons.append("error rate \((rate * 10000).rounded() / 10000) > 0.01")
                    }
                    if c.maxP99 > 300 {
                        checks.append(["metric": "p99Ms", "value": .number(c.maxP99), "threshold": 300])
                        reasons.append("p99 \(c.maxP99) ms > 300 ms")
                    }
                    let evidence = JSONValue.array(c.evidence.map { .string($0.description) })
                    if !reasons.isEmpty {
                        decide(windowEnd, "processor:rollout", "deployment-" + d.name, "rollout.rolled_back",
                            ["deployment": .string(d.name), "version": .string(c.version),
                             "reason": .string("step \(c.step + 1) at \(c.weight)%: " + reasons.joined(separator: "; ")), "checks": .array(checks), "evidence": evidence],
                            correlation: c.started.description, cause: c.evidence.last)
                        canary = nil
                    } else if c.step + 1 < c.steps.count {
                        c.step += 1
                        c.weight = c.steps[c.step].0
                        decide(windowEnd, "processor:rollout", "deployment-" + d.name, "rollout.step.advanced",
                            ["deployment": .string(d.name), "version": .string(c.version), "weight": .number(Double(c.weight)), "evidence": evidence],
                            correlation: c.started.description, cause: c.evidence.last)
                        c.tally = 0
                        c.errors = 0
                        c.maxP99 = 0
                        c.evidence = []
                        canary = c
                    } else {
                        decide(windowEnd, "processor:rollout", "deployment-" + d.name, "rollout.promoted",
                            ["deployment": .string(d.name), "version": .string(c.version), "evidence": evidence],
                            correlation: c.started.description, cause: c.evidence.last)
                        emit(windowEnd + 60_000, "user:\(modelTeam[d.model]!)-ml", "model-" + d.model, "model.alias.set",
                            ["model": .string(d.model), "alias": "champion", "version": .string(c.version)])
                        emit(windowEnd + 61_000, "user:\(modelTeam[d.model]!)-ml", "model-" + d.model, "model.alias.removed",
                            ["model": .string(d.model), "alias": "challenger"])
                        deployments[di].stable = c.version
                        canary = nil
                    }
                }
                // Hourly histograms of the stable version's inputs.
                if window % 12 == 11 {
                    emit(windowEnd, "svc:serving", "deployment-" + d.name, "feature.histogram.observed",
                        ["deployment": .string(d.name), "model": .string(d.model), "version": .string(deployments[di].stable), "feature": "hour",
                         "bins": .array(PlatformSimulator.hourBins), "counts": counts(PlatformSimulator.hourBaseline, total: max(100, stableRequests * 12)),
                         "windowEnd": .string(Timestamp(milliseconds: windowEnd).description)])
                }
                _ = stableObservation
                t = windowEnd
                window += 1
            }
        }
        // An access change during the week.
        if config.days >= 4 {
            emit(start + 3 * day + 9 * hour, "user:alice", "principal-user:erik", "access.revoked", ["principal": "user:erik", "role": "auditor"])
        }
    }

    /// Population stability index with the floors of the drift rule (SEMANTICS.md).
    static func psi(observed: [Double], baseline: [Double]) -> Double {
        let o = observed.reduce(0, +)
        let b = baseline.reduce(0, +)
        var psi = 0.0
        for i in observed.indices {
            let p = max(observed[i] / o, 1e-4)
            let q = max(baseline[i] / b, 1e-4)
            psi += (p - q) * log(p / q)
        }
        return psi
    }
}
