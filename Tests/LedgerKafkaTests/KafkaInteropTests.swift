import Foundation
import LedgerCore
import LedgerEngine
@testable import LedgerKafka
import LedgerLog
import LedgerProjections
import LedgerSimulator
import LedgerTestSupport
import Logging
import Testing

/// What others see of a ledger on Kafka, and that the backend changes nothing above `EventLog`.
@Suite(.serialized) struct KafkaInteropTests {
    /// A few hundred events on the mock cluster, read back by the ledger.
    static func populated() async throws -> (KafkaMockCluster, [StoredEvent]) {
        let cluster = try KafkaMockCluster(brokers: 3, logger: KafkaLogTests.quiet)
        try cluster.createTopic("ledger", partitions: 1, replicationFactor: 3)
        let log = try await KafkaLogTests.open(KafkaLogTests.configuration(cluster))
        for i in 0..<40 {
            _ = try await log.append((0..<(1 + i % 4)).map { j in KafkaLogTests.node("n\(i)-\(j)") }, policy: KafkaLogTests.admin)
        }
        let events = try KafkaLogTests.readAll(log)
        try await log.close()
        return (cluster, events)
    }

    @Test func kcatReadsTheTopicWithItsHeaders() async throws {
        let (cluster, events) = try await Self.populated()
        let run = try runProgram(
            "kcat", ["-b", cluster.bootstrapServers, "-C", "-t", "ledger", "-p", "0", "-e", "-q", "-X", "isolation.level=read_committed", "-f", "%k\t%h\t%s\n"])
        #expect(run.status == 0, "\(run.stderr)")
        var seen: [Int64: (key: String, headers: [String: String], value: String)] = [:]
        for line in run.lines {
            let parts = line.split(separator: "\t", maxSplits: 2, omittingEmptySubsequences: false).map(String.init)
            guard parts.count == 3 else { continue }
            var headers: [String: String] = [:]
            for h in parts[1].split(separator: ",") {
                guard let eq = h.firstIndex(of: "=") else { continue }
                headers[String(h[..<eq])] = String(h[h.index(after: eq)...])
            }
            if headers["ce_type"] == KafkaRecord.fenceType { continue }
            guard let o = headers["ce_ledgeroffset"].flatMap(Int64.init) else {
                Issue.record("a record without ce_ledgeroffset: \(line.prefix(200))")
                continue
            }
            seen[o] = (parts[0], headers, parts[2])
        }
        #expect(seen.count == events.count)
        for e in events {
            guard let r = seen[e.offset] else {
                Issue.record("kcat did not see ledger offset \(e.offset)")
                continue
            }
            #expect(r.key == e.stream)
            #expect(r.value == String(decoding: e.json, as: UTF8.self))
            let envelope = try e.envelope()
            #expect(r.headers["ce_specversion"] == "1.0")
            #expect(r.headers["ce_id"] == e.id.description)
            #expect(r.headers["ce_type"] == e.type)
            #expect(r.headers["ce_subject"] == e.stream)
            #expect(r.headers["ce_time"] == e.time.description)
            #expect(r.headers["content-type"] == "application/json")
            #expect(r.headers["ce_ledgerhash"] == envelope.hash.description)
            #expect(r.headers["ce_ledgerprevhash"] == envelope.prevHash.description)
            #expect(r.headers["ce_actor"] == envelope.actor)
        }
    }

    @Test func confluentKafkaAndTheCloudEventsSDKReadEveryEvent() async throws {
        let (cluster, events) = try await Self.populated()
        let script = repositoryRoot.appending(path: "Tests/LedgerKafkaTests/Fixtures/consume_cloudevents.py").path
        let run = try python([script, cluster.bootstrapServers, "ledger", String(events.count)])
        #expect(run.status == 0, "\(run.stderr)")
        let parsed = try run.lines.map { try JSONParser.parse(Array($0.utf8)) }
        #expect(parsed.count == events.count)
        for (p, e) in zip(parsed, events) {
            let envelope = try e.envelope()
            #expect(p["offset"]?.intValue == Int(e.offset))
            #expect(p["value_offset"]?.intValue == Int(e.offset))
            #expect(p["id"]?.stringValue == e.id.description)
            #expect(p["value_id"]?.stringValue == e.id.description)
            #expect(p["type"]?.stringValue == e.type)
            #expect(p["subject"]?.stringValue == e.stream)
            #expect(p["hash"]?.stringValue == envelope.hash.description)
            #expect(p["value_hash"]?.stringValue == envelope.hash.description)
            #expect(p["prevhash"]?.stringValue == envelope.prevHash.description)
        }
    }

