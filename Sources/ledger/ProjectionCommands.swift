import ArgumentParser
import Foundation
import LedgerCore
import LedgerKafka
import LedgerLog
import LedgerProjections

/// The data directory and the as-of point of a projection query.
struct QueryScope: ParsableArguments {
    @OptionGroup var data: DataDirectory

    @Option(name: .customLong("as-of"), help: ArgumentHelp("Answer for the log up to OFFSET (inclusive), TIME (RFC 3339: every event at or before it) or DATE (to the end of that UTC day).", valueName: "OFFSET|TIME|DATE"))
    var asOf: String?

    /// The log, the projections brought up to its head (unless another process is projecting),
    /// and the query's prefix.
    func context() throws -> QueryContext {
        let reader = try LogReader(directory: data.resolved)
        let store = try ProjectionStore(dataDirectory: data.resolved)
        do {
            let projector = try Projector(store: store, source: reader)
            try projector.catchUp()
        } catch let error as LedgerError where error.code == .locked {
            // Someone else (`ledger serve`) keeps them up to date: read what is there.
        }
        return try QueryContext(store: store, source: reader, asOf: try asOf.map { try AsOf(parsing: $0) } ?? .head)
    }
}

/// Options shared by the projection queries: their scope and the output format.
struct QueryOptions: ParsableArguments {
    @OptionGroup var scope: QueryScope

    @Option(help: "table or json.")
    var format: OutputFormat = .table

    var data: DataDirectory { scope.data }
    func context() throws -> QueryContext { try scope.context() }
}

struct ProjectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "project",
        abstract: "Bring the SQLite projections (registry, chargeback, SLO, audit) up to the log head.",
        discussion: "Each transaction commits its rows with its checkpoint, so an interrupted run resumes where it stopped.")

    @OptionGroup var data: DataDirectory
    @OptionGroup var kafka: KafkaOptions
    @Flag(help: "Drop every projection and fold the log again from offset 0.")
    var rebuild = false
    @Option(help: ArgumentHelp("Events per transaction.", visibility: .hidden))
    var chunk: Int = 16_384

    func run() throws {
        if kafka.isKafka { try FileIO_makeOwnerOnlyDirectory(data.resolved) }
        let reader: any LogSource = kafka.isKafka ? try kafka.openReader(data) : try LogReader(directory: data.resolved)
        let store = try ProjectionStore(dataDirectory: data.resolved)
        let projector = try Projector(store: store, source: reader)
        projector.chunkSize = max(1, chunk)
        let before = try store.checkpoint().nextOffset
        let start = monotonicSeconds()
        let progress = Progress(rebuild ? "project --rebuild" : "project", total: reader.head)
        let checkpoint = rebuild ? try projector.rebuild { progress.update($0) } : try projector.catchUp { progress.update($0) }
        progress.finish()
        let seconds = monotonicSeconds() - start
        let applied = checkpoint.nextOffset - (rebuild ? 0 : before)
        Terminal.line("projections at offset \(checkpoint.nextOffset) (log head \(reader.head)); \(Format.count(applied)) events applied in \(Format.fixed(seconds, 2)) s")
    }
}

