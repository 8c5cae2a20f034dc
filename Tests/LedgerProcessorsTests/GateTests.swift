import Foundation
import Testing
import LedgerCore
import LedgerLog
@testable import LedgerProcessors

/// Helpers for the governance events.
extension Play {
    static let digest = "sha256:" + String(repeating: "ab", count: 32)

    func grant(_ principal: String, _ role: String, prefix: String? = nil) async throws {
        var data: JSONObject = ["principal": .string(principal), "role": .string(role)]
        if let prefix { data["streamPrefix"] = .string(prefix) }
        try await add("access.granted", .object(data), actor: "user:admin", schemaVersion: 2)
    }

    func revoke(_ principal: String, _ role: String) async throws {
        try await add("access.revoked", ["principal": .string(principal), "role": .string(role)], actor: "user:admin", schemaVersion: 2)
    }

    func policy(_ name: String = "prod", version: Int = 1, scope: JSONObject = ["deployments": ["*"], "aliases": ["champion"]], rules: JSONObject) async throws {
        try await add("policy.set", ["policy": .string(name), "version": .number(Double(version)), "scope": .object(scope), "rules": .object(rules)], actor: "user:admin")
    }

    func dataset(_ name: String, _ version: String = "1", classification: String = "internal") async throws {
        try await add("dataset.registered", ["name": .string(name), "version": .string(version), "digest": .string(Self.digest),
            "source": .string("s3://data/\(name)/"), "classification": .string(classification)])
    }

    /// A trained version: job queued on `datasets`, completed with `outcome` (nil: still running),
    /// and the version created by `creator`.
    func trained(_ model: String, _ version: String, datasets: [String] = [], outcome: String? = "succeeded", creator: String = "user:dana") async throws {
        let job = "train-\(model)-\(version)"
        try await add("job.queued", ["job": .string(job), "team": "risk", "gpuType": "a100", "gpus": 1, "priority": 0,
            "model": .string(model), "datasets": .array(datasets.map { .string($0) })])
        if let outcome { try await add("job.completed", ["job": .string(job), "outcome": .string(outcome)]) }
        try await add("model.version.created", ["model": .string(model), "version": .string(version), "source": .string("s3://models/\(model)/\(version)"),
            "digest": .string(Self.digest), "job": .string(job)], actor: creator)
    }

    func evaluate(_ model: String, _ version: String, _ metrics: JSONObject, passed: Bool = true, evaluator: String = "ci:eval") async throws {
        try await add("model.version.evaluated", ["model": .string(model), "version": .string(version), "metrics": .object(metrics), "passed": .bool(passed),
            "evaluator": .string(evaluator)], actor: evaluator)
    }

    func approve(_ model: String, _ version: String, by approver: String, appendedBy: String? = nil) async throws {
        try await add("model.version.approved", ["model": .string(model), "version": .string(version), "approver": .string(approver)], actor: appendedBy ?? approver)
    }

    @discardableResult
    func alias(_ model: String, _ alias: String, _ version: String) async throws -> [(type: String, data: JSONObject)] {
        try await add("model.alias.set", ["model": .string(model), "alias": .string(alias), "version": .string(version)]).1
    }

    func deploy(_ deployment: String, _ model: String, _ version: String) async throws -> [(type: String, data: JSONObject)] {
        try await add("deployment.created", ["deployment": .string(deployment), "model": .string(model), "version": .string(version), "team": "risk"]).1
    }

    /// The gate verdicts so far.
    var gates: [JSONObject] { of("gate.evaluated") }

    /// The rule verdicts of the last gate.
    func lastRules() -> [String: RuleVerdict] {
        var out: [String: RuleVerdict] = [:]
        for r in gates.last?["rules"]?.arrayValue ?? [] {
            let v = RuleVerdict(json: r)!
            out[v.rule + (v.metric.map { "." + $0 } ?? "")] = v
        }
        return out
    }
}

