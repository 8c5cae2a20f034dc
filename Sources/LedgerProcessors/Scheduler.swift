import Foundation
public import LedgerCore

/// The GPU scheduler (SEMANTICS.md, Scheduler): Kueue-style team quotas per GPU type with
/// cohorts and borrowing, priority then FIFO with StrictFIFO per team, best-fit placement on one
/// node, preemption of borrowed capacity (`InCohortReclamation`) and of lower priority within a
/// team (`InClusterQueue`), releases on completion, cancellation, preemption and node removal.
///
/// Only the head of each team's queue per GPU type is ever looked at, and only for the GPU types
/// an event changed, so 10,000 queued jobs cost nothing per event.
public final class Scheduler: Processor {
    public let name = "scheduler"
    public let inputTypes: Set<String> = [
        "node.registered", "node.removed", "quota.set", "job.queued", "job.completed", "job.cancelled", "gpu.allocated", "gpu.released",
    ]

    struct Node: Codable {
        var name: String
        var gpuType: String
        var capacity: Int
        var used: Int
        var removed: Bool
        /// Jobs running on the node (indices into `jobs`), in admission order.
        var jobs: [Int]
        /// BestEffortFIFO's starvation guard: the job this node is kept for (nothing else is
        /// placed on it until that job is admitted).
        var reservedFor: Int? = nil
        var free: Int { removed ? 0 : max(0, capacity - used) }
    }

    struct Quota: Codable {
        var nominal: Int
        var borrowingLimit: Int
        var cohort: String?
        var weight: Double
        /// `BestEffortFIFO`, or nil for `StrictFIFO` (what every quota was before v2).
        var bestEffort: Bool? = nil
        var limit: Int { nominal + (cohort == nil ? 0 : borrowingLimit) }
        var isBestEffort: Bool { bestEffort ?? false }
    }

    enum JobStatus: String, Codable { case queued, running, finished }

    struct Job: Codable {
        var name: String
        var team: String
        var gpuType: String
        /// Index of its team/gpuType in `State.pools`.
        var pool: Int
        var gpus: Int
        var priority: Int
        /// Offset of its `job.queued`: FIFO order, kept across preemptions.
        var sequence: Int64
        var queuedID: EventID
        /// Event time (ms) from which waiting counts: the queueing, or the last preemption.
        var waitingSince: Int64
        var status: JobStatus
        /// Index into `nodes` while running.
        var node: Int?
        /// Admission counter (later admissions are preempted first).
        var admission: Int64
        /// Allocated by someone else (an import, a manual allocation): occupancy, never a victim.
        var external: Bool
        /// BestEffortFIFO: how many times a later job of its team was admitted while it did not fit.
        var passedOver: Int? = nil
        /// The node kept for it once it was passed over more than ``Scheduler/starvationBound`` times.
        var reserved: Int? = nil
    }

    /// One team's share of one GPU type: its quota, usage and queue.
    struct Pool: Codable {
        var team: String
        var gpuType: String
        var quota: Quota?
        var usage = 0
        /// Queued jobs (indices into `jobs`), the head *last*: ascending in (priority, then
        /// earlier `job.queued`), so that admitting the head is O(1).
        var queue: [Int] = []
        /// Priority → running jobs the scheduler admitted (possible victims).
        var running: [Int: Int] = [:]
        var nominal: Int { quota?.nominal ?? 0 }
    }

    struct State: Codable, Sendable {
        var nodes: [Node] = []
        var nodeIndex: [String: Int] = [:]
        /// gpuType → node indices, sorted by node name.
        var nodesByType: [String: [Int]] = [:]
        var pools: [Pool] = []
        /// "team/gpuType" → index into `pools`.
        var poolIndex: [String: Int] = [:]
        /// gpuType → pools of that type, sorted by team.
        var poolsByType: [String: [Int]] = [:]
        /// "cohort/gpuType" → member pools, sorted by team.
        var cohorts: [String: [Int]] = [:]
        /// Known jobs; a finished job's slot is reused, so memory follows the active jobs, not
        /// every job the log ever saw.
        var jobs: [Job] = []
        var jobIndex: [String: Int] = [:]
        var freeSlots: [Int] = []
        var admissions: Int64 = 0
    }

