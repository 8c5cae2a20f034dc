public import LedgerCore

/// The simulated platform as the clients of a real ledger: it produces only client events, in
/// time order, and reacts to the processors' decisions it is shown — a training job starts
/// after the scheduler admits it and completes (or is cancelled) some time later, a preempted job
/// waits to be admitted again, a rejected one is given up, the node that fails is the busiest one
/// at that moment, and a new model version's lineage names a training run that really finished.
///
/// Serving traffic follows the rollout rules of SEMANTICS.md (the simulated services route the
/// canary share the controller is expected to set); the decisions themselves come only from the
/// processors.
public final class PlatformPlay {
    let simulator: PlatformSimulator
    var staticEvents: [SimulatedEvent]
    var staticIndex = 0
    var jobs: [PlatformSimulator.Job]
    var agenda: PlatformSimulator.Agenda
    var jobIndex: [String: Int] = [:]
    var outbox: [SimulatedEvent] = []
    var outboxIndex = 0
    /// GPUs in use per node, as the scheduler's decisions say.
    var used: [String: Int] = [:]
    var removed: Set<String> = []
    /// Jobs admitted / rejected so far (what the demo reports).
    public private(set) var admitted = 0
    public private(set) var rejected = 0

    public init(config: SimulationConfig) {
        var config = config
        config.includeDecisions = false
        simulator = PlatformSimulator(config: config)
        let s = simulator
        s.events = []
        s.sequence = 0
        s.setUpPlatform()
        (jobs, agenda) = s.planJobs()
        s.simulateModels()
        s.simulateServing()
        var indexed = s.events.enumerated().map { ($0.offset, $0.element) }
        indexed.sort { $0.1.time != $1.1.time ? $0.1.time < $1.1.time : $0.0 < $1.0 }
        staticEvents = indexed.map(\.1)
        s.events = []
        for (i, j) in jobs.enumerated() { jobIndex[j.name] = i }
    }

    /// The next client event, or nil when the simulated days are over.
    public func next() -> SimulatedEvent? {
        while true {
            if outboxIndex < outbox.count {
                outboxIndex += 1
                return outbox[outboxIndex - 1]
            }
            outbox.removeAll(keepingCapacity: true)
            outboxIndex = 0
            let staticTime = staticIndex < staticEvents.count ? staticEvents[staticIndex].time.milliseconds : Int64.max
            let agendaTime = agenda.nextTime ?? Int64.max
            if staticTime == Int64.max && agendaTime == Int64.max { return nil }
            if staticTime <= agendaTime {
                var e = staticEvents[staticIndex]
                staticIndex += 1
                if let model = e.lineageModel, let run = simulator.completedTraining[model]?.last(where: { $0.0 < e.time.milliseconds }) {
                    e.request.data["job"] = .string(run.1)
                    e.request.data["datasets"] = .array(run.2.map { .string($0) })
                }
                if e.lineageModel != nil, let version = e.request.data["version"]?.stringValue, let model = e.request.data["model"]?.stringValue {
                    var names = e.request.data["datasets"]?.arrayValue ?? []
                    if e.privacyHold, !names.contains(.string(PlatformSimulator.piiDataset)) {
                        names.append(.string(PlatformSimulator.piiDataset))
                        e.request.data["datasets"] = .array(names)
                    } else if let at = e.privacyReviewAt, names.contains(where: { $0.stringValue.map(PlatformSimulator.isPII) ?? false }), let id = e.request.id {
                        agenda.push(at, .privacyApproval(model, version, id.description))
                    }
                }
                return e
            }
            let (now, action) = agenda.pop()!
            act(now, action)
            outbox = simulator.events
            simulator.events = []
        }
    }

    func emit(_ time: Int64, _ actor: String, _ stream: String, _ type: String, _ data: JSONObject, correlation: String? = nil) {
        simulator.emit(time, actor, stream, type, data, correlation: correlation)
    }