@Suite struct GateTests {
    /// A registered model with a policy holding every rule, approvers and a privacy officer.
    static func governed(rules: JSONObject? = nil) async throws -> Play {
        let p = try Play()
        try await p.add("model.registered", ["model": "fraud", "team": "risk"])
        try await p.grant("user:carol", "model-approver")
        try await p.grant("user:pat", "privacy")
        try await p.policy(rules: rules ?? [
            "evaluation": ["metrics": [["metric": "auc", "op": ">=", "threshold": 0.85], ["metric": "latency_p99_ms", "op": "<=", "threshold": 50]], "passed": true],
            "approval": ["minApprovers": 1, "role": "model-approver"],
            "lineage": [:],
            "classification": ["role": "privacy"],
        ])
        return p
    }

    @Test func aVersionMeetingEveryRulePassesWithItsEvidence() async throws {
        let p = try await Self.governed()
        try await p.dataset("clicks")
        try await p.trained("fraud", "2", datasets: ["clicks@1"])
        try await p.evaluate("fraud", "2", ["auc": 0.9, "latency_p99_ms": 40])
        try await p.approve("fraud", "2", by: "user:carol")
        let out = try await p.deploy("fraud-prod", "fraud", "2")
        let gate = try #require(out.first { $0.type == "gate.evaluated" }?.data)
        #expect(gate["result"] == "passed")
        #expect(gate["policy"] == "prod" && gate["policyVersion"] == 1 && gate["promotion"] == "deployment.created")
        #expect(gate["subject"] == ["model": "fraud", "version": "2", "deployment": "fraud-prod"])
        let rules = p.lastRules()
        #expect(Set(rules.keys) == ["evaluation.metric.auc", "evaluation.metric.latency_p99_ms", "evaluation.passed", "approval", "lineage.job",
                                    "lineage.succeeded", "lineage.datasets", "classification"])
        #expect(rules.values.allSatisfy { $0.verdict == .passed })
        #expect(rules["evaluation.metric.auc"]?.value == .number(0.9) && rules["evaluation.metric.auc"]?.threshold == .number(0.85))
        // Evidence: the policy, the version, the evaluation, the approval and carol's grant, the job, the dataset.
        #expect(gate["evidence"]!.arrayValue!.count == 8)
    }

    @Test func aMetricBelowItsThresholdDeniesWithTheWorstValue() async throws {
        let p = try await Self.governed(rules: ["evaluation": ["metrics": [["metric": "auc", "op": ">=", "threshold": 0.85]]]])
        try await p.trained("fraud", "2")
        try await p.evaluate("fraud", "2", ["auc": 0.91], evaluator: "ci:eval")
        try await p.evaluate("fraud", "2", ["auc": 0.84], evaluator: "ci:holdout")
        _ = try await p.deploy("fraud-prod", "fraud", "2")
        #expect(p.gates.last?["result"] == "denied")
        let auc = try #require(p.lastRules()["evaluation.metric.auc"])
        #expect(auc.verdict == .failed && auc.value == .number(0.84))
        // The holdout evaluator re-evaluates: its latest evaluation replaces its earlier one.
        try await p.evaluate("fraud", "2", ["auc": 0.86], evaluator: "ci:holdout")
        _ = try await p.deploy("fraud-prod", "fraud", "2")
        #expect(p.gates.last?["result"] == "passed")
        #expect(p.lastRules()["evaluation.metric.auc"]?.value == .number(0.86))
        // An upper bound, and a metric nobody reports.
        let q = try await Self.governed(rules: ["evaluation": ["metrics": [["metric": "latency_p99_ms", "op": "<", "threshold": 50], ["metric": "recall", "op": ">", "threshold": 0.5]]]])
        try await q.trained("fraud", "2")
        try await q.evaluate("fraud", "2", ["latency_p99_ms": 50])
        _ = try await q.deploy("fraud-prod", "fraud", "2")
        #expect(q.lastRules()["evaluation.metric.latency_p99_ms"]?.verdict == .failed)
        #expect(q.lastRules()["evaluation.metric.recall"]?.verdict == .missing)
    }

    @Test func evaluationPassedAndNoWorseThanTheChampion() async throws {
        let p = try await Self.governed(rules: ["evaluation": ["passed": true, "noWorseThanChampion": ["metric": "auc", "by": 0.02]]])
        try await p.trained("fraud", "1")
        try await p.evaluate("fraud", "1", ["auc": 0.90])
        try await p.alias("fraud", "champion", "1")
        #expect(p.lastRules()["evaluation.noWorseThanChampion.auc"]?.verdict == .passed)  // no champion before
        try await p.trained("fraud", "2")
        try await p.evaluate("fraud", "2", ["auc": 0.87], passed: true)
        try await p.alias("fraud", "champion", "2")
        #expect(p.gates.last?["result"] == "denied")
        let rule = try #require(p.lastRules()["evaluation.noWorseThanChampion.auc"])
        #expect(rule.verdict == .failed && rule.value == .number(0.87) && rule.threshold == .number(0.88))
        try await p.trained("fraud", "3")
        try await p.evaluate("fraud", "3", ["auc": 0.885], passed: false)
        try await p.alias("fraud", "champion", "3")
        #expect(p.lastRules()["evaluation.noWorseThanChampion.auc"]?.verdict == .passed)
        #expect(p.lastRules()["evaluation.passed"]?.verdict == .failed)
        // The denied move did not make 2 the champion in the gate's eyes: 3 was compared with 1.
        #expect(p.lastRules()["evaluation.noWorseThanChampion.auc"]?.threshold == .number(0.88))
        try await p.trained("fraud", "4")
        try await p.alias("fraud", "champion", "4")
        #expect(p.lastRules()["evaluation.passed"]?.verdict == .missing)
        #expect(p.lastRules()["evaluation.noWorseThanChampion.auc"]?.verdict == .missing)
    }

    @Test func approvalsCountOnlyIndependentRoleHoldersWhoAppendedThemThemselves() async throws {
        let p = try await Self.governed(rules: ["approval": ["minApprovers": 2, "role": "model-approver"]])
        try await p.grant("user:dana", "model-approver")
        try await p.trained("fraud", "2", creator: "user:dana")
        try await p.approve("fraud", "2", by: "user:dana")  // the creator
        try await p.approve("fraud", "2", by: "user:carol", appendedBy: "user:dana")  // on carol's behalf
        try await p.approve("fraud", "2", by: "user:erin")  // no role when approving
        try await p.grant("user:erin", "model-approver")
        _ = try await p.deploy("fraud-prod", "fraud", "2")
        var rule = try #require(p.lastRules()["approval"])
        #expect(rule.verdict == .failed && rule.value == .number(0) && rule.threshold == .number(2))
        #expect(rule.reason.contains("user:dana (the version's creator)"))
        #expect(rule.reason.contains("appended by user:dana"))
        #expect(rule.reason.contains("user:erin (did not hold model-approver when approving)"))
        try await p.approve("fraud", "2", by: "user:carol")
        try await p.approve("fraud", "2", by: "user:erin")
        _ = try await p.deploy("fraud-prod", "fraud", "2")
        rule = try #require(p.lastRules()["approval"])
        #expect(rule.verdict == .passed && rule.value == .number(2))
        // A revoked approver's earlier approval still counts (they held the role when approving);
        // a role nobody holds any more makes the rule unsatisfiable, not silently passing.
        try await p.revoke("user:carol", "model-approver")
        try await p.revoke("user:erin", "model-approver")
        try await p.revoke("user:dana", "model-approver")
        _ = try await p.deploy("fraud-prod", "fraud", "2")
        #expect(p.lastRules()["approval"]?.verdict == .unsatisfiable)
        #expect(p.gates.last?["result"] == "denied")
    }

    @Test func independenceCanBeWaivedAndAnUnheldRoleIsUnsatisfiable() async throws {
        let p = try await Self.governed(rules: ["approval": ["independent": false]])
        try await p.trained("fraud", "2", creator: "user:dana")
        try await p.approve("fraud", "2", by: "user:dana")
        _ = try await p.deploy("fraud-prod", "fraud", "2")
        #expect(p.lastRules()["approval"]?.verdict == .passed)
        let q = try await Self.governed(rules: ["approval": ["role": "risk-committee"], "classification": ["role": "dpo"]])
        try await q.trained("fraud", "2")
        _ = try await q.deploy("fraud-prod", "fraud", "2")
        #expect(q.lastRules()["approval"]?.verdict == .unsatisfiable)
        #expect(q.lastRules()["classification"]?.verdict == .unsatisfiable)  // even without a pii dataset
    }

    @Test func lineageNeedsTheJobItsSuccessAndRegisteredDatasets() async throws {
        let p = try await Self.governed(rules: ["lineage": [:]])
        try await p.trained("fraud", "2", outcome: nil)
        _ = try await p.deploy("fraud-prod", "fraud", "2")
        #expect(p.lastRules()["lineage.job"]?.verdict == .passed)
        #expect(p.lastRules()["lineage.succeeded"]?.verdict == .missing)
        try await p.trained("fraud", "3", datasets: ["clicks@1"], outcome: "failed")
        _ = try await p.deploy("fraud-prod", "fraud", "3")
        #expect(p.lastRules()["lineage.succeeded"]?.verdict == .failed)
        #expect(p.lastRules()["lineage.datasets"]?.verdict == .failed)
        #expect(p.lastRules()["lineage.datasets"]?.reason == "not registered: clicks@1")
        try await p.dataset("clicks")
        _ = try await p.deploy("fraud-prod", "fraud", "3")
        #expect(p.lastRules()["lineage.datasets"]?.verdict == .passed)
        // A version that names no job.
        try await p.add("model.version.created", ["model": "fraud", "version": "4", "source": "s3://m/4", "digest": .string(Play.digest)])
        _ = try await p.deploy("fraud-prod", "fraud", "4")
        #expect(p.lastRules()["lineage.job"]?.verdict == .failed)
        #expect(p.lastRules()["lineage.succeeded"]?.verdict == .failed)
        // Only some checks asked for.
        let q = try await Self.governed(rules: ["lineage": ["job": false, "datasets": false]])
        try await q.trained("fraud", "2")
        _ = try await q.deploy("fraud-prod", "fraud", "2")
        #expect(Set(q.lastRules().keys) == ["lineage.succeeded"])
    }

    @Test func aPIITrainedVersionNeedsAPrivacyApprovalByAnotherHolder() async throws {
        let p = try await Self.governed(rules: ["classification": ["role": "privacy"]])
        try await p.dataset("transactions", classification: "pii")
        try await p.grant("user:dana", "privacy")
        try await p.trained("fraud", "2", datasets: ["transactions@1"], creator: "user:dana")
        _ = try await p.deploy("fraud-prod", "fraud", "2")
        #expect(p.lastRules()["classification"]?.verdict == .missing)
        try await p.approve("fraud", "2", by: "user:dana")  // the creator, although a privacy holder
        try await p.approve("fraud", "2", by: "user:carol")  // not a privacy holder
        _ = try await p.deploy("fraud-prod", "fraud", "2")
        #expect(p.lastRules()["classification"]?.verdict == .missing)
        try await p.approve("fraud", "2", by: "user:pat")
        _ = try await p.deploy("fraud-prod", "fraud", "2")
        #expect(p.lastRules()["classification"]?.verdict == .passed)
        #expect(p.lastRules()["classification"]?.value == .text("user:pat"))
        // A version trained on internal data only is not concerned.
        try await p.dataset("clicks")
        try await p.trained("fraud", "3", datasets: ["clicks@1"])
        _ = try await p.deploy("fraud-prod", "fraud", "3")
        #expect(p.lastRules()["classification"]?.verdict == .passed)
    }

    @Test func scopeSelectsModelsTeamsDeploymentsAndAliases() async throws {
        let p = try Play()
        try await p.add("model.registered", ["model": "fraud", "team": "risk"])
        try await p.add("model.registered", ["model": "search", "team": "web"])
        try await p.policy("risk-prod", scope: ["teams": ["risk"], "deployments": ["fraud-prod"]], rules: ["lineage": [:]])
        try await p.policy("champions", scope: ["aliases": ["champion"]], rules: ["lineage": [:]])
        try await p.policy("everything", scope: [:], rules: ["lineage": [:]])
        try await p.trained("fraud", "1")
        try await p.trained("search", "1")
        func gated(_ step: () async throws -> [(type: String, data: JSONObject)]) async throws -> [String] {
            try await step().filter { $0.type == "gate.evaluated" }.map { $0.data["policy"]!.stringValue! }
        }
        #expect(try await gated { try await p.deploy("fraud-prod", "fraud", "1") } == ["everything", "risk-prod"])
        #expect(try await gated { try await p.deploy("fraud-staging", "fraud", "1") } == ["everything"])
        #expect(try await gated { try await p.deploy("fraud-prod", "search", "1") } == ["everything"])
        #expect(try await gated { try await p.alias("fraud", "champion", "1") } == ["champions", "everything"])
        #expect(try await gated { try await p.alias("fraud", "candidate", "1") } == ["everything"])
        let gate = try #require(p.gates.last)
        #expect(gate["subject"] == ["model": "fraud", "version": "1", "alias": "candidate"])
        let policy = GovernancePolicy(data: ["policy": "x", "version": 1, "scope": ["deployments": ["*"]], "rules": ["lineage": [:]]], id: .random())!
        #expect(policy.gates(model: "m", team: nil, promotion: Promotion(type: "rollout.started", model: "m", version: "1", kind: .deployment("any"))))
        #expect(!policy.gates(model: "m", team: nil, promotion: Promotion(type: "model.alias.set", model: "m", version: "1", kind: .alias("champion"))))
    }

    @Test func thePolicyInForceIsTheOneAtTheEvent() async throws {
        let p = try await Self.governed(rules: ["evaluation": ["metrics": [["metric": "auc", "op": ">=", "threshold": 0.85]]]])
        try await p.trained("fraud", "2")
        try await p.evaluate("fraud", "2", ["auc": 0.87])
        _ = try await p.deploy("fraud-a", "fraud", "2")
        #expect(p.gates.last?["result"] == "passed" && p.gates.last?["policyVersion"] == 1)
        try await p.policy(version: 2, rules: ["evaluation": ["metrics": [["metric": "auc", "op": ">=", "threshold": 0.9]]]])
        _ = try await p.deploy("fraud-b", "fraud", "2")
        #expect(p.gates.last?["result"] == "denied" && p.gates.last?["policyVersion"] == 2)
    }

    @Test func aDeniedRolloutIsRolledBackAtOnceAndNeverAdvanced() async throws {
        let p = try await Self.governed(rules: ["approval": ["role": "model-approver"]])
        try await p.trained("fraud", "2", creator: "user:dana")
        try await p.approve("fraud", "2", by: "user:dana")
        let started = try await p.add("rollout.started", [
            "deployment": "fraud-prod", "model": "fraud", "toVersion": "2",
            "steps": [["weight": 10, "minRequests": 100]], "analysis": ["maxErrorRate": 0.01, "maxP99Ms": 300],
        ])
        let back = try #require(started.1.first { $0.type == "rollout.rolled_back" }?.data)
        #expect(started.1.map(\.type) == ["gate.evaluated", "rollout.rolled_back"])
        #expect(back["reason"]!.stringValue!.hasPrefix("gate denied by policy prod v1: approval: 0 of 1 independent approval by model-approver"))
        #expect(back["checks"] == [["metric": "gate.approval", "value": 0, "threshold": 1]])
        let gateID = p.decisions.first { $0.type == "gate.evaluated" }!
        #expect(gateID.causation == started.0 && gateID.correlation == started.0.description)
        // Canary windows after the denial change nothing.
        try await p.window("fraud-prod", version: "2", end: 5, requests: 1000)
        #expect(p.of("rollout.step.advanced", "rollout.promoted").isEmpty)
        #expect(p.of("rollout.rolled_back").count == 1)
    }

    @Test func theControllerTakesTheGatesVerdictAtTheRolloutItself() async throws {
        // The rollout, its canary windows and more all in the log before any processor runs (a
        // bulk import): the controller's decisions do not depend on when the verdict is read back.
        for (approved, expected) in [(true, ["gate.evaluated", "rollout.step.advanced"]), (false, ["gate.evaluated", "rollout.rolled_back"])] {
            let p = try await Self.governed(rules: ["approval": ["role": "model-approver"]])
            try await p.trained("fraud", "2")
            if approved { try await p.approve("fraud", "2", by: "user:carol") }
            let start = p.clock
            func request(_ type: String, _ data: JSONObject, _ seconds: Int64) -> AppendRequest {
                AppendRequest(stream: EventCatalog.standard.type(type)!.stream(for: data)!, type: type, data: data, id: .random(),
                    time: Timestamp(milliseconds: start + seconds * 1000), actor: "user:test")
            }
            let window: JSONObject = ["deployment": "fraud-prod", "version": "2", "windowStart": "2026-11-23T00:00:00.000Z", "windowEnd": "2026-11-23T00:05:00.000Z",
                                      "requests": 500, "errors": 0, "slowRequests": 0, "p99Ms": 100]
            let startedID = EventID.random()
            var started = request("rollout.started", ["deployment": "fraud-prod", "model": "fraud", "toVersion": "2",
                "steps": [["weight": 10, "minRequests": 100], ["weight": 50, "minRequests": 100_000]], "analysis": ["maxErrorRate": 0.01, "maxP99Ms": 300]], 1)
            started.id = startedID
            _ = try await p.log.append([started, request("serving.window.observed", window, 2)], policy: AppendPolicy(actor: "user:admin", mode: .admin))
            let made = try await p.runner.runToQuiescence()
            #expect(made.map(\.decision.type) == expected)
            let verdict = try #require(made.first { $0.decision.type == "gate.evaluated" })
            #expect(verdict.decision.id == DecisionID.derive(processor: "gate", trigger: startedID, index: 0))
            if !approved {
                let back = try #require(made.last?.decision)
                #expect(back.causationId == startedID)
                #expect(back.data["evidence"]?.arrayValue?.first == .string(verdict.decision.id.description))
                #expect(verdict.offset < made.last!.offset)  // the verdict is in the log before the rollback citing it
            }
        }
    }

    @Test func aMalformedPolicyIsRefusedAtAppendAndWritesNothing() async throws {
        let p = try Play()
        let data: JSONObject = ["policy": "prod", "version": 1, "scope": [:], "rules": ["evaluation": ["metrics": [["metric": "auc", "op": "=>", "threshold": 0.9]]]]]
        let results = await p.log.append(requests: [[AppendRequest(stream: "policy-prod", type: "policy.set", data: data)]], policy: AppendPolicy(actor: "user:admin"))
        guard case .failure(let error) = results[0] else { Issue.record("a malformed policy was accepted"); return }
        #expect(error.message.contains("/data/rules/evaluation/metrics/0/op"), "\(error.message)")
        #expect(p.log.head == 0)
    }

    @Test func theGateStateSurvivesASnapshot() async throws {
        let p = try await Self.governed()
        try await p.trained("fraud", "2")
        try await p.approve("fraud", "2", by: "user:carol")
        let gate = try #require(p.runner.processors.first { $0.name == "gate" } as? Gate)
        let bytes = try gate.snapshot()
        let copy = Gate()
        try copy.restore(bytes)
        #expect(try copy.snapshot() == bytes)
        let promotion = Promotion(type: "rollout.started", model: "fraud", version: "2", kind: .deployment("fraud-prod"))
        let policy = try #require(copy.state.policies(gating: promotion).first)
        #expect(copy.state.evaluate(policy, promotion: promotion) == gate.state.evaluate(policy, promotion: promotion))
        #expect(copy.state.evaluate(policy, promotion: promotion).rules.first { $0.rule == "approval" }?.verdict == .passed)
    }
}