    /// BestEffortFIFO's starvation bound: a job passed over more than this many times (a later job
    /// of its team admitted while it did not fit) reserves the node where it fits soonest; nothing
    /// else is placed there, and its team's later jobs no longer pass it, until it is admitted.
    public static let starvationBound = 8

    var state = State()
    /// Output events made since creation (for the benchmark).
    public private(set) var decisionCount = 0

    public init() {}

    public func capture() -> StateCapture { StateCapture(state: state) }
    public func restore(_ bytes: [UInt8]) throws {
        state = try JSONDecoder().decode(State.self, from: Data(bytes))
        freeCount = [:]
        noPlan = [:]
        memberCache = []
        largestCache = [:]
        for n in state.nodes.indices { countFree(n, 1) }
    }

    /// Derived, like ``freeCount``: bumped by every change a preemption plan depends on (a node's
    /// usage, capacity or reservation, a pool's usage, a quota, a pool created), so that a head
    /// found to have no plan is not searched again until something changed.
    var planEpoch = 0
    /// Job → the epoch at which it had no preemption plan.
    var noPlan: [Int: Int] = [:]

    /// Derived from `state` (never in a snapshot): per GPU type, how many nodes have each number
    /// of free GPUs — so that a head that fits nowhere is known at once, without a scan.
    var freeCount: [String: [Int]] = [:]

    func countFree(_ n: Int, _ delta: Int) {
        let node = state.nodes[n]
        let f = node.free
        var counts = freeCount[node.gpuType] ?? []
        freeCount[node.gpuType] = nil
        if counts.count <= f { counts += Array(repeating: 0, count: f + 1 - counts.count) }
        counts[f] += delta
        freeCount[node.gpuType] = counts
    }

    /// Changes a node, keeping ``freeCount`` in step.
    @inline(__always)
    func changeNode(_ n: Int, _ body: (inout Node) -> Void) {
        planEpoch &+= 1
        countFree(n, -1)
        body(&state.nodes[n])
        countFree(n, 1)
    }

    // MARK: applying events

