#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import LedgerCore
import LedgerEngine
import LedgerLog
import LedgerProcessors
import LedgerProjections

struct ReplayCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "replay",
        abstract: "Run a Replay/ scenario in a scratch data directory, and compare its answers with the scenario's expected/ files.",
        discussion: """
            A scenario is a folder: events.ndjson (envelopes with their ids, times and actors, as \
            `ledger import` takes them and `ledger read` exports them) and, optionally, scenario.json \
            ({"processors": "none" or "all" (the default), "checks": [{"args": [...], "expected": "FILE", "status": N}]}, \
            status the exit status the check must end with, default 0), \
            README.md and expected/. A folder with only events.ndjson (an export of production) replays \
            with the processors and checks nothing. The events are appended one by \
            one — with "processors": "all", the processors run to quiescence after each, as SEMANTICS.md \
            describes —, the projections are brought up to date, then each check runs `ledger <args> \
            --data-dir <scratch>`; --check compares each output with expected/FILE and prints the \
            first difference. Without --check, the outputs are printed (or written to expected/ \
            with --record, to be checked by hand).
            """)

    @Argument(help: "The scenario folder.") var scenario: String
    @Option(name: .customLong("data-dir"), help: ArgumentHelp("Keep the resulting data directory here (must not exist yet).", valueName: "OUT"))
    var output: String?
    @Flag(help: "Compare every check with its expected file; exit 1 at the first difference.") var check = false
    @Flag(help: "Write every check's output to expected/ (for a new scenario, to be checked by hand).") var record = false
    @Flag(help: "Continue an interrupted replay in the --data-dir OUT it left: events already in the log are skipped (idempotent), the processors resume from their snapshots.")
    var resume = false
    @Option(help: ArgumentHelp("Save processor snapshots every N input events.", visibility: .hidden))
    var snapshotEvery: Int = 1000

    func run() async throws {
        let eventsPath = scenario + "/events.ndjson"
        guard access(eventsPath, F_OK) == 0 else {
            throw LedgerError(.notFound, "\(scenario) has no events.ndjson: a replay folder holds the events to replay (envelopes with their ids, times and actors, as `ledger read` exports them), and optionally scenario.json")
        }
        // scenario.json is optional: without it (an auditor's export of production, say), the
        // processors run and nothing is checked.
        let definition: JSONValue = access(scenario + "/scenario.json", F_OK) == 0 ? try JSONParser.parse(try readInput(scenario + "/scenario.json")) : .object([:])
        guard case .object = definition else { throw LedgerError(.usage, "\(scenario)/scenario.json must be a JSON object") }
        if definition["checks"] != nil && definition["checks"]?.arrayValue == nil {
            throw LedgerError(.usage, "\(scenario)/scenario.json: \"checks\" must be an array")
        }
        let checks = definition["checks"]?.arrayValue ?? []
        if check && checks.isEmpty {
            throw LedgerError(.usage, "\(scenario) has no checks to compare (scenario.json \"checks\"); run it without --check")
        }
        let processors = definition["processors"]?.stringValue ?? "all"
        guard processors == "none" || processors == "all" else {
            throw LedgerError(.usage, "\(scenario)/scenario.json: \"processors\" is \"all\" (the processors decide) or \"none\" (the events carry their own decisions), not \"\(processors)\"")
        }
        let directory: String
        if let output {
            guard resume || access(output, F_OK) != 0 else { throw LedgerError(.usage, "\(output) already exists; give a new directory to --data-dir (or --resume an interrupted replay)") }
            directory = output
        } else {
            directory = "/tmp/ledger-replay-\(getpid())-\(UInt32.random(in: 0..<UInt32.max))"
        }
        defer { if output == nil { removeTree(directory) } }

        // Feed the events one by one, as they happened.
        let lines = try readInput(eventsPath).split(separator: 0x0A, omittingEmptySubsequences: true)
        var options = EngineOptions()
        options.log.fsync = .onClose
        options.processors = processors == "all"
        options.loadSnapshots = resume
        options.beforeProcessorAppend = faultInjection()
        let engine = try await LedgerEngine.open(directory: directory, options: options)
        do {
            let policy = AppendPolicy(actor: ProcessInfoLite.localActor, mode: .admin)
            let progress = Progress("replay", total: Int64(lines.count))
            _ = try await engine.replay(lines: lines, name: eventsPath, policy: policy, resume: resume, snapshotEvery: snapshotEvery) { progress.update(Int64($0)) }
            progress.finish()
            try await engine.project()
        } catch {
            try? await engine.close()
            throw error
        }
        try await engine.close()

        var failures = 0
        for (i, c) in checks.enumerated() {
            guard let args = c["args"]?.arrayValue?.compactMap(\.stringValue), let expected = c["expected"]?.stringValue else {
                throw LedgerError(.usage, "\(scenario)/scenario.json check \(i): needs \"args\" (strings) and \"expected\" (a file name)")
            }
            let (status, actual) = try runSelfCapturing(args + ["--data-dir", directory])
            let wanted = Int32(c["status"]?.intValue ?? 0)
            guard status == wanted else {
                throw LedgerError(.internal, "check \(i) (`ledger \(args.joined(separator: " "))`) exited with \(status), not \(wanted): \(actual)")
            }
            let path = scenario + "/expected/" + expected
            if record {
                mkdir(scenario + "/expected", 0o755)
                try writeFile(path, Array(actual.utf8))
                Terminal.line("recorded \(path)")
            } else if check {
                let want = String(decoding: try readInput(path), as: UTF8.self)
                if let difference = firstDifference(want, actual) {
                    failures += 1
                    Terminal.line("FAIL \(expected) (`ledger \(args.joined(separator: " "))`): \(difference)")
                    break
                } else {
                    Terminal.line("ok   \(expected)")
                }
            } else {
                Terminal.line("== ledger \(args.joined(separator: " "))")
                Terminal.write(Array(actual.utf8))
            }
        }
        if check {
            Terminal.line(failures == 0 ? "replay \(scenario): all \(checks.count) checks match" : "replay \(scenario): a check differs")
            if failures > 0 { throw ExitCode(1) }
        }
        if checks.isEmpty { Terminal.line("replayed \(lines.count) events of \(eventsPath)") }
        if let output { Terminal.line("data directory kept in \(output)") }
    }

    /// "line N: expected …, got …", or nil when equal.
    func firstDifference(_ expected: String, _ actual: String) -> String? {
        guard expected != actual else { return nil }
        let a = expected.split(separator: "\n", omittingEmptySubsequences: false)
        let b = actual.split(separator: "\n", omittingEmptySubsequences: false)
        for i in 0..<max(a.count, b.count) {
            let x = i < a.count ? String(a[i]) : "(end of file)"
            let y = i < b.count ? String(b[i]) : "(end of output)"
            if x != y {
                // Within the line, point at the first differing character.
                let common = zip(x, y).prefix { $0 == $1 }.count
                let from = max(0, common - 40)
                return "line \(i + 1), column \(common + 1):\n  expected: …\(x.dropFirst(from).prefix(160))\n  actual:   …\(y.dropFirst(from).prefix(160))"
            }
        }
        return "the outputs differ"
    }
}

/// Runs this executable with `arguments`; returns its status and standard output.
func runSelfCapturing(_ arguments: [String]) throws -> (Int32, String) {
    let file = "/tmp/ledger-out-\(getpid())-\(UInt32.random(in: 0..<UInt32.max))"
    defer { unlink(file) }
    let status = try runSelf(arguments, stdin: nil, stdout: file)
    return (status, String(decoding: try readInput(file), as: UTF8.self))
}
