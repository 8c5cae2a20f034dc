import Foundation
import Testing
import LedgerCore
import LedgerLog
@testable import LedgerProjections

/// Chargeback rules that had no test of their own.
@Suite struct ChargebackRuleTests {
    let digest = "sha256:" + String(repeating: "a", count: 64)

    func day(_ d: Int = 0, groupBy: [Chargeback.Dimension] = [.team, .gpuType]) -> Chargeback.Options {
        let from = Timestamp("2026-11-23T00:00:00.000Z")!.adding(milliseconds: Int64(d) * 86_400_000)
        return Chargeback.Options(from: from, to: from.adding(milliseconds: 86_400_000), groupBy: groupBy)
    }

    /// A model, its version and a deployment of it on `gpuType`.
    func deployment(_ s: ScenarioLog, _ name: String, gpuType: String?) async throws {
        try await s.add(t("00:00"), "model.registered", ["model": "m", "team": "risk"])
        try await s.add(t("00:00"), "model.version.created", ["model": "m", "version": "1", "source": "s3://m/1", "digest": .string(digest)])
        var d: JSONObject = ["deployment": .string(name), "model": "m", "version": "1", "team": "risk"]
        if let gpuType { d["gpuType"] = .string(gpuType) }
        try await s.add(t("00:00"), "deployment.created", .object(d))
    }

    func window(_ s: ScenarioLog, _ deployment: String, observed: String, end: String, gpuSeconds: Double) async throws {
        try await s.add(observed, "serving.window.observed", [
            "deployment": .string(deployment), "version": "1", "windowStart": .string(end), "windowEnd": .string(end),
            "requests": 10, "errors": 0, "p99Ms": 5, "gpuSeconds": .number(gpuSeconds),
        ])
    }

    /// A serving window observed after its day closed (attributed by its windowEnd) adds a
    /// Correction row; the day's regular rows stay as they were.
    @Test func aLateInferenceWindowCorrectsTheClosedDay() async throws {
        let s = try ScenarioLog()
        try await s.add(t("00:00"), "price.set", ["gpuType": "l4", "hourlyRate": 1, "effectiveFrom": .string(t("00:00"))])
        try await deployment(s, "api", gpuType: "l4")
        try await window(s, "api", observed: t("11:00"), end: t("11:00"), gpuSeconds: 3600)
        try await s.add(t("01:00", day: 1), "job.started", ["job": "tick"])  // closes day 0
        let before = try Chargeback.report(try s.query(), day())
        try await window(s, "api", observed: t("02:00", day: 1), end: t("12:00"), gpuSeconds: 1800)
        let after = try Chargeback.report(try s.query(), day())
        #expect(before.cost(team: "risk", kind: .inference) == dec("1"))
        #expect(after.cost(team: "risk", kind: .inference) == dec("1"))  // regular rows unchanged
        #expect(after.cost(team: "risk", kind: .inference, chargeClass: .correction) == dec("0.5"))  // 0.5 h × 1
        #expect(before.rows.allSatisfy { $0.chargeClass == .regular })
    }

    /// A deployment on a GPU type without a price: its inference row names the type, carries no
    /// cost and is flagged, never priced at 0.
    @Test func inferenceOnAnUnpricedGPUTypeIsFlagged() async throws {
        let s = try ScenarioLog()
        try await deployment(s, "api", gpuType: "t4")
        try await window(s, "api", observed: t("10:00"), end: t("10:00"), gpuSeconds: 1800)
        try await s.add(t("00:00", day: 1), "job.started", ["job": "tick"])
        let r = try Chargeback.report(try s.query(), day())
        let row = try #require(r.rows.first { $0.kind == .inference })
        #expect(row.gpuType == "t4" && row.team == "risk" && row.missingPrice && row.cost == nil && row.gpuHours == dec("0.5"))
        #expect(r.totals.allSatisfy { $0.cost == 0 })
    }

    /// Prices in another currency carry it to every row and total; USD appears nowhere.
    @Test func nonUSDPricesKeepTheirCurrency() async throws {
        let s = try ScenarioLog()
        try await s.add(t("00:00"), "node.registered", ["node": "n-a100", "gpuType": "a100", "gpuCount": 4])
        try await s.add(t("00:00"), "price.set", ["gpuType": "a100", "hourlyRate": 3, "currency": "EUR", "effectiveFrom": .string(t("00:00"))])
        try await allocate(s, "j1", team: "vision", gpus: 2, at: t("06:00"))
        try await release(s, "j1", team: "vision", gpus: 2, at: t("08:00"))
        try await s.add(t("00:00", day: 1), "job.started", ["job": "tick"])
        let r = try Chargeback.report(try s.query(), day())
        #expect(r.rows.allSatisfy { $0.currency == "EUR" })
        #expect(r.cost(team: "vision", kind: .usage) == dec("12"))  // 2 × 2 h × 3
        #expect(r.totals == [.init(currency: "EUR", cost: dec("288"), idleShare: 0)])  // 4 × 24 h × 3
        #expect(r.focus().contains("EUR") && !r.focus().contains("USD"))
    }

