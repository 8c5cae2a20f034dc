#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import LedgerCore
import Logging

@main
struct Ledger: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ledger",
        abstract: "Platform Ledger: the event-sourced system of record of an AI platform.",
        discussion: """
            Every platform action is an immutable event in one append-only, hash-chained log. The \
            embedded default is a directory of LZ4-compressed, CRC-checked segment files \
            (--data-dir, default $LEDGER_DATA_DIR or ./ledger-data).

            Exit codes: 0 success; 1 usage or internal error; 2 input rejected; 3 corruption found; \
            4 the data directory is held by another writer; 5 `policy check`: a policy denies.
            """,
        subcommands: [
            DemoCommand.self, AppendCommand.self, ReadCommand.self, TailCommand.self, VerifyCommand.self,
            StatsCommand.self, RepairCommand.self, ImportCommand.self, ProjectCommand.self, ProcessCommand.self, DecisionsCommand.self, ExplainCommand.self, RegistryCommand.self, ChargebackCommand.self,
            SLOCommand.self, AuditCommand.self, LineageCommand.self, PolicyCommand.self, ComplianceCommand.self, CheckpointCommand.self, ProveCommand.self, EvidenceCommand.self, ReplayCommand.self, ServeCommand.self, KafkaCommand.self, BenchCommand.self,
        ]
    )

    static func main() async {
        // A parent may have spawned us with signals blocked (some process libraries do): unblock
        // them, so that SIGTERM and Ctrl-C stop a writer or a `tail` as they should.
        var none = sigset_t()
        sigemptyset(&none)
        sigprocmask(SIG_SETMASK, &none, nil)
        // The log may hold personal data (datasets classified pii): everything the ledger creates
        // is owner-only (directories 0700, files 0600), SQLite's files included.
        umask(0o077)
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = ProcessInfoLite.environment("LEDGER_LOG_LEVEL").flatMap(Logger.Level.init(rawValue:)) ?? .warning
            return handler
        }
        do {
            var command = try parseAsRoot()
            if var async = command as? any AsyncParsableCommand {
                try await async.run()
            } else {
                try command.run()
            }
        } catch let error as LedgerError {
            Terminal.error(error.description)
            Terminal.flush()
            exitProcess(error.exitCode)
        } catch let error as ExitCode {
            Terminal.flush()
            exitProcess(error.rawValue)
        } catch {
            Terminal.flush()
            exit(withError: error)
        }
        Terminal.flush()
    }
}
