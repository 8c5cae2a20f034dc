#if canImport(Glibc)
import Glibc
#endif
public import ArgumentParser
import LedgerCore
import LedgerLog
public import LedgerSimulator
import Synchronization

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Benchmarks that print events/s, MB/s, latency percentiles and peak memory.",
        subcommands: [BenchAppend.self, BenchHTTP.self, BenchReplay.self, BenchProcess.self, BenchProofs.self, BenchKafka.self, BenchOpenChild.self, BenchStages.self])
}

struct BenchAppend: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "append",
        abstract: "The append path: in-process batches, concurrent single appends, `ledger append` ingest, opening a large log.",
        discussion: """
            Scenarios: batches (atomic requests of --batch-size events from a few concurrent \
            submitters), concurrent (--tasks tasks, each appending one event and awaiting its \
            acknowledgement before the next), ingest (`ledger append` reading an NDJSON file of \
            --events lines, run as a child process), open (builds a log of --open-events events, then \
            opens it in a fresh process and reads it all, reporting time and resident memory). \
            Appends are durable (fsync per group commit) unless --fsync never.
            """)

    enum Scenario: String, ExpressibleByArgument, CaseIterable { case all, batches, concurrent, ingest, open, tree }

    @Option(help: "all, batches, concurrent, ingest, open, or tree (ingest with and without the Merkle tree kept up, alternately).")
    var scenario: Scenario = .all
    @Option(help: "Events per scenario (batches, ingest).")
    var events: Int = 1_000_000
    @Option(help: "Events per atomic request in the batches scenario.")
    var batchSize: Int = 1000
    @Option(help: "Concurrent submitters in the batches scenario.")
    var submitters: Int = 4
    @Option(help: "Concurrent tasks in the concurrent scenario.")
    var tasks: Int = 64
    @Option(help: "Events in the concurrent scenario.")
    var concurrentEvents: Int = 300_000
    @Option(help: "Events in the log of the open scenario.")
    var openEvents: Int = 10_000_000
    @Option(help: "always (durable, the default) or never (benchmarks of the CPU path only).")
    var fsync: FsyncPolicy = .always
    @Option(help: "Where to build the logs (default: a folder under /tmp, removed afterwards).")
    var workDir: String?
    @Option(help: ArgumentHelp(
        "The ingest scenario also loads the same NDJSON file into PostgreSQL (and SQLite) with this peer tool, in the same run, and prints the ratio.",
        valueName: "PEER-INGEST"))
    var peer: String?

    func run() async throws {
        let base = workDir ?? "/tmp/ledger-bench-\(getpid())"
        mkdir(base, 0o755)
        defer { if workDir == nil { removeTree(base) } }
        Terminal.line("ledger bench append — \(machineDescription()); fsync \(fsync.rawValue)")
        Terminal.flush()
        if scenario == .all || scenario == .batches { try await batches(base + "/batches") }
        if scenario == .all || scenario == .concurrent { try await concurrent(base + "/concurrent") }
        if scenario == .all || scenario == .ingest { try ingest(base + "/ingest") }
        if scenario == .all || scenario == .open { try await open(base + "/open") }
        if scenario == .tree { try tree(base + "/tree") }
        Terminal.flush()
    }

    /// What keeping the Merkle tree up costs the ingest: `ledger append` of the same file with and
    /// without (`--no-tree`), alternately, five times each; the medians of wall time and of the
    /// child's CPU time.
    func tree(_ dir: String) throws {
        let file = dir + ".ndjson"
        try writeFile(file, ingestFile())
        defer { if workDir == nil { unlink(file) } }
        var runs: [Bool: [(wall: Double, cpu: Double)]] = [true: [], false: []]
        for round in 0..<10 {
            let withTree = round % 2 == 0
            removeTree(dir)
            var before = rusage()
            getrusage(RUSAGE_CHILDREN.rawValue, &before)
            let start = monotonicSeconds()
            let status = try runSelf(["append", "--data-dir", dir, "--quiet"] + (withTree ? [] : ["--no-tree"]), stdin: file, stdout: "/dev/null")
            let wall = monotonicSeconds() - start
            var after = rusage()
            getrusage(RUSAGE_CHILDREN.rawValue, &after)
            guard status == 0 else { throw LedgerError(.internal, "ledger append exited with \(status)") }
            func seconds(_ t: timeval) -> Double { Double(t.tv_sec) + Double(t.tv_usec) / 1e6 }
            let cpu = seconds(after.ru_utime) + seconds(after.ru_stime) - seconds(before.ru_utime) - seconds(before.ru_stime)
            let leaves = withTree ? try MerkleStore(dataDirectory: dir).size : 0
            guard !withTree || leaves == Int64(events) else { throw LedgerError(.internal, "the tree holds \(leaves) leaves, expected \(events)") }
            runs[withTree]!.append((wall, cpu))
            Terminal.line("  \(withTree ? "with the tree   " : "without the tree"): \(Format.count(Int64(Double(events) / wall))) events/s, \(Format.fixed(wall, 2)) s, CPU \(Format.fixed(cpu, 2)) s")
            Terminal.flush()
        }
        func median(_ v: [Double]) -> Double { v.sorted()[v.count / 2] }
        let (w1, w0) = (median(runs[true]!.map(\.wall)), median(runs[false]!.map(\.wall)))
        let (c1, c0) = (median(runs[true]!.map(\.cpu)), median(runs[false]!.map(\.cpu)))
        Terminal.line("tree: ingest of \(Format.count(Int64(events))) events, medians of 5: with the tree \(Format.count(Int64(Double(events) / w1))) events/s, without \(Format.count(Int64(Double(events) / w0))) events/s (\(Format.fixed((w1 / w0 - 1) * 100, 1)) % more time); CPU \(Format.fixed(c1, 2)) s against \(Format.fixed(c0, 2)) s (\(Format.fixed((c1 / c0 - 1) * 100, 1)) % more)")
    }

    /// The ingest scenario's NDJSON: `events` one-event requests.
    func ingestFile() throws -> [UInt8] {
        var generator = BenchEvents(seed: 3)
        var bytes: [UInt8] = []
        bytes.reserveCapacity(events * 200)
        for _ in 0..<events {
            bytes += (try CanonicalJSON.encode(generator.event().requestJSON))
            bytes.append(0x0A)
        }
        return bytes
    }

    func batches(_ dir: String) async throws {
        let log = try SegmentLog.open(directory: dir, options: options())
        let perSubmitter = events / batchSize / submitters
        var generator = BenchEvents(seed: 1)
        let requests: [[[AppendRequest]]] = (0..<submitters).map { _ in (0..<perSubmitter).map { _ in generator.batch(batchSize) } }
        let total = perSubmitter * submitters * batchSize
        let policy = AppendPolicy(actor: "svc:bench")
        let start = monotonicSeconds()
        var latencies: [Double] = []
        try await withThrowingTaskGroup(of: [Double].self) { group in
            for s in 0..<submitters {
                let mine = requests[s]
                group.addTask {
                    var times: [Double] = []
                    for request in mine {
                        let t0 = monotonicSeconds()
                        _ = try await log.append(request, policy: policy)
                        times.append(monotonicSeconds() - t0)
                    }
                    return times
                }
            }
            for try await times in group { latencies += times }
        }
        let seconds = monotonicSeconds() - start
        let stats = try log.statistics()
        try await log.close()
        let envelope = Double(stats.uncompressedBytes) / Double(max(1, stats.events))
        report("batches", events: total, seconds: seconds, latencies: latencies, latencyName: "per-request",
            extra: "\(batchSize)-event atomic requests from \(submitters) submitters; \(Format.fixed(envelope, 0)) B/event stored uncompressed, \(Format.fixed(stats.compressionRatio, 2))x LZ4, \(stats.batches) record batches")
    }

    func concurrent(_ dir: String) async throws {
        let log = try SegmentLog.open(directory: dir, options: options())
        let perTask = concurrentEvents / tasks
        var generator = BenchEvents(seed: 2)
        let requests: [[AppendRequest]] = (0..<tasks).map { _ in (0..<perTask).map { _ in generator.event() } }
        var latencies: [Double] = []
        let policy = AppendPolicy(actor: "svc:bench")
        let start = monotonicSeconds()
        try await withThrowingTaskGroup(of: [Double].self) { group in
            for t in 0..<tasks {
                let mine = requests[t]
                group.addTask {
                    var mineLatency: [Double] = []
                    mineLatency.reserveCapacity(mine.count)
                    for request in mine {
                        let t0 = monotonicSeconds()
                        _ = try await log.append([request], policy: policy)
                        mineLatency.append(monotonicSeconds() - t0)
                    }
                    return mineLatency
                }
            }
            for try await l in group { latencies += l }
        }
        let seconds = monotonicSeconds() - start
        let stats = try log.statistics()
        try await log.close()
        report("concurrent", events: perTask * tasks, seconds: seconds, latencies: latencies, latencyName: "ack",
            extra: "\(tasks) tasks, one event each until acknowledged; \(Format.fixed(Double(perTask * tasks) / Double(max(1, stats.batches)), 1)) events per fsync'd batch on average")
    }

    func ingest(_ dir: String) throws {
        // A log left by an earlier run in the same --work-dir would turn every line into a retry.
        removeTree(dir)
        let file = dir + ".ndjson"
        let bytes = try ingestFile()
        try writeFile(file, bytes)
        let start = monotonicSeconds()
        let status = try runSelf(["append", "--data-dir", dir, "--quiet"], stdin: file, stdout: "/dev/null")
        let seconds = monotonicSeconds() - start
        guard status == 0 else { throw LedgerError(.internal, "ledger append exited with \(status)") }
        let reader = try LogReader(directory: dir)
        guard reader.head == Int64(events) else { throw LedgerError(.internal, "ingest wrote \(reader.head) events, expected \(events)") }
        report("ingest", events: events, seconds: seconds, latencies: [], latencyName: "",
            extra: "`ledger append` as a child process reading \(Format.bytes(Int64(bytes.count))) of NDJSON (\(Format.fixed(Double(bytes.count) / Double(events), 0)) B/line); includes process start and the final close")
        if let peer { try comparePeers(peer, file: file, ledgerRate: Double(events) / seconds) }
        // Kept with --work-dir (for profiling `ledger append` on the same file).
        if workDir == nil { unlink(file) }
    }

    /// Runs the peer tool on the same requests (`peer=NAME events=N seconds=S events_per_s=R` lines)
    /// and prints the ledger's figure against each.
    func comparePeers(_ tool: String, file: String, ledgerRate: Double) throws {
        let out = file + ".peers"
        defer { unlink(out) }
        let status = try spawnAndWait("/usr/bin/env", ["python3", tool, file], stdin: nil, stdout: out)
        guard status == 0 else { throw LedgerError(.internal, "\(tool) exited with \(status)") }
        for line in String(decoding: try readInput(out), as: UTF8.self).split(separator: "\n") {
            var fields: [String: String] = [:]
            for pair in line.split(separator: " ") {
                let kv = pair.split(separator: "=", maxSplits: 1)
                if kv.count == 2 { fields[String(kv[0])] = String(kv[1]) }
            }
            guard let name = fields["peer"], let rate = fields["events_per_s"].flatMap(Double.init), rate > 0 else { continue }
            Terminal.line("    peer \(name): \(Format.count(Int64(rate))) events/s on the same requests; the ledger \(Format.fixed(ledgerRate / rate, 2))× of it")
        }
        Terminal.flush()
    }

    func open(_ dir: String) async throws {
        if let existing = try? LogReader(directory: dir), existing.head >= Int64(openEvents) {
            Terminal.line("open: reusing the log of \(Format.count(existing.head)) events in \(dir)")
            _ = try runSelf(["bench", "open-child", "--data-dir", dir], stdin: nil, stdout: nil)
            return
        }
        // Build the log at full speed in this process (fsync never: only its shape matters here).
        var options = options()
        options.fsync = .never
        let log = try SegmentLog.open(directory: dir, options: options)
        var generator = BenchEvents(seed: 4)
        let policy = AppendPolicy(actor: "svc:bench")
        let buildStart = monotonicSeconds()
        var written = 0
        while written < openEvents {
            let n = min(batchSize, openEvents - written)
            let group = (0..<4).map { _ in generator.batch(n) }
            _ = await log.append(requests: group, policy: policy)
            written += n * 4
        }
        let buildSeconds = monotonicSeconds() - buildStart
        try await log.close()
        Terminal.line("open: built a log of \(Format.count(Int64(written))) events in \(Format.fixed(buildSeconds, 1)) s")
        Terminal.flush()
        _ = try runSelf(["bench", "open-child", "--data-dir", dir], stdin: nil, stdout: nil)
    }

    func options() -> LogOptions {
        var o = LogOptions()
        o.fsync = fsync
        return o
    }

    func report(_ name: String, events: Int, seconds: Double, latencies: [Double], latencyName: String, extra: String) {
        var line = "\(name): \(Format.count(Int64(events))) events in \(Format.fixed(seconds, 2)) s = \(Format.count(Int64(Double(events) / seconds))) events/s"
        if !latencies.isEmpty {
            let recorded = Latencies(seconds: latencies)
            func p(_ q: Double) -> String { recorded.ms(q, digits: 3) }
            line += "; \(latencyName) latency p50 \(p(0.5)) ms, p99 \(p(0.99)) ms, max \(p(1.0)) ms"
        }
        line += "; peak RSS \(Format.bytes(peakRSS()))"
        Terminal.line(line)
        Terminal.line("    " + extra)
        Terminal.flush()
    }
}

