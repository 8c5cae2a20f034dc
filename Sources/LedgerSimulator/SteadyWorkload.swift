#if canImport(Glibc)
import Glibc
#endif
public import LedgerCore

/// A long-running platform as a stream of events, in time order, without holding them all:
/// what the benchmarks need (a 10 M-event log is about two years of this). About 1.2 jobs arrive
/// per minute and run on 64 nodes, keeping them roughly three-quarters busy (a queue that grows
/// without bound would make the generator, not the ledger, the bottleneck) (the decisions are written as `processor:scheduler`, with causation),
/// 16 deployments report serving windows every 5 minutes and feature histograms every hour, and
/// models get new versions every few hours.
public struct SteadyWorkload: Sequence, IteratorProtocol {
    public let seed: UInt64
    var rng: SeededRandom
    let namespace: EventID
    var sequence: UInt64 = 0
    var now: Int64
    var pending: [SimulatedEvent] = []
    var pendingIndex = 0
    var started = false
    var jobCounter = 0
    var versionCounter: [String: Int] = [:]
    // Scheduling state.
    struct Node { var name: String; var gpuType: String; var free: Int }
    var nodes: [Node] = []
    var running: [(end: Int64, job: String, node: Int, gpus: Int, team: String, queued: EventID)] = []
    var waiting: [(job: String, team: String, gpuType: String, gpus: Int, queued: EventID, since: Int64)] = []
    let teams = ["vision", "nlp", "speech", "recsys", "fraud", "search"]
    let deployments = (1...16).map { "api-\($0)" }
    let models = (1...20).map { "model-\($0)" }

    public init(seed: UInt64 = 7, start: Timestamp = Timestamp("2026-01-05T00:00:00.000Z")!) {
        self.seed = seed
        rng = SeededRandom(seed: seed)
        namespace = EventID.nameBased(namespace: EventID(high: 0x6ba7_b811_9dad_11d1, low: 0x80b4_00c0_4fd4_30c8), name: "platform-ledger/steady/\(seed)")
        now = start.milliseconds
    }

    public mutating func next() -> SimulatedEvent? {
        while pendingIndex >= pending.count {
            pending.removeAll(keepingCapacity: true)
            pendingIndex = 0
            if !started {
                started = true
                setUp()
            } else {
                tick()
            }
        }
        pendingIndex += 1
        return pending[pendingIndex - 1]
    }

    @discardableResult
    mutating func emit(_ time: Int64, _ actor: String, _ stream: String, _ type: String, _ data: JSONObject, cause: EventID? = nil) -> EventID {
        sequence += 1
        let id = EventID.nameBased(namespace: namespace, name: String(sequence))
        var e = SimulatedEvent(time: Timestamp(milliseconds: time), actor: actor, stream: stream, type: type, data: data, causationId: cause)
        e.request.id = id
        pending.append(e)
        return id
    }

    mutating func setUp() {
        for (type, count, gpus) in [("a100", 24, 8), ("h100", 16, 8), ("l4", 24, 4)] {
            for i in 1...count {
                let name = "\(type)-\(i)"
                nodes.append(Node(name: name, gpuType: type, free: gpus))
                emit(now, "svc:ci", "node-" + name, "node.registered", ["node": .string(name), "gpuType": .string(type), "gpuCount": .number(Double(gpus))])
            }
        }
        for (type, rate) in [("a100", 2.4), ("h100", 4.1), ("l4", 0.8)] {
            emit(now, "user:finops", "pricing-" + type, "price.set", ["gpuType": .string(type), "hourlyRate": .number(rate), "effectiveFrom": .string(Timestamp(milliseconds: now).description)])
        }
        for model in models {
            let team = teams[Int((model.utf8.reduce(seed) { $0 &* 31 &+ UInt64($1) }) % UInt64(teams.count))]
            emit(now, "user:\(team)", "model-" + model, "model.registered", ["model": .string(model), "team": .string(team)])
            newVersion(model, team: team)
        }
        for (i, d) in deployments.enumerated() {
            let model = models[i]
            emit(now, "svc:serving", "deployment-" + d, "deployment.created", ["deployment": .string(d), "model": .string(model), "version": "1", "team": .string(teams[i % teams.count]), "gpuType": "l4"])
            emit(now, "user:sre", "slo-" + d, "slo.defined", ["slo": .string(d), "deployment": .string(d), "objective": 0.999, "sli": "availability"])
        }
    }

