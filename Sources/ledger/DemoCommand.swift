#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import Foundation
import LedgerCore
import LedgerEngine
import LedgerLog
import LedgerProcessors
import LedgerProjections
import LedgerSimulator

struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "The main job: a simulated week of a GPU platform through the real log, then stats and verify.",
        discussion: """
            Simulates N days (default 7) of an AI platform — teams with quotas, GPU nodes and prices, \
            thousands of training jobs, models with versions, canary rollouts, serving windows, drift \
            and SLOs: every event type of the catalog — and appends it through the embedded segment \
            log, exactly as clients would (each event keeps its simulated time and actor, as an admin \
            import does). Then it reads the log back, prints what happened, and verifies every CRC \
            and the whole hash chain. The data directory (default ./ledger-demo) is replaced if an \
            earlier demo made it; any other non-empty directory is refused.
            """)

    @Option(name: .customLong("data-dir"), help: ArgumentHelp("Where to write the demo's log.", valueName: "DIR"))
    var dataDir: String = "./ledger-demo"
    @Option(help: "Days to simulate.")
    var days: Int = 7
    @Option(help: "Seed of the simulation (the same seed gives the same log).")
    var seed: UInt64 = 42
    @Option(help: "best-effort (Kueue's default BestEffortFIFO for every team but fraud, which asked for StrictFIFO) or strict (every team StrictFIFO: the same week, the other way).")
    var strategy: SimulationConfig.Queueing = .bestEffort
    @Option(help: ArgumentHelp("Training jobs arriving per weekday at the peak rate (the fleet is sized for the default).", visibility: .hidden))
    var jobsPerDay: Double?

    func validate() throws {
        guard (1...31).contains(days) else { throw ValidationError("--days must be between 1 and 31") }
    }

    func run() async throws {
        let started = monotonicSeconds()
        try prepareDirectory()
        Terminal.line("Platform Ledger demo — \(days) simulated days, seed \(seed), queues \(strategy == .strict ? "all StrictFIFO" : "BestEffortFIFO (fraud: StrictFIFO)"), data in \(dataDir)")
        Terminal.flush()
        var config = SimulationConfig(seed: seed, days: days)
        config.queueing = strategy
        if let jobsPerDay { config.jobsPerDay = jobsPerDay }
        let play = PlatformPlay(config: config)
        let generated = monotonicSeconds()
        Terminal.line("  planned the simulated platform in \(Format.fixed(generated - started, 2)) s; playing it through the log with the processors deciding…")
        Terminal.flush()

        var options = EngineOptions()
        options.log.fsync = .onClose  // a demo can be run again: one fsync at the end (the bytes are the same; SEMANTICS.md)
        let engine = try await LedgerEngine.open(directory: dataDir, options: options)
        let policy = AppendPolicy(actor: ProcessInfoLite.localActor, mode: .admin)
        let appendStart = monotonicSeconds()
        // Each client event is appended, then the processors run until none has more to append
        // (SEMANTICS.md, interleaving); the simulated clients react to the decisions.
        let counts: (inputs: Int, decisions: Int)
        do {
            counts = try await engine.drive(policy: policy, next: { play.next()?.request }) { d in
                play.observe(type: d.decision.type, data: d.decision.data, time: d.decision.notBefore)
            }
        } catch {
            try? await engine.close()
            throw error
        }
        let (inputs, decisions) = counts
        let appendSeconds = monotonicSeconds() - appendStart
        let projectStart = monotonicSeconds()
        let projected = try await engine.project()?.nextOffset ?? 0
        let projectSeconds = monotonicSeconds() - projectStart
        try await engine.close()
        Terminal.line("  \(Format.count(Int64(inputs))) client events and \(Format.count(Int64(decisions))) processor decisions in \(Format.fixed(appendSeconds, 2)) s (\(Format.count(Int64(Double(inputs + decisions) / appendSeconds))) events/s, each validated, canonicalised, hashed, LZ4, CRC-32C)")
        Terminal.line("")
        let rollback = try summarise()
        Terminal.line("")
        Terminal.line("Projections: \(Format.count(projected)) events folded into the registry, chargeback, SLO and audit read models in \(Format.fixed(projectSeconds, 2)) s (\(Format.count(Int64(Double(projected) / max(projectSeconds, 0.001)))) events/s)")
        try showProjections(days: days)
        Terminal.line("")
        let reader = try LogReader(directory: dataDir)
        let stats = try reader.statistics()
        Terminal.line("Log: \(Format.count(stats.events)) events in \(Format.count(stats.streams)) streams, \(Format.count(stats.batches)) record batches, \(stats.segments.count) segment(s), \(Format.bytes(stats.bytesOnDisk)) on disk (\(Format.fixed(stats.compressionRatio, 2))x LZ4)")
        let verifyStart = monotonicSeconds()
        let report = try Verifier.verify(directory: dataDir)
        guard report.isClean else { throw LedgerError(.corrupt, "verify failed at offset \(report.badOffset ?? -1): \(report.problem ?? "")") }
        Terminal.line("Verify: ok — every CRC-32C, every envelope against its schema, and the hash chain of \(Format.count(report.events)) events checked in \(Format.fixed(monotonicSeconds() - verifyStart, 2)) s")
        Terminal.line("  head hash \(report.headHash)")
        Terminal.line("")
        Terminal.line("Next:")
        Terminal.line("  ledger registry model fraud-detector --data-dir \(dataDir)   # versions, approvals, alias history")
        Terminal.line("  ledger chargeback --data-dir \(dataDir) --from 2026-11-23 --to 2026-11-29 --group-by team,gpuType,day --share-idle")
        Terminal.line("  ledger chargeback --data-dir \(dataDir) --from 2026-11-23 --to 2026-11-29 --format focus > focus.csv")
        Terminal.line("  ledger lineage fraud-detector@2 --data-dir \(dataDir)")
        Terminal.line("  ledger decisions --processor rollout --data-dir \(dataDir)   # every decision with its reason and evidence")
        Terminal.line("  ledger compliance report --data-dir \(dataDir) --from 2026-11-23 --to 2026-11-29 --format md   # promotions, controls, approvers, evidence")
        Terminal.line("  ledger policy check fraud-detector@5 --for fraud-api --as-of 2026-11-28T10:00:00Z --data-dir \(dataDir)   # the denied rollout, rule by rule")
        Terminal.line("  ledger explain \(rollback.map(String.init) ?? "OFFSET") --data-dir \(dataDir)   # a rollback back to the observation that caused it")
        Terminal.line("  ledger slo --as-of 2026-11-24T15:00:00.000Z --data-dir \(dataDir)   # any past moment")
        Terminal.line("  ledger read   --data-dir \(dataDir) --type rollout.rolled_back     # decisions with their reasons and evidence")
        Terminal.line("  ledger read   --data-dir \(dataDir) --stream job-train-1           # one job's history")
        Terminal.line("  ledger stats  --data-dir \(dataDir)")
        Terminal.line("  ledger verify --data-dir \(dataDir)")
        Terminal.line("  ledger read   --data-dir \(dataDir) > export.ndjson && python3 Tests/ledgerTests/Fixtures/verify_export.py export.ndjson")
        Terminal.line("  (done in \(Format.fixed(monotonicSeconds() - started, 1)) s)")
    }

    /// Folds the log into the projections and prints the registry, the chargeback per team
    /// (with idle) and the SLO status of the simulated days.
    func showProjections(days: Int) throws {
        let reader = try LogReader(directory: dataDir)
        let store = try ProjectionStore(dataDirectory: dataDir)
        let q = try QueryContext(store: store, source: reader, asOf: .head)
        Terminal.line("")
        Terminal.line("Registry (ledger registry):")
        var models = Table(["model", "team", "versions", "aliases", "flags"])
        for m in try Registry.models(q) {
            let flags = m.versions.filter(\.selfApproved).map { "v\($0.version) self-approved" }.joined(separator: ", ")
            models.add([m.model, m.team, String(m.versions.count), m.aliases.map { "\($0.0)=\($0.1)" }.joined(separator: " "), flags])
        }
        Terminal.line(indent(models.render()))
        var deployments = Table(["deployment", "model", "live", "canary", "state"])
        for d in try Registry.deployments(q) { deployments.add([d.deployment, d.model, d.live, d.canary.map { "\($0) at \(d.weight)%" } ?? "-", d.state]) }
        Terminal.line(indent(deployments.render()))
        Terminal.line("")
        let from = SimulationConfig().start
        let options = Chargeback.Options(from: from, to: from.adding(milliseconds: Int64(days) * 86_400_000), groupBy: [.team])
        let report = try Chargeback.report(q, options)
        Terminal.line("Chargeback, \(options.from) to \(report.end) (ledger chargeback --group-by team):")
        Terminal.line(indent(ChargebackCommand.table(report)))
        // What the platform pays for GPUs nobody used, per type.
        let byType = try Chargeback.report(q, Chargeback.Options(from: options.from, to: options.to, groupBy: [.gpuType]))
        var idle: [String: Decimal] = [:]
        var total: [String: Decimal] = [:]
        for row in byType.rows where row.kind != .inference {
            guard let type = row.gpuType, let cost = row.cost else { continue }
            total[type, default: 0] += cost
            if row.kind == .idle { idle[type, default: 0] += cost }
        }
        let allIdle = idle.values.reduce(0, +)
        let all = total.values.reduce(0, +)
        func percent(_ a: Decimal, _ b: Decimal) -> String { b > 0 ? Format.fixed(NSDecimalNumber(decimal: a / b * 100).doubleValue, 1) + "%" : "-" }
        Terminal.line("  idle share of training GPU cost: " + total.keys.sorted().map { "\($0) \(percent(idle[$0] ?? 0, total[$0]!)) ($\(Money.text(idle[$0] ?? 0)) of $\(Money.text(total[$0]!)))" }.joined(separator: ", ")
            + "; all \(percent(allIdle, all)) ($\(Money.text(allIdle)) of $\(Money.text(all)))")
        Terminal.line("")
        Terminal.line("SLO status (ledger slo):")
        var slos = Table(["slo", "SLI", "budget left", "burn 1h", "burn 3d", "open alerts"], numeric: [1, 2, 3, 4])
        for status in try SLOStatus.all(q) {
            func burn(_ w: String) -> String { status.burnRates.first { $0.0 == w }?.1.map { Format.fixed($0, 2) } ?? "-" }
            slos.add([status.slo, status.total > 0 ? Format.fixed(Double(status.good) / Double(status.total) * 100, 3) + "%" : "-",
                status.budgetRemaining.map { Format.fixed($0 * 100, 1) + "%" } ?? "-", burn("1h"), burn("3d"),
                status.openAlerts.map { "\($0.severity) \($0.longWindow)/\($0.shortWindow)" }.joined(separator: ", ")])
        }
        Terminal.line(indent(slos.render()))
        let anomalies = try Audit.anomalies(q)
        Terminal.line("Anomalies (ledger audit anomalies): \(anomalies.count)")
        Terminal.flush()
    }

    func indent(_ text: String) -> String { text.split(separator: "\n", omittingEmptySubsequences: false).map { "  " + $0 }.joined(separator: "\n") }

    /// Replaces a directory an earlier demo made (it holds DEMO); refuses any other non-empty one.
    func prepareDirectory() throws {
        let marker = dataDir + "/DEMO"
        if access(dataDir, F_OK) == 0 {
            let entries = (try? FileManagerLite.list(dataDir)) ?? []
            if !entries.isEmpty {
                guard access(marker, F_OK) == 0 else {
                    throw LedgerError(.usage, "\(dataDir) exists and was not made by `ledger demo`; choose another --data-dir")
                }
                removeTree(dataDir)
            }
        }
        mkdir(dataDir, 0o700)
        try writeFile(marker, Array("made by `ledger demo`; safe to delete\n".utf8))
    }

    /// What the simulated week did, read back from the log: the scheduler's figures, each
    /// rollout's outcome with its reason, the alerts.
    @discardableResult
    func summarise() throws -> Int64? {
        let reader = try LogReader(directory: dataDir)
        let start = SimulationConfig().start
        let f = try PlatformFigures.compute(reader, from: start, to: start.adding(milliseconds: Int64(days) * 86_400_000))
        let counts = f.counts
        func p(_ team: String, _ q: Double) -> String { f.wait(team, quantile: q).map { Format.fixed($0 / 60, 1) + " min" } ?? "-" }
        Terminal.line("Scheduler (processor:scheduler): \(Format.count(Int64(counts["job.queued", default: 0]))) jobs queued, \(Format.count(Int64(counts["job.admitted", default: 0]))) admissions, \(counts["job.completed", default: 0]) completed, \(counts["job.cancelled", default: 0]) cancelled")
        Terminal.line("  GPU utilisation over the \(days) days: \(f.utilisation.map { Format.fixed($0 * 100, 1) } ?? "-")% of registered GPU-hours allocated")
        Terminal.line("  rejections: " + (f.rejections.isEmpty ? "none" : f.rejections.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", "))
            + "; preemptions: " + (f.preemptions.isEmpty ? "none" : f.preemptions.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", ")))
        var waitTable = Table(["team", "admissions", "queue wait p50", "p95"], numeric: [1, 2, 3])
        for team in f.waits.keys.sorted() { waitTable.add([team, String(f.waits[team]!.count), p(team, 0.5), p(team, 0.95)]) }
        Terminal.line(indent(waitTable.render()))
        Terminal.line("Models: \(counts["model.registered", default: 0]) models, \(counts["model.version.created", default: 0]) versions, \(counts["model.version.evaluated", default: 0]) evaluations, \(counts["model.version.approved", default: 0]) approvals, \(counts["model.alias.set", default: 0]) alias moves")
        Terminal.line("Serving: \(counts["deployment.created", default: 0]) deployments, \(Format.count(Int64(counts["serving.window.observed", default: 0]))) serving windows, \(Format.count(Int64(counts["feature.histogram.observed", default: 0]))) feature histograms, \(counts["slo.defined", default: 0]) SLOs")
        Terminal.line("Rollouts (processor:rollout; `ledger explain OFFSET` walks a decision back to its evidence):")
        var table = Table(["offset", "deployment", "version", "gate", "outcome"])
        for r in f.rollouts {
            let outcome = r.promoted
                ? "promoted after every step passed (\(r.evidence) windows in the last step)"
                : "rolled back: \(r.reason ?? "") [evidence: \(r.evidence) events]"
            table.add([String(r.offset), r.deployment, r.version, r.gate ?? "-", outcome])
        }
        Terminal.line(indent(table.render()))
        let denied = f.gates.filter { !$0.passed }
        Terminal.line("Gates (processor:gate; `ledger compliance report` lists each with its evidence): \(f.gates.count) promotions gated, \(f.gates.count - denied.count) passed, \(denied.count) denied")
        var gates = Table(["offset", "time", "promotion", "subject", "policy", "result"])
        for g in f.gates {
            gates.add([String(g.offset), g.time.description, g.promotion, g.subject, g.policy, g.passed ? "passed" : "DENIED: " + g.reasons.joined(separator: "; ")])
        }
        Terminal.line(indent(gates.render()))
        Terminal.line("Alerts (processor:slo, processor:drift):")
        for a in f.alerts { Terminal.line("  " + Self.alertLine(a.envelope)) }
        let names = Set(EventCatalog.standard.allTypes.map(\.name)).sorted()
        let missing = names.filter { counts[$0] == nil }
        Terminal.line("Catalog: \(names.count - missing.count) of \(names.count) event types in the log" + (missing.isEmpty ? "" : " (missing: \(missing.joined(separator: ", ")))"))
        Terminal.flush()
        return f.rollouts.first { !$0.promoted }?.offset
    }

    static func alertLine(_ e: Envelope) -> String {
        let d = e.data
        func s(_ k: String) -> String { d[k]?.stringValue ?? "" }
        switch e.type {
        case "drift.alerted":
            return "#\(e.offset) \(e.time) drift \(s("severity")) on \(s("deployment")) v\(s("version")) feature \(s("feature")): PSI \(d["value"]?.doubleValue ?? 0) ≥ \(d["threshold"]?.doubleValue ?? 0) [evidence: \(d["evidence"]?.arrayValue?.count ?? 0) events]"
        case "slo.burn.alerted":
            return "#\(e.offset) \(e.time) SLO \(s("slo")) \(s("severity")) \(s("longWindow"))/\(s("shortWindow")): burn \(d["burnRateLong"]?.doubleValue ?? 0) / \(d["burnRateShort"]?.doubleValue ?? 0) > \(d["threshold"]?.doubleValue ?? 0) [evidence: \(d["evidence"]?.arrayValue?.count ?? 0) windows]"
        default:
            return "#\(e.offset) \(e.time) SLO \(s("slo")) \(s("severity")) \(s("longWindow"))/\(s("shortWindow")) resolved"
        }
    }
}

enum FileManagerLite {
    static func list(_ path: String) throws -> [String] {
        guard let dir = opendir(path) else { throw LedgerError(.io, "opendir \(path)") }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafePointer(to: entry.pointee.d_name) { $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) } }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }
}
