import ArgumentParser
import Foundation
import LedgerCore
import LedgerLog
import LedgerProcessors
import LedgerProjections

struct PolicyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "policy", abstract: "Promotion policies: the ones in force, and what they would decide about a version.",
        subcommands: [Check.self, Show.self], defaultSubcommand: Show.self)

    /// The log's end for `--as-of` (exclusive), as `ledger decisions` reads it.
    static func end(_ reader: LogReader, asOf: String?) throws -> Int64 {
        guard let asOf else { return reader.head }
        switch try AsOf(parsing: asOf) {
        case .head: return reader.head
        case .offset(let o): return min(reader.head, o + 1)
        case .time(let t): return min(reader.head, try reader.lastOffset(atOrBefore: t) + 1)
        }
    }

    struct Check: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "check", abstract: "What the policies in force would decide about MODEL@VERSION, rule by rule, and what is missing. Appends nothing.",
            discussion: """
                --for names the promotion: deployment:NAME (a rollout to, or the creation of, that deployment), alias:NAME (setting \
                that alias), or a bare NAME (a deployment). Without it, every policy whose models and teams cover the model is \
                evaluated. Exit status 0 when every policy passes, 5 when any denies.
                """)
        @OptionGroup var scope: QueryScope
        @Argument(help: "The version: MODEL@VERSION.") var subject: String
        @Option(name: .customLong("for"), help: ArgumentHelp("The promotion: deployment:NAME, alias:NAME or NAME (a deployment).", valueName: "TARGET"))
        var target: String?
        @Option(help: "Only this policy.") var policy: String?
        @Option(help: "table or json.") var format: OutputFormat = .table

        func run() throws {
            let parts = subject.split(separator: "@", maxSplits: 1).map(String.init)
            guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else { throw ValidationError("the version is MODEL@VERSION, not \(subject)") }
            var kind: Promotion.Kind?
            if let target {
                if target.hasPrefix("alias:") { kind = .alias(String(target.dropFirst(6))) }
                else if target.hasPrefix("deployment:") { kind = .deployment(String(target.dropFirst(11))) }
                else { kind = .deployment(target) }
                if case .alias(let n) = kind!, n.isEmpty { throw ValidationError("--for alias: needs a name") }
                if case .deployment(let n) = kind!, n.isEmpty { throw ValidationError("--for deployment: needs a name") }
            }
            let reader = try LogReader(directory: scope.data.resolved)
            let end = try PolicyCommand.end(reader, asOf: scope.asOf)
            let gate = try PolicyCheck.state(reader, end: end)
            let outcomes = try PolicyCheck.check(gate, model: parts[0], version: parts[1], target: kind, policy: policy)
            let denied = outcomes.contains { !$0.passed }
            if format == .json {
                Terminal.json(["asOf": ["offset": .number(Double(end - 1))], "subject": .string(subject), "target": target.map { .string($0) } ?? .null,
                               "result": .string(outcomes.isEmpty ? "ungated" : denied ? "denied" : "passed"),
                               "policies": .array(outcomes.map { .object($0.data) })])
            } else {
                let what = kind.map { Promotion(type: "", model: parts[0], version: parts[1], kind: $0).target } ?? "any promotion"
                if outcomes.isEmpty {
                    Terminal.line("no policy in force gates \(subject) to \(what) (as of offset \(end - 1))")
                }
                for o in outcomes {
                    Terminal.line("policy \(o.policy) v\(o.policyVersion) on \(subject) to \(what): \(o.passed ? "PASSED" : "DENIED") (as of offset \(end - 1))")
                    var table = Table(["rule", "metric", "verdict", "value", "threshold", "reason"])
                    for r in o.rules {
                        table.add([r.rule, r.metric ?? "", r.verdict.rawValue, r.value?.text ?? "", r.threshold?.text ?? "", r.reason])
                    }
                    Terminal.line(table.render())
                    let missing = o.rules.filter { $0.verdict == .missing }
                    if !missing.isEmpty { Terminal.line("missing: " + missing.map(\.name).joined(separator: ", ")) }
                }
            }
            if denied { throw ExitCode(5) }
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "show", abstract: "The policies in force (or one), with their scope and rules.")
        @OptionGroup var scope: QueryScope
        @Argument(help: "Only this policy.") var name: String?
        @Option(help: "table or json.") var format: OutputFormat = .table

        func run() throws {
            let reader = try LogReader(directory: scope.data.resolved)
            let end = try PolicyCommand.end(reader, asOf: scope.asOf)
            // The policy events themselves: what was set, by whom, when.
            var latest: [String: Envelope] = [:]
            let cursor = reader.cursor(from: 0, end: end, filter: EventFilter(category: "policy"))
            while let view = try cursor.next() {
                guard view.type == "policy.set" else { continue }
                let e = try view.envelope()
                if let n = e.data["policy"]?.stringValue, name == nil || n == name { latest[n] = e }
            }
            if let name, latest[name] == nil { throw LedgerError(.notFound, "no policy \(name) as of offset \(end - 1)") }
            let policies = latest.sorted { $0.key < $1.key }.map(\.value)
            if format == .json {
                return Terminal.json(["asOf": ["offset": .number(Double(end - 1))], "policies": .array(policies.map {
                    ["offset": .number(Double($0.offset)), "time": .string($0.time.description), "actor": .string($0.actor), "hash": .string($0.hash.description), "policy": .object($0.data)]
                })])
            }
            if policies.isEmpty { Terminal.line("no policy in force (as of offset \(end - 1))") }
            for e in policies {
                let d = e.data
                Terminal.line("policy \(d["policy"]?.stringValue ?? "?") v\(d["version"]?.intValue ?? 0), set at #\(e.offset) \(e.time) by \(e.actor)")
                if let text = d["description"]?.stringValue { Terminal.line("  \(text)") }
                Terminal.line("  scope: \(d["scope"]?.description ?? "{}")")
                for rule in d["rules"]?.objectValue ?? [:] { Terminal.line("  \(rule.key): \(rule.value.description)") }
            }
        }
    }
}