    mutating func newVersion(_ model: String, team: String) {
        let v = (versionCounter[model] ?? 0) + 1
        versionCounter[model] = v
        let version = String(v)
        let created = emit(now, "user:\(team)", "model-" + model, "model.version.created",
            ["model": .string(model), "version": .string(version), "source": .string("s3://models/\(model)/\(v)/"), "digest": .string("sha256:" + String(repeating: "e", count: 64))])
        emit(now, "svc:eval", "model-" + model, "model.version.evaluated", ["model": .string(model), "version": .string(version), "metrics": ["auc": .number(0.8 + rng.unit() * 0.15)], "passed": true], cause: created)
        emit(now, "user:reviewer", "model-" + model, "model.version.approved", ["model": .string(model), "version": .string(version), "approver": "user:reviewer"], cause: created)
        emit(now, "user:\(team)", "model-" + model, "model.alias.set", ["model": .string(model), "alias": "champion", "version": .string(version)], cause: created)
    }

    /// One minute of the platform.
    mutating func tick() {
        now += 60_000
        // Completions first, then arrivals, then admissions into whatever is free.
        running.sort { $0.end < $1.end }
        while let first = running.first, first.end <= now {
            running.removeFirst()
            let done = emit(first.end, "svc:training", "job-" + first.job, "job.completed", ["job": .string(first.job), "outcome": "succeeded"])
            nodes[first.node].free += first.gpus
            emit(first.end, "processor:scheduler", "job-" + first.job, "gpu.released",
                ["job": .string(first.job), "node": .string(nodes[first.node].name), "gpuType": .string(nodes[first.node].gpuType), "gpus": .number(Double(first.gpus)), "team": .string(first.team)], cause: done)
        }
        for _ in 0..<rng.poisson(1.2) {
            jobCounter += 1
            let job = "job-\(jobCounter)"
            let team = rng.pick(teams)
            let gpuType = rng.pick(["a100", "h100", "l4"])
            let gpus = rng.pick(gpuType == "l4" ? [1, 2, 4] : [1, 2, 4, 8])
            let queued = emit(now, "user:\(team)", "job-" + job, "job.queued",
                ["job": .string(job), "team": .string(team), "project": .string(team + "-core"), "gpuType": .string(gpuType), "gpus": .number(Double(gpus)), "priority": 0])
            waiting.append((job, team, gpuType, gpus, queued, now))
        }
        var still: [(job: String, team: String, gpuType: String, gpus: Int, queued: EventID, since: Int64)] = []
        for w in waiting {
            guard let n = nodes.indices.first(where: { nodes[$0].gpuType == w.gpuType && nodes[$0].free >= w.gpus }) else {
                still.append(w)
                continue
            }
            nodes[n].free -= w.gpus
            let admitted = emit(now, "processor:scheduler", "job-" + w.job, "job.admitted",
                ["job": .string(w.job), "node": .string(nodes[n].name), "gpus": .number(Double(w.gpus)), "waitedSeconds": .number(Double(now - w.since) / 1000), "borrowed": false, "clusterQueueShare": 0], cause: w.queued)
            emit(now, "processor:scheduler", "job-" + w.job, "gpu.allocated",
                ["job": .string(w.job), "node": .string(nodes[n].name), "gpuType": .string(w.gpuType), "gpus": .number(Double(w.gpus)), "team": .string(w.team)], cause: admitted)
            emit(now, "svc:training", "job-" + w.job, "job.started", ["job": .string(w.job)])
            running.append((now + Int64(rng.int(10...120)) * 60_000, w.job, n, w.gpus, w.team, w.queued))
        }
        waiting = still
        let minuteOfDay = (now / 60_000) % 1440
        if minuteOfDay % 5 == 0 {
            for (i, d) in deployments.enumerated() {
                let requests = rng.poisson(3000)
                emit(now, "svc:serving", "deployment-" + d, "serving.window.observed",
                    ["deployment": .string(d), "version": "1", "windowStart": .string(Timestamp(milliseconds: now - 300_000).description),
                     "windowEnd": .string(Timestamp(milliseconds: now).description), "requests": .number(Double(requests)),
                     "errors": .number(Double(rng.poisson(Double(requests) * 0.0005))), "slowRequests": .number(Double(rng.poisson(Double(requests) * 0.004))),
                     "p99Ms": .number(Double(100 + rng.int(0...80))), "gpuSeconds": .number(Double(requests) * 0.02)])
                if minuteOfDay % 60 == 0 {
                    emit(now, "svc:serving", "deployment-" + d, "feature.histogram.observed",
                        ["deployment": .string(d), "model": .string(models[i]), "version": "1", "feature": "amount", "bins": ["10", "100", "+Inf"],
                         "counts": [.number(Double(rng.poisson(300))), .number(Double(rng.poisson(500))), .number(Double(rng.poisson(200)))], "windowEnd": .string(Timestamp(milliseconds: now).description)])
                }
            }
        }
        if minuteOfDay % 360 == 0 {
            let model = rng.pick(models)
            newVersion(model, team: rng.pick(teams))
        }
    }
}