    public func apply(_ event: Envelope) -> [Decision] {
        var out = DecisionBuilder(processor: name, trigger: event)
        // A v1 quota.set reads as StrictFIFO (the runner hands events over upcast already; the
        // check keeps a direct caller right without copying every envelope).
        let d = Upcasting.hasUpcasters(event.type) ? event.upcast().data : event.data
        var dirty: Set<String> = []
        switch event.type {
        case "node.registered":
            guard let node = d.string("node"), let type = d.string("gpuType"), let count = d.int("gpuCount") else { break }
            largestCache.removeAll()
            let n = nodeNumber(node, type)
            if state.nodes[n].gpuType != type {
                state.nodesByType[state.nodes[n].gpuType]?.removeAll { $0 == n }
                dirty.insert(state.nodes[n].gpuType)
                changeNode(n) { $0.gpuType = type }
                insertNode(n, type)
            }
            changeNode(n) {
                $0.capacity = count
                $0.removed = false
            }
            dirty.insert(type)
        case "node.removed":
            guard let node = d.string("node"), let n = state.nodeIndex[node] else { break }
            largestCache.removeAll()
            changeNode(n) { $0.removed = true }
            unreserve(node: n)
            for j in state.nodes[n].jobs where !state.jobs[j].external {
                preempt(j, preemptor: nil, reason: "NodeRemoved", at: event.time.milliseconds, &out)
            }
            dirty.insert(state.nodes[n].gpuType)
        case "quota.set":
            guard let team = d.string("team"), let type = d.string("gpuType"), let nominal = d.int("nominal") else { break }
            planEpoch &+= 1
            let p = poolNumber(team, type)
            if let old = state.pools[p].quota?.cohort { state.cohorts[old + "/" + type]?.removeAll { $0 == p } }
            let strategy = d.string("queueingStrategy") ?? "BestEffortFIFO"  // v2's default (a v1 event was upcast to StrictFIFO)
            let q = Quota(
                nominal: nominal, borrowingLimit: d.int("borrowingLimit") ?? 0, cohort: d.string("cohort"), weight: d.double("weight") ?? 1,
                bestEffort: strategy == "BestEffortFIFO" ? true : nil)
            state.pools[p].quota = q
            if let cohort = q.cohort { insertSorted(&state.cohorts[cohort + "/" + type, default: []], p) }
            memberCache.removeAll()
            dirty.insert(type)
        case "job.queued":
            guard let name = d.string("job"), let team = d.string("team"), let type = d.string("gpuType"), let gpus = d.int("gpus") else { break }
            if let existing = state.jobIndex[name], state.jobs[existing].status != .finished { break }  // already known and active
            let job = Job(
                name: name, team: team, gpuType: type, pool: poolNumber(team, type), gpus: gpus, priority: d.int("priority") ?? 0,
                sequence: event.offset, queuedID: event.id, waitingSince: event.time.milliseconds, status: .queued, node: nil, admission: 0,
                external: false)
            let j = store(job)
            if let reason = neverAdmissible(job) {
                finish(j)
                out.add(stream: "job-" + name, type: "job.rejected", data: ["job": .string(name), "reason": .string(reason)], correlation: event.id.description)
                break
            }
            enqueue(j)
            dirty.insert(type)
        case "job.completed", "job.cancelled":
            guard let name = d.string("job"), let j = state.jobIndex[name] else { break }
            switch state.jobs[j].status {
            case .running:
                release(j, &out)  // whoever allocated it: the scheduler releases on completion
                finish(j)
                dirty.insert(state.jobs[j].gpuType)
            case .queued:
                dequeue(j)
                finish(j)
            case .finished: break
            }
        case "gpu.allocated":
            // Someone else's allocation (ours are recognised by id and never reach here).
            guard let name = d.string("job"), let node = d.string("node"), let type = d.string("gpuType"), let gpus = d.int("gpus"),
                let team = d.string("team")
            else { break }
            let j = state.jobIndex[name] ?? store(Job(
                name: name, team: team, gpuType: type, pool: poolNumber(team, type), gpus: gpus, priority: 0, sequence: event.offset,
                queuedID: event.id, waitingSince: event.time.milliseconds, status: .finished, node: nil, admission: 0, external: true))
            if state.jobs[j].status == .running { break }  // already booked: a GPU is never booked twice
            if state.jobs[j].status == .queued { dequeue(j) }
            let n = nodeNumber(node, type)
            state.admissions += 1
            state.jobs[j].status = .running
            state.jobs[j].node = n
            state.jobs[j].gpus = gpus
            state.jobs[j].external = true
            state.jobs[j].admission = state.admissions
            changeNode(n) { $0.used += gpus }
            state.nodes[n].jobs.append(j)
            state.pools[state.jobs[j].pool].usage += gpus
            dirty.insert(type)
        case "gpu.released":
            guard let name = d.string("job"), let j = state.jobIndex[name], state.jobs[j].status == .running,
                let n = state.jobs[j].node, state.nodes[n].name == d.string("node")
            else { break }
            free(j)
            finish(j)
            dirty.insert(state.jobs[j].gpuType)
        default: break
        }
        for type in dirty.sorted() { schedule(type, at: event.time.milliseconds, &out) }
        decisionCount += out.decisions.count
        return out.decisions
    }

    // MARK: bookkeeping

    func insertSorted(_ list: inout [Int], _ value: Int) {
        if list.contains(value) { return }
        list.append(value)
        list.sort()
    }

    func nodeNumber(_ name: String, _ type: String) -> Int {
        if let n = state.nodeIndex[name] { return n }
        state.nodes.append(Node(name: name, gpuType: type, capacity: 0, used: 0, removed: false, jobs: []))
        let n = state.nodes.count - 1
        countFree(n, 1)
        state.nodeIndex[name] = n
        insertNode(n, type)
        return n
    }

    func insertNode(_ n: Int, _ type: String) {
        var list = state.nodesByType[type] ?? []
        state.nodesByType[type] = nil
        let name = state.nodes[n].name
        let i = list.firstIndex { state.nodes[$0].name > name } ?? list.count
        list.insert(n, at: i)
        state.nodesByType[type] = list
    }

    func poolNumber(_ team: String, _ type: String) -> Int {
        let key = team + "/" + type
        if let p = state.poolIndex[key] { return p }
        state.pools.append(Pool(team: team, gpuType: type))
        planEpoch &+= 1
        memberCache.removeAll()
        let p = state.pools.count - 1
        state.poolIndex[key] = p
        var list = state.poolsByType[type] ?? []
        let i = list.firstIndex { state.pools[$0].team > team } ?? list.count
        list.insert(p, at: i)
        state.poolsByType[type] = list
        return p
    }

