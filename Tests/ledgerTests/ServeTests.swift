import Foundation
import LedgerCore
import LedgerLog
import LedgerProjections
import Testing

/// `ledger serve` as a child process.
final class ServeProcess {
    let child: ChildProcess
    let port: Int
    let base: String

    init(dataDir: String, _ arguments: [String] = [], scheme: String = "http") throws {
        child = try ChildProcess(ledgerBinary, ["serve", "--data-dir", dataDir, "--listen", "127.0.0.1:0"] + arguments)
        guard let line = child.waitForLine(timeout: 120, { $0.hasPrefix("ledger serve: listening on ") }),
            let colon = line.lastIndex(of: ":"), let port = Int(line[line.index(after: colon)...])
        else {
            _ = child.wait(timeout: 5)
            throw ServeError(message: "ledger serve did not start: \(child.stderrLines.suffix(5).joined(separator: " | "))")
        }
        self.port = port
        base = "\(scheme)://127.0.0.1:\(port)"
    }

    /// SIGTERM, then the exit status (nil if it did not stop within a minute).
    func stop() -> Int32? {
        child.signal(SIGTERM)
        return child.wait(timeout: 60).map { $0.signaled ? -1 : $0.status }
    }
}

struct ServeError: Error, CustomStringConvertible {
    var message: String
    var description: String { message }
}

/// `curl` with the given arguments: (HTTP status, body).
func curl(_ arguments: [String]) throws -> (Int, String) {
    let run = try runProgram("curl", ["-s", "-S", "-w", "\n%{http_code}"] + arguments)
    let text = run.stdout
    guard let newline = text.lastIndex(of: "\n"), let status = Int(text[text.index(after: newline)...]) else {
        throw ServeError(message: "curl failed: \(run.stderr)")
    }
    return (status, String(text[..<newline]))
}

let fixtures = repositoryRoot.appending(path: "Tests/ledgerTests/Fixtures").path

func tokensFile(_ dir: String, _ tokens: [(token: String, principal: String, roles: [String], prefixes: [String]?)]) throws -> String {
    var entries: [JSONValue] = []
    for t in tokens {
        var o: JSONObject = [
            "sha256": .string(Hash256.of(utf8: t.token).description), "principal": .string(t.principal), "roles": .array(t.roles.map { .string($0) }),
        ]
        if let p = t.prefixes { o["streamPrefixes"] = .array(p.map { .string($0) }) }
        entries.append(.object(o))
    }
    let path = dir + "/tokens.json"
    try Data(try CanonicalJSON.encode(["tokens": .array(entries)])).write(to: URL(fileURLWithPath: path))
    return path
}

@Suite(.serialized) struct ServeTests {
    static let standardTokens: [(token: String, principal: String, roles: [String], prefixes: [String]?)] = [
        ("w-token", "svc:ci", ["writer"], ["job-", "model-"]),
        ("a-token", "user:carol", ["auditor"], nil),
        ("admin-token", "user:root", ["admin"], nil),
    ]

