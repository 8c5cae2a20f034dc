#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import Foundation
import LedgerCore
import LedgerLog
import LedgerProcessors
import LedgerProjections

struct ProcessCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "process",
        abstract: "Run the processors (scheduler, drift, slo, rollout) up to the log head, appending their decisions.",
        discussion: """
            Each processor folds the log from its snapshot (in <data-dir>/processors) and appends its \
            decisions through the validated, idempotent append path as processor:<name>. Decision ids \
            are derived from processor, trigger and index (Schemas/processor-ids.md), so running it \
            again — or after a crash, from an older snapshot — writes nothing twice. Snapshots are \
            saved only once the decisions they account for are durable.
            """)

    @OptionGroup var data: DataDirectory
    @Flag(help: "Ignore the snapshots and fold the log from offset 0 (decisions already in the log are re-derived, not rewritten).")
    var fromStart = false
    @Option(help: ArgumentHelp("Save snapshots every N events folded.", visibility: .hidden))
    var snapshotEvery: Int64 = 200_000
    @Option(help: ArgumentHelp("Events per round.", visibility: .hidden))
    var chunk: Int = 8192

    func run() async throws {
        // The processors fold an existing log; they never create one.
        guard access(data.resolved + "/HEAD", F_OK) == 0 || access(data.resolved + "/segments", F_OK) == 0 else {
            throw LedgerError(.notFound, "there is no ledger in \(data.resolved) (no HEAD or segments/): nothing to process")
        }
        let log = try openLog(data)
        let runner = ProcessorRunner(log: log, dataDirectory: data.resolved)
        runner.chunk = max(1, chunk)
        runner.beforeAppend = faultInjection()
        if !fromStart { try runner.loadSnapshots() }
        let from = runner.checkpoints
        let headBefore = log.head
        let start = monotonicSeconds()
        let decisions = try await runner.runToQuiescence(snapshotEvery: snapshotEvery)
        try runner.saveSnapshots()
        let seconds = monotonicSeconds() - start
        try log.close()
        let head = log.head
        var table = Table(["processor", "from", "to", "new decisions", "re-derived (already in the log)"])
        for (i, p) in runner.processors.enumerated() {
            let mine = decisions.filter { $0.processor == p.name }
            let existing = mine.filter { $0.offset < headBefore }.count
            table.add([p.name, String(from[i]), String(runner.checkpoints[i]), String(mine.count - existing), String(existing)])
        }
        Terminal.line(table.render())
        Terminal.line("processors at the log head \(head) in \(Format.fixed(seconds, 2)) s")
    }
}

/// `LEDGER_FAULT_KILL_BEFORE_APPEND=N`: SIGKILL this process right before the processors' Nth
/// append (counting from 0) — after deciding, before writing. For the fault tests only.
func faultInjection() -> ((Int) -> Void)? {
    guard let text = ProcessInfoLite.environment("LEDGER_FAULT_KILL_BEFORE_APPEND"), let n = Int(text) else { return nil }
    return { count in if count >= n { kill(getpid(), SIGKILL) } }
}

