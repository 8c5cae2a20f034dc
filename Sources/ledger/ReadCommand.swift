#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import LedgerCore
import LedgerKafka
import LedgerLog

struct ReadFilters: ParsableArguments {
    @Option(help: "First offset to print.")
    var from: Int64 = 0
    @Option(help: "Last offset to print (inclusive).")
    var to: Int64?
    @Option(help: "Only events of this stream.")
    var stream: String?
    @Option(help: "Only events of streams of this category (the text before the first '-').")
    var category: String?
    @Option(help: "Only events of this type.")
    var type: String?

    var filter: EventFilter { EventFilter(stream: stream, category: category, type: type) }

    func validate() throws {
        if from < 0 { throw ValidationError("--from must be ≥ 0") }
        if let to, to < from { throw ValidationError("--to must be ≥ --from") }
    }
}

struct ReadCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "read",
        abstract: "Print events as NDJSON, exactly as hashed (plus hash).",
        discussion: """
            Each line is the RFC 8785 canonical JSON of one envelope, the bytes Schemas/hashing.md \
            hashes with "hash" added in its sorted place. Reads alongside a running writer and \
            sees only whole, durable batches.
            """)

    @OptionGroup var data: DataDirectory
    @OptionGroup var kafka: KafkaOptions
    @OptionGroup var filters: ReadFilters

    func run() throws {
        let reader: any LogSource = kafka.isKafka ? try kafka.openReader(data) : try LogReader(directory: data.resolved)
        let end = min(reader.head, filters.to.map { $0 + 1 } ?? Int64.max)
        let cursor = reader.cursor(from: filters.from, end: end, filter: filters.filter)
        // Progress only when the output goes somewhere else (a file, a pipe) and stderr is a terminal.
        let progress = isatty(1) == 1 ? nil : Progress("read", total: max(0, end - filters.from))
        try printAll(cursor) { progress?.update($0 - filters.from) }
        progress?.finish()
        Terminal.flush()
    }
}

func printAll(_ cursor: any EventCursor, progress: (Int64) -> Void = { _ in }) throws {
    var line: [UInt8] = []
    var n = 0
    while let view = try cursor.next() {
        n += 1
        if n & 1023 == 0 { progress(cursor.nextOffset) }
        line.removeAll(keepingCapacity: true)
        line.append(contentsOf: view.json)
        line.append(0x0A)
        Terminal.write(line)
    }
}

struct TailCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tail",
        abstract: "Print events like read, then follow new ones until interrupted.",
        discussion: "Wakes on the writer's durable-head updates (inotify), without polling the disk.")

    @OptionGroup var data: DataDirectory
    @OptionGroup var kafka: KafkaOptions
    @OptionGroup var filters: ReadFilters

    @Option(help: "Stop after this many seconds without a new event (default: follow forever).")
    var idleTimeout: Double?

    func run() throws {
        if kafka.isKafka { return try followKafka() }
        let reader = try LogReader(directory: data.resolved)
        let watcher = try reader.headWatcher()
        let cursor = reader.cursor(from: filters.from, end: filters.to.map { $0 + 1 }, filter: filters.filter)
        var idle = 0.0
        while true {
            let before = cursor.nextOffset
            try printAll(cursor)
            Terminal.flush()
            if let to = filters.to, cursor.nextOffset > to { return }
            if cursor.nextOffset != before { idle = 0 }
            let woke = watcher.wait(timeout: 1)
            if !woke {
                idle += 1
                if let idleTimeout, idle >= idleTimeout { return }
            }
        }
    }
}

extension TailCommand {
    /// `tail --kafka`: the reader follows the topic's head (its high watermark, then its end).
    func followKafka() throws {
        let log = try kafka.openReader(data)
        let cursor = log.cursor(from: filters.from, end: filters.to.map { $0 + 1 }, filter: filters.filter)
        var idle = 0.0
        while true {
            let before = cursor.nextOffset
            try printAll(cursor)
            Terminal.flush()
            if let to = filters.to, cursor.nextOffset > to { break }
            if cursor.nextOffset != before { idle = 0 }
            let head = log.waitForHead(beyond: cursor.nextOffset, timeout: 1)
            if head <= cursor.nextOffset {
                idle += 1
                if let idleTimeout, idle >= idleTimeout { break }
            }
        }
        try log.close()
    }
}

