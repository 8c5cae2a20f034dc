#if canImport(Glibc)
import Glibc
#endif
import LedgerCore

extension PlatformSimulator {
    struct Job {
        var name: String
        var team: String
        var project: String
        var gpuType: String
        var gpus: Int
        var priority: Int
        var durationMs: Int64
        var outcome: String
        var model: String?
        var datasets: [String]
        var queuedID = EventID(high: 0, low: 0)
        var waitingSince: Int64 = 0
        var node: Int? = nil
        var epoch = 0  // bumped on preemption, so stale finish events are ignored
        var done = false
        var cancelWhileQueuedAt: Int64? = nil
        var cancelWhileRunning = false
        /// Work left (training checkpoints: a preempted job resumes from its last checkpoint).
        var remainingMs: Int64? = nil
        var startedAt: Int64? = nil
    }

    enum Action {
        case arrive(Int)
        case start(Int, epoch: Int)
        case finish(Int, epoch: Int)
        case cancelQueued(Int)
        case removeNode(Int)
        /// The privacy officer approves a version trained on PII (model, version, correlation).
        case privacyApproval(String, String, String)
    }

    /// A binary heap of timed actions (ties in insertion order).
    struct Agenda {
        var heap: [(Int64, UInt64, Action)] = []
        var counter: UInt64 = 0

        mutating func push(_ time: Int64, _ action: Action) {
            counter += 1
            heap.append((time, counter, action))
            var i = heap.count - 1
            while i > 0 {
                let parent = (i - 1) / 2
                if less(heap[i], heap[parent]) { heap.swapAt(i, parent); i = parent } else { break }
            }
        }

        mutating func pop() -> (Int64, Action)? {
            guard !heap.isEmpty else { return nil }
            heap.swapAt(0, heap.count - 1)
            let top = heap.removeLast()
            var i = 0
            while true {
                let l = 2 * i + 1
                let r = l + 1
                var m = i
                if l < heap.count && less(heap[l], heap[m]) { m = l }
                if r < heap.count && less(heap[r], heap[m]) { m = r }
                if m == i { break }
                heap.swapAt(i, m)
                i = m
            }
            return (top.0, top.2)
        }

        var nextTime: Int64? { heap.first?.0 }

        func less(_ a: (Int64, UInt64, Action), _ b: (Int64, UInt64, Action)) -> Bool { a.0 != b.0 ? a.0 < b.0 : a.1 < b.1 }
    }

    static let teamTypes: [String: [(String, Double)]] = [
        "vision": [("a100", 0.6), ("h100", 0.3), ("l4", 0.1)], "nlp": [("h100", 0.6), ("a100", 0.4)],
        "speech": [("a100", 0.5), ("l4", 0.5)], "recsys": [("l4", 0.5), ("a100", 0.5)], "fraud": [("l4", 0.7), ("a100", 0.3)],
        "search": [("a100", 0.5), ("h100", 0.3), ("l4", 0.2)],
    ]