struct RegistryCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "registry", abstract: "The model registry: models, versions, aliases, approvals, deployments.",
        subcommands: [Models.self, Model.self, Deployments.self], defaultSubcommand: Models.self)

    struct Models: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "models", abstract: "Every model with its latest version and aliases.")
        @OptionGroup var query: QueryOptions
        func run() throws {
            let q = try query.context()
            let models = try Registry.models(q)
            if query.format == .json { return Terminal.json(["asOf": q.asOfJSON, "models": .array(models.map(\.json))]) }
            var table = Table(["model", "team", "versions", "latest", "aliases", "flags"])
            for m in models {
                var flags = m.versions.filter(\.selfApproved).map { "v\($0.version) self-approved" }
                flags += m.aliases.filter { m.aliasGates[$0.0]?.result == "denied" }.map { "\($0.0)=\($0.1) denied by gate" }
                table.add([m.model, m.team, String(m.versions.count), m.versions.last?.version ?? "-",
                           m.aliases.map { "\($0.0)=\($0.1)" + (m.aliasGates[$0.0].map { $0.result == "denied" ? " (denied)" : " (gated)" } ?? "") }.joined(separator: " "),
                           flags.joined(separator: ", ")])
            }
            Terminal.line(table.render())
        }
    }

    struct Model: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "model", abstract: "One model: its versions (with evaluation and approval) and its alias history.")
        @OptionGroup var query: QueryOptions
        @Argument var name: String
        func run() throws {
            let q = try query.context()
            guard let m = try Registry.models(q, only: name).first else { throw LedgerError(.notFound, "no model \(name) as of \(q.asOf)") }
            if query.format == .json { return Terminal.json(["asOf": q.asOfJSON, "model": m.json]) }
            Terminal.line("\(m.model) (team \(m.team))\(m.description.map { ": " + $0 } ?? "")")
            var versions = Table(["version", "created", "by", "job", "passed", "approver", "aliases", "flags"])
            for v in m.versions {
                var flags: [String] = []
                if v.selfApproved { flags.append("self-approved") }
                if v.archived { flags.append("archived") }
                versions.add([v.version, Timestamp(milliseconds: v.created).description, v.creator, v.job ?? "-", v.passed.map { $0 ? "yes" : "no" } ?? "-", v.approver ?? "-", v.aliases.map { m.aliasGates[$0]?.result == "denied" ? $0 + " (denied)" : $0 }.joined(separator: " "), flags.joined(separator: ", ")])
            }
            Terminal.line(versions.render())
            Terminal.line("alias history:")
            var history = Table(["offset", "time", "alias", "version", "by", "gate"], numeric: [0])
            for a in m.aliasHistory { history.add([String(a.offset), Timestamp(milliseconds: a.time).description, a.alias, a.version ?? "(removed)", a.actor, a.gate?.summary ?? "-"]) }
            Terminal.line(history.render())
            for (alias, version) in m.aliases where m.aliasGates[alias]?.result == "denied" {
                Terminal.line("alias \(alias) → \(version) was DENIED: \(m.aliasGates[alias]!.summary)")
            }
        }
    }

    struct Deployments: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "deployments", abstract: "Deployments: live version, canary version and weight, state.")
        @OptionGroup var query: QueryOptions
        func run() throws {
            let q = try query.context()
            let deployments = try Registry.deployments(q)
            if query.format == .json { return Terminal.json(["asOf": q.asOfJSON, "deployments": .array(deployments.map(\.json))]) }
            var table = Table(["deployment", "model", "team", "live", "canary", "weight", "state", "gate"], numeric: [5])
            for d in deployments { table.add([d.deployment, d.model, d.team, d.live, d.canary ?? "-", d.canary == nil ? "-" : "\(d.weight)%", d.state, d.gate.map { String($0.summary.prefix(100)) } ?? "-"]) }
            Terminal.line(table.render())
        }
    }
}

struct SLOCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "slo", abstract: "SLO status: good/total over the period, error budget left, burn rates, open alerts.")
    @OptionGroup var query: QueryOptions
    func run() throws {
        let q = try query.context()
        let all = try SLOStatus.all(q)
        if query.format == .json { return Terminal.json(["asOf": q.asOfJSON, "slos": .array(all.map(\.json))]) }
        var table = Table(["slo", "objective", "total", "bad", "SLI", "budget left", "burn 1h", "burn 6h", "burn 3d", "open alerts"], numeric: [1, 2, 3, 4, 5, 6, 7, 8])
        for s in all {
            func burn(_ w: String) -> String { s.burnRates.first { $0.0 == w }?.1.map { Format.fixed($0, 2) } ?? "-" }
            table.add([
                s.slo, Format.fixed(s.objective * 100, 2) + "%", Format.count(s.total), Format.count(s.total - s.good),
                s.total > 0 ? Format.fixed(Double(s.good) / Double(s.total) * 100, 3) + "%" : "-",
                s.budgetRemaining.map { Format.fixed($0 * 100, 1) + "%" } ?? "-", burn("1h"), burn("6h"), burn("3d"),
                s.openAlerts.map { "\($0.severity) \($0.longWindow)/\($0.shortWindow)" }.joined(separator: ", "),
            ])
        }
        Terminal.line(table.render())
    }
}