@Suite struct ComplianceTests {
    @Test func theDefaultControlsMapEveryRuleAndABadFileIsRefused() throws {
        let controls = try ComplianceReport.controls(path: nil)
        #expect(controls.contains { $0.id == "SOC2-CC8.1" } && controls.contains { $0.id == "ISO27001-A.8.32" })
        // Every rule a gate can report is served by some control, and access changes too.
        for rule in ["evaluation.metric", "evaluation.passed", "evaluation.noWorseThanChampion", "approval", "lineage.job", "lineage.succeeded",
                     "lineage.datasets", "classification"] {
            #expect(controls.contains { $0.serves(rule) }, "\(rule)")
        }
        #expect(controls.contains { $0.rules.contains("access") })
        #expect(!controls.contains { $0.serves("evaluationX") && !$0.rules.contains("evaluationX") })
        let dir = TemporaryDirectory()
        let bad = dir.path + "/controls.json"
        try #"{"controls": [{"id": "X"}]}"#.write(toFile: bad, atomically: true, encoding: .utf8)
        #expect { try ComplianceReport.controls(path: bad) } throws: { ($0 as? LedgerError)?.code == .usage }
        #expect { try ComplianceReport.controls(path: dir.path + "/missing.json") } throws: { ($0 as? LedgerError)?.code == .usage }
    }

