#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import LedgerCore
import LedgerLog
import Synchronization

struct BenchHTTP: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "http",
        abstract: "The server: HTTP appends (wrk) against the in-process figures of the same run, and subscriptions under load.",
        discussion: """
            Scenarios: single (--connections connections, one event per request, durable; wrk from \
            Debian drives it; compared with --connections in-process tasks appending one event each \
            in this run), batches (requests of --batch-size events over --batch-connections \
            connections, compared with as many in-process submitters of the same requests), sse \
            (--subscribers subscriptions at the head while --rate events/s are appended for \
            --sse-seconds; append-to-delivery latency from the moment the request is sent to the \
            moment each subscriber reads the event, and the server's resident memory over time). \
            The server is `ledger serve` in a child process on a fresh data directory.
            """)

    enum Scenario: String, ExpressibleByArgument, CaseIterable { case all, single, batches, sse, overload }

    @Option(help: "all, single, batches, sse or overload.")
    var scenario: Scenario = .all
    @Option(help: "Connections (and in-process tasks) of the single scenario.")
    var connections: Int = 64
    @Option(help: "Seconds each wrk run lasts.")
    var seconds: Int = 10
    @Option(help: "Events per request in the batches scenario.")
    var batchSize: Int = 500
    @Option(help: "Connections (and in-process submitters) of the batches scenario.")
    var batchConnections: Int = 4
    @Option(help: "Subscribers of the sse scenario.")
    var subscribers: Int = 100
    @Option(help: "Events appended per second in the sse scenario.")
    var rate: Int = 10_000
    @Option(help: "Seconds the sse scenario lasts.")
    var sseSeconds: Int = 60
    @Option(help: "Where to keep the data directories (default: a folder under /tmp, removed afterwards).")
    var workDir: String?
    @Option(parsing: .singleValue, help: ArgumentHelp("Extra arguments for the server of the sse scenario (repeatable).", visibility: .hidden))
    var serverArgument: [String] = []

    func run() async throws {
        let base = workDir ?? "/tmp/ledger-bench-http-\(getpid())"
        mkdir(base, 0o700)
        defer { if workDir == nil { removeTree(base) } }
        signal(SIGPIPE, SIG_IGN)
        Terminal.line("ledger bench http — \(machineDescription()); fsync always")
        Terminal.flush()
        if scenario == .all || scenario == .single { try await single(base + "/single") }
        if scenario == .all || scenario == .batches { try await batches(base + "/batches") }
        if scenario == .all || scenario == .sse { try await sse(base + "/sse") }
        if scenario == .all || scenario == .overload { try overload(base + "/overload") }
        Terminal.flush()
    }

    // MARK: single events

    func single(_ dir: String) async throws {
        // In-process first: the same number of tasks, one event each until acknowledged.
        let inProcess = try await inProcessConcurrent(dir + "-inprocess", tasks: connections, seconds: Double(seconds))
        Terminal.line("single, in process: \(connections) tasks × one event until acknowledged: \(Format.count(Int64(inProcess.rate))) events/s, p99 \(Format.fixed(inProcess.p99 * 1000, 2)) ms")
        Terminal.flush()
        // The same work as in process: the server appends and decides nothing, projects nothing.
        let script = dir + "-single.lua"
        try writeFile(script, Array(Self.singleScript.utf8))
        do {
            let server = try ServerChild(dataDir: dir, extra: ["--max-concurrent-requests", String(connections * 4), "--no-processors", "--no-projections"])
            defer { server.stop() }
            let ceiling = try Wrk.run(url: server.url + "/healthz", connections: connections, seconds: max(3, seconds / 2), script: nil)
            Terminal.line("single, the HTTP ceiling here (wrk, \(connections) connections, GET /healthz, no work): \(Format.count(Int64(ceiling.requestsPerSecond))) requests/s, p99 \(ceiling.p99)")
            let result = try Wrk.run(url: server.url + "/v1/append", connections: connections, seconds: seconds, script: script)
            let ratio = result.requestsPerSecond / inProcess.rate
            Terminal.line("single, over HTTP (wrk, \(connections) connections, one event per request, appends only): \(Format.count(Int64(result.requestsPerSecond))) events/s, p50 \(result.p50) p99 \(result.p99), \(result.errors) non-2xx; \(Format.fixed(ratio, 2))× the in-process figure (target ≥ 0.7× and ≥ 50,000 events/s, p99 < 5 ms); server peak RSS \(Format.bytes(server.peakRSS()))")
            Terminal.flush()
        }
        // The whole server: the scheduler answers each job (a rejection: no quota), the projector follows.
        removeTree(dir)
        let full = try ServerChild(dataDir: dir, extra: ["--max-concurrent-requests", String(connections * 4)])
        defer { full.stop() }
        let result = try Wrk.run(url: full.url + "/v1/append", connections: connections, seconds: seconds, script: script)
        Terminal.line("single, the whole server (processors and projections running, each job answered by a decision): \(Format.count(Int64(result.requestsPerSecond))) client events/s, p50 \(result.p50) p99 \(result.p99), \(result.errors) non-2xx")
        Terminal.flush()
    }

    /// The `g`th serving window: 20 deployments in turn, each reporting a minute apart (simulated
    /// time runs fast; the SLO processor keeps 3 days of windows per deployment, so its state stops
    /// growing once 3 simulated days have passed). The platform's high-rate event: no processor
    /// decides on it without an SLO or a rollout; the projections record it.
    static func servingWindow(_ g: Int) -> JSONValue {
        let n = g % 20
        let end = Timestamp(milliseconds: Timestamp("2026-11-23T00:00:00.000Z")!.milliseconds + Int64(g / 20) * 60_000)
        let i = g % 7
        return [
            "stream": .string("deployment-bench-\(n)"), "type": "serving.window.observed",
            "data": [
                "deployment": .string("bench-\(n)"), "version": "1", "windowStart": .string(end.adding(milliseconds: -60_000).description),
                "windowEnd": .string(end.description), "requests": .number(Double(1000 + i)), "errors": .number(Double(i % 3)), "p99Ms": 42,
            ],
        ]
    }

    /// wrk's script: each request one job.queued event of its own job.
    static let singleScript = """
        local counter = 0
        local threads = 0
        function setup(thread)
          thread:set("tid", threads)
          threads = threads + 1
        end
        function init(args)
          wrk.method = "POST"
          wrk.headers["Content-Type"] = "application/json"
        end
        function request()
          counter = counter + 1
          local job = "w" .. tid .. "-" .. counter
          return wrk.format(nil, nil, nil, '{"events":[{"stream":"job-' .. job .. '","type":"job.queued","data":{"job":"' .. job .. '","team":"vision","project":"training","gpuType":"a100","gpus":4,"priority":3}}]}')
        end
        """

    func inProcessConcurrent(_ dir: String, tasks: Int, seconds: Double) async throws -> (rate: Double, p99: Double) {
        var options = LogOptions()
        options.fsync = .always
        let log = try SegmentLog.open(directory: dir, options: options)
        let policy = AppendPolicy(actor: "svc:bench")
        let deadline = monotonicSeconds() + seconds
        let start = monotonicSeconds()
        var latencies: [Double] = []
        var count = 0
        try await withThrowingTaskGroup(of: [Double].self) { group in
            for t in 0..<tasks {
                group.addTask {
                    var generator = BenchEvents(seed: UInt64(100 + t))
                    var mine: [Double] = []
                    while monotonicSeconds() < deadline {
                        let request = generator.event()
                        let t0 = monotonicSeconds()
                        _ = try await log.append([request], policy: policy)
                        mine.append(monotonicSeconds() - t0)
                    }
                    return mine
                }
            }
            for try await l in group {
                latencies += l
                count += l.count
            }
        }
        let elapsed = monotonicSeconds() - start
        try await log.close()
        removeTree(dir)
        return (Double(count) / elapsed, Latencies(seconds: latencies).seconds(at: 0.99))
    }

    // MARK: batches

    func batches(_ dir: String) async throws {
        // In process: as many submitters, each appending requests of batchSize events.
        var options = LogOptions()
        options.fsync = .always
        let log = try SegmentLog.open(directory: dir + "-inprocess", options: options)
        let policy = AppendPolicy(actor: "svc:bench")
        let deadline = monotonicSeconds() + Double(seconds)
        let start = monotonicSeconds()
        let batchSize = self.batchSize
        var requests = 0
        try await withThrowingTaskGroup(of: Int.self) { group in
            for s in 0..<batchConnections {
                group.addTask {
                    var generator = BenchEvents(seed: UInt64(200 + s))
                    var n = 0
                    while monotonicSeconds() < deadline {
                        _ = try await log.append(generator.batch(batchSize), policy: policy)
                        n += 1
                    }
                    return n
                }
            }
            for try await n in group { requests += n }
        }
        let inProcessRate = Double(requests * batchSize) / (monotonicSeconds() - start)
        try await log.close()
        removeTree(dir + "-inprocess")
        Terminal.line("batches, in process: \(batchConnections) submitters × \(batchSize)-event requests: \(Format.count(Int64(inProcessRate))) events/s")
        Terminal.flush()
        let server = try ServerChild(dataDir: dir, extra: ["--no-processors", "--no-projections"])
        defer { server.stop() }
        var generator = BenchEvents(seed: 300)
        let body = try CanonicalJSON.encode(["events": .array(generator.batch(batchSize).map { r in
            var o = r.requestJSON.objectValue!
            o["id"] = nil  // the same body is sent again and again: the ledger gives each event its id
            return .object(o)
        })])
        let script = dir + "-batches.lua"
        let escaped = String(decoding: body, as: UTF8.self).replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
        try writeFile(script, Array("""
            wrk.method = "POST"
            wrk.headers["Content-Type"] = "application/json"
            wrk.body = "\(escaped)"
            """.utf8))
        let result = try Wrk.run(url: server.url + "/v1/append", connections: batchConnections, seconds: seconds, script: script)
        let rate = result.requestsPerSecond * Double(batchSize)
        _ = rate
        Terminal.line("batches, over HTTP (wrk, \(batchConnections) connections, \(batchSize) events per request): \(Format.count(Int64(rate))) events/s, p50 \(result.p50) p99 \(result.p99) per request, \(result.errors) non-2xx; \(Format.fixed(rate / inProcessRate, 2))× the in-process figure (target ≥ 0.8×)")
        Terminal.flush()
    }

    // MARK: overload

    /// Twice the connections the server takes at once: the excess is shed with 503 at once, the
    /// admitted appends go on at the sustainable rate, and health checks stay fast.
    func overload(_ dir: String) throws {
        let limit = connections
        let server = try ServerChild(dataDir: dir, extra: ["--max-concurrent-requests", String(limit)])
        defer { server.stop() }
        let script = dir + "-single.lua"
        try writeFile(script, Array(Self.singleScript.utf8))
        let port = server.port
        let probes = SampleTable(count: 100_000)
        let stop = Atomic<Bool>(false)
        let probed = Atomic<Int>(0)
        startThread(name: "bench-probe") {
            guard let conn = try? HTTPConnection(port: port) else { return }
            var i = 0
            while !stop.load(ordering: .relaxed) && i < 100_000 {
                let t0 = monotonicSeconds()
                guard let (status, _) = try? conn.get("/healthz"), status == 200 else { break }
                probes.set(i, monotonicSeconds() - t0)
                i += 1
                probed.store(i, ordering: .relaxed)
                usleep(10_000)
            }
            conn.close()
        }
        let result = try Wrk.run(url: server.url + "/v1/append", connections: limit * 2, seconds: seconds, script: script)
        stop.store(true, ordering: .relaxed)
        usleep(50_000)
        let latencies = Latencies(seconds: probes.snapshot().prefix(probed.load(ordering: .relaxed)))
        func p(_ q: Double) -> String { latencies.ms(q) + " ms" }
        let shed = Double(result.errors) / Double(seconds)
        let admitted = result.requestsPerSecond - shed
        Terminal.line("overload: \(limit * 2) connections against a limit of \(limit) requests in flight: \(Format.count(Int64(admitted))) appends/s admitted, \(Format.count(Int64(shed))) requests/s shed with 503; GET /healthz meanwhile p50 \(p(0.5)), p99 \(p(0.99)) over \(latencies.count) probes")
        Terminal.flush()
    }

    // MARK: subscriptions

    func sse(_ dir: String) async throws {
        let server = try ServerChild(dataDir: dir, extra: ["--max-subscriptions", String(subscribers + 10), "--heartbeat", "1"] + serverArgument)
        defer { server.stop() }
        let port = server.port
        let total = rate * sseSeconds
        let sampleEvery: Int64 = 8
        let slots = total / Int(sampleEvery) + 1024
        let sendTimes = SampleTable(count: slots)
        // Subscribers: one thread each, reading at the head, recording when sampled offsets arrive.
        let received = (0..<subscribers).map { _ in SampleTable(count: slots) }
        let done = Atomic<Bool>(false)
        let ready = Atomic<Int>(0)
        for s in 0..<subscribers {
            let table = received[s]
            startThread(name: "bench-sub") {
                guard let conn = try? HTTPConnection(port: port) else { return }
                guard (try? conn.startStream("/v1/subscribe")) == true else { return }
                ready.add(1, ordering: .relaxed)
                var scanner = SSEIDScanner()
                while !done.load(ordering: .relaxed) {
                    guard let chunk = conn.readSome() else { break }
                    let now = monotonicSeconds()
                    scanner.scan(chunk) { offset in
                        if offset % sampleEvery == 0 { table.set(Int(offset / sampleEvery), now) }
                    }
                }
                conn.close()
            }
        }
        while ready.load(ordering: .relaxed) < subscribers { usleep(10_000) }
        let rssStart = server.currentRSS()
        // The appenders: requests of `perRequest` events, paced to the rate, over 16 connections.
        let perRequest = max(1, rate / 1000)
        let interval = Double(perRequest) / Double(rate)
        let appenders = 16
        let start = monotonicSeconds()
        var rssTrace: [(Double, Int64)] = [(0, rssStart)]
        let appended = Atomic<Int>(0)
        let failures = Atomic<Int>(0)
        // Each request's own round trip (durable acknowledgement), part of append-to-delivery.
        let acks = SampleTable(count: total / perRequest + 1024)
        for a in 0..<appenders {
            startThread(name: "bench-append") {
                guard let conn = try? HTTPConnection(port: port) else { return }
                var k = 0
                while true {
                    let due = start + Double(k * appenders + a) * interval
                    if due - start >= Double(self.sseSeconds) { break }
                    let wait = due - monotonicSeconds()
                    if wait > 0 { usleep(UInt32(wait * 1e6)) }
                    k += 1
                    let body = try! CanonicalJSON.encode(["events": .array((0..<perRequest).map { i in Self.servingWindow(((k - 1) * appenders + a) * perRequest + i) })])
                    let sent = monotonicSeconds()
                    guard let (status, response) = try? conn.post("/v1/append", body: body), status == 200 else {
                        failures.add(1, ordering: .relaxed)
                        continue
                    }
                    acks.set((k - 1) * appenders + a, monotonicSeconds() - sent)
                    // Offsets from the acknowledgement; the send time is what latency counts from.
                    for offset in SSEIDScanner.offsets(inAppendResponse: response) where offset % sampleEvery == 0 {
                        sendTimes.set(Int(offset / sampleEvery), sent)
                    }
                    appended.add(perRequest, ordering: .relaxed)
                }
                conn.close()
            }
        }
        var next = 10.0
        while monotonicSeconds() - start < Double(sseSeconds) + 2 {
            usleep(200_000)
            let t = monotonicSeconds() - start
            if t >= next {
                rssTrace.append((t, server.currentRSS()))
                if ProcessInfoLite.environment("LEDGER_BENCH_SMAPS") != nil, let text = try? String(contentsOfFileLite: "/proc/\(server.pid)/smaps_rollup") {
                    Terminal.line(text.split(separator: "\n").filter { $0.hasPrefix("Rss") || $0.hasPrefix("Anon") || $0.hasPrefix("Private") }.joined(separator: "; "))
                    Terminal.flush()
                }
                next += 10
            }
        }
        // Let the last events arrive, then stop the subscribers.
        usleep(500_000)
        done.store(true, ordering: .relaxed)
        var latencies: [Double] = []
        var missing = 0
        let sent = sendTimes.snapshot()
        for table in received {
            let got = table.snapshot()
            for i in 0..<min(sent.count, got.count) where sent[i] > 0 {
                if got[i] > 0 { latencies.append(max(0, got[i] - sent[i])) } else { missing += 1 }
            }
        }
        let delivered = Latencies(seconds: latencies)
        func p(_ q: Double) -> String { delivered.ms(q) + " ms" }
        let elapsed = Double(sseSeconds)
        let running = serverArgument.contains("--no-processors")
            ? (serverArgument.contains("--no-projections") ? "without processors or projections" : "with the projections running")
            : (serverArgument.contains("--no-projections") ? "with the processors running" : "with the processors and projections running")
        let ackLatencies = Latencies(seconds: acks.snapshot().filter { $0 > 0 })
        Terminal.line("sse: \(subscribers) subscribers at the head, serving windows of 20 deployments appended at \(Format.count(Int64(Double(appended.load(ordering: .relaxed)) / elapsed))) events/s for \(sseSeconds) s \(running) (\(failures.load(ordering: .relaxed)) failed requests): append-to-delivery p50 \(p(0.5)), p99 \(p(0.99)), max \(p(1.0)) over \(Format.count(Int64(latencies.count))) sampled deliveries (\(missing) not delivered); target p99 < 20 ms")
        Terminal.line("    of which the append's own durable acknowledgement: p50 \(ackLatencies.ms(0.5)) ms, p99 \(ackLatencies.ms(0.99)) ms over \(Format.count(Int64(ackLatencies.count))) requests of \(perRequest) events")
        Terminal.line("    server RSS: " + rssTrace.map { "\(Int($0.0)) s \(Format.bytes($0.1))" }.joined(separator: ", "))
        Terminal.flush()
    }
}