struct AuditCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit", abstract: "Who did what when; a stream's history; causal chains; anomalies. Every answer carries offsets and hashes.",
        subcommands: [By.self, Chain.self, Anomalies.self], defaultSubcommand: By.self)

    struct By: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "events", abstract: "Events by actor, stream, category or type, optionally in a time range.")
        @OptionGroup var query: QueryOptions
        @Option var actor: String?
        @Option var stream: String?
        @Option var category: String?
        @Option var type: String?
        @Option(help: "Only events at or after this time (a date: from its start).") var since: String?
        @Option(help: "Only events at or before this time (a date: to its end).") var until: String?
        @Option(help: "At most this many (the latest).") var limit: Int?

        func run() throws {
            let given: [(Audit.Key, String?)] = [(.actor, actor), (.stream, stream), (.category, category), (.type, type)]
            let chosen = given.filter { $0.1 != nil }
            guard chosen.count == 1, let (key, value) = chosen.first, let value else {
                throw ValidationError("give exactly one of --actor, --stream, --category, --type")
            }
            let from = try since.map { try ChargebackCommand.time($0, option: "--since").instant }
            let to = try until.map { t -> Timestamp in
                let u = try ChargebackCommand.time(t, option: "--until")
                return u.isDate ? u.endOfDay.adding(milliseconds: -1) : u.instant
            }
            let q = try query.context()
            let entries = try Audit.events(q, key, value, fromTime: from, toTime: to, limit: limit)
            if query.format == .json { return Terminal.json(["asOf": q.asOfJSON, "events": .array(entries.map(\.json))]) }
            var table = Table(["offset", "time", "actor", "stream", "type", "hash"], numeric: [0])
            for e in entries { table.add([String(e.offset), e.time.description, e.actor, e.stream, e.type, String(e.hash.description.prefix(16)) + "…"]) }
            Terminal.line(table.render())
        }
    }

    struct Chain: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "chain", abstract: "The causal chain of an event, both ways (causationId).")
        @OptionGroup var query: QueryOptions
        @Argument var offset: Int64
        func run() throws {
            let q = try query.context()
            let reader = try LogReader(directory: query.data.resolved)
            let chain = try Audit.chain(q, offset: offset, ids: try reader.idLookup())
            if query.format == .json {
                return Terminal.json(["asOf": q.asOfJSON, "causes": .array(chain.causes.map(\.json)), "event": chain.event.json, "effects": .array(chain.effects.map(\.json))])
            }
            var table = Table(["", "offset", "time", "actor", "type", "stream"], numeric: [1])
            for e in chain.causes { table.add(["cause", String(e.offset), e.time.description, e.actor, e.type, e.stream]) }
            table.add(["▶", String(chain.event.offset), chain.event.time.description, chain.event.actor, chain.event.type, chain.event.stream])
            for e in chain.effects { table.add(["effect", String(e.offset), e.time.description, e.actor, e.type, e.stream]) }
            Terminal.line(table.render())
        }
    }

    struct Anomalies: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "anomalies", abstract: "Events a projection could not apply (recorded, never dropped).")
        @OptionGroup var query: QueryOptions
        func run() throws {
            let q = try query.context()
            let all = try Audit.anomalies(q)
            if query.format == .json { return Terminal.json(["asOf": q.asOfJSON, "anomalies": .array(all.map(\.json))]) }
            var table = Table(["offset", "projection", "type", "anomaly"], numeric: [0])
            for a in all { table.add([String(a.offset), a.projection, a.type, a.message]) }
            Terminal.line(table.render())
        }
    }
}

struct LineageCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "lineage", abstract: "The lineage of a model version, each step with its offset and hash.")
    @OptionGroup var query: QueryOptions
    @Argument(help: "MODEL@VERSION") var target: String
    func run() throws {
        let parts = target.split(separator: "@", maxSplits: 1).map(String.init)
        guard parts.count == 2 else { throw ValidationError("expected MODEL@VERSION, e.g. fraud-detector@3") }
        let q = try query.context()
        let steps = try Lineage.of(q, model: parts[0], version: parts[1])
        if query.format == .json { return Terminal.json(["asOf": q.asOfJSON, "lineage": .array(steps.map(\.json))]) }
        var table = Table(["step", "offset", "time", "type", "actor", "hash", "note"], numeric: [1])
        for s in steps { table.add([s.step, String(s.entry.offset), s.entry.time.description, s.entry.type, s.entry.actor, String(s.entry.hash.description.prefix(16)) + "…", s.note ?? ""]) }
        Terminal.line(table.render())
    }
}

