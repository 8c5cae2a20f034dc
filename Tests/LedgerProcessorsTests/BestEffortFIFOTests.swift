import Foundation
import Testing
import LedgerCore
import LedgerLog
@testable import LedgerProcessors

@Suite struct BestEffortFIFOTests {
    /// The same arrivals as strictFIFOBlocksOnlyTheTeamsOwnLaterJobs, but vision on
    /// BestEffortFIFO: its head that does not fit is passed over, the small job behind it runs.
    @Test func aHeadThatDoesNotFitIsPassedOver() async throws {
        let p = try Play()
        try await p.node("n1", gpus: 8)
        try await p.quota("vision", nominal: 8, strategy: "BestEffortFIFO")
        try await p.queue("v1", team: "vision", gpus: 6)
        try await p.queue("v-head", team: "vision", gpus: 4)
        try await p.queue("v-small", team: "vision", gpus: 1)
        try await p.queue("v-small2", team: "vision", gpus: 1)
        #expect(p.admittedJobs() == ["v1", "v-small", "v-small2"])
        try await p.complete("v1")
        #expect(p.admittedJobs() == ["v1", "v-small", "v-small2", "v-head"])
    }

    /// A v2 quota.set without the field means BestEffortFIFO; StrictFIFO when asked for.
    @Test func theDefaultOfV2IsBestEffortAndStrictStaysStrict() async throws {
        for (strategy, expected) in [("", ["v1", "v-small"]), ("StrictFIFO", ["v1"])] {
            let p = try Play()
            try await p.node("n1", gpus: 8)
            try await p.quota("vision", nominal: 8, strategy: strategy)
            try await p.queue("v1", team: "vision", gpus: 6)
            try await p.queue("v-head", team: "vision", gpus: 4)
            try await p.queue("v-small", team: "vision", gpus: 1)
            #expect(p.admittedJobs() == expected, "strategy \"\(strategy)\"")
        }
    }

    /// Priority still orders the candidates: a passed-over high-priority job goes first as soon
    /// as it fits, before lower-priority jobs that arrived earlier.
    @Test func passedOverJobsKeepTheirPlace() async throws {
        let p = try Play()
        try await p.node("n1", gpus: 8)
        try await p.quota("vision", nominal: 8, strategy: "BestEffortFIFO")
        try await p.queue("running", team: "vision", gpus: 5, priority: 10)
        try await p.queue("big", team: "vision", gpus: 4, priority: 5)  // does not fit (3 free)
        try await p.queue("small", team: "vision", gpus: 2, priority: 0)  // fits: passes big
        #expect(p.admittedJobs() == ["running", "small"])
        try await p.queue("later-small", team: "vision", gpus: 1, priority: 0)  // 1 free: fits
        try await p.complete("running")
        // 5 free now: big (priority 5) before anything of priority 0.
        #expect(p.admittedJobs() == ["running", "small", "later-small", "big"])
    }

    /// The starvation guard: an 8-GPU job under a stream of 1-GPU jobs on one 8-GPU node. Passed
    /// over at every completion (a new small job takes the freed GPU), it reserves the node after
    /// `starvationBound` passes; then no small job is placed there, and as the running ones
    /// complete it is admitted — within the bound plus the node's 8 jobs.
    @Test func aLargeJobUnderAStreamOfSmallOnesIsAdmittedWithinTheBound() async throws {
        let p = try Play()
        try await p.node("n1", gpus: 8)
        try await p.quota("vision", nominal: 8, strategy: "BestEffortFIFO")
        var running: [String] = []
        var next = 0
        func small() async throws {
            next += 1
            try await p.queue("s\(next)", team: "vision", gpus: 1)
        }
        for _ in 0..<8 { try await small() }
        running = p.admittedJobs()
        #expect(running.count == 8)
        try await p.queue("large", team: "vision", gpus: 8)
        // Keep a small job queued behind it at all times; complete the oldest running one each step.
        try await small()
        var completions = 0
        while !p.admittedJobs().contains("large") && completions < 100 {
            let oldest = running.removeFirst()
            try await p.complete(oldest)
            completions += 1
            try await small()
            running = p.admittedJobs().filter { j in j != "large" && !p.of("gpu.released").contains { $0["job"]!.stringValue! == j } }
        }
        #expect(p.admittedJobs().contains("large"))
        // Reserved at the pass-over after the bound; then the 8 jobs on the node finish.
        #expect(completions <= Scheduler.starvationBound + 1 + 8, "admitted after \(completions) completions")
        // It was passed over first (BestEffortFIFO really ran small jobs ahead of it).
        #expect(completions > Scheduler.starvationBound)
        let admitted = p.admittedJobs()
        let largeAt = admitted.firstIndex(of: "large")!
        #expect(admitted[8..<largeAt].count >= Scheduler.starvationBound)
        // Under StrictFIFO the same stream admits it at the first moment the node is empty: no
        // small job passes it at all.
        let strict = try Play()
        try await strict.node("n1", gpus: 8)
        try await strict.quota("vision", nominal: 8, strategy: "StrictFIFO")
        for i in 1...8 { try await strict.queue("s\(i)", team: "vision", gpus: 1) }
        try await strict.queue("large", team: "vision", gpus: 8)
        try await strict.queue("s9", team: "vision", gpus: 1)
        for i in 1...8 { try await strict.complete("s\(i)") }
        #expect(strict.admittedJobs().last == "large")
        #expect(!strict.admittedJobs().contains("s9"))
    }

    /// The reservation keeps other teams' jobs off the node too, and is dropped when the job
    /// is cancelled.
    @Test func aReservationHoldsForEveryTeamAndEndsWithTheJob() async throws {
        let p = try Play()
        try await p.node("n1", gpus: 8)
        try await p.node("n2", gpus: 8)
        try await p.quota("vision", nominal: 16, strategy: "BestEffortFIFO")
        try await p.quota("nlp", nominal: 8, strategy: "BestEffortFIFO")
        // Fill both nodes with 1-GPU vision jobs.
        for i in 1...16 { try await p.queue("s\(i)", team: "vision", gpus: 1) }
        try await p.queue("large", team: "vision", gpus: 8)
        var n = 16
        for i in 1...(Scheduler.starvationBound + 1) {
            try await p.complete("s\(i)")
            n += 1
            try await p.queue("s\(n)", team: "vision", gpus: 1)
        }
        // Reserved now: completions on the reserved node free room no one else gets.
        let scheduler = p.runner.processors[0] as! Scheduler
        let reserved = try #require(scheduler.state.jobs[scheduler.state.jobIndex["large"]!].reserved)
        let reservedNode = scheduler.state.nodes[reserved].name
        let before = p.admittedJobs().count
        let onReserved = p.placement().filter { $0.value == reservedNode && $0.key.hasPrefix("s") }.map(\.key).sorted()
        try await p.complete(onReserved[0])
        try await p.queue("n1", team: "nlp", gpus: 1)
        #expect(p.placement()["n1"] != reservedNode)
        #expect(!p.admittedJobs().dropFirst(before).contains { p.placement()[$0] == reservedNode })
        // Cancelling the large job frees the node for everyone.
        try await p.add("job.cancelled", ["job": "large"])
        #expect(scheduler.state.nodes.allSatisfy { $0.reservedFor == nil })
    }
}
