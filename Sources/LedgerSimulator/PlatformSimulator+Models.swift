import LedgerCore

extension PlatformSimulator {
    static let amountBins: [JSONValue] = ["10", "50", "100", "500", "+Inf"]
    static let hourBins: [JSONValue] = ["6", "12", "18", "24"]
    static let amountBaseline: [Double] = [0.30, 0.32, 0.18, 0.15, 0.05]
    static let hourBaseline: [Double] = [0.10, 0.35, 0.35, 0.20]
    /// What a production promotion needs (README, Governance).
    static let productionPolicy: JSONObject = [
        "policy": "production-promotion", "version": 1,
        "description": "Rollouts to any deployment and moves of the champion alias need a passing evaluation with AUC of at least 0.85, an independent model approver, a complete lineage, and the privacy officer's approval for a model trained on personal data.",
        "scope": ["deployments": ["*"], "aliases": ["champion"]],
        "rules": [
            "evaluation": ["metrics": [["metric": "auc", "op": ">=", "threshold": 0.85]], "passed": true],
            "approval": ["minApprovers": 1, "role": "model-approver", "independent": true],
            "lineage": [:],
            "classification": ["classifications": ["pii"], "role": "privacy"],
        ],
    ]
    /// Whether a dataset reference is of the dataset classified pii.
    static func isPII(_ reference: String) -> Bool { reference.hasPrefix("transactions@") }
    /// The dataset classified pii (SimulatedEvent's datasets: transactions is the one).
    static let piiDataset = "transactions@2026-11"

    func counts(_ shares: [Double], total: Int) -> JSONValue {
        .array(shares.map { share in .number(Double(max(0, Int((share * Double(total) * (1 + 0.03 * rng.normal())).rounded())))) })
    }

    func simulateModels() {
        let owners = ["vision", "fraud", "vision", "speech", "search", "search", "recsys", "vision", "nlp", "nlp", "fraud", "recsys",
            "vision", "nlp", "nlp", "search", "recsys", "nlp", "vision", "fraud"]
        let t0 = start - PlatformSimulator.hour
        for (i, model) in modelNames.enumerated() {
            let team = owners[i]
            modelTeam[model] = team
            emit(t0 + Int64(i) * 1000, "user:\(team)-ml", "model-" + model, "model.registered",
                ["model": .string(model), "team": .string(team), "description": .string("\(model) for the \(team) team")])
            createVersion(model, at: t0 + 10 * PlatformSimulator.minute + Int64(i) * 1000, promoteToChampion: true)
        }
        // The production promotion policy, once the initial champions are in place: every rollout
        // and every move of the champion alias is gated from here on.
        emit(start + 30 * PlatformSimulator.minute, "user:alice", "policy-production-promotion", "policy.set", PlatformSimulator.productionPolicy)
        // New versions through the week, every two to three days per model, trained by the jobs above;
        // a deployed model also gets an approved version the day before each of its rollouts.
        let bound = rolloutPlan.filter { !$0.retry }
        var planned: [(String, Int64)] = bound.map { (PlatformSimulator.deployedModels[$0.deployment], $0.at - 20 * PlatformSimulator.hour) }
        for model in modelNames {
            var t = start + Int64(rng.int(10...40)) * PlatformSimulator.hour
            while t < end - 6 * PlatformSimulator.hour {
                planned.append((model, t))
                t += Int64(rng.int(40...70)) * PlatformSimulator.hour
            }
        }
        var forced: [String: Rollout] = [:]
        for r in bound { forced["\(PlatformSimulator.deployedModels[r.deployment])@\(r.at - 20 * PlatformSimulator.hour)"] = r }
        for (model, t) in planned.sorted(by: { ($0.1, $0.0) < ($1.1, $1.0) }) {
            let rollout = forced["\(model)@\(t)"]
            let version = createVersion(model, at: t, promoteToChampion: false, mustPass: rollout != nil, privacyHold: rollout?.privacyHold ?? false)
            if let r = rollout { plannedVersions["\(r.deployment)@\(r.at)"] = version }
        }
        // A retry rolls out the version of the rollout it retries (the latest earlier one of its deployment).
        for r in rolloutPlan where r.retry {
            if let first = bound.filter({ $0.deployment == r.deployment && $0.at < r.at }).last {
                plannedVersions["\(r.deployment)@\(r.at)"] = plannedVersions["\(first.deployment)@\(first.at)"]
            }
        }
    }