/// Times by sampled offset, written by one thread each, read after the run.
final class SampleTable: @unchecked Sendable {
    // @unchecked: each slot is written by one thread and read only after the writers stopped.
    private let values: UnsafeMutableBufferPointer<Double>
    init(count: Int) {
        values = .allocate(capacity: count)
        values.initialize(repeating: 0)
    }
    deinit { values.deallocate() }
    func set(_ i: Int, _ t: Double) { if i >= 0 && i < values.count && values[i] == 0 { values[i] = t } }
    func snapshot() -> [Double] { Array(values) }
}

/// Finds `id: N` lines in a Server-Sent Events byte stream, across chunk boundaries, without
/// copying the stream (the bench's subscribers share the machine with the server).
struct SSEIDScanner {
    /// The unfinished last line of the previous chunk (at most a few bytes matter).
    private var carry: [UInt8] = []

    mutating func scan(_ chunk: ArraySlice<UInt8>, _ found: (Int64) -> Void) {
        chunk.withUnsafeBufferPointer { b in
            guard let base = b.baseAddress, b.count > 0 else { return }
            var start = 0
            if !carry.isEmpty {
                // Finish the carried line with the head of this chunk.
                guard let nl = memchr(base, 0x0A, b.count) else {
                    if carry.count < 64 { carry += b.prefix(64) }
                    return
                }
                let end = base.distance(to: nl.assumingMemoryBound(to: UInt8.self))
                var line = carry
                line += b[0..<end]
                carry = []
                Self.line(line[...], found)
                start = end + 1
            }
            while start < b.count {
                guard let nl = memchr(base + start, 0x0A, b.count - start) else {
                    carry = Array(b[start..<min(b.count, start + 64)])
                    return
                }
                let end = base.distance(to: nl.assumingMemoryBound(to: UInt8.self))
                if end - start > 4 && base[start] == 0x69 && base[start + 1] == 0x64 && base[start + 2] == 0x3A {
                    Self.line(b[start..<end], found)
                }
                start = end + 1
            }
        }
    }

