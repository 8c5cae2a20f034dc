import LedgerCore

extension PlatformSimulator {
    static let amountBins: [JSONValue] = ["10", "50", "100", "500", "+Inf"]
    static let hourBins: [JSONValue] = ["6", "12", "18", "24"]
    static let amountBaseline: [Double] = [0.30, 0.32, 0.18, 0.15, 0.05]
    static let hourBaseline: [Double] = [0.10, 0.35, 0.35, 0.20]

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
        // New versions through the week, every two to three days per model, trained by the jobs above;
        // a deployed model also gets an approved version the day before each of its rollouts.
        var planned: [(String, Int64)] = rolloutPlan.map { (PlatformSimulator.deployedModels[$0.deployment], $0.at - 20 * PlatformSimulator.hour) }
        for model in modelNames {
            var t = start + Int64(rng.int(10...40)) * PlatformSimulator.hour
            while t < end - 6 * PlatformSimulator.hour {
                planned.append((model, t))
                t += Int64(rng.int(40...70)) * PlatformSimulator.hour
            }
        }
        let forced = Set(rolloutPlan.map { "\(PlatformSimulator.deployedModels[$0.deployment])@\($0.at - 20 * PlatformSimulator.hour)" })
        for (model, t) in planned.sorted(by: { ($0.1, $0.0) < ($1.1, $1.0) }) {
            createVersion(model, at: t, promoteToChampion: false, mustPass: forced.contains("\(model)@\(t)"))
        }
    }

    /// A version with its lineage, evaluation, approval and alias; returns the version.
    @discardableResult
    func createVersion(_ model: String, at time: Int64, promoteToChampion: Bool, mustPass: Bool = false) -> String {
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
        let created = emit(time, creator, "model-" + model, "model.version.created", data)
        if !config.includeDecisions { events[events.count - 1].lineageModel = model }
        versions[model, default: []].append((version, time))
        let auc = mustPass || promoteToChampion ? 0.86 + 0.1 * rng.unit() : 0.80 + 0.15 * rng.unit()
        let passed = auc > 0.83
        emit(time + 10 * PlatformSimulator.minute, "svc:eval", "model-" + model, "model.version.evaluated",
            ["model": .string(model), "version": .string(version), "metrics": ["auc": .number((auc * 1000).rounded() / 1000), "latencyMs": .number(Double(rng.int(8...60)))],
             "passed": .bool(passed), "evaluator": "svc:eval"], correlation: created.description)
        guard passed else { return version }
        // One self-approval on the platform, for the registry to flag.
        let approver = model == "ocr" && version == "2" ? creator : rng.pick(["user:carol", "user:bob"])
        emit(time + PlatformSimulator.hour, approver, "model-" + model, "model.version.approved",
            ["model": .string(model), "version": .string(version), "approver": .string(approver)], correlation: created.description)
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