    /// curl appends, reads and subscribes; SIGTERM drains and exits 0; everything on disk is owner-only.
    @Test func curlAppendReadSubscribeAndCleanShutdown() throws {
        let dir = TemporaryDirectory("serve-curl")
        let tokens = try tokensFile(dir.path, Self.standardTokens)
        let server = try ServeProcess(dataDir: dir.path + "/data", ["--tokens", tokens, "--heartbeat", "0.2"])
        let append = #"{"events":[{"stream":"job-c1","type":"job.queued","data":{"job":"c1","team":"vision","gpuType":"a100","gpus":1,"priority":0}}]}"#
        var (status, text) = try curl(["-X", "POST", server.base + "/v1/append", "-H", "Authorization: Bearer w-token", "-H", "Content-Type: application/json", "-d", append])
        #expect(status == 200, "\(text)")
        #expect(text.contains(#""offset":0"#) && text.contains(#""stream":"job-c1""#))
        (status, text) = try curl([server.base + "/v1/append", "-H", "Content-Type: application/json", "-d", append])
        #expect(status == 401)
        (status, text) = try curl([server.base + "/v1/streams/job-c1", "-H", "Authorization: Bearer w-token"])
        #expect(status == 200 && text.contains(#""actor":"svc:ci""#))
        // The scheduler (running in the server) rejects the job: there is no quota.
        #expect(eventually(timeout: 30) {
            let (s, t) = (try? curl([server.base + "/v1/decisions", "-H", "Authorization: Bearer a-token"])) ?? (0, "")
            return s == 200 && t.contains("job.rejected")
        })
        // curl -N reads the subscription until --max-time: the two events, then heartbeats.
        let sse = try runProgram("curl", ["-s", "-N", "--max-time", "2", server.base + "/v1/subscribe?from=0&stream=job-c1", "-H", "Authorization: Bearer a-token"])
        #expect(sse.stdout.contains("id: 0\nevent: job.queued\ndata: {"))
        #expect(sse.stdout.contains("id: 1\nevent: job.rejected\ndata: {"))
        #expect(sse.stdout.contains(": heartbeat"))
        #expect(server.stop() == 0)
        #expect(server.child.stderrLines.contains { $0.contains("stopped cleanly") })
        // Owner-only: directories 0700, files 0600 (the log may hold personal data).
        let walker = FileManager.default.enumerator(atPath: dir.path + "/data")!
        var checked = 0
        for case let name as String in walker {
            let attributes = try FileManager.default.attributesOfItem(atPath: dir.path + "/data/" + name)
            let mode = (attributes[.posixPermissions] as! NSNumber).intValue & 0o777
            let isDirectory = attributes[.type] as? FileAttributeType == .typeDirectory
            #expect(mode == (isDirectory ? 0o700 : 0o600), "\(name) has mode \(String(mode, radix: 8))")
            checked += 1
        }
        #expect(checked > 10)
        let verify = try ledger(["verify", "--data-dir", dir.path + "/data"])
        #expect(verify.status == 0)
    }

    /// Python's CloudEvents SDK parses every message of a subscription over a simulated day.
    @Test func cloudEventsSDKParsesEveryMessage() throws {
        let dir = TemporaryDirectory("serve-ce")
        let demo = try ledger(["demo", "--days", "1", "--data-dir", dir.path + "/data"])
        try #require(demo.status == 0, "\(demo.stderr)")
        let head = try LogReader(directory: dir.path + "/data").head
        let server = try ServeProcess(dataDir: dir.path + "/data")
        let run = try python([fixtures + "/sse_cloudevents.py", server.base + "/v1/subscribe?from=0", "", String(head)])
        #expect(run.status == 0, "\(run.stdout) \(run.stderr)")
        let summary = try JSONParser.parse(Array(run.stdout.utf8))
        #expect(summary["events"]?.intValue == Int(head))
        #expect(summary["last"]?.intValue == Int(head) - 1)
        #expect((summary["types"]?.arrayValue?.count ?? 0) >= 20)
        #expect(server.stop() == 0)
    }

    /// Prometheus' own linter accepts /metrics.
    @Test func promtoolAcceptsTheMetrics() throws {
        let dir = TemporaryDirectory("serve-metrics")
        let server = try ServeProcess(dataDir: dir.path + "/data")
        let append = #"{"events":[{"stream":"job-m1","type":"job.queued","data":{"job":"m1","team":"vision","gpuType":"a100","gpus":1,"priority":0}}]}"#
        _ = try curl(["-X", "POST", server.base + "/v1/append", "-H", "Content-Type: application/json", "-d", append])
        _ = try curl([server.base + "/v1/events?stream=NOT"])
        let (status, metrics) = try curl([server.base + "/metrics"])
        #expect(status == 200)
        for name in ["ledger_events_appended_total", "ledger_fsync_seconds_bucket", "ledger_group_commit_events_bucket", "ledger_http_requests_total",
                     "ledger_projection_lag_events", "ledger_processor_lag_events", "ledger_subscriptions"] {
            #expect(metrics.contains(name), "\(name) missing")
        }
        let file = dir.path + "/metrics.txt"
        try Data(metrics.utf8).write(to: URL(fileURLWithPath: file))
        let check = try runProgram("/bin/sh", ["-c", "promtool check metrics < \(file)"])
        #expect(check.status == 0, "promtool: \(check.stdout) \(check.stderr)")
        #expect(server.stop() == 0)
    }

    /// HTTPS with a certificate made here, checked by curl against it.
    @Test func tlsWithCurlCacert() throws {
        let dir = TemporaryDirectory("serve-tls")
        let openssl = try runProgram("openssl", [
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
            "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", dir.path + "/key.pem", "-out", dir.path + "/cert.pem",
        ])
        try #require(openssl.status == 0, "\(openssl.stderr)")
        let server = try ServeProcess(dataDir: dir.path + "/data", ["--tls-cert", dir.path + "/cert.pem", "--tls-key", dir.path + "/key.pem"], scheme: "https")
        let (status, text) = try curl(["--cacert", dir.path + "/cert.pem", server.base + "/healthz"])
        #expect(status == 200 && text.contains("ok"))
        // Without the certificate curl refuses the server; plain HTTP gets no answer.
        let untrusted = try runProgram("curl", ["-s", server.base + "/healthz"])
        #expect(untrusted.status != 0)
        let plain = try runProgram("curl", ["-s", "--max-time", "5", "http://127.0.0.1:\(server.port)/healthz"])
        #expect(plain.status != 0 || !plain.stdout.contains("ok"))
        #expect(server.stop() == 0)
    }

    /// A token removed from the file stops working after SIGHUP, without a restart.
    @Test func sighupReloadsTheTokens() throws {
        let dir = TemporaryDirectory("serve-hup")
        let tokens = try tokensFile(dir.path, Self.standardTokens)
        let server = try ServeProcess(dataDir: dir.path + "/data", ["--tokens", tokens])
        #expect(try curl([server.base + "/v1/verify", "-H", "Authorization: Bearer a-token"]).0 == 200)
        _ = try tokensFile(dir.path, Self.standardTokens.filter { $0.token != "a-token" })
        server.child.signal(SIGHUP)
        #expect(eventually(timeout: 10) { ((try? curl([server.base + "/v1/verify", "-H", "Authorization: Bearer a-token"]))?.0 ?? 0) == 401 })
        #expect(try curl([server.base + "/v1/verify", "-H", "Authorization: Bearer admin-token"]).0 == 200)
        #expect(server.stop() == 0)
    }

    /// Without tokens the server refuses to listen beyond loopback.
    @Test func anOpenServerListensOnLoopbackOnly() throws {
        let dir = TemporaryDirectory("serve-open")
        let run = try ledger(["serve", "--data-dir", dir.path, "--listen", "0.0.0.0:0"])
        #expect(run.status == 1)
        #expect(run.stderr.contains("loopback only"))
    }

    /// schemathesis (PyPI) against a live server with the spec: no 5xx, no status, content type,
    /// header or body that disagrees with Schemas/openapi.yaml, 401 without the token, 405 for
    /// undeclared methods. (Subscriptions never end, so they are tested with real clients above.)
    @Test func schemathesisFindsNothingThatDisagreesWithTheSpec() throws {
        let dir = TemporaryDirectory("serve-schemathesis")
        let demo = try ledger(["demo", "--days", "1", "--data-dir", dir.path + "/data"])
        try #require(demo.status == 0)
        let tokens = try tokensFile(dir.path, Self.standardTokens)
        let server = try ServeProcess(dataDir: dir.path + "/data", ["--tokens", tokens])
        let run = try runProgram("schemathesis", [
            "run", repositoryRoot.appending(path: "Schemas/openapi.yaml").path, "--url", server.base,
            "--checks", "not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance,ignored_auth,unsupported_method,missing_required_header",
            "--exclude-path", "/v1/subscribe", "--max-examples", "40", "--seed", "7", "--request-timeout", "60",
            "-H", "Authorization: Bearer admin-token",
        ], environment: ["NO_COLOR": "1"])
        #expect(run.status == 0, "schemathesis: \(run.stdout.suffix(4000))")
        #expect(run.stdout.contains("passed"))
        #expect(server.stop() == 0)
    }

    /// SIGKILL of the server under concurrent HTTP appends, 50 times: every acknowledged event is
    /// there after the restart, and the projections and processors resume to what a fresh fold of
    /// the same log gives. The kill comes after a seeded number of acknowledgements, not after a
    /// wall-clock sleep.
    @Test func sigkillUnderConcurrentAppendsLosesNothing() throws {
        let dir = TemporaryDirectory("serve-kill")
        let data = dir.path + "/data"
        var rng = SeededGenerator(defaultSeed: 4242)
        var acked: [Int64: String] = [:]
        var kills = 0
        for round in 0..<50 {
            let server = try ServeProcess(dataDir: data)
            let appender = try ChildProcess("/usr/bin/env", ["python3", fixtures + "/http_appender.py", "127.0.0.1", String(server.port), "none", "r\(round)", "4"])
            let want = Int.random(in: 1...400, using: &rng)
            #expect(eventually(timeout: 60) { appender.stdoutLines.count >= want }, "round \(round): \(appender.stdoutLines.count) acks, \(rng.note)")
            server.child.signal(SIGKILL)
            if let end = server.child.wait(timeout: 30), end.signaled { kills += 1 }
            if appender.wait(timeout: 30) == nil { appender.signal(SIGKILL); _ = appender.wait(timeout: 10) }
            for line in appender.stdoutLines {
                let parts = line.split(separator: " ")
                if parts.count == 2, let offset = Int64(parts[0]) { acked[offset] = String(parts[1]) }
            }
        }
        #expect(kills == 50)
        // A last start lets the processors and projector catch up; a clean stop checkpoints.
        let server = try ServeProcess(dataDir: data)
        #expect(eventually(timeout: 120) { ((try? curl([server.base + "/readyz"]))?.0 ?? 0) == 200 })
        #expect(server.stop() == 0)
        let reader = try LogReader(directory: data)
        var seen: [Int64: String] = [:]
        let cursor = reader.cursor()
        while let v = try cursor.next() { seen[v.offset] = v.id.description }
        #expect(acked.count > 2000)
        var lost = 0
        for (offset, id) in acked where seen[offset] != id { lost += 1 }
        #expect(lost == 0, "\(lost) acknowledged events lost or moved, \(rng.note)")
        #expect(try Verifier.verify(directory: data).isClean)
        // Projections: the same rows as a fresh rebuild.
        let served = try ProjectionStore(dataDirectory: data).dump()
        let other = TemporaryDirectory("serve-kill-fresh")
        let fresh = try ProjectionStore(dataDirectory: other.path)
        try Projector(store: fresh, source: reader).rebuild()
        #expect(try fresh.dump() == served)
        // Processors: folding the whole log afresh re-derives every decision and appends none.
        let copy = other.path + "/copy"
        try FileManager.default.copyItem(atPath: data, toPath: copy)
        let process = try ledger(["process", "--from-start", "--data-dir", copy])
        #expect(process.status == 0, "\(process.stderr)")
        #expect(try LogReader(directory: copy).head == reader.head, "a fresh fold decided something the served processors did not")
        for name in ["scheduler", "drift", "slo", "rollout"] {
            let a = try Data(contentsOf: URL(fileURLWithPath: data + "/processors/\(name).snapshot.json"))
            let b = try Data(contentsOf: URL(fileURLWithPath: copy + "/processors/\(name).snapshot.json"))
            #expect(a == b, "\(name): the served processor's state differs from a fresh fold")
        }
    }
}