/// Opens a log in a fresh process and reads it all: the open time, and resident memory as the
/// events go by (it must not grow with their number).
struct BenchOpenChild: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "open-child", abstract: "Internal: the measuring half of `bench append --scenario open`.", shouldDisplay: false)

    @OptionGroup var data: DataDirectory

    func run() throws {
        let rssBefore = currentRSS()
        let start = monotonicSeconds()
        let log = try SegmentLog.open(directory: data.resolved)
        let openSeconds = monotonicSeconds() - start
        let head = log.head
        let rssOpen = peakRSS()
        Terminal.line("open: opened \(Format.count(head)) events in \(Format.fixed(openSeconds * 1000, 0)) ms (writer: lock, recovery, indexes); peak RSS \(Format.bytes(rssOpen)) (\(Format.bytes(rssBefore)) before opening)")
        Terminal.flush()
        let cursor = log.cursor()
        var n: Int64 = 0
        var samples: [(Int64, Int64)] = []
        let readStart = monotonicSeconds()
        while let _ = try cursor.next() {
            n += 1
            if n % (max(1, head / 5)) == 0 { samples.append((n, currentRSS())) }
        }
        let readSeconds = monotonicSeconds() - readStart
        try log.close()
        let trace = samples.map { "\(Format.count($0.0)): \(Format.bytes($0.1))" }.joined(separator: ", ")
        Terminal.line("open: read \(Format.count(n)) events in \(Format.fixed(readSeconds, 2)) s = \(Format.count(Int64(Double(n) / readSeconds))) events/s; RSS while reading \(trace); peak \(Format.bytes(peakRSS()))")
    }
}

