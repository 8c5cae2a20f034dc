import Foundation
import Testing
import LedgerCore
import LedgerLog
@testable import LedgerProcessors

/// Scheduler rules of SEMANTICS.md that had no test of their own.
@Suite struct SchedulerRuleTests {
    /// StrictFIFO blocks a team's later jobs of the head's gpuType only: its jobs of another type go on.
    @Test func aBlockedHeadDoesNotBlockTheTeamsJobsOfAnotherGPUType() async throws {
        let p = try Play()
        try await p.node("n1", "a100", gpus: 8)
        try await p.node("n2", "l4", gpus: 4)
        try await p.quota("vision", "a100", nominal: 8)
        try await p.quota("vision", "l4", nominal: 4)
        try await p.queue("running", team: "vision", gpus: 4)
        try await p.queue("head", team: "vision", gpus: 8)  // does not fit while "running" runs
        try await p.queue("behind", team: "vision", gpus: 2)  // strict: waits behind the head
        let l4 = try await p.queue("other-type", team: "vision", gpus: 2, type: "l4")
        #expect(l4.map(\.type) == ["job.admitted", "gpu.allocated"])
        #expect(p.admittedJobs() == ["running", "other-type"])
        try await p.complete("running")
        #expect(p.admittedJobs() == ["running", "other-type", "head"])
    }

    /// When no single node can be freed enough by the preemptor's possible victims, nothing is
    /// preempted (no victims taken for nothing); once one can, the preemption happens.
    @Test func whenNoNodeCanBeFreedEnoughNothingIsPreempted() async throws {
        let p = try Play()
        try await p.node("n1", gpus: 4)
        try await p.node("n2", gpus: 4)
        try await p.quota("vision", nominal: 16)
        try await p.queue("keep-1", team: "vision", gpus: 2, priority: 20)
        try await p.queue("low-1", team: "vision", gpus: 2, priority: 0)
        try await p.queue("keep-2", team: "vision", gpus: 2, priority: 20)
        try await p.queue("low-2", team: "vision", gpus: 2, priority: 0)
        #expect(p.placement() == ["keep-1": "n1", "low-1": "n1", "keep-2": "n2", "low-2": "n2"])
        // 4 GPUs at priority 10: on each node only 2 are held by lower priorities.
        let none = try await p.queue("urgent", team: "vision", gpus: 4, priority: 10)
        #expect(none.isEmpty)
        #expect(p.of("job.preempted").isEmpty)
        // keep-1 ends: n1 has 2 free and low-1's 2 — enough; low-1 is the one victim.
        let freed = try await p.complete("keep-1")
        #expect(freed.map(\.type) == ["gpu.released", "job.preempted", "gpu.released", "job.admitted", "gpu.allocated"])
        #expect(p.of("job.preempted").map { $0["job"]!.stringValue! } == ["low-1"])
        #expect(p.placement()["urgent"] == "n1")
    }

    /// InCohortReclamation is for a preemptor within its nominal quota: one that would itself be
    /// borrowing reclaims nothing and waits; one within its quota reclaims.
    @Test func aBorrowingPreemptorIsRefusedReclamation() async throws {
        let p = try Play()
        try await p.node("n1", gpus: 8)
        try await p.quota("vision", nominal: 4, borrowing: 4, cohort: "research")
        try await p.quota("nlp", nominal: 4, borrowing: 4, cohort: "research")
        try await p.queue("nlp-big", team: "nlp", gpus: 8)  // borrows vision's idle 4
        #expect(p.admittedJobs() == ["nlp-big"])
        let borrowing = try await p.queue("vision-6", team: "vision", gpus: 6)  // 6 > nominal 4: would borrow
        #expect(borrowing.isEmpty)
        #expect(p.of("job.preempted").isEmpty)
        try await p.add("job.cancelled", ["job": "vision-6"])
        let within = try await p.queue("vision-4", team: "vision", gpus: 4)  // within nominal: reclaims
        #expect(within.map(\.type) == ["job.preempted", "gpu.released", "job.admitted", "gpu.allocated"])
        #expect(p.of("job.preempted").first?["reason"] == "InCohortReclamation")
    }

