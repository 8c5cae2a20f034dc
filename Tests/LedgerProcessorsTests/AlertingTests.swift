import Foundation
import Testing
import LedgerCore
import LedgerLog
@testable import LedgerProcessors

/// Helpers for serving windows.
extension Play {
    /// A five-minute serving window ending `minutes` after the play's start.
    @discardableResult
    func window(_ deployment: String, version: String, end minutes: Int, requests: Int, errors: Int = 0, slow: Int = 0, p99: Double = 100) async throws -> (EventID, [(type: String, data: JSONObject)]) {
        let start = Timestamp("2026-11-23T00:00:00.000Z")!.milliseconds
        let end = start + Int64(minutes) * 60_000
        let wanted = end + 1000
        let gap = max(0.001, Double(wanted - clock) / 1000)
        return try await add("serving.window.observed", [
            "deployment": .string(deployment), "version": .string(version),
            "windowStart": .string(Timestamp(milliseconds: end - 300_000).description), "windowEnd": .string(Timestamp(milliseconds: end).description),
            "requests": .number(Double(requests)), "errors": .number(Double(errors)), "slowRequests": .number(Double(slow)), "p99Ms": .number(p99),
        ], after: gap)
    }

    func slo(_ name: String, deployment: String, objective: Double = 0.999, sli: String = "availability") async throws {
        try await add("slo.defined", ["slo": .string(name), "deployment": .string(deployment), "objective": .number(objective), "sli": .string(sli)])
    }

    func rollout(_ deployment: String, to version: String, steps: [(Int, Int)], maxErrorRate: Double = 0.01, maxP99: Double = 300, failureLimit: Int? = nil) async throws -> EventID {
        var analysis: JSONObject = ["maxErrorRate": .number(maxErrorRate), "maxP99Ms": .number(maxP99)]
        if let failureLimit { analysis["failureLimit"] = .number(Double(failureLimit)) }
        return try await add("rollout.started", [
            "deployment": .string(deployment), "model": "m", "toVersion": .string(version),
            "steps": .array(steps.map { ["weight": .number(Double($0.0)), "minRequests": .number(Double($0.1))] }), "analysis": .object(analysis),
        ]).0
    }
}

@Suite struct SLOBurnTests {
    @Test func pageAlertsWhenBothWindowsBurnAndResolvesOnce() async throws {
        let p = try Play()
        try await p.slo("api-avail", deployment: "api")
        // Two healthy hours.
        for m in stride(from: 5, through: 120, by: 5) { try await p.window("api", version: "1", end: m, requests: 1000, errors: 0) }
        #expect(p.of("slo.burn.alerted").isEmpty)
        // A bad window: 5 % errors = burn 50 over 5m; over 1h: 50/1000 of 12000 → burn 4.2: no page yet.
        let (_, first) = try await p.window("api", version: "1", end: 125, requests: 1000, errors: 50)
        #expect(!first.contains { $0.data["severity"] == "page" })
        // (the 3d/6h ticket does fire: two hours of data, burn 2 over both windows)
        #expect(first.contains { $0.data["severity"] == "ticket" && $0.data["burnRateLong"] == .number(2) })
        // More bad windows until the 1h burn passes 14.4 (bad ≥ 173 of 12000).
        var alerted: [(type: String, data: JSONObject)] = []
        var m = 125
        while alerted.isEmpty && m < 200 {
            m += 5
            alerted = try await p.window("api", version: "1", end: m, requests: 1000, errors: 50).1.filter { $0.type == "slo.burn.alerted" && $0.data["severity"] == "page" }
        }
        let page = try #require(alerted.first { $0.data["longWindow"] == "1h" })
        #expect(page.data["severity"] == "page" && page.data["shortWindow"] == "5m" && page.data["threshold"] == .number(14.4))
        #expect(page.data["burnRateLong"]!.doubleValue! > 14.4 && page.data["burnRateShort"]!.doubleValue! > 14.4)
        #expect(m == 140)  // 4 bad windows: 200/12000 = 1.67 % → burn 16.7 (3 gave 12.5)
        // Still bad: never twice for the same open alert.
        let again = try await p.window("api", version: "1", end: m + 5, requests: 1000, errors: 50).1
        #expect(!again.contains { $0.type == "slo.burn.alerted" && $0.data["longWindow"] == "1h" })
        // Healthy again: the 5m window stops burning at once → resolved, once.
        let fixed = try await p.window("api", version: "1", end: m + 10, requests: 1000, errors: 0).1
        #expect(fixed.filter { $0.type == "slo.burn.resolved" && $0.data["longWindow"] == "1h" }.count == 1)
        let later = try await p.window("api", version: "1", end: m + 15, requests: 1000, errors: 0).1
        #expect(!later.contains { $0.type == "slo.burn.resolved" && $0.data["longWindow"] == "1h" })
    }