    /// The week's training jobs and the agenda of their arrivals, queued cancellations and the
    /// node failure; what happens after arrival depends on the scheduler.
    func planJobs() -> ([Job], Agenda) {
        var jobs: [Job] = []
        var agenda = Agenda()
        // Arrivals: a Poisson process thinned by the platform's rhythm: busy working hours, but
        // experiments and sweeps keep coming at night and over the weekend (queued by schedulers
        // and pipelines, not by people at their desks).
        var t = start
        let meanGap = 24.0 * 3_600_000 / config.jobsPerDay / 1.2
        while true {
            t += Int64(rng.exponential(mean: meanGap)) + 1
            if t >= end { break }
            guard rng.unit() < jobRhythm(t) / 1.2 else { continue }
            let team = rng.pick(teams)
            let gpuType = rng.weighted(PlatformSimulator.teamTypes[team]!)
            // Most jobs are small experiments; one in sixteen is a long training run on 4 or 8 GPUs.
            let long = rng.chance(0.06)
            var gpus = long ? rng.weighted([(4, 0.4), (8, 0.6)]) : rng.weighted([(1, 0.5), (2, 0.3), (4, 0.15), (8, 0.05)])
            if gpuType == "l4" { gpus = min(gpus, 4) }  // L4 jobs are inference-sized models
            if team == SimulationConfig.strictTeam { gpus = min(gpus, 2) }  // fraud's models are small (gradient-boosted trees, small nets)
            if rng.chance(0.002) { gpus = 16 }  // never fits one node: rejected
            let minutes = long ? 120 + rng.unit() * 360 : min(8 * 60, max(3, exp(log(40) + 0.9 * rng.normal())))
            var job = Job(
                name: "train-" + String(jobs.count + 1), team: team, project: team + "-" + rng.pick(["core", "research", "batch"]),
                gpuType: gpuType, gpus: gpus, priority: rng.weighted([(0, 0.75), (5, 0.2), (10, 0.05)]),
                durationMs: Int64(minutes * 60_000), outcome: rng.chance(0.9) ? "succeeded" : "failed",
                model: rng.chance(0.25) ? modelNames[Int(rng.next() % UInt64(modelNames.count))] : nil,
                datasets: [rng.pick(datasets)])
            if rng.chance(0.01) { job.cancelWhileQueuedAt = t + Int64(rng.int(1...30)) * PlatformSimulator.minute }
            if rng.chance(0.02) { job.cancelWhileRunning = true }
            jobs.append(job)
            agenda.push(t, .arrive(jobs.count - 1))
            if let c = job.cancelWhileQueuedAt { agenda.push(c, .cancelQueued(jobs.count - 1)) }
        }
        // One node fails on the third day under running jobs (the busiest a100 node at that moment).
        if config.days >= 3 {
            agenda.push(start + 2 * 24 * PlatformSimulator.hour + 14 * PlatformSimulator.hour, .removeNode(-1))
        }
        return (jobs, agenda)
    }