/// One-line summaries of events, for decisions and explanations.
enum EventSummary {
    static func of(_ e: Envelope) -> String {
        let d = e.data
        func s(_ k: String) -> String { d[k]?.stringValue ?? "?" }
        func n(_ k: String) -> String {
            guard let v = d[k]?.doubleValue else { return "?" }
            return v == v.rounded() && abs(v) < 1e15 ? String(Int64(v)) : String(v)
        }
        switch e.type {
        case "job.queued": return "job \(s("job")) of \(s("team")) wants \(n("gpus")) \(s("gpuType")) (priority \(n("priority")))"
        case "job.admitted":
            return "job \(s("job")) admitted on \(s("node")) with \(n("gpus")) GPUs after \(n("waitedSeconds")) s" + (d["borrowed"]?.boolValue == true ? ", borrowing (share \(n("clusterQueueShare")))" : "")
        case "job.rejected": return "job \(s("job")) rejected: \(s("reason"))"
        case "job.preempted": return "job \(s("job")) preempted: \(s("reason"))" + (d["preemptor"] != nil ? " by \(s("preemptor"))" : "")
        case "gpu.allocated": return "\(n("gpus")) \(s("gpuType")) on \(s("node")) to job \(s("job")) (\(s("team")))"
        case "gpu.released": return "\(n("gpus")) \(s("gpuType")) on \(s("node")) released by job \(s("job")) (\(s("team")))"
        case "job.completed": return "job \(s("job")) \(s("outcome"))"
        case "job.cancelled": return "job \(s("job")) cancelled"
        case "node.removed": return "node \(s("node")) removed: \(s("reason"))"
        case "model.version.created": return "\(s("model")) version \(s("version")) created (baseline of \(d["baseline"]?.objectValue?.keys.joined(separator: ", ") ?? "no features"))"
        case "rollout.started": return "rollout of \(s("model")) version \(s("toVersion")) on \(s("deployment"))"
        case "rollout.step.advanced": return "\(s("deployment")) canary \(s("version")) advanced to \(n("weight"))% on \(d["evidence"]?.arrayValue?.count ?? 0) windows"
        case "rollout.promoted": return "\(s("deployment")) promoted version \(s("version")) on \(d["evidence"]?.arrayValue?.count ?? 0) windows"
        case "rollout.rolled_back": return "\(s("deployment")) rolled back version \(s("version")): \(s("reason"))"
        case "rollout.paused": return "\(s("deployment")) paused: \(s("reason"))"
        case "serving.window.observed":
            return "\(s("deployment")) version \(s("version")) window to \(s("windowEnd")): \(n("requests")) requests, \(n("errors")) errors, p99 \(n("p99Ms")) ms"
        case "feature.histogram.observed": return "\(s("deployment")) version \(s("version")) histogram of \(s("feature")) at \(s("windowEnd"))"
        case "drift.alerted": return "\(s("severity")) drift of \(s("feature")) in \(s("deployment")) version \(s("version")): PSI \(n("value")) ≥ \(n("threshold"))"
        case "slo.burn.alerted":
            return "\(s("severity")) on \(s("slo")): burn \(n("burnRateLong")) over \(s("longWindow")), \(n("burnRateShort")) over \(s("shortWindow")) > \(n("threshold"))"
        case "slo.burn.resolved": return "resolved \(s("severity")) on \(s("slo")) (\(s("longWindow"))/\(s("shortWindow")))"
        default: return e.stream
        }
    }
}

struct DecisionsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "decisions", abstract: "The processors' decisions, with their reasons and evidence.")

    @OptionGroup var scope: QueryScope
    @Option(help: "Only this processor's decisions (scheduler, drift, slo, rollout).")
    var processor: String?
    @Option(help: "Only decisions of this type (e.g. rollout.rolled_back).")
    var type: String?
    enum Format: String, ExpressibleByArgument { case table, json, brief }
    @Option(help: "table, json (whole envelopes, NDJSON) or brief (NDJSON of offset, type, stream, causationId, correlationId, data: what Replay/ expects).")
    var format: Format = .table

    func run() throws {
        let reader = try LogReader(directory: scope.data.resolved)
        var end = reader.head
        if let text = scope.asOf {
            switch try AsOf(parsing: text) {
            case .head: break
            case .offset(let o): end = min(end, o + 1)
            case .time(let t): end = min(end, try reader.lastOffset(atOrBefore: t) + 1)
            }
        }
        let actor = processor.map { "processor:" + $0 }
        let cursor = reader.cursor(from: 0, end: end)
        var rows: [Envelope] = []
        while let view = try cursor.next() {
            if let type, view.type != type { continue }
            guard EventCatalog.standard.type(view.type)?.isDecision == true || view.type == "rollout.promoted" || view.type == "rollout.rolled_back" else { continue }
            let e = try view.envelope()
            guard e.actor.hasPrefix("processor:"), actor == nil || e.actor == actor else { continue }
            rows.append(e)
        }
        if format == .json {
            for e in rows { Terminal.json(e.json) }
            return
        }
        if format == .brief {
            for e in rows {
                var o: JSONObject = ["offset": .number(Double(e.offset)), "type": .string(e.type), "stream": .string(e.stream), "data": .object(e.data)]
                if let c = e.causationId { o["causationId"] = .string(c.description) }
                if let c = e.correlationId { o["correlationId"] = .string(c) }
                Terminal.json(.object(o))
            }
            return
        }
        var table = Table(["offset", "time", "processor", "type", "decision", "cause", "evidence"])
        for e in rows {
            table.add([String(e.offset), e.time.description, String(e.actor.dropFirst("processor:".count)), e.type, EventSummary.of(e),
                       e.causationId.map { String($0.description.prefix(8)) } ?? "", String(e.data["evidence"]?.arrayValue?.count ?? 0)])
        }
        Terminal.line(table.render())
        Terminal.line("\(rows.count) decisions up to offset \(end - 1)")
    }
}

