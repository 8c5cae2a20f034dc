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
        /// Jobs running on the node, in admission order.
        var jobs: [String]
        var free: Int { removed ? 0 : max(0, capacity - used) }
    }

    struct Quota: Codable {
        var nominal: Int
        var borrowingLimit: Int
        var cohort: String?
        var weight: Double
        var limit: Int { nominal + (cohort == nil ? 0 : borrowingLimit) }
    }

    enum JobStatus: String, Codable { case queued, running, finished }

    struct Job: Codable {
        var name: String
        var team: String
        var gpuType: String
        var gpus: Int
        var priority: Int
        /// Offset of its `job.queued`: FIFO order, kept across preemptions.
        var sequence: Int64
        var queuedID: EventID
        /// Event time (ms) from which waiting counts: the queueing, or the last preemption.
        var waitingSince: Int64
        var status: JobStatus
        var node: String?
        /// Admission counter (later admissions are preempted first).
        var admission: Int64
        /// Allocated by someone else (an import, a manual allocation): occupancy, never a victim.
        var external: Bool
    }

    struct State: Codable {
        var nodes: [String: Node] = [:]
        /// gpuType → node names, sorted.
        var nodesByType: [String: [String]] = [:]
        /// "team/gpuType" → quota.
        var quotas: [String: Quota] = [:]
        /// "team/gpuType" → GPUs in use.
        var usage: [String: Int] = [:]
        var jobs: [String: Job] = [:]
        /// "team/gpuType" → queued job names, in (priority desc, sequence) order.
        var queues: [String: [String]] = [:]
        /// gpuType → teams with a queue for it, sorted.
        var queueTeams: [String: [String]] = [:]
        var admissions: Int64 = 0
    }

    var state = State()
    /// Admissions and other decisions counted since creation (for the benchmark).
    public private(set) var decisionCount = 0

    public init() {}

    public func snapshot() throws -> [UInt8] { Array(try JSONEncoder().encode(state)) }
    public func restore(_ bytes: [UInt8]) throws { state = try JSONDecoder().decode(State.self, from: Data(bytes)) }

    static func key(_ team: String, _ gpuType: String) -> String { team + "/" + gpuType }

    // MARK: applying events

    public func apply(_ event: Envelope) -> [Decision] {
        var out = DecisionBuilder(processor: name, trigger: event)
        let d = event.data
        var dirty: Set<String> = []
        switch event.type {
        case "node.registered":
            guard let node = d.string("node"), let type = d.string("gpuType"), let count = d.int("gpuCount") else { break }
            if var existing = state.nodes[node] {
                if existing.gpuType != type {
                    // A node that changes type: drop it from the old type's list.
                    state.nodesByType[existing.gpuType]?.removeAll { $0 == node }
                    dirty.insert(existing.gpuType)
                    insertSorted(&state.nodesByType[type, default: []], node)
                }
                existing.gpuType = type
                existing.capacity = count
                existing.removed = false
                state.nodes[node] = existing
            } else {
                state.nodes[node] = Node(name: node, gpuType: type, capacity: count, used: 0, removed: false, jobs: [])
                insertSorted(&state.nodesByType[type, default: []], node)
            }
            dirty.insert(type)
        case "node.removed":
            guard let node = d.string("node"), var n = state.nodes[node] else { break }
            n.removed = true
            state.nodes[node] = n
            for job in n.jobs {
                guard let j = state.jobs[job], !j.external else { continue }
                preempt(job, preemptor: nil, reason: "NodeRemoved", at: event.time.milliseconds, &out)
            }
            dirty.insert(n.gpuType)
        case "quota.set":
            guard let team = d.string("team"), let type = d.string("gpuType"), let nominal = d.int("nominal") else { break }
            state.quotas[Scheduler.key(team, type)] = Quota(
                nominal: nominal, borrowingLimit: d.int("borrowingLimit") ?? 0, cohort: d.string("cohort"), weight: d.double("weight") ?? 1)
            dirty.insert(type)
        case "job.queued":
            guard let job = d.string("job"), let team = d.string("team"), let type = d.string("gpuType"), let gpus = d.int("gpus") else { break }
            if let existing = state.jobs[job], existing.status != .finished { break }  // already known and active
            let j = Job(
                name: job, team: team, gpuType: type, gpus: gpus, priority: d.int("priority") ?? 0, sequence: event.offset, queuedID: event.id,
                waitingSince: event.time.milliseconds, status: .queued, node: nil, admission: 0, external: false)
            if let reason = neverAdmissible(j) {
                state.jobs[job] = Job(
                    name: job, team: team, gpuType: type, gpus: gpus, priority: j.priority, sequence: j.sequence, queuedID: j.queuedID,
                    waitingSince: j.waitingSince, status: .finished, node: nil, admission: 0, external: false)
                out.add(stream: "job-" + job, type: "job.rejected", data: ["job": .string(job), "reason": .string(reason)], correlation: event.id.description)
                break
            }
            state.jobs[job] = j
            enqueue(j)
            dirty.insert(type)
        case "job.completed", "job.cancelled":
            guard let job = d.string("job"), var j = state.jobs[job] else { break }
            switch j.status {
            case .running:
                release(&j, &out)  // whoever allocated it: the scheduler releases on completion
                j.status = .finished
                state.jobs[job] = j
                dirty.insert(j.gpuType)
            case .queued:
                dequeue(j)
                j.status = .finished
                state.jobs[job] = j
            case .finished: break
            }
        case "gpu.allocated":
            // Someone else's allocation (ours are recognised by id and never reach here).
            guard let job = d.string("job"), let node = d.string("node"), let type = d.string("gpuType"), let gpus = d.int("gpus"),
                let team = d.string("team")
            else { break }
            var j = state.jobs[job] ?? Job(
                name: job, team: team, gpuType: type, gpus: gpus, priority: 0, sequence: event.offset, queuedID: event.id,
                waitingSince: event.time.milliseconds, status: .finished, node: nil, admission: 0, external: true)
            if j.status == .running { break }  // already booked: a GPU is never booked twice
            if j.status == .queued { dequeue(j) }
            j.status = .running
            j.node = node
            j.gpus = gpus
            j.external = true
            state.admissions += 1
            j.admission = state.admissions
            state.jobs[job] = j
            if state.nodes[node] == nil {
                state.nodes[node] = Node(name: node, gpuType: type, capacity: 0, used: 0, removed: false, jobs: [])
                insertSorted(&state.nodesByType[type, default: []], node)
            }
            state.nodes[node]!.used += gpus
            state.nodes[node]!.jobs.append(job)
            state.usage[Scheduler.key(team, type), default: 0] += gpus
            dirty.insert(type)
        case "gpu.released":
            guard let job = d.string("job"), var j = state.jobs[job], j.status == .running, j.node == d.string("node") else { break }
            free(&j)
            j.status = .finished
            state.jobs[job] = j
            dirty.insert(j.gpuType)
        default: break
        }
        for type in dirty.sorted() { schedule(type, at: event.time.milliseconds, &out) }
        decisionCount += out.decisions.count
        return out.decisions
    }

    // MARK: queues

    func insertSorted(_ list: inout [String], _ name: String) {
        let i = list.firstIndex { $0 > name } ?? list.count
        if i > 0 && list[i - 1] == name { return }
        list.insert(name, at: i)
    }

    func before(_ a: Job, _ b: Job) -> Bool { a.priority != b.priority ? a.priority > b.priority : a.sequence < b.sequence }

    func enqueue(_ job: Job) {
        let k = Scheduler.key(job.team, job.gpuType)
        var q = state.queues[k] ?? []
        // Binary search for the position: (priority desc, sequence asc).
        var lo = 0
        var hi = q.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if before(state.jobs[q[mid]]!, job) { lo = mid + 1 } else { hi = mid }
        }
        q.insert(job.name, at: lo)
        state.queues[k] = q
        insertSorted(&state.queueTeams[job.gpuType, default: []], job.team)
    }

    func dequeue(_ job: Job) {
        let k = Scheduler.key(job.team, job.gpuType)
        guard var q = state.queues[k], let i = q.firstIndex(of: job.name) else { return }
        q.remove(at: i)
        if q.isEmpty {
            state.queues[k] = nil
            state.queueTeams[job.gpuType]?.removeAll { $0 == job.team }
        } else {
            state.queues[k] = q
        }
    }

    // MARK: admission

    func quota(_ team: String, _ type: String) -> Quota {
        state.quotas[Scheduler.key(team, type)] ?? Quota(nominal: 0, borrowingLimit: 0, cohort: nil, weight: 1)
    }

    func usage(_ team: String, _ type: String) -> Int { state.usage[Scheduler.key(team, type)] ?? 0 }

    /// Teams whose quota for `type` is in `cohort`, sorted.
    func cohortMembers(_ cohort: String, _ type: String) -> [String] {
        var teams: [String] = []
        for (k, q) in state.quotas where q.cohort == cohort && k.hasSuffix("/" + type) {
            let team = String(k.dropLast(type.count + 1))
            if team + "/" + type == k { teams.append(team) }
        }
        return teams.sorted()
    }

    func cohortNominal(_ cohort: String, _ type: String) -> Int { cohortMembers(cohort, type).reduce(0) { $0 + quota($1, type).nominal } }
    func cohortUsage(_ cohort: String, _ type: String) -> Int { cohortMembers(cohort, type).reduce(0) { $0 + usage($1, type) } }

    func largestNode(_ type: String) -> Int {
        (state.nodesByType[type] ?? []).reduce(0) { m, n in state.nodes[n]!.removed ? m : max(m, state.nodes[n]!.capacity) }
    }

    /// Why a job can never be admitted, or nil.
    func neverAdmissible(_ job: Job) -> String? {
        guard let q = state.quotas[Scheduler.key(job.team, job.gpuType)], q.limit > 0 else { return "NoQuota" }
        if job.gpus > q.limit { return "ExceedsQuota" }
        if job.gpus > largestNode(job.gpuType) { return "ExceedsNodeSize" }
        return nil
    }

    /// Whether the quota rules (a) and (b) admit `gpus` more for `team`, with `usageOf` as usage.
    func quotaAdmits(_ team: String, _ type: String, _ gpus: Int, usageOf: (String) -> Int) -> Bool {
        let q = quota(team, type)
        let after = usageOf(team) + gpus
        guard after <= q.limit else { return false }
        if after > q.nominal {
            guard let cohort = q.cohort else { return false }
            let members = cohortMembers(cohort, type)
            let total = members.reduce(0) { $0 + usageOf($1) }
            let nominal = members.reduce(0) { $0 + quota($1, type).nominal }
            guard total + gpus <= nominal else { return false }
        }
        return true
    }

    /// The fitting node with the fewest free GPUs, ties by name.
    func bestFit(_ type: String, _ gpus: Int) -> String? {
        var best: (Int, String)? = nil
        for n in state.nodesByType[type] ?? [] {
            let free = state.nodes[n]!.free
            if free >= gpus && (best == nil || free < best!.0) { best = (free, n) }
        }
        return best?.1
    }

    func schedule(_ type: String, at now: Int64, _ out: inout DecisionBuilder) {
        var blocked: Set<String> = []
        while true {
            // The best head among the teams not blocked: priority, then FIFO.
            var head: Job? = nil
            for team in state.queueTeams[type] ?? [] where !blocked.contains(team) {
                guard let first = state.queues[Scheduler.key(team, type)]?.first, let j = state.jobs[first] else { continue }
                if head == nil || before(j, head!) { head = j }
            }
            guard var job = head else { return }
            // A head that cannot fit now waits, even if the quota was lowered or nodes removed
            // since it was queued (rejection is decided once, when a job is queued; a node may
            // come back): it blocks its team's later jobs of this type (StrictFIFO).
            if quotaAdmits(job.team, type, job.gpus, usageOf: { self.usage($0, type) }), let node = bestFit(type, job.gpus) {
                admit(&job, on: node, at: now, &out)
                continue
            }
            if let (node, victims) = preemptionPlan(job) {
                for (victim, reason) in victims { preempt(victim, preemptor: job.name, reason: reason, at: now, &out) }
                admit(&job, on: node, at: now, &out)
                blocked.removeAll()
                continue
            }
            blocked.insert(job.team)  // StrictFIFO: the team's later jobs of this type wait
        }
    }

    func admit(_ job: inout Job, on node: String, at now: Int64, _ out: inout DecisionBuilder) {
        dequeue(job)
        let k = Scheduler.key(job.team, job.gpuType)
        let after = (state.usage[k] ?? 0) + job.gpus
        state.usage[k] = after
        state.nodes[node]!.used += job.gpus
        state.nodes[node]!.jobs.append(job.name)
        state.admissions += 1
        job.admission = state.admissions
        job.status = .running
        job.node = node
        state.jobs[job.name] = job
        let q = quota(job.team, job.gpuType)
        let borrowed = after > q.nominal
        var share = 0.0
        if borrowed, let cohort = q.cohort {
            let total = cohortNominal(cohort, job.gpuType)
            if total > 0 { share = rounded(Double(after - q.nominal) / Double(total) / q.weight, 6) }
        }
        let waited = Double(max(0, now - job.waitingSince)) / 1000
        let correlation = job.queuedID.description
        out.add(stream: "job-" + job.name, type: "job.admitted",
            data: ["job": .string(job.name), "node": .string(node), "gpus": .number(Double(job.gpus)), "waitedSeconds": .number(waited),
                   "borrowed": .bool(borrowed), "clusterQueueShare": .number(share)], correlation: correlation)
        out.add(stream: "job-" + job.name, type: "gpu.allocated",
            data: ["job": .string(job.name), "node": .string(node), "gpuType": .string(job.gpuType), "gpus": .number(Double(job.gpus)),
                   "team": .string(job.team)], correlation: correlation)
    }

    /// Takes a running job's GPUs back (no output).
    func free(_ job: inout Job) {
        guard let node = job.node else { return }
        if var n = state.nodes[node] {
            n.used = max(0, n.used - job.gpus)
            n.jobs.removeAll { $0 == job.name }
            state.nodes[node] = n
        }
        let k = Scheduler.key(job.team, job.gpuType)
        state.usage[k] = max(0, (state.usage[k] ?? 0) - job.gpus)
        job.node = nil
    }

    func release(_ job: inout Job, _ out: inout DecisionBuilder) {
        guard let node = job.node else { return }
        free(&job)
        out.add(stream: "job-" + job.name, type: "gpu.released",
            data: ["job": .string(job.name), "node": .string(node), "gpuType": .string(job.gpuType), "gpus": .number(Double(job.gpus)),
                   "team": .string(job.team)], correlation: job.queuedID.description)
    }

    func preempt(_ name: String, preemptor: String?, reason: String, at now: Int64, _ out: inout DecisionBuilder) {
        guard var victim = state.jobs[name], victim.status == .running else { return }
        var data: JSONObject = ["job": .string(name), "reason": .string(reason)]
        if let preemptor { data["preemptor"] = .string(preemptor) }
        out.add(stream: "job-" + name, type: "job.preempted", data: data, correlation: victim.queuedID.description)
        release(&victim, &out)
        victim.status = .queued
        victim.waitingSince = now
        state.jobs[name] = victim
        enqueue(victim)  // at its original position: the order key is its first job.queued
    }

    /// The node where the fewest victims make room for `job`, and those victims with their reason.
    func preemptionPlan(_ job: Job) -> (String, [(String, String)])? {
        let type = job.gpuType
        let q = quota(job.team, type)
        let withinNominal = usage(job.team, type) + job.gpus <= q.nominal
        var best: (count: Int, node: String, victims: [(String, String)])? = nil
        for nodeName in state.nodesByType[type] ?? [] {
            let node = state.nodes[nodeName]!
            guard !node.removed, node.capacity >= job.gpus else { continue }
            // Candidates on this node: lowest priority first, then the latest admitted.
            var candidates: [Job] = []
            for name in node.jobs {
                guard let r = state.jobs[name], !r.external, r.status == .running else { continue }
                if r.team == job.team {
                    if r.priority < job.priority { candidates.append(r) }
                } else if withinNominal, let cohort = q.cohort, quota(r.team, type).cohort == cohort {
                    candidates.append(r)
                }
            }
            guard !candidates.isEmpty else { continue }
            candidates.sort { $0.priority != $1.priority ? $0.priority < $1.priority : $0.admission > $1.admission }
            var usageAfter: [String: Int] = [:]
            func use(_ team: String) -> Int { usageAfter[team] ?? usage(team, type) }
            var free = node.free
            var victims: [(String, String)] = []
            var fits = false
            for c in candidates {
                if let b = best, victims.count >= b.count { break }
                if c.team != job.team {
                    // Only capacity a team is borrowing at that moment can be reclaimed.
                    guard use(c.team) > quota(c.team, type).nominal else { continue }
                }
                victims.append((c.name, c.team == job.team ? "InClusterQueue" : "InCohortReclamation"))
                usageAfter[c.team] = use(c.team) - c.gpus
                free += c.gpus
                if free >= job.gpus && quotaAdmits(job.team, type, job.gpus, usageOf: use) {
                    fits = true
                    break
                }
            }
            if fits && (best == nil || victims.count < best!.count) { best = (victims.count, nodeName, victims) }
        }
        return best.map { ($0.node, $0.victims) }
    }

    // MARK: figures

    /// GPUs allocated and registered, per GPU type (sorted).
    public func occupancy() -> [(gpuType: String, allocated: Int, capacity: Int)] {
        state.nodesByType.keys.sorted().map { type in
            let nodes = (state.nodesByType[type] ?? []).compactMap { state.nodes[$0] }.filter { !$0.removed }
            return (type, nodes.reduce(0) { $0 + $1.used }, nodes.reduce(0) { $0 + $1.capacity })
        }
    }

    /// Jobs waiting, per team (sorted).
    public func queued() -> [(team: String, jobs: Int)] {
        var count: [String: Int] = [:]
        for (k, q) in state.queues { count[String(k.prefix { $0 != "/" }), default: 0] += q.count }
        return count.keys.sorted().map { ($0, count[$0]!) }
    }
}