    func act(_ now: Int64, _ action: PlatformSimulator.Action) {
        switch action {
        case .arrive(let j):
            let job = jobs[j]
            var data: JSONObject = [
                "job": .string(job.name), "team": .string(job.team), "project": .string(job.project), "gpuType": .string(job.gpuType),
                "gpus": .number(Double(job.gpus)), "priority": .number(Double(job.priority)), "datasets": .array(job.datasets.map { .string($0) }),
            ]
            if let model = job.model { data["model"] = .string(model) }
            emit(now, "user:" + job.team + "-ml", "job-" + job.name, "job.queued", data)
            jobs[j].queuedID = simulator.events.last!.request.id!
        case .start(let j, let epoch):
            guard jobs[j].epoch == epoch, !jobs[j].done, jobs[j].node != nil else { return }
            emit(now, "svc:training", "job-" + jobs[j].name, "job.started", ["job": .string(jobs[j].name)], correlation: jobs[j].queuedID.description)
            let full = jobs[j].cancelWhileRunning ? jobs[j].durationMs / 3 : jobs[j].durationMs
            let runFor = jobs[j].remainingMs ?? full
            jobs[j].remainingMs = runFor
            jobs[j].startedAt = now
            agenda.push(now + runFor, .finish(j, epoch: epoch))
        case .finish(let j, let epoch):
            guard jobs[j].epoch == epoch, !jobs[j].done, jobs[j].node != nil else { return }
            jobs[j].done = true
            let job = jobs[j]
            if job.cancelWhileRunning {
                emit(now, "user:" + job.team + "-ml", "job-" + job.name, "job.cancelled", ["job": .string(job.name), "reason": "superseded by a newer run"],
                    correlation: job.queuedID.description)
            } else {
                var data: JSONObject = ["job": .string(job.name), "outcome": .string(job.outcome)]
                if job.outcome == "succeeded" { data["artifacts"] = .array([.string("s3://artifacts/\(job.team)/\(job.name)/")]) }
                emit(now, "svc:training", "job-" + job.name, "job.completed", data, correlation: job.queuedID.description)
                if job.outcome == "succeeded", let model = job.model { simulator.completedTraining[model, default: []].append((now, job.name, job.datasets)) }
            }
        case .cancelQueued(let j):
            guard !jobs[j].done, jobs[j].node == nil, jobs[j].queuedID != EventID(high: 0, low: 0) else { return }
            jobs[j].done = true
            emit(now, "user:" + jobs[j].team + "-ml", "job-" + jobs[j].name, "job.cancelled", ["job": .string(jobs[j].name), "reason": "waited too long"],
                correlation: jobs[j].queuedID.description)
        case .removeNode:
            // The busiest a100 node fails (ties by name).
            let candidates = simulator.nodes.filter { $0.gpuType == "a100" && !removed.contains($0.name) }.map(\.name).sorted()
            guard let node = candidates.max(by: { (used[$0] ?? 0, $1) < (used[$1] ?? 0, $0) }) else { return }
            removed.insert(node)
            emit(now, "svc:ci", "node-" + node, "node.removed", ["node": .string(node), "reason": "GPU ECC errors: drained for repair"])
        case .privacyApproval(let model, let version, let correlation):
            emit(now, "user:pat", "model-" + model, "model.version.approved",
                ["model": .string(model), "version": .string(version), "approver": "user:pat"], correlation: correlation)
        }
    }

    /// Shows the play a decision the processors appended (at its envelope time).
    public func observe(type: String, data: JSONObject, time: Timestamp) {
        guard let job = data["job"]?.stringValue, let j = jobIndex[job] else { return }
        let now = time.milliseconds
        switch type {
        case "job.admitted":
            admitted += 1
            jobs[j].node = 0
            // The training service picks the job up 5–40 s later (the delay is the job's own, so
            // it does not depend on the order decisions are shown in).
            let delay = Int64(5 + (jobs[j].durationMs / 1000) % 36) * 1000
            agenda.push(now + delay, .start(j, epoch: jobs[j].epoch))
        case "job.preempted":
            jobs[j].epoch += 1
            jobs[j].node = nil
            // Training checkpoints every 10 minutes: a preempted job resumes with what was left
            // at its last checkpoint.
            if let started = jobs[j].startedAt, let remaining = jobs[j].remainingMs {
                let ran = max(0, now - started)
                jobs[j].remainingMs = max(60_000, remaining - ran + min(ran, 10 * 60_000))
            }
            jobs[j].startedAt = nil
        case "job.rejected":
            rejected += 1
            jobs[j].done = true
        case "gpu.allocated":
            if let node = data["node"]?.stringValue, let gpus = data["gpus"]?.intValue { used[node, default: 0] += gpus }
        case "gpu.released":
            if let node = data["node"]?.stringValue, let gpus = data["gpus"]?.intValue { used[node, default: 0] -= gpus }
        default:
            break
        }
    }
}