    private static func line(_ l: some Collection<UInt8>, _ found: (Int64) -> Void) {
        guard l.count > 4, l.starts(with: [0x69, 0x64, 0x3A, 0x20]) else { return }
        var n: Int64 = 0
        for c in l.dropFirst(4) {
            guard c >= 0x30 && c <= 0x39 else { return }
            n = n * 10 + Int64(c - 0x30)
        }
        found(n)
    }

    /// The offsets of an append's `{"results":[{"offset":N,…},…]}`.
    static func offsets(inAppendResponse body: [UInt8]) -> [Int64] {
        var out: [Int64] = []
        let key = Array(#""offset":"#.utf8)
        var i = 0
        while i + key.count < body.count {
            if body[i] == key[0] && Array(body[i..<(i + key.count)]) == key {
                var j = i + key.count
                var n: Int64 = 0
                while j < body.count, body[j] >= 0x30, body[j] <= 0x39 {
                    n = n * 10 + Int64(body[j] - 0x30)
                    j += 1
                }
                out.append(n)
                i = j
            } else {
                i += 1
            }
        }
        return out
    }
}

/// A blocking HTTP/1.1 client over a loopback TCP socket: keep-alive POSTs and one streamed GET.
final class HTTPConnection {
    let fd: Int32
    let port: Int
    private var buffer = [UInt8](repeating: 0, count: 1 << 16)
    private var pending: [UInt8] = []

