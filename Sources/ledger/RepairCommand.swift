import ArgumentParser
import LedgerCore
import LedgerLog

struct RepairCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "repair",
        abstract: "Cut a damaged log back to its last whole, verified batch — only with --confirm.",
        discussion: """
            For a log `ledger verify` refuses (an acknowledged tail lost or damaged: a restored \
            backup that is behind, a truncated or corrupted file). Without --confirm it only says \
            what it would do. With --confirm, under the writer lock: the bytes from the first bad \
            batch on move to quarantine/, HEAD is lowered to the new end, the derived state past it \
            (indexes, Merkle tree, processor snapshots, projections) is dropped to be rebuilt from \
            the log, and a repair record in repairs/ says exactly what was lost. `ledger verify` \
            reports every repair. Restoring the lost events from a copy (`ledger import`) is the \
            operator's next step.
            """)

    @OptionGroup var data: DataDirectory
    @Flag(help: "Carry out the repair (without it: only show the plan).")
    var confirm = false
    @Option(help: "table or json.")
    var format: OutputFormat = .table

    func run() throws {
        let directory = data.resolved
        guard let plan = try Repair.plan(directory: directory) else {
            if format == .json { Terminal.json(["repaired": false, "needed": false]) } else { Terminal.line("repair: nothing to repair — the log verifies") }
            return
        }
        let place = plan.cutSegment.map { "segment \(String(repeating: "0", count: max(0, 20 - String($0).count)))\($0).log from byte \(plan.cutByte ?? 0)" } ?? "no bytes (the segments end before HEAD)"
        guard confirm else {
            if format == .json {
                Terminal.json([
                    "repaired": false, "needed": true, "problem": .string(plan.problem), "acknowledgedHead": .number(Double(plan.acknowledgedHead)),
                    "newHead": .number(Double(plan.newHead)), "lostEvents": .number(Double(plan.lostEvents)), "cutBytes": .number(Double(plan.cutBytes)),
                ])
            } else {
                Terminal.line("repair needed: \(plan.problem)")
                Terminal.line("would cut \(place) (\(Format.bytes(plan.cutBytes))) into quarantine/, and lower the head from \(plan.acknowledgedHead) to \(plan.newHead)")
                Terminal.line("events acknowledged and lost: \(Format.count(plan.lostEvents)) (offsets \(plan.newHead)..<\(plan.acknowledgedHead)); the chain would end at \(plan.headHash)")
                Terminal.line("nothing changed: run again with --confirm to repair")
            }
            return
        }
        let record = try Repair.apply(plan, directory: directory)
        let after = try Verifier.verify(directory: directory)
        if format == .json {
            Terminal.json(["repaired": true, "record": record, "verify": after.json])
        } else {
            Terminal.line("repaired: cut \(place) (\(Format.bytes(plan.cutBytes))) into quarantine/; head \(plan.acknowledgedHead) → \(plan.newHead)")
            Terminal.line("lost: \(Format.count(plan.lostEvents)) acknowledged events (offsets \(plan.newHead)..<\(plan.acknowledgedHead)); recorded in repairs/")
            Terminal.line("verify: " + (after.isClean ? "ok — \(Format.count(after.events)) events, head hash \(after.headHash)" : "still failing: \(after.problem ?? "")"))
        }
        if let problem = after.problem { throw LedgerError(.corrupt, "after the repair: \(problem)") }
    }
}
