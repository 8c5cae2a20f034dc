#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import Foundation
import LedgerCore
import LedgerEngine
import LedgerKafka
import LedgerLog
import LedgerProcessors
import LedgerProjections

struct ProcessCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "process",
        abstract: "Run the processors (scheduler, drift, slo, gate, rollout) up to the log head, appending their decisions.",
        discussion: """
            Each processor folds the log from its snapshot (in <data-dir>/processors) and appends its \
            decisions through the validated, idempotent append path as processor:<name>. Decision ids \
            are derived from processor, trigger and index (Schemas/processor-ids.md), so running it \
            again — or after a crash, from an older snapshot — writes nothing twice. Snapshots are \
            saved only once the decisions they account for are durable.
            """)

    @OptionGroup var data: DataDirectory
    @OptionGroup var kafka: KafkaOptions
    @Flag(help: "Ignore the snapshots and fold the log from offset 0 (decisions already in the log are re-derived, not rewritten).")
    var fromStart = false
    @Option(help: ArgumentHelp("Save snapshots every N events folded.", visibility: .hidden))
    var snapshotEvery: Int64 = 200_000
    @Option(help: ArgumentHelp("Events per round.", visibility: .hidden))
    var chunk: Int = 8192

    func run() async throws {
        // The processors fold an existing log; they never create one.
        guard kafka.isKafka || access(data.resolved + "/HEAD", F_OK) == 0 || access(data.resolved + "/segments", F_OK) == 0 else {
            throw LedgerError(.notFound, "there is no ledger in \(data.resolved) (no HEAD or segments/): nothing to process")
        }
        var options = EngineOptions()
        options.projections = false
        options.loadSnapshots = !fromStart
        options.snapshotEvery = snapshotEvery
        options.chunk = chunk
        options.beforeProcessorAppend = faultInjection()
        let engine = try await openEngine(data, kafka: kafka, options: options)
        let runner = engine.runner!
        let from = runner.checkpoints
        let headBefore = engine.head
        let start = monotonicSeconds()
        let decisions: [AppendedDecision]
        do {
            decisions = try await engine.decide()
        } catch {
            try? await engine.close()
            throw error
        }
        try await engine.close()
        let seconds = monotonicSeconds() - start
        var table = Table(["processor", "from", "to", "new decisions", "re-derived (already in the log)"])
        for (i, p) in runner.processors.enumerated() {
            let mine = decisions.filter { $0.processor == p.name }
            let existing = mine.filter { $0.offset < headBefore }.count
            table.add([p.name, String(from[i]), String(runner.checkpoints[i]), String(mine.count - existing), String(existing)])
        }
        Terminal.line(table.render())
        Terminal.line("processors at the log head \(engine.head) in \(Format.fixed(seconds, 2)) s")
    }
}

/// `LEDGER_FAULT_KILL_BEFORE_APPEND=N`: SIGKILL this process right before the processors' Nth
/// append (counting from 0) — after deciding, before writing. For the fault tests only.
func faultInjection() -> (@Sendable (Int) -> Void)? {
    guard let text = ProcessInfoLite.environment("LEDGER_FAULT_KILL_BEFORE_APPEND"), let n = Int(text) else { return nil }
    return { count in if count >= n { kill(getpid(), SIGKILL) } }
}

struct DecisionsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "decisions", abstract: "The processors' decisions, with their reasons and evidence.")

    @OptionGroup var scope: QueryScope
    @Option(help: "Only this processor's decisions (scheduler, drift, slo, gate, rollout).")
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
        let rows = try Decisions.list(reader, filter: Decisions.Filter(processor: processor, type: type), end: end)
        if format == .json {
            for e in rows { Terminal.json(e.json) }
            return
        }
        if format == .brief {
            for e in rows { Terminal.json(Decisions.brief(e)) }
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
        let chain = try CausalChain.explain(reader, offset: offset)
        if format == .json { return Terminal.json(chain.json) }
        for (depth, step) in chain.steps.enumerated() {
            let e = step.event
            let label = depth == 0 ? "decision" : "caused by"
            Terminal.line("\(label) #\(e.offset) \(e.time) \(e.actor) \(e.type) (\(e.stream))")
            Terminal.line("    \(EventSummary.of(e))")
            Terminal.line("    id \(e.id)  hash \(e.hash)")
            if let checks = e.data["checks"]?.arrayValue {
                for c in checks {
                    Terminal.line("    check \(c["metric"]?.stringValue ?? "?"): \(c["value"]?.doubleValue.map { String($0) } ?? "?") against threshold \(c["threshold"]?.doubleValue.map { String($0) } ?? "?")")
                }
            }
            if !step.evidence.isEmpty {
                Terminal.line("    evidence (\(step.evidence.count)):")
                for ev in step.evidence.prefix(12) {
                    Terminal.line("      #\(ev.offset.map(String.init) ?? "?") \(ev.event.map(EventSummary.of) ?? "id \(ev.id) is not in this log")")
                }
                if step.evidence.count > 12 { Terminal.line("      … \(step.evidence.count - 12) more (--format json lists all)") }
            }
        }
    }
}

/// The engine over the data directory's segment log, or over the Kafka topic (as its writer)
/// with the data directory holding the snapshots, the projections and the writer's state.
func openEngine(_ data: DataDirectory, kafka: KafkaOptions, options: EngineOptions) async throws -> LedgerEngine {
    guard kafka.isKafka else { return try await LedgerEngine.open(directory: data.resolved, options: options) }
    var options = options
    let maxDataBytes = options.log.maxDataBytes
    let log = try await BlockingPool.shared.run { try kafka.openWriter(data, maxDataBytes: maxDataBytes) }
    options.log.maxDataBytes = maxDataBytes
    do {
        return try await LedgerEngine(log: log, directory: data.resolved, options: options)
    } catch {
        try? await log.close()
        throw error
    }
}