struct VerifyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Re-check every batch CRC, every envelope and the whole hash chain.",
        discussion: """
            By default every batch's CRC-32C and framing, every envelope's members after `data` \
            against its record header, every event's hash over its stored bytes and the whole \
            chain, on all cores; --deep also parses every envelope: canonical form, the envelope \
            schema, each event's data against its type's schema. Exit code 3 names the first bad \
            offset; the log then refuses writers until it is repaired and verify passes again. \
            Runs alongside a writer.
            """)

    @OptionGroup var data: DataDirectory
    @OptionGroup var kafka: KafkaOptions

    @Option(help: "table or json.")
    var format: OutputFormat = .table

    @Option(name: .customLong("public-key"), help: ArgumentHelp("Also require every stored checkpoint to be signed by this verifier key (or a file holding it).", valueName: "KEY"))
    var publicKey: String?

    @Flag(help: "Also parse every envelope: RFC 8785 canonical form, the envelope schema, each event's data against its schema (one core; the Kafka backend always does).")
    var deep = false

    func run() throws {
        let start = monotonicSeconds()
        let kafkaLog = kafka.isKafka ? try kafka.openReader(data) : nil
        let progress = Progress("verify", total: try kafkaLog?.head ?? LogReader(directory: data.resolved).head)
        // Checkpoints and the stored tree are checked against roots computed on the way (the
        // tree's size read before the log's head: it only holds durable events).
        let proofs = kafkaLog == nil ? try storedProofs() : nil
        let report = try kafkaLog.map { try Verifier.verify(source: $0) { progress.update($0) } }
            ?? Verifier.verify(directory: data.resolved, depth: deep ? .full : .integrity, merkleRootsAt: proofs?.sizes ?? []) { progress.update($0) }
        progress.finish()
        let seconds = monotonicSeconds() - start
        let repairs = kafkaLog == nil ? Repair.records(directory: data.resolved) : []
        switch format {
        case .json:
            var json = report.json
            if case .object(var o) = json, !repairs.isEmpty {
                o["repairs"] = .array(repairs)
                json = .object(o)
            }
            Terminal.json(json)
        case .table:
            for r in repairs {
                Terminal.line("repaired at \(r["time"]?.stringValue ?? "?"): offsets \(r["lost"]?["from"]?.intValue ?? 0)..<\(r["lost"]?["to"]?.intValue ?? 0) cut (\(r["lost"]?["events"]?.intValue ?? 0) acknowledged events lost: \(r["problem"]?.stringValue ?? ""))")
            }
            if report.isClean, let kafkaLog {
                Terminal.line("verify: ok — \(Format.count(report.events)) events of topic \(kafkaLog.configuration.topic), \(Format.bytes(report.bytes)); every envelope, schema, offset and hash checked in \(Format.fixed(seconds, 2)) s")
                Terminal.line("head hash: \(report.headHash)")
            } else if report.isClean {
                Terminal.line("verify: ok — \(Format.count(report.events)) events in \(report.batches) batches, \(report.segments) segment(s), \(Format.bytes(report.bytes)); every CRC-32C, \(deep ? "envelope, schema" : "envelope tail") and hash checked in \(Format.fixed(seconds, 2)) s")
                Terminal.line("head hash: \(report.headHash)")
            }
        }
        if let problem = report.problem {
            throw LedgerError(.corrupt, "first bad offset \(report.badOffset ?? -1): \(problem)")
        }
        if let kafkaLog {
            try kafkaLog.close()
            return
        }
        if let proofs { try verifyCheckpoints(proofs, report: report) }
    }

    struct StoredProofs {
        var checkpoints: [(size: Int64, note: Checkpoint.Note)]
        var tree: (store: MerkleStore, size: Int64)?
        var sizes: Set<Int64> { Set(checkpoints.map(\.size) + (tree.map { [$0.size] } ?? [])) }
    }

    /// The stored checkpoints and the stored tree with its size, if any.
    func storedProofs() throws -> StoredProofs {
        let checkpoints = try Checkpoints(dataDirectory: data.resolved).list()
        let hasTree = access(MerkleStore.directory(dataDirectory: data.resolved) + "/level-00.bin", F_OK) == 0
        let tree = hasTree ? try MerkleStore(dataDirectory: data.resolved) : nil
        return StoredProofs(checkpoints: checkpoints, tree: try tree.map { ($0, try $0.size) })
    }

    /// Every stored checkpoint against the log's own tree (its roots computed from the events by
    /// the check above), with `--public-key` its signature; and the stored tree against the log.
    func verifyCheckpoints(_ proofs: StoredProofs, report: VerifyReport) throws {
        let key = try publicKey.map(loadVerifierKey)
        let checkpoints = proofs.checkpoints
        guard !checkpoints.isEmpty || proofs.tree != nil else {
            if key != nil { throw LedgerError(.corrupt, "no signed checkpoint to verify against the key") }
            return
        }
        let problems = try Checkpoints.verify(head: report.events, roots: report.merkleRoots, checkpoints: checkpoints, key: key, tree: proofs.tree)
        if format == .table, problems.isEmpty {
            if !checkpoints.isEmpty {
                Terminal.line("checkpoints: \(checkpoints.count) match the log's Merkle tree" + (key.map { ", each signed by \($0.name)" } ?? " (signatures not checked: --public-key)")
                    + (checkpoints.last.map { "; latest of \($0.size) events" } ?? ""))
            }
            if let tree = proofs.tree {
                Terminal.line("merkle tree: the stored tree of \(Format.count(tree.size)) leaves matches the log's events")
            }
        }
        if !problems.isEmpty {
            for p in problems.dropFirst() { Terminal.error(p) }
            throw LedgerError(.corrupt, problems[0])
        }
    }
}

