import ArgumentParser
import LedgerCore
import LedgerKafka
import LedgerLog

struct AppendCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "append",
        abstract: "Append events read as NDJSON from standard input.",
        discussion: """
            One request per line: {"stream","type","data","id"?,"expectedVersion"?,"causationId"?,"correlationId"?} \
            (Schemas/append-request.v1.json), or a JSON array of them on one line for an atomic batch. \
            Prints {"id","offset","stream","version"} per event as soon as it is durable, so \
            `producer | ledger append` works as a live feed. A rejected line is reported on stderr with \
            its line number and writes nothing; the exit code is then 2. Events are appended as \
            user:<login name>.
            """)

    @OptionGroup var data: DataDirectory
    @OptionGroup var kafka: KafkaOptions

    @Option(help: "Largest canonical data of one event, in bytes.")
    var maxDataBytes: Int = AppendPolicy.defaultMaxDataBytes

    @Flag(help: "Print nothing for accepted events.")
    var quiet = false

    @Flag(help: ArgumentHelp(
        "Do not keep the Merkle tree up while appending (checkpoints and proofs catch it up from the log when they need it).",
        discussion: "By default the writer adds each durable event's leaf to <data-dir>/merkle/ from the hash it computed."))
    var noTree = false

    func run() throws {
        let noTree = self.noTree
        let log: any EventLog & PreparedAppender =
            kafka.isKafka
            ? try kafka.openWriter(data, maxDataBytes: maxDataBytes)
            : try openLog(data) {
                $0.maxDataBytes = maxDataBytes
                $0.maintainTree = !noTree
            }
        let quiet = self.quiet
        let ingest = LineIngest(log: log, policy: AppendPolicy(actor: ProcessInfoLite.localActor, maxDataBytes: maxDataBytes), mode: .append) { results in
            for r in results {
                switch r.result {
                case .success(let acks):
                    if !quiet { for ack in acks { Terminal.json(ack.json) } }
                case .failure(let e):
                    Terminal.error(lineError(e, line: r.line))
                }
            }
            Terminal.flush()
        }
        let summary: LineIngest.Summary
        do {
            summary = try ingest.run(fd: 0)
        } catch {
            try? log.close()
            throw error
        }
        try log.close()
        if summary.rejected > 0 { throw ExitCode(2) }
    }
}

/// `error: <code>: line N[, event I]: <message>`.
func lineError(_ e: LedgerError, line: Int) -> String {
    var place = "line \(line)"
    if let index = e.index { place += ", event \(index)" }
    return "error: \(e.code): \(place): \(e.message)"
}