    /// A version with its lineage, evaluation, approval and alias; returns the version. A version
    /// bound for a rollout (`mustPass`) passes the production policy: evaluated above its bar,
    /// approved by a model approver, and — trained on PII — approved by the privacy officer, unless
    /// `privacyHold` (trained on PII, that approval comes only after its first rollout is denied).
    @discardableResult
    func createVersion(_ model: String, at time: Int64, promoteToChampion: Bool, mustPass: Bool = false, privacyHold: Bool = false) -> String {
        let list = versions[model, default: []]
        let version = String(list.count + 1)
        let team = modelTeam[model]!
        let creator = "user:\(team)-ml"
        var data: JSONObject = [
            "model": .string(model), "version": .string(version), "source": .string("s3://models/\(model)/\(version)/"),
            "digest": .string("sha256:" + Hash256.of(utf8: "\(model)/\(version)/\(config.seed)").description),
            "baseline": [
                "amount": ["bins": .array(PlatformSimulator.amountBins), "counts": counts(PlatformSimulator.amountBaseline, total: 20000)],
                "hour": ["bins": .array(PlatformSimulator.hourBins), "counts": counts(PlatformSimulator.hourBaseline, total: 20000)],
            ],
        ]
        if let run = completedTraining[model]?.last(where: { $0.0 < time }) {
            data["job"] = .string(run.1)
            data["datasets"] = .array(run.2.map { .string($0) })
        } else {
            data["datasets"] = .array([.string(rng.pick(datasets))])
        }
        if privacyHold, var names = data["datasets"]?.arrayValue, !names.contains(.string(PlatformSimulator.piiDataset)) {
            names.append(.string(PlatformSimulator.piiDataset))
            data["datasets"] = .array(names)
        }
        let pii = data["datasets"]?.arrayValue?.contains { $0.stringValue.map(PlatformSimulator.isPII) ?? false } ?? false
        let created = emit(time, creator, "model-" + model, "model.version.created", data)
        let createdIndex = events.count - 1
        if !config.includeDecisions {
            events[createdIndex].lineageModel = model
            events[createdIndex].privacyHold = privacyHold
        }
        versions[model, default: []].append((version, time))
        let auc = mustPass || promoteToChampion ? 0.86 + 0.1 * rng.unit() : 0.80 + 0.15 * rng.unit()
        let passed = auc > 0.83
        emit(time + 10 * PlatformSimulator.minute, "svc:eval", "model-" + model, "model.version.evaluated",
            ["model": .string(model), "version": .string(version), "metrics": ["auc": .number((auc * 1000).rounded() / 1000), "latencyMs": .number(Double(rng.int(8...60)))],
             "passed": .bool(passed), "evaluator": "svc:eval"], correlation: created.description)
        guard passed else {
            gateReady["\(model)@\(version)"] = false
            return version
        }
        // One self-approval on the platform, for the registry to flag.
        let approver = model == "ocr" && version == "2" ? creator : rng.pick(["user:carol", "user:bob"])
        // The lineage and the privacy review follow the production policy by construction (the
        // play names a training run that succeeded, and the privacy officer reviews every approved
        // version trained on PII); what may fail the gate is the evaluation or the approver.
        gateReady["\(model)@\(version)"] = (auc * 1000).rounded() / 1000 >= 0.85 && approver != creator && !privacyHold
        emit(time + PlatformSimulator.hour, approver, "model-" + model, "model.version.approved",
            ["model": .string(model), "version": .string(version), "approver": .string(approver)], correlation: created.description)
        if !config.includeDecisions && !privacyHold {
            events[createdIndex].privacyReviewAt = time + PlatformSimulator.hour + 30_000
        } else if pii && !privacyHold {
            emit(time + PlatformSimulator.hour + 30_000, "user:pat", "model-" + model, "model.version.approved",
                ["model": .string(model), "version": .string(version), "approver": "user:pat"], correlation: created.description)
        }
        approved[model, default: []].append((version, time + PlatformSimulator.hour))
        let alias = promoteToChampion ? "champion" : "challenger"
        emit(time + PlatformSimulator.hour + 60_000, "user:\(team)-ml", "model-" + model, "model.alias.set",
            ["model": .string(model), "alias": .string(alias), "version": .string(version)], correlation: created.description)
        if list.count >= 2 && rng.chance(0.5) {
            emit(time + PlatformSimulator.hour + 120_000, "user:\(team)-ml", "model-" + model, "model.version.archived",
                ["model": .string(model), "version": .string(list[list.count - 2].0)])
        }
        return version
    }

    /// The newest version of `model` approved before `time`.
    func latestApproved(_ model: String, before time: Int64) -> String? {
        approved[model]?.last(where: { $0.1 < time })?.0
    }
}