/// Benchmark events: `job.queued` to a new job stream each, with client ids.
struct BenchEvents {
    var rng: SeededRandom
    var n = 0
    let teams = ["vision", "nlp", "speech", "recsys", "fraud", "search"]
    let types = ["a100", "h100", "l4"]

    init(seed: UInt64) { rng = SeededRandom(seed: seed) }

    mutating func event() -> AppendRequest {
        n += 1
        let job = "job-\(rng.next() % 1_000_000_000)-\(n)"
        let data: JSONObject = [
            "job": .string(job), "team": .string(teams[Int(rng.next() % 6)]), "project": "training",
            "gpuType": .string(types[Int(rng.next() % 3)]), "gpus": .number(Double(1 << (rng.next() % 4))),
            "priority": .number(Double(rng.next() % 10)),
        ]
        return AppendRequest(stream: "job-" + job, type: "job.queued", data: data, id: EventID.random(using: &rng))
    }

    mutating func batch(_ count: Int) -> [AppendRequest] { (0..<count).map { _ in event() } }
}


func machineDescription() -> String {
    var model = "unknown CPU"
    if let text = try? String(contentsOfFileLite: "/proc/cpuinfo"),
        let line = text.split(separator: "\n").first(where: { $0.hasPrefix("model name") })
    {
        model = line.split(separator: ":", maxSplits: 1).last.map { String($0).trimmingSpacesCLI } ?? model
    }
    let cores = sysconf(Int32(_SC_NPROCESSORS_ONLN))
    let memory = Int64(sysconf(Int32(_SC_PHYS_PAGES))) * Int64(sysconf(Int32(_SC_PAGESIZE)))
    return "\(cores) cores (\(model)), \(Format.bytes(memory)) RAM"
}