    init(port: Int) throws {
        self.port = port
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let ok = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard ok == 0 else { throw LedgerError(.io, "connect to 127.0.0.1:\(port): \(String(cString: strerror(errno)))") }
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
    }

    func close() { Glibc.close(fd) }

    private func send(_ bytes: [UInt8]) throws {
        var sent = 0
        while sent < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + sent, $0.count - sent, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { throw LedgerError(.io, "send: \(String(cString: strerror(errno)))") }
            sent += n
        }
    }

    /// Some bytes of the stream (nil at its end).
    func readSome() -> ArraySlice<UInt8>? {
        if !pending.isEmpty {
            defer { pending = [] }
            return pending[...]
        }
        let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress!, $0.count, 0) }
        guard n > 0 else { return nil }
        return buffer[0..<n]
    }

    /// POST with a JSON body; the status and the body (Content-Length framed).
    func post(_ path: String, body: [UInt8]) throws -> (Int, [UInt8]) {
        try send(Array("POST \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: \(body.count)\r\n\r\n".utf8) + body)
        return try readResponse()
    }

    private func readResponse() throws -> (Int, [UInt8]) {
        var data: [UInt8] = []
        while true {
            guard let chunk = readSome() else { throw LedgerError(.io, "connection closed") }
            data += chunk
            guard let end = Self.find(data, [13, 10, 13, 10]) else { continue }
            let head = String(decoding: data[0..<end], as: UTF8.self)
            let status = Int(head.split(separator: " ").dropFirst().first ?? "") ?? 0
            var length = 0
            for line in head.split(separator: "\r\n") where line.lowercased().hasPrefix("content-length:") {
                length = Int(String(line.dropFirst(15)).trimmingSpacesCLI) ?? 0
            }
            while data.count < end + 4 + length {
                guard let more = readSome() else { throw LedgerError(.io, "connection closed") }
                data += more
            }
            let rest = Array(data[(end + 4 + length)...])
            if !rest.isEmpty { pending = rest }
            return (status, Array(data[(end + 4)..<(end + 4 + length)]))
        }
    }

    /// A GET answered with a Content-Length body.
    func get(_ path: String) throws -> (Int, [UInt8]) {
        try send(Array("GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".utf8))
        return try readResponse()
    }

    /// Starts a streamed GET; true once the response head says 200 (the body follows, chunked).
    func startStream(_ path: String) throws -> Bool {
        try send(Array("GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n".utf8))
        var data: [UInt8] = []
        while true {
            guard let chunk = readSome() else { return false }
            data += chunk
            guard let end = Self.find(data, [13, 10, 13, 10]) else { continue }
            let ok = String(decoding: data[0..<end], as: UTF8.self).hasPrefix("HTTP/1.1 200")
            pending = Array(data[(end + 4)...])
            return ok
        }
    }

    static func find(_ haystack: [UInt8], _ needle: [UInt8]) -> Int? {
        guard haystack.count >= needle.count else { return nil }
        for i in 0...(haystack.count - needle.count) where haystack[i] == needle[0] {
            if Array(haystack[i..<(i + needle.count)]) == needle { return i }
        }
        return nil
    }
}