enum OutputFormat: String, ExpressibleByArgument, CaseIterable {
    case table, json
}

struct StatsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stats", abstract: "Segments, events, bytes on disk, compression ratio, head offset.")

    @OptionGroup var data: DataDirectory
    @OptionGroup var kafka: KafkaOptions
    @Option(help: "table or json.")
    var format: OutputFormat = .table

    func run() throws {
        if kafka.isKafka {
            let log = try kafka.openReader(data)
            let head = log.head
            switch format {
            case .json: Terminal.json(["events": .number(Double(head)), "head": .number(Double(head)), "topic": .string(kafka.topic)])
            case .table: Terminal.line("topic \(kafka.topic) on \(kafka.brokers ?? ""): \(Format.count(head)) events (head \(head))")
            }
            try log.close()
            return
        }
        let reader = try LogReader(directory: data.resolved)
        let stats = try reader.statistics()
        switch format {
        case .json:
            Terminal.json([
                "events": .number(Double(stats.events)), "head": .number(Double(stats.head)),
                "segments": .number(Double(stats.segments.count)), "streams": .number(Double(stats.streams)), "batches": .number(Double(stats.batches)),
                "bytesOnDisk": .number(Double(stats.bytesOnDisk)), "uncompressedBytes": .number(Double(stats.uncompressedBytes)),
                "compressionRatio": .number((stats.compressionRatio * 1000).rounded() / 1000),
            ])
        case .table:
            Terminal.line("events       \(Format.count(stats.events)) (head offset \(stats.head))")
            Terminal.line("batches      \(Format.count(stats.batches))")
            Terminal.line("streams      \(Format.count(stats.streams))")
            Terminal.line("segments     \(stats.segments.count)")
            Terminal.line("on disk      \(Format.bytes(stats.bytesOnDisk)) (\(Format.bytes(stats.uncompressedBytes)) uncompressed, ratio \(Format.fixed(stats.compressionRatio, 2)))")
            var table = Table(["segment", "base offset", "bytes"], numeric: [1, 2])
            for s in stats.segments { table.add([s.name, String(s.baseOffset), Format.bytes(s.bytes)]) }
            Terminal.line(table.render())
        }
    }
}