extension String {
    var trimmingSpacesCLI: String {
        var s = Substring(self)
        while s.first == " " { s = s.dropFirst() }
        while s.last == " " { s = s.dropLast() }
        return String(s)
    }
}

func writeFile(_ path: String, _ bytes: [UInt8]) throws {
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
    guard fd >= 0 else { throw LedgerError(.io, "open \(path): \(String(cString: strerror(errno)))") }
    defer { close(fd) }
    var done = 0
    while done < bytes.count {
        let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + done, $0.count - done) }
        guard n > 0 else { throw LedgerError(.io, "write \(path): \(String(cString: strerror(errno)))") }
        done += n
    }
}

func removeTree(_ path: String) {
    var st = stat()
    guard lstat(path, &st) == 0 else { return }
    if (st.st_mode & S_IFMT) == S_IFDIR {
        if let dir = opendir(path) {
            var names: [String] = []
            while let entry = readdir(dir) {
                let name = withUnsafePointer(to: entry.pointee.d_name) { $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) } }
                if name != "." && name != ".." { names.append(name) }
            }
            closedir(dir)
            for name in names { removeTree(path + "/" + name) }
        }
        rmdir(path)
    } else {
        unlink(path)
    }
}

/// Runs this executable with `arguments`, stdin/stdout redirected to files; returns the exit status.
func runSelf(_ arguments: [String], stdin: String?, stdout: String?) throws -> Int32 {
    let executable = "/proc/self/exe"
    var target = [CChar](repeating: 0, count: 4096)
    let length = readlink(executable, &target, 4095)
    let path = length > 0 ? String(decoding: target[0..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self) : CommandLine.arguments[0]
    return try spawnAndWait(path, arguments, stdin: stdin, stdout: stdout)
}

/// Runs `path` with `arguments` to its end (stdin and stdout from and to files when given);
/// returns its exit status (128 + the signal if killed).
func spawnAndWait(_ path: String, _ arguments: [String], stdin: String?, stdout: String?) throws -> Int32 {
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    if let stdin { posix_spawn_file_actions_addopen(&actions, 0, stdin, O_RDONLY, 0) }
    if let stdout { posix_spawn_file_actions_addopen(&actions, 1, stdout, O_WRONLY | O_CREAT | O_TRUNC, 0o644) }
    let argv = ([path] + arguments).map { strdup($0) } + [nil]
    defer { for a in argv { free(a) } }
    var pid = pid_t()
    Terminal.flush()
    let rc = posix_spawn(&pid, path, &actions, nil, argv, environ)
    guard rc == 0 else { throw LedgerError(.io, "posix_spawn \(path): \(String(cString: strerror(rc)))") }
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    return (status & 0x7F) == 0 ? (status >> 8) & 0xFF : 128 + (status & 0x7F)
}

extension FsyncPolicy: ExpressibleByArgument {}
extension SimulationConfig.Queueing: ExpressibleByArgument {}