    @Test func theReportListsPromotionsWithTheirGatesOutcomesAndAccessChanges() async throws {
        let p = try await GateTests.governed(rules: ["approval": ["role": "model-approver"]])
        try await p.trained("fraud", "2", creator: "user:dana")
        _ = try await p.add("rollout.started", ["deployment": "fraud-prod", "model": "fraud", "toVersion": "2",
            "steps": [["weight": 10, "minRequests": 100]], "analysis": ["maxErrorRate": 0.01, "maxP99Ms": 300]])
        try await p.approve("fraud", "2", by: "user:carol")
        try await p.alias("fraud", "champion", "2")
        try await p.alias("fraud", "candidate", "2")
        let from = Timestamp("2026-11-23T00:00:00.000Z")!
        let report = try ComplianceReport.build(p.log, from: from, to: from.adding(milliseconds: 86_400_000), controls: try ComplianceReport.controls(path: nil))
        #expect(report.promotions.map(\.result) == ["denied", "passed", "ungated"])  // candidate is outside the scope
        #expect(report.promotions[0].outcome?.hasPrefix("rolled back: gate denied by policy prod v1") == true)
        #expect(report.promotions[1].gates.first?.approvers == ["user:carol"])
        #expect(report.promotions[1].gates.first?.evidence.allSatisfy { $0.offset != nil && $0.hash?.count == 64 } == true)
        #expect(report.access.map(\.principal) == ["user:carol", "user:pat"])
        let segregation = try #require(report.controls.first { $0.id == "ISO27001-A.5.3" })
        #expect(report.findings(segregation).map { $0.rules.map(\.verdict) } == [[.missing], [.passed]])
        #expect(report.totals.denied == 1 && report.totals.ungated == 1)
    }
}