    /// A decision's envelope time never goes back: when later client events were appended before
    /// the processors ran, the admission carries the head's time, while `waitedSeconds` is measured
    /// in event time to its trigger.
    @Test func decisionTimeFollowsALaterHeadAndWaitedSecondsTheTrigger() async throws {
        let p = try Play()
        try await p.node("n1", gpus: 8)
        try await p.quota("vision", nominal: 8)
        try await p.queue("first", team: "vision", gpus: 8)
        try await p.queue("second", team: "vision", gpus: 8, after: 10)
        let queuedAt = p.clock
        let (completed, _) = try await p.add("job.completed", ["job": "first", "outcome": "succeeded"], after: 50, run: false)
        let completedAt = p.clock
        try await p.add("model.registered", ["model": "m", "team": "vision"], after: 100, run: false)
        let headAt = p.clock
        _ = try await p.runner.runToQuiescence()
        let reader = try LogReader(directory: p.dir.path)
        let cursor = reader.cursor(from: 0)
        var admission: (time: Timestamp, data: JSONObject, causation: EventID?)? = nil
        while let v = try cursor.next() {
            guard v.type == "job.admitted" else { continue }
            let e = try v.envelope()
            if e.data["job"] == "second" { admission = (v.time, e.data, e.causationId) }
        }
        let a = try #require(admission)
        #expect(a.causation == completed)
        #expect(a.time.milliseconds == headAt)  // not completedAt: times never decrease
        #expect(a.data["waitedSeconds"] == .number(Double(completedAt - queuedAt) / 1000))  // 50 s
    }
}

/// Rollout-controller rules of SEMANTICS.md that had no test of their own.
@Suite struct RolloutRuleTests {
    /// A client's `rollout.promoted` ends the rollout: later canary windows decide nothing.
    @Test func aClientsPromotionEndsTheRollout() async throws {
        let p = try Play()
        _ = try await p.rollout("api", to: "2", steps: [(10, 1000), (50, 1000)])
        try await p.add("rollout.promoted", ["deployment": "api", "version": "2", "evidence": []])
        let after = try await p.window("api", version: "2", end: 5, requests: 5000, errors: 5000)
        #expect(after.1.isEmpty)
        #expect(p.decisions.isEmpty)
    }

    /// Only a `page` rolls back: a `ticket` for the deployment's SLO leaves the rollout running.
    @Test func aTicketAlertDoesNotRollBack() async throws {
        let p = try Play()
        try await p.slo("api-avail", deployment: "api")
        _ = try await p.rollout("api", to: "2", steps: [(10, 100_000)])
        // 0.2 % errors on a 0.1 % budget: burn 2 in every window — above the ticket's 1, below both pages.
        for m in 1...3 { try await p.window("api", version: "1", end: m * 5, requests: 1000, errors: 2) }
        #expect(p.of("slo.burn.alerted").map { $0["severity"]!.stringValue! } == ["ticket"])
        #expect(p.of("rollout.rolled_back").isEmpty)
    }

    /// High drift of a version that is not the canary's (the stable one) is alerted, not rolled back.
    @Test func highDriftOfANonCanaryVersionDoesNotRollBack() async throws {
        let p = try Play()
        let d = DriftTests()
        try await d.version(p, "1", baseline: [300, 500, 200])
        try await d.version(p, "2", baseline: [300, 500, 200])
        _ = try await p.rollout("api", to: "2", steps: [(10, 100_000)])
        let high = try await d.histogram(p, "1", [900, 50, 50])
        #expect(high.map(\.type) == ["drift.alerted"] && high[0].data["severity"] == "high" && high[0].data["version"] == "1")
        #expect(p.of("rollout.rolled_back").isEmpty)
        // The same drift on the canary rolls back.
        let canary = try await d.histogram(p, "2", [900, 50, 50])
        #expect(canary.map(\.type) == ["drift.alerted", "rollout.rolled_back"])
    }
}
