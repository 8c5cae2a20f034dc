import Foundation
import Testing
import LedgerCore
import LedgerLog
@testable import LedgerProjections

@Suite struct RegistryTests {
    let digest = "sha256:" + String(repeating: "b", count: 64)

    func version(_ s: ScenarioLog, _ v: String, at time: String, by actor: String = "user:maker", job: String? = nil) async throws {
        var d: JSONObject = ["model": "fraud", "version": .string(v), "source": .string("s3://fraud/\(v)"), "digest": .string(digest), "datasets": ["tx@2026-11"]]
        if let job { d["job"] = .string(job) }
        try await s.add(time, "model.version.created", .object(d), actor: actor)
    }

    @Test func versionsEvaluationsApprovalsAndTheSelfApprovalFlag() async throws {
        let s = try ScenarioLog()
        try await s.add(t("00:00"), "model.registered", ["model": "fraud", "team": "risk", "description": "scores"])
        try await version(s, "1", at: t("01:00"))
        try await version(s, "2", at: t("02:00"))
        try await s.add(t("03:00"), "model.version.evaluated", ["model": "fraud", "version": "1", "metrics": ["auc": 0.91], "passed": true])
        try await s.add(t("04:00"), "model.version.approved", ["model": "fraud", "version": "1", "approver": "user:carol"], actor: "user:carol")
        try await s.add(t("05:00"), "model.version.approved", ["model": "fraud", "version": "2", "approver": "user:maker"], actor: "user:maker")
        try await s.add(t("06:00"), "model.version.archived", ["model": "fraud", "version": "1"])
        let m = try #require(try Registry.models(try s.query()).first)
        #expect(m.team == "risk" && m.description == "scores")
        #expect(m.versions.map(\.version) == ["1", "2"])
        let v1 = m.versions[0]
        #expect(v1.passed == true && v1.metrics?["auc"] == 0.91 && v1.approver == "user:carol" && !v1.selfApproved && v1.archived)
        #expect(v1.datasets == ["tx@2026-11"] && v1.source == "s3://fraud/1" && v1.creator == "user:maker")
        let v2 = m.versions[1]
        #expect(v2.selfApproved)  // reject nothing, but flag it
        #expect(v2.passed == nil && !v2.archived)
    }

    /// One version per alias, with who set it and when; asked as of three points in time.
    @Test func aliasHistoryAsOfThreePoints() async throws {
        let s = try ScenarioLog()
        try await s.add(t("00:00"), "model.registered", ["model": "fraud", "team": "risk"])
        for v in ["1", "2", "3"] { try await version(s, v, at: t("00:00")) }
        let first = try await s.add(t("01:00"), "model.alias.set", ["model": "fraud", "alias": "champion", "version": "1"], actor: "user:ann")
        let second = try await s.add(t("02:00"), "model.alias.set", ["model": "fraud", "alias": "champion", "version": "2"], actor: "user:bob")
        try await s.add(t("02:30"), "model.alias.set", ["model": "fraud", "alias": "challenger", "version": "3"], actor: "user:bob")
        let removed = try await s.add(t("03:00"), "model.alias.removed", ["model": "fraud", "alias": "champion"], actor: "user:cy")
        func aliases(_ asOf: AsOf) throws -> [String: String] {
            Dictionary(uniqueKeysWithValues: try Registry.models(try s.query(asOf)).first!.aliases)
        }
        #expect(try aliases(.offset(first.offset)) == ["champion": "1"])
        #expect(try aliases(.offset(second.offset)) == ["champion": "2"])
        #expect(try aliases(.time(Timestamp(t("02:45"))!)) == ["champion": "2", "challenger": "3"])
        #expect(try aliases(.offset(removed.offset)) == ["challenger": "3"])
        let history = try Registry.models(try s.query()).first!.aliasHistory
        #expect(history.map(\.actor) == ["user:ann", "user:bob", "user:bob", "user:cy"])
        #expect(history.last?.version == nil)
        // Removing an alias that is not set is an anomaly, not an error.
        let bogus = try await s.add(t("04:00"), "model.alias.removed", ["model": "fraud", "alias": "champion"])
        #expect(try Audit.anomalies(try s.query()).contains { $0.offset == bogus.offset })
    }