    func store(_ job: Job) -> Int {
        if let j = state.jobIndex[job.name] {
            state.jobs[j] = job
            noPlan[j] = nil
            return j
        }
        let j: Int
        if let slot = state.freeSlots.popLast() {
            j = slot
            state.jobs[j] = job
            noPlan[j] = nil
        } else {
            state.jobs.append(job)
            j = state.jobs.count - 1
        }
        state.jobIndex[job.name] = j
        return j
    }

    /// A job that is over (rejected, completed, cancelled, released by others): forgotten, its
    /// slot free for the next one. Later events about it change nothing.
    func finish(_ j: Int) {
        if let n = state.jobs[j].reserved { unreserve(node: n) }
        state.jobs[j].status = .finished
        state.jobIndex[state.jobs[j].name] = nil
        state.freeSlots.append(j)
    }

    @inline(__always)
    func before(_ a: Int, _ b: Int) -> Bool {
        let x = state.jobs[a]
        let y = state.jobs[b]
        return x.priority != y.priority ? x.priority > y.priority : x.sequence < y.sequence
    }

    func enqueue(_ j: Int) {
        let p = state.jobs[j].pool
        var lo = 0
        var hi = state.pools[p].queue.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if before(state.pools[p].queue[mid], j) { hi = mid } else { lo = mid + 1 }
        }
        state.pools[p].queue.insert(j, at: lo)
    }

    func dequeue(_ j: Int) {
        let p = state.jobs[j].pool
        if let i = state.pools[p].queue.lastIndex(of: j) { state.pools[p].queue.remove(at: i) }
    }

    // MARK: admission

    func quota(_ p: Int) -> Quota { state.pools[p].quota ?? Quota(nominal: 0, borrowingLimit: 0, cohort: nil, weight: 1) }

    func members(_ p: Int) -> [Int] {
        if p < memberCache.count, let cached = memberCache[p] { return cached }
        let list: [Int]
        if let cohort = state.pools[p].quota?.cohort {
            list = state.cohorts[cohort + "/" + state.pools[p].gpuType] ?? [p]
        } else {
            list = [p]
        }
        if memberCache.count <= p { memberCache += Array(repeating: nil, count: p + 1 - memberCache.count) }
        memberCache[p] = list
        return list
    }

    /// Derived (never in a snapshot): pool → ``members(_:)``, emptied whenever a quota is set or a
    /// pool created (the only changes to cohorts).
    var memberCache: [[Int]?] = []

    func largestNode(_ type: String) -> Int {
        if let cached = largestCache[type] { return cached }
        let largest = (state.nodesByType[type] ?? []).reduce(0) { m, n in state.nodes[n].removed ? m : max(m, state.nodes[n].capacity) }
        largestCache[type] = largest
        return largest
    }

    /// Derived (never in a snapshot): GPU type → ``largestNode(_:)``, emptied whenever a node is
    /// registered or removed (the only changes to capacity).
    var largestCache: [String: Int] = [:]

    /// Why a job can never be admitted, or nil.
    func neverAdmissible(_ job: Job) -> String? {
        guard let q = state.pools[job.pool].quota, q.limit > 0 else { return "NoQuota" }
        if job.gpus > q.limit { return "ExceedsQuota" }
        if job.gpus > largestNode(job.gpuType) { return "ExceedsNodeSize" }
        return nil
    }

    /// Whether the quota rules (a) and (b) admit `gpus` more for pool `p`, with `usageOf` as usage.
    func quotaAdmits(_ p: Int, _ gpus: Int, usageOf: (Int) -> Int) -> Bool {
        let q = quota(p)
        let after = usageOf(p) + gpus
        guard after <= q.limit else { return false }
        if after > q.nominal {
            guard q.cohort != nil else { return false }
            var total = 0
            var nominal = 0
            for m in members(p) {
                total += usageOf(m)
                nominal += state.pools[m].nominal
            }
            guard total + gpus <= nominal else { return false }
        }
        return true
    }

    /// The fitting node with the fewest free GPUs, ties by name — leaving out nodes kept for
    /// another job (BestEffortFIFO's starvation guard).
    func bestFit(_ type: String, _ gpus: Int, for j: Int) -> Int? {
        // The tightest free count that some node has, then the first such node by name that is
        // not kept for another job (all kept: the next count up). No node with room: nil at once.
        guard let counts = freeCount[type] else { return nil }
        var f = max(gpus, 0)
        while f < counts.count {
            if counts[f] > 0 {
                for n in state.nodesByType[type] ?? [] where state.nodes[n].free == f {
                    if let holder = state.nodes[n].reservedFor, holder != j { continue }
                    return n
                }
            }
            f += 1
        }
        return nil
    }

    func schedule(_ type: String, at now: Int64, _ out: inout DecisionBuilder) {
        let pools = state.poolsByType[type] ?? []
        // Per pool number, for this pass: blocked (StrictFIFO head that does not fit), and for
        // BestEffortFIFO the jobs passed over and the smallest size that did not fit (no larger
        // job of the pool fits either until something is admitted: quota and node room only
        // shrink with size). Arrays by pool number, not hash tables: this loop is the scheduler.
        var blocked = [Bool](repeating: false, count: state.pools.count)
        var skipped = [[Int]?](repeating: nil, count: state.pools.count)
        var smallestMiss = [Int?](repeating: nil, count: state.pools.count)
        while true {
            // The best candidate among the pools not blocked: priority, then FIFO.
            var head: Int? = nil
            for p in pools where !blocked[p] {
                guard let first = candidate(p, skipped: skipped[p], smallestMiss: smallestMiss[p]) else { continue }
                if head == nil || before(first, head!) { head = first }
            }
            guard let j = head else { return }
            let p = state.jobs[j].pool
            let gpus = state.jobs[j].gpus
            if quotaAdmits(p, gpus, usageOf: { self.state.pools[$0].usage }), let node = bestFit(type, gpus, for: j) {
                admit(j, on: node, at: now, &out)
                // Everything of the team it went past was passed over once more.
                for s in skipped[p] ?? [] where state.jobs[s].status == .queued { passOver(s) }
                skipped[p] = nil
                smallestMiss[p] = nil
                continue
            }
            // Preemption is tried for a team's true head only.
            if state.pools[p].queue.last == j, let (node, victims) = preemptionPlan(j) {
                for (victim, reason) in victims { preempt(victim, preemptor: state.jobs[j].name, reason: reason, at: now, &out) }
                admit(j, on: node, at: now, &out)
                for q in pools {
                    blocked[q] = false
                    skipped[q] = nil
                    smallestMiss[q] = nil
                }
                continue
            }
            // A job that cannot fit now waits, even if the quota was lowered or nodes removed
            // since it was queued (rejection is decided once, when a job is queued; a node may
            // come back). StrictFIFO: it blocks its team's later jobs of this type. BestEffortFIFO:
            // it is passed over and the team's next job is tried — unless it holds a reservation.
            if !quota(p).isBestEffort || state.jobs[j].reserved != nil {
                blocked[p] = true
            } else {
                if skipped[p] == nil { skipped[p] = [] }
                skipped[p]!.append(j)
                smallestMiss[p] = min(smallestMiss[p] ?? Int.max, gpus)
            }
        }
    }

    /// The job pool `p` offers next: its head (StrictFIFO), or the first job in order that was not
    /// passed over in this pass and could fit (BestEffortFIFO); nil when none. A passed-over job
    /// holding a reservation stops the scan: the team waits behind it.
    func candidate(_ p: Int, skipped: [Int]?, smallestMiss: Int?) -> Int? {
        let queue = state.pools[p].queue
        guard let head = queue.last else { return nil }
        guard let skipped, !skipped.isEmpty else { return head }
        var i = queue.count - 1
        while i >= 0 {
            let j = queue[i]
            if skipped.contains(j) {
                if state.jobs[j].reserved != nil { return nil }
            } else if state.jobs[j].gpus < (smallestMiss ?? Int.max) {
                return j
            }
            i -= 1
        }
        return nil
    }

    /// A later job of its team was admitted while job `j` did not fit; past the bound, `j`
    /// reserves the node where it fits soonest.
    func passOver(_ j: Int) {
        let count = (state.jobs[j].passedOver ?? 0) + 1
        state.jobs[j].passedOver = count
        guard count > Scheduler.starvationBound, state.jobs[j].reserved == nil else { return }
        let gpus = state.jobs[j].gpus
        var best: Int? = nil
        for n in state.nodesByType[state.jobs[j].gpuType] ?? [] {
            let node = state.nodes[n]
            guard !node.removed, node.capacity >= gpus, node.reservedFor == nil else { continue }
            if best == nil || node.free > state.nodes[best!].free { best = n }  // ties: the earlier name
        }
        guard let n = best else { return }
        state.nodes[n].reservedFor = j
        planEpoch &+= 1
        state.jobs[j].reserved = n
    }

    func unreserve(node n: Int) {
        guard let j = state.nodes[n].reservedFor else { return }
        state.nodes[n].reservedFor = nil
        planEpoch &+= 1
        if state.jobs[j].reserved == n { state.jobs[j].reserved = nil }
    }

    func admit(_ j: Int, on n: Int, at now: Int64, _ out: inout DecisionBuilder) {
        dequeue(j)
        if let r = state.jobs[j].reserved { unreserve(node: r) }
        state.jobs[j].passedOver = nil
        let p = state.jobs[j].pool
        state.pools[p].usage += state.jobs[j].gpus
        let after = state.pools[p].usage
        let gpus = state.jobs[j].gpus
        changeNode(n) { $0.used += gpus }
        state.nodes[n].jobs.append(j)
        state.admissions += 1
        state.jobs[j].admission = state.admissions
        state.jobs[j].status = .running
        state.jobs[j].node = n
        state.pools[p].running[state.jobs[j].priority, default: 0] += 1
        let job = state.jobs[j]
        let q = quota(p)
        let borrowed = after > q.nominal
        var share = 0.0
        if borrowed, q.cohort != nil {
            let total = members(p).reduce(0) { $0 + state.pools[$1].nominal }
            if total > 0 { share = rounded(Double(after - q.nominal) / Double(total) / q.weight, 6) }
        }
        let waited = Double(max(0, now - job.waitingSince)) / 1000
        let correlation = job.queuedID.description
        let node = state.nodes[n].name
        out.add(stream: "job-" + job.name, type: "job.admitted",
            data: ["job": .string(job.name), "node": .string(node), "gpus": .number(Double(job.gpus)), "waitedSeconds": .number(waited),
                   "borrowed": .bool(borrowed), "clusterQueueShare": .number(share)], correlation: correlation)
        out.add(stream: "job-" + job.name, type: "gpu.allocated",
            data: ["job": .string(job.name), "node": .string(node), "gpuType": .string(job.gpuType), "gpus": .number(Double(job.gpus)),
                   "team": .string(job.team)], correlation: correlation)
    }

    /// Takes a running job's GPUs back (no output).
    func free(_ j: Int) {
        guard let n = state.jobs[j].node else { return }
        let gpus = state.jobs[j].gpus
        changeNode(n) { $0.used = max(0, $0.used - gpus) }
        if let i = state.nodes[n].jobs.firstIndex(of: j) { state.nodes[n].jobs.remove(at: i) }
        let p = state.jobs[j].pool
        state.pools[p].usage = max(0, state.pools[p].usage - gpus)
        if !state.jobs[j].external, let c = state.pools[p].running[state.jobs[j].priority] {
            state.pools[p].running[state.jobs[j].priority] = c > 1 ? c - 1 : nil
        }
        state.jobs[j].node = nil
    }

    func release(_ j: Int, _ out: inout DecisionBuilder) {
        guard let n = state.jobs[j].node else { return }
        free(j)
        let job = state.jobs[j]
        out.add(stream: "job-" + job.name, type: "gpu.released",
            data: ["job": .string(job.name), "node": .string(state.nodes[n].name), "gpuType": .string(job.gpuType), "gpus": .number(Double(job.gpus)),
                   "team": .string(job.team)], correlation: job.queuedID.description)
    }

    func preempt(_ j: Int, preemptor: String?, reason: String, at now: Int64, _ out: inout DecisionBuilder) {
        guard state.jobs[j].status == .running else { return }
        let name = state.jobs[j].name
        var data: JSONObject = ["job": .string(name), "reason": .string(reason)]
        if let preemptor { data["preemptor"] = .string(preemptor) }
        out.add(stream: "job-" + name, type: "job.preempted", data: data, correlation: state.jobs[j].queuedID.description)
        release(j, &out)
        state.jobs[j].status = .queued
        state.jobs[j].waitingSince = now
        enqueue(j)  // at its original position: the order key is its first job.queued
    }

    /// The node where the fewest victims make room for job `j`, and those victims with their reason.
    func preemptionPlan(_ j: Int) -> (Int, [(Int, String)])? {
        if noPlan[j] == planEpoch { return nil }
        let plan = searchPreemptionPlan(j)
        if plan == nil { noPlan[j] = planEpoch }
        return plan
    }

    func searchPreemptionPlan(_ j: Int) -> (Int, [(Int, String)])? {
        let job = (pool: state.jobs[j].pool, gpus: state.jobs[j].gpus, priority: state.jobs[j].priority, gpuType: state.jobs[j].gpuType)
        let p = job.pool
        let q = quota(p)
        let withinNominal = state.pools[p].usage + job.gpus <= q.nominal
        // Cheap refusal first: no lower-priority job of the team running, no borrower to reclaim from.
        let ownLower = state.pools[p].running.keys.contains { $0 < job.priority }
        let borrowers = withinNominal && q.cohort != nil ? members(p).filter { $0 != p && state.pools[$0].usage > state.pools[$0].nominal } : []
        guard ownLower || !borrowers.isEmpty else { return nil }
        var best: (count: Int, node: Int, victims: [(Int, String)])? = nil
        // Usage after the victims chosen so far on the node being tried: by pool number, the
        // pools changed for one node put back before the next.
        var usageAfter = state.pools.map(\.usage)
        var changed: [Int] = []
        var candidates: [Int] = []
        var victims: [(Int, String)] = []
        for n in state.nodesByType[job.gpuType] ?? [] {
            guard !state.nodes[n].removed, state.nodes[n].capacity >= job.gpus else { continue }
            if let holder = state.nodes[n].reservedFor, holder != j { continue }  // kept for another job
            let nodeFree = state.nodes[n].free
            // Candidates on this node: lowest priority first, then the latest admitted.
            candidates.removeAll(keepingCapacity: true)
            var reachable = nodeFree
            for r in state.nodes[n].jobs where !state.jobs[r].external {
                let pool = state.jobs[r].pool
                if pool == p ? state.jobs[r].priority < job.priority : borrowers.contains(pool) {
                    candidates.append(r)
                    reachable += state.jobs[r].gpus
                }
            }
            guard !candidates.isEmpty, reachable >= job.gpus else { continue }
            candidates.sort {
                let (pa, pb) = (state.jobs[$0].priority, state.jobs[$1].priority)
                return pa != pb ? pa < pb : state.jobs[$0].admission > state.jobs[$1].admission
            }
            for c in changed { usageAfter[c] = state.pools[c].usage }
            changed.removeAll(keepingCapacity: true)
            var free = nodeFree
            victims.removeAll(keepingCapacity: true)
            var fits = false
            for r in candidates {
                if let b = best, victims.count >= b.count { break }
                let pool = state.jobs[r].pool
                let gpus = state.jobs[r].gpus
                let use = usageAfter[pool]
                // Only capacity a team is borrowing at that moment can be reclaimed.
                if pool != p && use <= state.pools[pool].nominal { continue }
                victims.append((r, pool == p ? "InClusterQueue" : "InCohortReclamation"))
                usageAfter[pool] = use - gpus
                changed.append(pool)
                free += gpus
                if free >= job.gpus && quotaAdmits(p, job.gpus, usageOf: { usageAfter[$0] }) {
                    fits = true
                    break
                }
            }
            if fits && (best == nil || victims.count < best!.count) {
                best = (victims.count, n, victims)
                if victims.count == 1 { break }  // nothing beats one victim; later names lose ties
            }
        }
        return best.map { ($0.node, $0.victims) }
    }

    // MARK: figures

    /// Jobs waiting, per team (sorted).
    public func queued() -> [(team: String, jobs: Int)] {
        var count: [String: Int] = [:]
        for pool in state.pools { count[pool.team, default: 0] += pool.queue.count }
        return count.keys.sorted().map { ($0, count[$0]!) }
    }
}