    /// The same simulated day through the engine, per event (processors to quiescence after each
    /// client event), on the segment log and on Kafka: the same bytes, event for event, and the
    /// same read models, digest for digest.
    @Test func theSameInputGivesTheSameLogAndProjectionsOnEitherBackend() async throws {
        func play(_ engine: LedgerEngine) async throws -> ([StoredEvent], [String]) {
            // Small enough for the mock cluster, which keeps about 5 MiB of each partition.
            var config = SimulationConfig(seed: 11, days: 1)
            config.jobsPerDay = 150
            let play = PlatformPlay(config: config)
            let counts = try await engine.drive(policy: AppendPolicy(actor: "user:test", mode: .admin), next: { play.next()?.request }) { d in
                play.observe(type: d.decision.type, data: d.decision.data, time: d.decision.notBefore)
            }
            #expect(counts.decisions > 20)
            try await engine.project()
            var events: [StoredEvent] = []
            let cursor = engine.log.cursor(from: 0, end: nil, filter: .all)
            while let v = try cursor.next() { events.append(v.stored()) }
            let digests = try Attestation.lines(store: engine.store!, source: engine.log, size: engine.head)
            try await engine.close()
            return (events, digests)
        }
        var options = EngineOptions()
        options.log.fsync = .never
        let segments = TemporaryDirectory("equivalence-segments")
        let (a, aDigests) = try await play(try await LedgerEngine.open(directory: segments.path, options: options))

        let cluster = try KafkaMockCluster(brokers: 3, logger: KafkaLogTests.quiet)
        try cluster.createTopic("ledger", partitions: 1, replicationFactor: 3)
        let kafkaDir = TemporaryDirectory("equivalence-kafka")
        let log = try await KafkaLogTests.open(KafkaLogTests.configuration(cluster, state: kafkaDir.path + "/kafka"))
        let (b, bDigests) = try await play(try await LedgerEngine(log: log, directory: kafkaDir.path, options: options))

        #expect(a.count == b.count)
        #expect(a.count > 300)
        #expect(a == b, "the logs differ")
        #expect(aDigests.count == 3)
        #expect(aDigests == bDigests)
    }
}

/// `ledger serve --kafka … --role projector`: one process of the consumer group projects, the
/// others stand by; SIGKILL the one that works and a standby takes over and resumes from the
/// projections' committed checkpoint.
@Suite(.serialized) struct KafkaProjectorRoleTests {
    @Test func aStandbyProjectorTakesOverWhenTheActiveOneIsKilled() async throws {
        let cluster = try KafkaMockCluster(brokers: 3, logger: KafkaLogTests.quiet)
        try cluster.createTopic("ledger", partitions: 1, replicationFactor: 3)
        let writer = try await KafkaLogTests.open(KafkaLogTests.configuration(cluster))
        for i in 0..<30 { _ = try await writer.append([KafkaLogTests.node("n\(i)")], policy: KafkaLogTests.admin) }
        let dir = TemporaryDirectory("kafka-projectors")
        func start() throws -> ChildProcess {
            try ChildProcess(
                ledgerBinary, ["serve", "--kafka", cluster.bootstrapServers, "--topic", "ledger", "--role", "projector", "--role-timeout", "4", "--data-dir", dir.path, "--listen", "127.0.0.1:0"],
                environment: ["LEDGER_LOG_LEVEL": "error"])
        }
        let first = try start()
        #expect(first.waitForLine(timeout: 60) { $0.contains("holding the projector role") } != nil, "the first projector never got the role")
        #expect(first.waitForLine(timeout: 30) { $0.contains("listening on") } != nil)
        let second = try start()
        #expect(second.waitForLine(timeout: 30) { $0.contains("standby for the projector role") } != nil)
        // The second stands by while the first holds the role.
        #expect(second.waitForLine(timeout: 3) { $0.contains("holding the projector role") } == nil, "two processes hold the projector role")
        for i in 30..<60 { _ = try await writer.append([KafkaLogTests.node("n\(i)")], policy: KafkaLogTests.admin) }
        let killed = Date()
        first.signal(SIGKILL)
        _ = first.wait(timeout: 30)
        #expect(second.waitForLine(timeout: 60) { $0.contains("holding the projector role") } != nil, "no standby took over")
        let tookOver = Date().timeIntervalSince(killed)
        print("the standby took over \(String(format: "%.1f", tookOver)) s after the active projector was killed")
        let listening = second.waitForLine(timeout: 30) { $0.contains("listening on") }
        let url = try #require(listening?.split(separator: " ").last.map(String.init))
        // It resumes from the checkpoint the first one committed and catches up to the head.
        var ready = false
        for _ in 0..<300 where !ready {
            let r = try runProgram("curl", ["-s", url + "/readyz"])
            ready = r.stdout.contains("\"head\":60") && r.stdout.contains("\"projectionLag\":0")
            if !ready { try await Task.sleep(for: .milliseconds(100)) }
        }
        #expect(ready, "the standby's projections did not reach the head")
        second.signal(SIGTERM)
        #expect(second.wait(timeout: 30)?.status == 0)
        try await writer.close()
    }
}