    @Test func windowsWithoutRequestsNeverExceedAndLatencyCountsSlowRequests() async throws {
        let p = try Play()
        try await p.slo("api-lat", deployment: "api", objective: 0.99, sli: "latency")
        let empty = try await p.window("api", version: "1", end: 5, requests: 0)
        #expect(empty.1.isEmpty)
        // Errors do not count for a latency SLO…
        let errors = try await p.window("api", version: "1", end: 10, requests: 100, errors: 100, slow: 0)
        #expect(errors.1.isEmpty)
        // …slow requests do: 50 % slow of a 1 % budget → burn 50 (both windows of every pair).
        let slow = try await p.window("api", version: "1", end: 15, requests: 100, slow: 100)
        #expect(Set(slow.1.filter { $0.type == "slo.burn.alerted" }.map { $0.data["longWindow"]!.stringValue! }) == ["1h", "6h", "3d"])
        // Evidence: the observations of the short window.
        let page = slow.1.first { $0.data["longWindow"] == "1h" }!
        #expect(page.data["evidence"]?.arrayValue?.count == 1)
    }

    @Test func windowsAreAttributedByWindowEndAndOldOnesLeaveTheWindow() async throws {
        let p = try Play()
        try await p.slo("api-avail", deployment: "api")
        // A very bad window, then a long healthy stretch: after 1h it no longer counts for the 1h window.
        try await p.window("api", version: "1", end: 5, requests: 1000, errors: 500)
        #expect(p.of("slo.burn.alerted").count == 3)
        for m in stride(from: 10, through: 60, by: 5) { try await p.window("api", version: "1", end: m, requests: 1000) }
        // The 5m windows are clean: pages resolved; the 3d/6h ticket persists (500/12000 = burn 41 over 6h).
        #expect(p.of("slo.burn.resolved").map { $0["longWindow"]!.stringValue! }.sorted() == ["1h", "6h"])
        #expect(abs(SLOBurn.burn(.init(requests: 1000, errors: 10, slow: 0), .init(deployment: "api", objective: 0.99, sli: "availability"))! - 1.0) < 1e-9)
    }
}

@Suite struct DriftTests {
    static let bins: JSONValue = ["10", "100", "+Inf"]

    func version(_ p: Play, _ version: String, baseline counts: [Int]) async throws {
        try await p.add("model.version.created", [
            "model": "m", "version": .string(version), "source": "s3://m/", "digest": .string("sha256:" + String(repeating: "a", count: 64)),
            "baseline": ["amount": ["bins": DriftTests.bins, "counts": .array(counts.map { .number(Double($0)) })]],
        ])
    }

    @discardableResult
    func histogram(_ p: Play, _ version: String, _ counts: [Int], bins: JSONValue = DriftTests.bins) async throws -> [(type: String, data: JSONObject)] {
        try await p.add("feature.histogram.observed", [
            "deployment": "api", "model": "m", "version": .string(version), "feature": "amount", "bins": bins,
            "counts": .array(counts.map { .number(Double($0)) }), "windowEnd": .string(Timestamp(milliseconds: p.clock).description),
        ]).1
    }

    @Test func psiMatchesTheFormulaWithItsFloor() {
        // p = (0.5, 0.5, 0), q = (0.25, 0.25, 0.5); the empty bin is floored at 1e-4.
        let expected = (0.5 - 0.25) * log(0.5 / 0.25) * 2 + (1e-4 - 0.5) * log(1e-4 / 0.5)
        #expect(abs(DriftDetector.psi(observed: [50, 50, 0], baseline: [25, 25, 50]) - expected) < 1e-12)
        #expect(DriftDetector.psi(observed: [1, 2, 3], baseline: [10, 20, 30]) == 0)
    }