    /// Usage grouped by the job's project and by its model (jobs without one group under none).
    @Test func projectAndModelGroupings() async throws {
        let s = try ScenarioLog()
        try await pool(s, gpus: 8, rate: 1)
        func start(_ job: String, project: String?, model: String?, gpus: Int, at time: String) async throws {
            var q: JSONObject = ["job": .string(job), "team": "vision", "gpuType": "a100", "gpus": .number(Double(gpus)), "priority": 0]
            if let project { q["project"] = .string(project) }
            if let model { q["model"] = .string(model) }
            try await s.add(time, "job.queued", .object(q))
            try await s.add(time, "gpu.allocated", ["job": .string(job), "node": "n-a100", "gpuType": "a100", "gpus": .number(Double(gpus)), "team": "vision"], actor: "processor:scheduler")
        }
        try await start("j1", project: "ocr", model: "reader", gpus: 2, at: t("01:00"))
        try await start("j2", project: "ocr", model: "detector", gpus: 1, at: t("02:00"))
        try await release(s, "j1", team: "vision", gpus: 2, at: t("03:00"))
        try await start("j3", project: nil, model: "detector", gpus: 4, at: t("04:00"))
        try await release(s, "j3", team: "vision", gpus: 4, at: t("05:00"))
        try await release(s, "j2", team: "vision", gpus: 1, at: t("06:00"))
        try await s.add(t("00:00", day: 1), "job.started", ["job": "tick"])
        let q = try s.query()
        let byProject = try Chargeback.report(q, day(groupBy: [.project])).rows.filter { $0.kind == .usage }
        #expect(Dictionary(uniqueKeysWithValues: byProject.map { ($0.project ?? "-", $0.gpuHours) }) == ["ocr": dec("8"), "-": dec("4")])  // 2×2 + 1×4; 4×1
        let byModel = try Chargeback.report(q, day(groupBy: [.model])).rows.filter { $0.kind == .usage }
        #expect(Dictionary(uniqueKeysWithValues: byModel.map { ($0.model ?? "-", $0.gpuHours) }) == ["reader": dec("4"), "detector": dec("8")])
        #expect(byModel.allSatisfy { $0.team == nil && $0.gpuType == nil })
    }

    /// The CSV export: its header, a priced row, an unpriced row with an empty cost.
    @Test func csvRows() async throws {
        let s = try ScenarioLog()
        try await pool(s, gpus: 2, rate: 1.25)
        try await pool(s, gpuType: "t4", gpus: 1, rate: nil)
        try await allocate(s, "j1", team: "vision", gpus: 2, at: t("00:00"))
        try await release(s, "j1", team: "vision", gpus: 2, at: t("12:00"))
        try await s.add(t("00:00", day: 1), "job.started", ["job": "tick"])
        let lines = try Chargeback.report(try s.query(), day()).csv.split(separator: "\n").map(String.init)
        #expect(lines.first == "team,gpuType,project,model,day,kind,chargeClass,currency,gpuHours,cost,idleShare,total,missingPrice")
        #expect(lines.contains("vision,a100,,,,usage,regular,USD,24.000000,30.00,0.00,30.00,false"))  // 2 × 12 h × 1.25
        #expect(lines.contains("__idle__,a100,,,,idle,regular,USD,24.000000,30.00,0.00,30.00,false"))
        #expect(lines.contains("__idle__,t4,,,,idle,regular,USD,24.000000,,0.00,,true"))
        #expect(lines.count == 4)
    }

    /// `--as-of TIME` includes every event whose time is exactly that time, and none after it.
    @Test func asOfATimeIncludesEventsAtThatTime() async throws {
        let s = try ScenarioLog()
        try await pool(s, gpus: 8, rate: 1)
        try await s.add(t("06:00"), "model.registered", ["model": "m", "team": "risk"])
        try await s.add(t("06:00"), "model.registered", ["model": "n", "team": "risk"])
        try await s.add(Timestamp(t("06:00"))!.adding(milliseconds: 1).description, "model.registered", ["model": "o", "team": "risk"])
        _ = try s.query()
        let at = try QueryContext(store: s.store, source: s.log, asOf: .time(Timestamp(t("06:00"))!))
        #expect(at.last == s.offsets[3])
        #expect(try Registry.models(at).map(\.model) == ["m", "n"])
        let before = try QueryContext(store: s.store, source: s.log, asOf: .time(Timestamp(t("06:00"))!.adding(milliseconds: -1)))
        #expect(try Registry.models(before).isEmpty)
    }
}