struct ChargebackCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chargeback",
        abstract: "GPU cost by team, gpuType, project, model and UTC day, priced as in force at the time, idle as its own rows.",
        discussion: """
            Allocation intervals (gpu.allocated → gpu.released) priced with the hourly rate in force at \
            each instant, split at price changes and at UTC midnight; idle capacity (registered GPUs \
            minus allocated) as team __idle__; --share-idle distributes each gpuType and day's idle cost \
            to the teams in proportion to their cost. Unpriced time is reported with an empty cost and \
            missingPrice, never as zero. Changes to a closed day appear as Correction rows. Costs are \
            exact and rounded half-even to cents when printed.
            """)

    @OptionGroup var query: QueryScope
    @Option(help: "Start (inclusive): a date (2026-11-23) or an RFC 3339 time (2026-11-23T00:00:00Z).") var from: String
    @Option(help: "End: a date includes that whole UTC day (--to 2026-11-29 ends at 2026-11-30T00:00Z); an RFC 3339 time is exclusive.") var to: String
    @Option(name: .customLong("group-by"), help: "Comma-separated: team, gpuType, project, model, day.") var groupBy: String = "team,gpuType"
    @Flag(name: .customLong("share-idle"), help: "Distribute idle cost to the teams.") var shareIdle = false
    @Option(name: .customLong("format"), help: "table, json, csv or focus (FOCUS 1.2 CSV).") var chargeFormat: ChargeFormat = .table

    enum ChargeFormat: String, ExpressibleByArgument { case table, json, csv, focus }

    static func time(_ text: String, option: String) throws -> QueryTime {
        guard let t = QueryTime(text) else { throw ValidationError(QueryTime.explain(text, option: option)) }
        return t
    }

    func run() throws {
        let dims = try groupBy.split(separator: ",").map { name -> Chargeback.Dimension in
            guard let d = Chargeback.Dimension(rawValue: String(name)) else { throw ValidationError("--group-by takes team, gpuType, project, model, day; not \(name)") }
            return d
        }
        let end = try Self.time(to, option: "--to")
        let options = Chargeback.Options(
            from: try Self.time(from, option: "--from").instant, to: end.isDate ? end.endOfDay : end.instant, groupBy: dims, shareIdle: shareIdle)
        guard options.from < options.to else { throw ValidationError("--from must be before --to") }
        let q = try query.context()
        let report = try Chargeback.report(q, options)
        switch chargeFormat {
        case .json: Terminal.json(report.json)
        case .csv: Terminal.write(Array(report.csv.utf8))
        case .focus: Terminal.write(Array(report.focus().utf8))
        case .table: Terminal.line(ChargebackCommand.table(report))
        }
    }

    static func table(_ report: Chargeback.Report) -> String {
        let dims = report.options.groupBy
        var headers = dims.map(\.rawValue) + ["kind", "GPU-hours", "cost"]
        if report.options.shareIdle { headers += ["idle share", "total"] }
        let numericStart = dims.count + 1
        var table = Table(headers, numeric: Set(numericStart..<headers.count))
        for r in report.rows {
            var cells: [String] = dims.map { d in
                switch d {
                case .team: return r.team ?? ""
                case .gpuType: return r.gpuType ?? ""
                case .project: return r.project ?? "-"
                case .model: return r.model ?? "-"
                case .day: return r.day.map { String(Timestamp(milliseconds: $0).description.prefix(10)) } ?? ""
                }
            }
            cells.append(r.kind.rawValue + (r.chargeClass == .correction ? " (correction)" : ""))
            cells.append(Money.text(r.gpuHours, scale: 1))
            cells.append(r.cost.map { Money.text($0) + " " + r.currency } ?? "unpriced")
            if report.options.shareIdle {
                cells.append(Money.text(r.idleShare))
                cells.append(r.total.map { Money.text($0) } ?? "unpriced")
            }
            table.add(cells)
        }
        // One total per currency: amounts in different currencies are never added.
        let totals = report.totals.map { "\(Money.text($0.total)) \($0.currency)" }
        return table.render() + "\ntotal \(totals.isEmpty ? "0.00" : totals.joined(separator: " + ")) (\(report.from) to \(report.end))"
    }
}