struct ComplianceCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "compliance", abstract: "Compliance evidence from the log.", subcommands: [Report.self], defaultSubcommand: Report.self)

    struct Report: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "report", abstract: "Every promotion of a period with the controls that ran, their results, approvers and evidence; the access changes; grouped by control.",
            discussion: """
                A promotion is a deployment's creation, a rollout or an alias move. Each gate verdict lists its rules with value, \
                threshold and verdict, and its evidence with offsets and hashes (check them with `ledger read --offset` and \
                `ledger verify`). Promotions no policy gated are listed as ungated. The mapping from rules to controls is \
                Schemas/compliance/controls.json unless --controls names another file of the same form.
                """)
        @OptionGroup var data: DataDirectory
        @Option(help: "Start (inclusive): a date or an RFC 3339 time.") var from: String
        @Option(help: "End: a date includes that whole UTC day; an RFC 3339 time is exclusive.") var to: String
        enum Format: String, ExpressibleByArgument { case table, json, md }
        @Option(help: "table, json or md (Markdown).") var format: Format = .table
        @Option(help: ArgumentHelp("The rule-to-control mapping (default: the embedded Schemas/compliance/controls.json).", valueName: "FILE"))
        var controls: String?

        func run() throws {
            let end = try ChargebackCommand.time(to, option: "--to")
            let start = try ChargebackCommand.time(from, option: "--from").instant
            let stop = end.isDate ? end.endOfDay : end.instant
            guard start < stop else { throw ValidationError("--from must be before --to") }
            let reader = try LogReader(directory: data.resolved)
            let report = try ComplianceReport.build(reader, from: start, to: stop, controls: try ComplianceReport.controls(path: controls))
            switch format {
            case .json: Terminal.json(report.json)
            case .md: Terminal.write(Array(report.markdown.utf8))
            case .table: Self.table(report)
            }
        }

        static func table(_ report: ComplianceReport) {
            let t = report.totals
            Terminal.line("compliance report \(report.from) to \(report.to) (offsets \(report.first)–\(report.end - 1)): \(t.promotions) promotions, \(t.passed) passed, \(t.denied) denied, \(t.ungated) ungated; \(report.access.count) access changes")
            var controls = Table(["control", "framework", "title", "gates", "failing", "rules"], numeric: [3, 4])
            for c in report.controls {
                let f = report.findings(c)
                let failing = f.filter { $0.rules.contains { $0.verdict != .passed } }.count
                controls.add([c.id, c.framework, c.title, c.rules == ["access"] ? "-" : String(f.count), c.rules == ["access"] ? "-" : String(failing),
                              c.rules.joined(separator: ",") + (c.rules.contains("access") ? " (\(report.access.count) changes)" : "")])
            }
            Terminal.line(controls.render())
            var promotions = Table(["offset", "time", "promotion", "subject", "by", "result", "gates", "approvers", "outcome"], numeric: [0])
            for p in report.promotions {
                let approvers = Array(Set(p.gates.flatMap(\.approvers))).sorted().joined(separator: " ")
                promotions.add([String(p.offset), p.time.description, p.promotion.type, "\(p.promotion.model)@\(p.promotion.version) → \(p.promotion.target)", p.actor, p.result,
                                p.gates.map { "#\($0.offset) \($0.policy) v\($0.policyVersion)" }.joined(separator: " "), approvers, String((p.outcome ?? "").prefix(60))])
            }
            Terminal.line(promotions.render())
            for p in report.promotions where p.result == "denied" {
                for g in p.gates where g.result != "passed" {
                    Terminal.line("denied #\(p.offset) \(p.promotion.model)@\(p.promotion.version) → \(p.promotion.target) by \(g.policy) v\(g.policyVersion) (gate #\(g.offset)):")
                    for r in g.rules where r.verdict != .passed { Terminal.line("    \(r.name): \(r.verdict.rawValue) — \(r.reason)") }
                }
            }
            if !report.access.isEmpty {
                var access = Table(["offset", "time", "change", "principal", "role", "by"], numeric: [0])
                for a in report.access {
                    access.add([String(a.offset), a.time.description, a.type == "access.granted" ? "granted" : "revoked", a.principal, a.role + (a.streamPrefix.map { " on \($0)*" } ?? ""), a.actor])
                }
                Terminal.line(access.render())
            }
            Terminal.line("evidence ids, offsets and hashes: --format json or --format md")
        }
    }
}