    @Test func deploymentStates() async throws {
        let s = try ScenarioLog()
        try await s.add(t("00:00"), "model.registered", ["model": "fraud", "team": "risk"])
        for v in ["1", "2"] { try await version(s, v, at: t("00:00")) }
        try await s.add(t("00:10"), "deployment.created", ["deployment": "api", "model": "fraud", "version": "1", "team": "risk", "gpuType": "l4"])
        func state() throws -> Registry.Deployment { try Registry.deployments(try s.query()).first! }
        #expect(try state().state == "stable" && state().live == "1")
        try await s.add(t("01:00"), "rollout.started", ["deployment": "api", "model": "fraud", "toVersion": "2", "steps": [["weight": 10, "minRequests": 100], ["weight": 50, "minRequests": 100]], "analysis": ["maxErrorRate": 0.01, "maxP99Ms": 200]])
        #expect(try state().state == "progressing" && state().canary == "2" && state().weight == 10)
        try await s.add(t("02:00"), "rollout.step.advanced", ["deployment": "api", "version": "2", "weight": 50, "evidence": []], actor: "processor:rollout")
        #expect(try state().weight == 50)
        try await s.add(t("03:00"), "rollout.paused", ["deployment": "api", "version": "2", "reason": "hold"])
        #expect(try state().state == "paused")
        try await s.add(t("04:00"), "rollout.resumed", ["deployment": "api", "version": "2"])
        #expect(try state().state == "progressing")
        let promoted = try await s.add(t("05:00"), "rollout.promoted", ["deployment": "api", "version": "2", "evidence": []], actor: "processor:rollout")
        #expect(try state().state == "stable" && state().live == "2" && state().canary == nil)
        try await s.add(t("06:00"), "rollout.started", ["deployment": "api", "model": "fraud", "toVersion": "1", "steps": [["weight": 20, "minRequests": 100]], "analysis": ["maxErrorRate": 0.01, "maxP99Ms": 200]])
        try await s.add(t("07:00"), "rollout.rolled_back", ["deployment": "api", "version": "1", "reason": "error rate 0.2 > 0.01", "evidence": []], actor: "processor:rollout")
        #expect(try state().state == "rolled_back" && state().live == "2" && state().canary == nil)
        // As of the promotion, it was stable on 2.
        #expect(try Registry.deployments(try s.query(.offset(promoted.offset))).first?.state == "stable")
    }

    @Test func unknownReferencesAreAnomaliesNotErrors() async throws {
        let s = try ScenarioLog()
        let orphan = try await s.add(t("00:00"), "model.version.created", ["model": "ghost", "version": "1", "source": "s3://g", "digest": .string(digest)])
        let evaluation = try await s.add(t("00:01"), "model.version.evaluated", ["model": "ghost", "version": "1", "metrics": [:], "passed": false])
        let rollout = try await s.add(t("00:02"), "rollout.started", ["deployment": "nowhere", "model": "ghost", "toVersion": "1", "steps": [["weight": 1, "minRequests": 1]], "analysis": ["maxErrorRate": 0.1, "maxP99Ms": 1]])
        let q = try s.query()
        let anomalies = try Audit.anomalies(q)
        #expect(Set(anomalies.map(\.offset)) == [orphan.offset, evaluation.offset, rollout.offset])
        #expect(try Registry.models(q).isEmpty)
        // The events stay in the log and in the audit index.
        #expect(try Audit.events(q, .stream, "model-ghost").map(\.offset) == [orphan.offset, evaluation.offset])
    }