    func simulateJobs() {
        var (jobs, agenda) = planJobs()
        var free = nodes.map(\.gpus)
        var removed = Set<Int>()
        var queue: [Int] = []  // waiting jobs
        let largest = Dictionary(grouping: nodes, by: \.gpuType).mapValues { $0.map(\.gpus).max() ?? 0 }
        let scheduler = "processor:scheduler"

        func schedule(_ now: Int64, cause: EventID) {
            guard config.includeDecisions else { return }
            // Higher priority first, then first come: admit whatever fits (best-fit node).
            queue.sort { (jobs[$0].priority, -jobs[$0].waitingSince) > (jobs[$1].priority, -jobs[$1].waitingSince) }
            var still: [Int] = []
            for j in queue {
                var best: Int? = nil
                for n in nodes.indices where !removed.contains(n) && nodes[n].gpuType == jobs[j].gpuType && free[n] >= jobs[j].gpus {
                    if best == nil || free[n] < free[best!] { best = n }
                }
                guard let n = best else {
                    still.append(j)
                    continue
                }
                free[n] -= jobs[j].gpus
                jobs[j].node = n
                let job = jobs[j]
                let waited = Double(now - job.waitingSince) / 1000
                emit(now, scheduler, "job-" + job.name, "job.admitted",
                    ["job": .string(job.name), "node": .string(nodes[n].name), "gpus": .number(Double(job.gpus)), "waitedSeconds": .number(waited),
                     "borrowed": false, "clusterQueueShare": 0], correlation: job.queuedID.description, cause: cause)
                emit(now, scheduler, "job-" + job.name, "gpu.allocated",
                    ["job": .string(job.name), "node": .string(nodes[n].name), "gpuType": .string(job.gpuType), "gpus": .number(Double(job.gpus)), "team": .string(job.team)],
                    correlation: job.queuedID.description, cause: cause)
                agenda.push(now + Int64(rng.int(5...40)) * 1000, .start(j, epoch: job.epoch))
            }
            queue = still
        }

        func release(_ j: Int, _ now: Int64, cause: EventID) {
            guard let n = jobs[j].node else { return }
            free[n] += jobs[j].gpus
            jobs[j].node = nil
            guard config.includeDecisions else { return }
            let job = jobs[j]
            emit(now, scheduler, "job-" + job.name, "gpu.released",
                ["job": .string(job.name), "node": .string(nodes[n].name), "gpuType": .string(job.gpuType), "gpus": .number(Double(job.gpus)), "team": .string(job.team)],
                correlation: job.queuedID.description, cause: cause)
        }

        while let (now, action) = agenda.pop() {
            switch action {
            case .arrive(let j):
                var data: JSONObject = [
                    "job": .string(jobs[j].name), "team": .string(jobs[j].team), "project": .string(jobs[j].project),
                    "gpuType": .string(jobs[j].gpuType), "gpus": .number(Double(jobs[j].gpus)), "priority": .number(Double(jobs[j].priority)),
                    "datasets": .array(jobs[j].datasets.map { .string($0) }),
                ]
                if let model = jobs[j].model { data["model"] = .string(model) }
                let id = emit(now, "user:" + jobs[j].team + "-ml", "job-" + jobs[j].name, "job.queued", data)
                jobs[j].queuedID = id
                jobs[j].waitingSince = now
                if jobs[j].gpus > largest[jobs[j].gpuType, default: 0] {
                    jobs[j].done = true
                    if config.includeDecisions {
                        emit(now, scheduler, "job-" + jobs[j].name, "job.rejected", ["job": .string(jobs[j].name), "reason": "ExceedsNodeSize"],
                            correlation: id.description, cause: id)
                    }
                    continue
                }
                queue.append(j)
                schedule(now, cause: id)
            case .start(let j, let epoch):
                guard jobs[j].epoch == epoch, !jobs[j].done, jobs[j].node != nil else { continue }
                emit(now, "svc:training", "job-" + jobs[j].name, "job.started", ["job": .string(jobs[j].name)], correlation: jobs[j].queuedID.description)
                let runFor = jobs[j].cancelWhileRunning ? jobs[j].durationMs / 3 : jobs[j].durationMs
                agenda.push(now + runFor, .finish(j, epoch: epoch))
            case .finish(let j, let epoch):
                guard jobs[j].epoch == epoch, !jobs[j].done else { continue }
                jobs[j].done = true
                let id: EventID
                if jobs[j].cancelWhileRunning {
                    id = emit(now, "user:" + jobs[j].team + "-ml", "job-" + jobs[j].name, "job.cancelled",
                        ["job": .string(jobs[j].name), "reason": "superseded by a newer run"], correlation: jobs[j].queuedID.description)
                } else {
                    var data: JSONObject = ["job": .string(jobs[j].name), "outcome": .string(jobs[j].outcome)]
                    if jobs[j].outcome == "succeeded" { data["artifacts"] = .array([.string("s3://artifacts/\(jobs[j].team)/\(jobs[j].name)/")]) }
                    id = emit(now, "svc:training", "job-" + jobs[j].name, "job.completed", data, correlation: jobs[j].queuedID.description)
                    if jobs[j].outcome == "succeeded", let model = jobs[j].model { completedTraining[model, default: []].append((now, jobs[j].name, jobs[j].datasets)) }
                }
                release(j, now, cause: id)
                schedule(now, cause: id)
            case .cancelQueued(let j):
                guard !jobs[j].done, jobs[j].node == nil, queue.contains(j) else { continue }
                jobs[j].done = true
                queue.removeAll { $0 == j }
                emit(now, "user:" + jobs[j].team + "-ml", "job-" + jobs[j].name, "job.cancelled",
                    ["job": .string(jobs[j].name), "reason": "waited too long"], correlation: jobs[j].queuedID.description)
            case .removeNode(let requested):
                let n = requested >= 0 ? requested : nodes.indices.filter { nodes[$0].gpuType == "a100" && !removed.contains($0) }
                    .min { (free[$0], $0) < (free[$1], $1) }!
                removed.insert(n)
                let id = emit(now, "svc:ci", "node-" + nodes[n].name, "node.removed", ["node": .string(nodes[n].name), "reason": "GPU ECC errors: drained for repair"])
                guard config.includeDecisions else { continue }
                for j in jobs.indices where jobs[j].node == n && !jobs[j].done {
                    emit(now, scheduler, "job-" + jobs[j].name, "job.preempted", ["job": .string(jobs[j].name), "reason": "NodeRemoved"],
                        correlation: jobs[j].queuedID.description, cause: id)
                    release(j, now, cause: id)
                    jobs[j].epoch += 1
                    jobs[j].waitingSince = now
                    queue.append(j)
                }
                schedule(now, cause: id)
            case .privacyApproval:
                continue  // the legacy mode writes it with the version (its lineage is known then)
            }
        }
    }
}