/// `ledger serve` in a child process, on loopback, open (no tokens).
final class ServerChild: Sendable {
    let pid: pid_t
    let port: Int
    var url: String { "http://127.0.0.1:\(port)" }

    init(dataDir: String, extra: [String]) throws {
        var pipeFDs: [Int32] = [0, 0]
        pipe(&pipeFDs)
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, pipeFDs[1], 1)
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        var target = [CChar](repeating: 0, count: 4096)
        let length = readlink("/proc/self/exe", &target, 4095)
        let path = String(decoding: target[0..<max(0, length)].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let arguments = [path, "serve", "--data-dir", dataDir, "--listen", "127.0.0.1:0"] + extra
        let argv = arguments.map { strdup($0) } + [nil]
        defer { for p in argv { free(p) } }
        var child: pid_t = 0
        guard posix_spawn(&child, path, &actions, nil, argv, environ) == 0 else { throw LedgerError(.internal, "cannot start ledger serve") }
        Glibc.close(pipeFDs[1])
        pid = child
        var line: [UInt8] = []
        var byte: UInt8 = 0
        while read(pipeFDs[0], &byte, 1) == 1 {
            if byte == 0x0A {
                let text = String(decoding: line, as: UTF8.self)
                if text.hasPrefix("ledger serve: listening on "), let colon = text.lastIndex(of: ":"), let p = Int(text[text.index(after: colon)...]) {
                    port = p
                    return
                }
                line = []
            } else {
                line.append(byte)
            }
        }
        throw LedgerError(.internal, "ledger serve did not start")
    }