    /// Lineage: datasets → job (with allocations) → version → evaluation → approval → aliases →
    /// deployment → rollout decisions → alerts, each with its offset and hash.
    @Test func lineage() async throws {
        let s = try ScenarioLog()
        try await s.add(t("00:00"), "dataset.registered", ["name": "tx", "version": "2026-11", "digest": .string(digest), "source": "s3://tx"])
        try await s.add(t("00:00"), "model.registered", ["model": "fraud", "team": "risk"])
        try await pool(s, gpus: 8, rate: 1)
        try await allocate(s, "train-1", team: "risk", gpus: 2, at: t("00:30"))
        try await release(s, "train-1", team: "risk", gpus: 2, at: t("01:30"))
        try await version(s, "1", at: t("02:00"), job: "train-1")
        try await s.add(t("02:10"), "model.version.evaluated", ["model": "fraud", "version": "1", "metrics": ["auc": 0.9], "passed": true])
        try await s.add(t("02:20"), "model.version.approved", ["model": "fraud", "version": "1", "approver": "user:maker"], actor: "user:maker")
        try await s.add(t("02:30"), "model.alias.set", ["model": "fraud", "alias": "champion", "version": "1"])
        try await s.add(t("03:00"), "deployment.created", ["deployment": "api", "model": "fraud", "version": "1", "team": "risk"])
        try await s.add(t("04:00"), "drift.alerted", ["deployment": "api", "model": "fraud", "version": "1", "feature": "amount", "method": "psi", "value": 0.3, "threshold": 0.25, "severity": "high", "evidence": []], actor: "processor:drift")
        let steps = try Lineage.of(try s.query(), model: "fraud", version: "1")
        #expect(steps.map(\.step) == ["dataset", "training", "training", "training", "version", "evaluation", "approval", "alias", "deployment", "drift-alert"])
        #expect(steps.first { $0.step == "approval" }?.note?.contains("self-approval") == true)
        for step in steps {
            let event = try #require(try s.log.event(at: step.entry.offset))
            #expect(try event.envelope().hash == step.entry.hash)
        }
    }
    /// A gate's verdict on an alias promotion is found through its link to the promotion: by the
    /// promotion's offset, and — as projections built before links were kept by offset have them —
    /// by the promotion's id; with neither link, no verdict.
    @Test func aliasGatesFollowTheirLinkByOffsetOrByID() async throws {
        let s = try ScenarioLog()
        try await s.add(t("00:00"), "model.registered", ["model": "fraud", "team": "risk"])
        try await version(s, "1", at: t("00:00"))
        let promotion = try await s.add(t("01:00"), "model.alias.set", ["model": "fraud", "alias": "champion", "version": "1"])
        let verdict = try await s.add(t("01:00"), "gate.evaluated", [
            "policy": "production", "policyVersion": 1, "promotion": "model.alias.set", "subject": ["model": "fraud", "version": "1", "alias": "champion"],
            "result": "denied", "rules": [["rule": "approval", "verdict": "missing", "reason": "no approval"]], "evidence": [],
        ], actor: "processor:gate", causation: promotion.id)
        func gate() throws -> String? { try Registry.models(try s.query()).first?.aliasHistory.first?.gate?.result }
        #expect(try gate() == "denied")
        // As a database projected before links were kept by offset holds it.
        try await s.store.pool.write { db in
            try db.execute(sql: "DELETE FROM audit_effect_blocks")
            try db.execute(sql: "INSERT INTO audit_causes (cause_id, effect_offset) VALUES (?, ?)", arguments: [Data(promotion.id.bytes), verdict.offset])
        }
        #expect(try gate() == "denied")
        try await s.store.pool.write { db in try db.execute(sql: "DELETE FROM audit_causes") }
        #expect(try gate() == nil)
    }
}

@Suite struct SLOTests {
    func setUp(_ s: ScenarioLog, sli: String = "availability", objective: Double = 0.99) async throws {
        try await s.add(t("00:00"), "slo.defined", ["slo": "api-slo", "deployment": "api", "objective": .number(objective), "sli": .string(sli), "periodDays": 1])
    }

    func window(_ s: ScenarioLog, end: String, requests: Int, errors: Int, slow: Int = 0) async throws {
        try await s.add(end, "serving.window.observed", ["deployment": "api", "version": "1", "windowStart": .string(end), "windowEnd": .string(end), "requests": .number(Double(requests)), "errors": .number(Double(errors)), "slowRequests": .number(Double(slow)), "p99Ms": 10])
    }