    @Test func oneAlertPerSeverityPerEpisode() async throws {
        let p = try Play()
        try await version(p, "2", baseline: [300, 500, 200])
        #expect(try await histogram(p, "2", [300, 500, 200]).isEmpty)
        // PSI ≈ 0.13: warning.
        let warning = try await histogram(p, "2", [480, 380, 140])
        #expect(warning.map(\.type) == ["drift.alerted"] && warning[0].data["severity"] == "warning" && warning[0].data["threshold"] == .number(0.1))
        #expect(try await histogram(p, "2", [480, 380, 140]).isEmpty)  // same episode
        // Now high: a new severity alerts once.
        let high = try await histogram(p, "2", [700, 200, 100])
        #expect(high.map { $0.data["severity"]!.stringValue! } == ["high"])
        #expect(high[0].data["value"]!.doubleValue! >= 0.25)
        #expect(try await histogram(p, "2", [480, 380, 140]).isEmpty)  // back to warning level: still the same episode
        // Below 0.1 ends the episode; the next drift alerts again.
        #expect(try await histogram(p, "2", [310, 490, 200]).isEmpty)
        let again = try await histogram(p, "2", [700, 200, 100])
        #expect(again.map { $0.data["severity"]!.stringValue! } == ["high"])
    }

    @Test func noBaselineOrOtherBinsMeansNoAlert() async throws {
        let p = try Play()
        #expect(try await histogram(p, "9", [700, 200, 100]).isEmpty)
        try await version(p, "2", baseline: [300, 500, 200])
        #expect(try await histogram(p, "2", [700, 200, 100], bins: ["5", "50", "+Inf"]).isEmpty)
    }
}

@Suite struct RolloutTests {
    @Test func aCanaryThatPassesEveryStepIsPromoted() async throws {
        let p = try Play()
        let started = try await p.rollout("api", to: "2", steps: [(10, 1000), (50, 2000)])
        var windows: [EventID] = []
        for m in 1...3 { windows.append(try await p.window("api", version: "2", end: m * 5, requests: 400).0) }
        // Stable traffic is not the canary's.
        try await p.window("api", version: "1", end: 16, requests: 5000, errors: 5000)
        let advanced = p.of("rollout.step.advanced")
        #expect(advanced.count == 1 && advanced[0]["weight"] == .number(50))
        #expect(advanced[0]["evidence"] == .array(windows.map { .string($0.description) }))
        // The second step's tally starts at zero: 1,200 requests so far is not enough.
        for m in 4...7 { try await p.window("api", version: "2", end: m * 5, requests: 400) }
        #expect(p.of("rollout.promoted").isEmpty)
        try await p.window("api", version: "2", end: 40, requests: 400)
        #expect(p.of("rollout.promoted").count == 1)
        #expect(p.decisions.allSatisfy { $0.correlation == started.description })
        // Over: later windows decide nothing.
        try await p.window("api", version: "2", end: 45, requests: 4000, errors: 4000)
        #expect(p.decisions.count == 2)
    }

    @Test func failingErrorRateAtTheSecondStepRollsBackNamingMetricValueAndThreshold() async throws {
        let p = try Play()
        _ = try await p.rollout("api", to: "2", steps: [(10, 1000), (50, 1000)])
        try await p.window("api", version: "2", end: 5, requests: 1000, errors: 1)
        try await p.window("api", version: "2", end: 10, requests: 600, errors: 30, p99: 350)
        let (last, _) = try await p.window("api", version: "2", end: 15, requests: 600, errors: 30)
        let back = try #require(p.of("rollout.rolled_back").first)
        let checks = back["checks"]!.arrayValue!
        #expect(checks.count == 2)  // both metrics fail: the reason names each
        #expect(checks[0]["metric"] == "errorRate" && checks[0]["value"] == .number(0.05) && checks[0]["threshold"] == .number(0.01))
        #expect(checks[1]["metric"] == "p99Ms" && checks[1]["value"] == .number(350) && checks[1]["threshold"] == .number(300))
        let reason = back["reason"]!.stringValue!
        #expect(reason.contains("step 2 of 2") && reason.contains("error rate 5% > 1%") && reason.contains("p99 latency 350 ms > 300 ms"))
        #expect(back["evidence"]!.arrayValue!.count == 2 && back["evidence"]!.arrayValue!.last == .string(last.description))
    }