    func stop() {
        kill(pid, SIGTERM)
        var status: Int32 = 0
        waitpid(pid, &status, 0)
    }

    func currentRSS() -> Int64 { Self.status(pid, "VmRSS:") }
    func peakRSS() -> Int64 { Self.status(pid, "VmHWM:") }

    static func status(_ pid: pid_t, _ key: String) -> Int64 {
        guard let text = try? String(contentsOfFileLite: "/proc/\(pid)/status") else { return 0 }
        for line in text.split(separator: "\n") where line.hasPrefix(key) { return (Int64(line.filter(\.isNumber)) ?? 0) * 1024 }
        return 0
    }
}

/// Runs wrk and reads its summary.
enum Wrk {
    struct Result {
        var requestsPerSecond: Double
        var p50: String
        var p99: String
        var errors: Int
    }

    static func run(url: String, connections: Int, seconds: Int, script: String?) throws -> Result {
        let out = "/tmp/ledger-wrk-\(getpid()).txt"
        defer { unlink(out) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 1, out, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        let arguments = ["wrk", "-t", "2", "-c", String(connections), "-d", "\(seconds)s", "--latency"] + (script.map { ["-s", $0] } ?? []) + [url]
        let argv = arguments.map { strdup($0) } + [nil]
        defer { for p in argv { free(p) } }
        var pid: pid_t = 0
        guard posix_spawnp(&pid, "wrk", &actions, nil, argv, environ) == 0 else {
            throw LedgerError(.notFound, "wrk is not installed (Debian: apt-get install wrk; .ci/install-system-packages installs it)")
        }
        var status: Int32 = 0
        waitpid(pid, &status, 0)
        let text = try String(contentsOfFileLite: out)
        var result = Result(requestsPerSecond: 0, p50: "-", p99: "-", errors: 0)
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            if line.hasPrefix("Requests/sec:"), let v = Double(fields.last ?? "") { result.requestsPerSecond = v }
            if fields.first == "50%", fields.count > 1 { result.p50 = String(fields[1]) }
            if fields.first == "99%", fields.count > 1 { result.p99 = String(fields[1]) }
            if line.contains("Non-2xx or 3xx responses:"), let v = Int(fields.last ?? "") { result.errors = v }
        }
        guard result.requestsPerSecond > 0 else { throw LedgerError(.internal, "wrk said: \(text)") }
        return result
    }
}