/// Registry and lineage rules that had no test of their own.
@Suite struct RegistryRuleTests {
    let digest = "sha256:" + String(repeating: "c", count: 64)

    func version(_ s: ScenarioLog, _ v: String, at time: String, baseline: JSONValue? = nil) async throws {
        var d: JSONObject = ["model": "fraud", "version": .string(v), "source": .string("s3://fraud/\(v)"), "digest": .string(digest)]
        if let baseline { d["baseline"] = baseline }
        try await s.add(time, "model.version.created", .object(d))
    }

    /// The lineage of a version reaches the rollout decisions about it and the SLO alerts of the
    /// deployment it went to, each with its offset and hash.
    @Test func lineageReachesRolloutDecisionsAndSLOAlerts() async throws {
        let s = try ScenarioLog()
        try await s.add(t("00:00"), "model.registered", ["model": "fraud", "team": "risk"])
        try await version(s, "1", at: t("00:10"))
        try await version(s, "2", at: t("00:20"))
        try await s.add(t("00:30"), "deployment.created", ["deployment": "api", "model": "fraud", "version": "1", "team": "risk"])
        try await s.add(t("00:40"), "slo.defined", ["slo": "api-avail", "deployment": "api", "objective": 0.999, "sli": "availability"])
        let started = try await s.add(t("01:00"), "rollout.started", [
            "deployment": "api", "model": "fraud", "toVersion": "2", "steps": [["weight": 10, "minRequests": 100], ["weight": 50, "minRequests": 100]],
            "analysis": ["maxErrorRate": 0.01, "maxP99Ms": 300],
        ])
        try await s.add(t("01:10"), "rollout.step.advanced", ["deployment": "api", "version": "2", "weight": 50, "evidence": []], actor: "processor:rollout")
        let alert = try await s.add(t("01:20"), "slo.burn.alerted", [
            "slo": "api-avail", "deployment": "api", "severity": "page", "longWindow": "1h", "shortWindow": "5m",
            "burnRateLong": 20, "burnRateShort": 50, "threshold": 14.4, "evidence": [],
        ], actor: "processor:slo")
        let back = try await s.add(t("01:20"), "rollout.rolled_back", ["deployment": "api", "version": "2", "reason": "SLO api-avail paged", "evidence": []], actor: "processor:rollout")
        let steps = try Lineage.of(try s.query(), model: "fraud", version: "2")
        #expect(steps.map(\.step) == ["version", "rollout", "rollout", "slo-alert", "rollout"])
        #expect(steps.filter { $0.step != "version" }.map(\.entry.offset) == [started.offset, started.offset + 1, alert.offset, back.offset])
        for step in steps {
            let event = try #require(try s.log.event(at: step.entry.offset))
            #expect(try event.envelope().hash == step.entry.hash)
        }
        // Version 1 was deployed to the same deployment: its lineage shows the deployment and the alert, not version 2's rollout.
        let first = try Lineage.of(try s.query(), model: "fraud", version: "1").map(\.step)
        #expect(first == ["version", "deployment", "slo-alert"])
    }

    /// A histogram whose bins differ from its version's baseline cannot be compared (PSI needs
    /// identical bins): no drift alert, and an anomaly says why.
    @Test func histogramBinsUnlikeTheBaselineAreAnAnomaly() async throws {
        let s = try ScenarioLog()
        try await s.add(t("00:00"), "model.registered", ["model": "fraud", "team": "risk"])
        try await version(s, "1", at: t("00:10"), baseline: ["amount": ["bins": ["10", "100", "+Inf"], "counts": [3, 5, 2]]])
        func histogram(_ bins: JSONValue, version: String = "1", at time: String) async throws -> AppendResult {
            try await s.add(time, "feature.histogram.observed", [
                "deployment": "api", "model": "fraud", "version": .string(version), "feature": "amount", "bins": bins,
                "counts": [1, 1, 1], "windowEnd": .string(time),
            ])
        }
        _ = try await histogram(["10", "100", "+Inf"], at: t("01:00"))
        let odd = try await histogram(["5", "50", "+Inf"], at: t("02:00"))
        _ = try await histogram(["5", "50", "+Inf"], version: "9", at: t("03:00"))  // no baseline: nothing to compare
        let anomalies = try Audit.anomalies(try s.query())
        #expect(anomalies.map(\.offset) == [odd.offset])
        #expect(anomalies.first?.message == #"histogram of amount for fraud@1 has bins ["5","50","+Inf"], its baseline ["10","100","+Inf"]: no drift computed for it"#)
    }
}
