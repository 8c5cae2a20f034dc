#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import LedgerCore
import LedgerEngine
import LedgerLog
import LedgerProcessors
import LedgerSimulator

struct BenchProcess: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "process",
        abstract: "The processors: the scheduler under a deep queue, all processors over a simulated log, the demo's wall time.",
        discussion: """
            Scenarios: scheduler (the scheduler alone, in process: --nodes nodes of 8 GPUs, --queued \
            jobs waiting in 10 teams of one cohort, then completions each followed by a new arrival; \
            counts admissions, preemptions and rejections per second, and every output event), all \
            (every processor, through the runner and the log, over the client events of --days \
            simulated days played once with the processors and kept in --work-dir; input events \
            folded per second, decisions appended with --fsync never so that the disk is not what is \
            measured), demo (the wall time of `ledger demo` for --days days).
            """)

    enum Scenario: String, ExpressibleByArgument { case all, scheduler, processors, demo }

    @Option(help: "all, scheduler, processors or demo.")
    var scenario: Scenario = .all
    @Option(help: "Nodes of the scheduler scenario (8 GPUs each).")
    var nodes: Int = 500
    @Option(help: "Jobs kept queued in the scheduler scenario.")
    var queued: Int = 10_000
    @Option(help: "Completions (each followed by an arrival) in the scheduler scenario.")
    var completions: Int = 100_000
    @Option(help: "Simulated days for the processors and demo scenarios.")
    var days: Int = 7
    @Option(help: "Where the client-event log is kept between runs.")
    var workDir: String = "/tmp/ledger-bench-process"

    func run() async throws {
        Terminal.line("ledger bench process — \(machineDescription())")
        Terminal.flush()
        if scenario == .all || scenario == .scheduler { scheduler() }
        if scenario == .all || scenario == .processors { try await processors() }
        if scenario == .all || scenario == .demo { try demo() }
        Terminal.flush()
    }

    /// Synthetic envelopes straight into the scheduler: its own cost, no log.
    func scheduler() {
        let s = Scheduler()
        var offset: Int64 = 0
        var time: Int64 = Timestamp("2026-11-23T00:00:00.000Z")!.milliseconds
        func feed(_ type: String, _ stream: String, _ data: JSONObject) -> [Decision] {
            offset += 1
            time += 100
            let e = Envelope(
                offset: offset, id: EventID.nameBased(namespace: DecisionID.namespace, name: "bench/\(offset)"), stream: stream, version: 0, type: type,
                time: Timestamp(milliseconds: time), actor: "user:bench", data: data, prevHash: .zero)
            return s.apply(e)
        }
        var rng = SeededRandom(seed: 11)
        let teams = (1...10).map { "team-\($0)" }
        for i in 0..<nodes { _ = feed("node.registered", "node-n\(i)", ["node": .string("n\(i)"), "gpuType": "a100", "gpuCount": 8]) }
        let share = nodes * 8 / teams.count
        for t in teams {
            _ = feed("quota.set", "team-" + t, ["team": .string(t), "gpuType": "a100", "nominal": .number(Double(share)), "borrowingLimit": .number(Double(share / 2)), "cohort": "all"])
        }
        var running: [String] = []
        var jobCount = 0
        func arrive() -> [Decision] {
            jobCount += 1
            let job = "j\(jobCount)"
            return feed("job.queued", "job-" + job, ["job": .string(job), "team": .string(teams[rng.int(0...teams.count - 1)]), "gpuType": "a100",
                "gpus": .number(Double([1, 2, 4, 8][rng.int(0...3)])), "priority": .number(Double([0, 0, 0, 5][rng.int(0...3)]))])
        }
        func note(_ ds: [Decision]) {
            for d in ds {
                if d.type == "job.admitted" { running.append(d.data["job"]!.stringValue!) }
            }
        }
        // Fill the cluster, then the queue.
        while s.queued().reduce(0, { $0 + $1.jobs }) < queued { note(arrive()) }
        let setup = s.decisionCount
        Terminal.line("scheduler: \(nodes) nodes × 8 GPUs, \(running.count) jobs running, \(s.queued().reduce(0) { $0 + $1.jobs }) queued in \(teams.count) teams")
        var decisions = 0
        var admissions = 0
        let start = monotonicSeconds()
        for _ in 0..<completions {
            guard !running.isEmpty else { break }
            let i = rng.int(0...running.count - 1)
            let job = running[i]
            running.swapAt(i, running.count - 1)
            running.removeLast()
            for ds in [feed("job.completed", "job-" + job, ["job": .string(job), "outcome": "succeeded"]), arrive()] {
                note(ds)
                for d in ds where ["job.admitted", "job.preempted", "job.rejected"].contains(d.type) {
                    decisions += 1
                    if d.type == "job.admitted" { admissions += 1 }
                }
            }
        }
        let seconds = monotonicSeconds() - start
        let events = s.decisionCount - setup
        Terminal.line("scheduler: \(Format.count(Int64(completions * 2))) input events → \(Format.count(Int64(decisions))) scheduling decisions (\(Format.count(Int64(admissions))) admissions, the rest preemptions and rejections) and \(Format.count(Int64(events))) output events in \(Format.fixed(seconds, 2)) s = \(Format.count(Int64(Double(decisions) / seconds))) decisions/s (\(Format.count(Int64(Double(events) / seconds))) output events/s); queue still \(s.queued().reduce(0) { $0 + $1.jobs })")
        Terminal.flush()
    }

    /// The client events of `days` simulated days (played once with the processors deciding, then
    /// stripped of the decisions) in a log of their own, built once.
    func clientLog() async throws -> String {
        mkdir(workDir, 0o755)
        let dir = workDir + "/clients-\(days)d"
        if let reader = try? LogReader(directory: dir), reader.head > 0, access(dir + "/COMPLETE", F_OK) == 0 { return dir }
        removeTree(dir)
        let played = workDir + "/played-\(days)d"
        removeTree(played)
        let start = monotonicSeconds()
        var options = EngineOptions()
        options.log.fsync = .onClose
        options.projections = false
        let engine = try await LedgerEngine.open(directory: played, options: options)
        let play = PlatformPlay(config: SimulationConfig(seed: 42, days: days))
        let admin = AppendPolicy(actor: "svc:bench", mode: .admin)
        _ = try await engine.drive(policy: admin, next: { play.next()?.request }) { d in
            play.observe(type: d.decision.type, data: d.decision.data, time: d.decision.notBefore)
        }
        try await engine.close()
        // The client events alone: what the processors are benchmarked on.
        options.processors = false
        let clients = try await LedgerEngine.open(directory: dir, options: options)
        let cursor = try LogReader(directory: played).cursor()
        var batch: [[AppendRequest]] = []
        while let v = try cursor.next() {
            let e = try v.envelope()
            if e.actor.hasPrefix("processor:") { continue }
            batch.append([AppendRequest(stream: e.stream, type: e.type, data: e.data, id: e.id, causationId: e.causationId, correlationId: e.correlationId, time: e.time, actor: e.actor)])
            if batch.count == 4000 {
                _ = await clients.append(requests: batch, policy: admin)
                batch.removeAll()
            }
        }
        _ = await clients.append(requests: batch, policy: admin)
        try await clients.close()
        removeTree(played)
        try writeFile(dir + "/COMPLETE", [])
        Terminal.line("log: \(days) simulated days of client events played and kept in \(dir) in \(Format.fixed(monotonicSeconds() - start, 1)) s")
        return dir
    }

    func processors() async throws {
        let source = try await clientLog()
        let scratch = workDir + "/processed"
        removeTree(scratch)
        // A copy of the client log to append the decisions to.
        var options = EngineOptions()
        options.log.fsync = .never
        options.projections = false
        options.loadSnapshots = false
        let copy = try await LedgerEngine.open(directory: scratch, options: options)
        let reader = try LogReader(directory: source)
        let cursor = reader.cursor()
        var batch: [[AppendRequest]] = []
        let admin = AppendPolicy(actor: "svc:bench", mode: .admin)
        while let v = try cursor.next() {
            let e = try v.envelope()
            batch.append([AppendRequest(stream: e.stream, type: e.type, data: e.data, id: e.id, causationId: e.causationId, correlationId: e.correlationId, time: e.time, actor: e.actor)])
            if batch.count == 4000 {
                _ = await copy.append(requests: batch, policy: admin)
                batch.removeAll()
            }
        }
        _ = await copy.append(requests: batch, policy: admin)
        let inputs = copy.head
        let start = monotonicSeconds()
        let decisions = try await copy.decide()
        let seconds = monotonicSeconds() - start
        try await copy.close()
        removeTree(scratch)
        Terminal.line("processors: scheduler, drift, slo, gate and rollout over \(Format.count(inputs)) client events (\(days) simulated days) in \(Format.fixed(seconds, 2)) s = \(Format.count(Int64(Double(inputs) / seconds))) input events/s; \(Format.count(Int64(decisions.count))) decisions appended (fsync never); peak RSS \(Format.bytes(peakRSS()))")
        Terminal.flush()
    }

    func demo() throws {
        let dir = workDir + "/demo"
        removeTree(dir)
        let start = monotonicSeconds()
        let status = try runSelf(["demo", "--days", String(days), "--data-dir", dir], stdin: nil, stdout: "/dev/null")
        let seconds = monotonicSeconds() - start
        guard status == 0 else { throw LedgerError(.internal, "ledger demo exited with \(status)") }
        Terminal.line("demo: `ledger demo --days \(days)` in \(Format.fixed(seconds, 1)) s wall time (simulation, every event through the log with the processors deciding after each, projections, verify)")
        removeTree(dir)
    }
}