struct ExplainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "explain", abstract: "The causal chain of an event back to its first trigger, with the evidence of each decision.",
        discussion: "Follows causationId from the event at OFFSET to the event that started it; evidence ids are resolved to offsets. Each step shows its offset and hash.")

    @OptionGroup var data: DataDirectory
    @Argument(help: "The offset of the event to explain.")
    var offset: Int64
    @Option(help: "table or json.")
    var format: OutputFormat = .table

    func run() throws {
        let reader = try LogReader(directory: data.resolved)
        guard offset >= 0, offset < reader.head else {
            throw LedgerError(.notFound, "offset \(offset) is not in the log (head \(reader.head))")
        }
        let ids = try reader.idLookup()
        let events = EventReader(source: reader)
        func event(at o: Int64) throws -> Envelope {
            guard let stored = try events.event(at: o) else { throw LedgerError(.notFound, "offset \(o) is not readable") }
            return try stored.envelope()
        }
        var chain: [Envelope] = [try event(at: offset)]
        var seen: Set<Int64> = [offset]
        while let cause = chain.last?.causationId {
            guard let o = try ids.offset(of: cause), !seen.contains(o) else { break }
            seen.insert(o)
            chain.append(try event(at: o))
        }
        var json: [JSONValue] = []
        for (depth, e) in chain.enumerated() {
            var evidence: [(String, Int64?, Envelope?)] = []
            for idValue in e.data["evidence"]?.arrayValue ?? [] {
                guard let text = idValue.stringValue, let id = EventID(text) else { continue }
                let o = try ids.offset(of: id)
                evidence.append((text, o, try o.map { try event(at: $0) }))
            }
            if format == .json {
                var step: JSONObject = ["offset": .number(Double(e.offset)), "id": .string(e.id.description), "type": .string(e.type), "actor": .string(e.actor),
                    "time": .string(e.time.description), "hash": .string(e.hash.description), "summary": .string(EventSummary.of(e))]
                step["evidence"] = .array(evidence.map { ["id": .string($0.0), "offset": $0.1.map { .number(Double($0)) } ?? .null] })
                json.append(.object(step))
                continue
            }
            let label = depth == 0 ? "decision" : "caused by"
            Terminal.line("\(label) #\(e.offset) \(e.time) \(e.actor) \(e.type) (\(e.stream))")
            Terminal.line("    \(EventSummary.of(e))")
            Terminal.line("    id \(e.id)  hash \(e.hash)")
            if let checks = e.data["checks"]?.arrayValue {
                for c in checks {
                    Terminal.line("    check \(c["metric"]?.stringValue ?? "?"): \(c["value"]?.doubleValue.map { String($0) } ?? "?") against threshold \(c["threshold"]?.doubleValue.map { String($0) } ?? "?")")
                }
            }
            if !evidence.isEmpty {
                Terminal.line("    evidence (\(evidence.count)):")
                for (text, o, ev) in evidence.prefix(12) {
                    Terminal.line("      #\(o.map(String.init) ?? "?") \(ev.map(EventSummary.of) ?? "id \(text) is not in this log")")
                }
                if evidence.count > 12 { Terminal.line("      … \(evidence.count - 12) more (--format json lists all)") }
            }
        }
        if format == .json { Terminal.json(["chain": .array(json)]) }
    }
}