    @Test func failuresWithinTheLimitStartTheStepOver() async throws {
        let p = try Play()
        _ = try await p.rollout("api", to: "2", steps: [(10, 1000)], failureLimit: 1)
        try await p.window("api", version: "2", end: 5, requests: 1000, errors: 100)
        #expect(p.decisions.isEmpty)  // failure 1 ≤ limit 1: fresh tally
        try await p.window("api", version: "2", end: 10, requests: 1000, errors: 0)
        #expect(p.of("rollout.promoted").count == 1)  // the fresh tally passed
        let q = try Play()
        _ = try await q.rollout("api", to: "2", steps: [(10, 1000)], failureLimit: 1)
        try await q.window("api", version: "2", end: 5, requests: 1000, errors: 100)
        try await q.window("api", version: "2", end: 10, requests: 1000, errors: 100)
        #expect(q.of("rollout.rolled_back").count == 1)
        #expect(q.of("rollout.rolled_back")[0]["reason"]!.stringValue!.contains("failure 2, limit 1"))
    }

    @Test func pausedRolloutsTallyNothingButStillRollBackOnAlerts() async throws {
        let p = try Play()
        _ = try await p.rollout("api", to: "2", steps: [(10, 1000)])
        try await p.add("rollout.paused", ["deployment": "api", "version": "2", "reason": "hold"])
        try await p.window("api", version: "2", end: 5, requests: 5000)
        #expect(p.decisions.isEmpty)
        try await p.add("rollout.resumed", ["deployment": "api", "version": "2"])
        try await p.window("api", version: "2", end: 10, requests: 500)
        #expect(p.decisions.isEmpty)  // only the 500 after resuming count
        try await p.add("rollout.paused", ["deployment": "api", "version": "2", "reason": "hold again"])
        // A page alert for the deployment's SLO rolls back at once, paused or not.
        try await p.slo("api-avail", deployment: "api")
        let (bad, after) = try await p.window("api", version: "1", end: 15, requests: 1000, errors: 1000)
        let alert = try #require(p.decisions.first { $0.type == "slo.burn.alerted" && $0.data["longWindow"] == "1h" })
        let back = try #require(after.first { $0.type == "rollout.rolled_back" })
        #expect(back.data["evidence"] == .array([.string(DecisionID.derive(processor: "slo", trigger: bad, index: 0).description)]))
        #expect(alert.causation == bad)
        #expect(back.data["reason"]!.stringValue!.contains("SLO api-avail paged"))
        #expect(p.of("rollout.rolled_back").count == 1)  // not once per alert pair
    }

    @Test func highDriftOnTheCanaryVersionRollsBack() async throws {
        let p = try Play()
        let d = DriftTests()
        try await d.version(p, "2", baseline: [300, 500, 200])
        _ = try await p.rollout("api", to: "2", steps: [(10, 100_000)])
        try await d.histogram(p, "2", [450, 400, 150])  // warning only: no rollback
        #expect(p.of("rollout.rolled_back").isEmpty)
        try await d.histogram(p, "2", [900, 50, 50])
        let back = try #require(p.of("rollout.rolled_back").first)
        #expect(back["checks"]!.arrayValue![0]["metric"] == "psi.amount")
        #expect(back["reason"]!.stringValue!.contains("high drift of feature amount"))
        // A client's own end of a rollout ends it too: a new one, then a manual rollback, then no decisions.
        _ = try await p.rollout("api", to: "3", steps: [(10, 100)])
        try await p.add("rollout.rolled_back", ["deployment": "api", "version": "3", "reason": "manual", "evidence": []])
        let none = try await p.window("api", version: "3", end: 5, requests: 1000)
        #expect(none.1.isEmpty)
    }
}