    /// good = requests − errors (availability) or requests − slowRequests (latency); budget
    /// remaining = 1 − (bad/total)/(1 − objective); burn over (now − W, now], now = latest windowEnd.
    @Test func goodTotalBudgetAndBurnRates() async throws {
        let s = try ScenarioLog()
        try await setUp(s)
        try await window(s, end: t("10:00"), requests: 1000, errors: 0)
        try await window(s, end: t("11:00"), requests: 1000, errors: 5)
        try await window(s, end: t("11:57"), requests: 1000, errors: 20, slow: 40)
        let status = try #require(try SLOStatus.all(try s.query()).first)
        #expect(status.now.map { Timestamp(milliseconds: $0).description } == t("11:57"))
        #expect(status.total == 3000 && status.good == 2975)
        #expect(abs(status.budgetRemaining! - (1 - (25.0 / 3000) / 0.01)) < 1e-12)
        let burn = Dictionary(uniqueKeysWithValues: status.burnRates)
        #expect(abs(burn["5m"]!! - (20.0 / 1000) / 0.01) < 1e-9)  // only the 11:57 window
        #expect(abs(burn["1h"]!! - (25.0 / 2000) / 0.01) < 1e-9)  // (10:57, 11:57] holds 11:00 and 11:57
        #expect(abs(burn["6h"]!! - (25.0 / 3000) / 0.01) < 1e-9)
    }

    @Test func latencySLICountsSlowRequests() async throws {
        let s = try ScenarioLog()
        try await setUp(s, sli: "latency")
        try await window(s, end: t("10:00"), requests: 1000, errors: 7, slow: 30)
        let status = try #require(try SLOStatus.all(try s.query()).first)
        #expect(status.good == 970)
    }

    /// The period rolls: only windows ending in (now − periodDays, now] count; a window without requests does not exceed.
    @Test func rollingPeriodAndEmptyWindows() async throws {
        let s = try ScenarioLog()
        try await setUp(s)
        try await window(s, end: t("10:00"), requests: 1000, errors: 500)
        try await window(s, end: t("11:00", day: 1), requests: 100, errors: 0)
        var status = try #require(try SLOStatus.all(try s.query()).first)
        #expect(status.total == 100 && status.good == 100)  // the bad window is more than a day old
        try await window(s, end: t("11:10", day: 1), requests: 0, errors: 0)
        status = try #require(try SLOStatus.all(try s.query()).first)
        let burn = Dictionary(uniqueKeysWithValues: status.burnRates)
        #expect(burn["5m"]! == nil)  // no requests in the last 5 minutes
        // As of the first window, the old window was all there was.
        let early = try #require(try SLOStatus.all(try s.query(.time(Timestamp(t("12:00"))!))).first)
        #expect(early.total == 1000 && early.good == 500)
        #expect(early.budgetRemaining! < 0)
    }

    @Test func openAlerts() async throws {
        let s = try ScenarioLog()
        try await setUp(s)
        let alert: JSONValue = ["slo": "api-slo", "deployment": "api", "severity": "page", "longWindow": "1h", "shortWindow": "5m", "burnRateLong": 20, "burnRateShort": 30, "threshold": 14.4, "evidence": []]
        let opened = try await s.add(t("10:00"), "slo.burn.alerted", alert, actor: "processor:slo")
        try await window(s, end: t("10:05"), requests: 10, errors: 0)
        #expect(try SLOStatus.all(try s.query()).first?.openAlerts.map(\.offset) == [opened.offset])
        try await s.add(t("11:00"), "slo.burn.resolved", ["slo": "api-slo", "deployment": "api", "severity": "page", "longWindow": "1h", "shortWindow": "5m"], actor: "processor:slo")
        #expect(try SLOStatus.all(try s.query()).first?.openAlerts.isEmpty == true)
        #expect(try SLOStatus.all(try s.query(.offset(opened.offset))).first?.openAlerts.count == 1)
    }

}
