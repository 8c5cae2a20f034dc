import Foundation
import LedgerCore
@testable import LedgerKafka
import LedgerLog
import LedgerTestSupport
import Logging
import Testing

/// The Kafka backend on librdkafka's mock cluster (3 brokers, the real protocol on localhost).
@Suite(.serialized) struct KafkaLogTests {
    static let admin = AppendPolicy(actor: "user:test", mode: .admin)

    static func node(_ name: String, id: EventID? = .random(), expected: ExpectedVersion = .any, gpus: Int = 8) -> AppendRequest {
        AppendRequest(stream: "node-" + name, type: "node.registered", data: ["node": .string(name), "gpuType": "a100", "gpuCount": .number(Double(gpus))], id: id, expectedVersion: expected)
    }

    static let quiet: Logger = {
        var l = Logger(label: "test.kafka")
        l.logLevel = .critical
        return l
    }()

    static func configuration(_ cluster: KafkaMockCluster, topic: String = "ledger", state: String? = nil) -> KafkaConfiguration {
        var c = KafkaConfiguration(brokers: cluster.bootstrapServers, topic: topic)
        c.stateDirectory = state
        c.transactionTimeoutMs = 20_000
        c.logger = quiet
        return c
    }

    static func open(_ c: KafkaConfiguration) async throws -> KafkaLog {
        try await BlockingPool.shared.run { try KafkaLog.openWriter(c) }
    }

    static func readAll(_ log: KafkaLog) throws -> [StoredEvent] {
        let cursor = log.cursor(from: 0, end: nil, filter: .all)
        var out: [StoredEvent] = []
        while let v = try cursor.next() { out.append(v.stored()) }
        return out
    }

    @Test func concurrentAppendsReadBackInOrderAndVerify() async throws {
        let cluster = try KafkaMockCluster(brokers: 3, logger: Self.quiet)
        try cluster.createTopic("ledger", partitions: 1, replicationFactor: 3)
        let log = try await Self.open(Self.configuration(cluster))
        let acked = try await withThrowingTaskGroup(of: [AppendResult].self) { group in
            for t in 0..<16 {
                group.addTask {
                    var mine: [AppendResult] = []
                    for i in 0..<10 {
                        let n = 1 + (i % 3)
                        mine += try await log.append((0..<n).map { j in Self.node("t\(t)-\(i)-\(j)") }, policy: Self.admin)
                    }
                    return mine
                }
            }
            var all: [AppendResult] = []
            for try await r in group { all += r }
            return all
        }
        #expect(acked.count == 16 * 19)
        #expect(Set(acked.map(\.offset)) == Set(0..<Int64(acked.count)))
        #expect(log.head == Int64(acked.count))
        let events = try Self.readAll(log)
        #expect(events.map(\.offset) == Array(0..<Int64(acked.count)))
        let report = try Verifier.verify(source: log)
        #expect(report.isClean, "\(report.problem ?? "")")
        #expect(report.events == Int64(acked.count))
        // A reader in "another process" sees the same head and the same bytes.
        let reader = try await BlockingPool.shared.run { try KafkaLog.openReader(Self.configuration(cluster)) }
        #expect(reader.head == log.head)
        #expect(try Self.readAll(reader) == events)
        // Positioning in the middle of the topic (past transaction markers).
        let middle = log.cursor(from: 150, end: 152, filter: .all)
        #expect(try middle.next()?.offset == 150)
        #expect(try middle.next()?.offset == 151)
        #expect(try middle.next() == nil)
        #expect(try log.firstOffset(atOrAfter: events[200].time) <= 200)
        try await reader.close()
        try await log.close()
    }

    @Test func appendSemanticsAreTheSegmentLogs() async throws {
        let cluster = try KafkaMockCluster(brokers: 3, logger: Self.quiet)
        let log = try await Self.open(Self.configuration(cluster))
        let id = EventID.random()
        let first = try await log.append([Self.node("a", id: id, expected: .noStream)], policy: Self.admin)
        // A retry returns where the event landed; nothing new is written.
        let retry = try await log.append([Self.node("a", id: id, expected: .noStream)], policy: Self.admin)
        #expect(retry == first)
        #expect(log.head == 1)
        // The same id with other data is refused.
        await #expect(throws: LedgerError.self) { try await log.append([Self.node("a", id: id, gpus: 4)], policy: Self.admin) }
        // Expected versions.
        do {
            _ = try await log.append([Self.node("a", expected: .exactly(3))], policy: Self.admin)
            Issue.record("a wrong expected version was accepted")
        } catch let e as LedgerError {
            #expect(e.code == .wrongExpectedVersion)
            #expect(e.currentVersion == 0)
        }
        let second = try await log.append([Self.node("a", expected: .exactly(0))], policy: Self.admin)
        #expect(second[0].version == 1 && second[0].offset == 1)
        // A request that fails part-way writes nothing.
        await #expect(throws: LedgerError.self) {
            try await log.append([Self.node("b"), Self.node("a", expected: .noStream)], policy: Self.admin)
        }
        #expect(log.head == 2)
        #expect(try Self.readAll(log).count == 2)
        try await log.close()
    }

    @Test func restartReadsOnlyTheTailAfterItsSnapshot() async throws {
        let cluster = try KafkaMockCluster(brokers: 3, logger: Self.quiet)
        let state = TemporaryDirectory("kafka-state")
        var c = Self.configuration(cluster, state: state.path)
        c.snapshotEvery = 50
        let log = try await Self.open(c)
        let early = EventID.random()
        _ = try await log.append([Self.node("early", id: early)], policy: Self.admin)
        for i in 0..<120 { _ = try await log.append([Self.node("n\(i % 7)")], policy: Self.admin) }
        let headHash = try Verifier.verify(source: log).headHash
        // Kill-like stop: the snapshot on disk is the last periodic one, not one written at close.
        let snapshot = try readFile(KafkaLog.snapshotPath(c)!)
        try await log.close()
        try writeFileDurably(snapshot, to: KafkaLog.snapshotPath(c)!, directory: state.path)

        let again = try await Self.open(c)
        #expect(again.head == 121)
        // Versions and ids from before the restart are known.
        let v = try await again.append([Self.node("n0", expected: .exactly(17))], policy: Self.admin)
        #expect(v[0].version == 18 && v[0].offset == 121)
        let retry = try await again.append([Self.node("early", id: early)], policy: Self.admin)
        #expect(retry[0].offset == 0)
        let report = try Verifier.verify(source: again)
        #expect(report.isClean && report.events == 122)
        try await again.close()

        // Without a snapshot the writer folds the whole topic to the same head and chain.
        let fresh = try await Self.open(Self.configuration(cluster))
        #expect(fresh.head == 122)
        let events = try Self.readAll(fresh)
        #expect(events[120].json.count > 0)
        #expect(try Verifier.verify(source: fresh).headHash != headHash)  // two more events since
        try await fresh.close()
    }

    @Test func aTamperedTailStopsTheWriterFromStarting() async throws {
        let cluster = try KafkaMockCluster(brokers: 3, logger: Self.quiet)
        let c = Self.configuration(cluster)
        let log = try await Self.open(c)
        for i in 0..<5 { _ = try await log.append([Self.node("n\(i)")], policy: Self.admin) }
        let events = try Self.readAll(log)
        try await log.close()
        // Someone with write access to the topic appends a forged copy of event 4 with other data
        // as ledger offset 5.
        let forged = String(decoding: events[4].json, as: UTF8.self).replacingOccurrences(of: "\"gpuCount\":8", with: "\"gpuCount\":9")
        let brokers = cluster.bootstrapServers
        let forgedEvent = events[4]
        try await BlockingPool.shared.run {
            let producer = try RDKafkaProducer(properties: [("bootstrap.servers", brokers)], logger: Logger(label: "test"))
            let json = Array(forged.utf8)
            var position: [UInt8] = []
            for v in [UInt64(5), forgedEvent.id.high, forgedEvent.id.low, UInt64(forgedEvent.time.milliseconds), UInt64(1), UInt64(1)] {
                hex16(v, into: &position)
            }
            try json.withUnsafeBytes { value in
                try Array("node-n4".utf8).withUnsafeBytes { key in
                    try producer.produce(
                        topic: "ledger", partition: 0,
                        RDKafkaRecord(key: key, value: value, timestampMs: 0, headers: [("ce_type", Array("node.registered".utf8)), (KafkaRecord.positionHeader, position)]))
                }
            }
            producer.flush()
        }
        do {
            _ = try await Self.open(c)
            Issue.record("the writer started over a forged tail")
        } catch let e as LedgerError {
            #expect(e.code == .corrupt)
            #expect(e.message.contains("does not verify"))
        }
    }

    @Test func aSecondWriterFencesTheFirst() async throws {
        let cluster = try KafkaMockCluster(brokers: 3, logger: Self.quiet)
        let c = Self.configuration(cluster)
        let first = try await Self.open(c)
        _ = try await first.append([Self.node("a")], policy: Self.admin)
        let second = try await Self.open(c)
        #expect(second.head == 1)
        do {
            _ = try await first.append([Self.node("b")], policy: Self.admin)
            Issue.record("a fenced writer accepted an append")
        } catch let e as LedgerError {
            #expect(e.code == .fenced, "\(e)")
        }
        #expect(first.failure?.code == .fenced)
        _ = try await second.append([Self.node("c")], policy: Self.admin)
        let events = try Self.readAll(second)
        #expect(events.map(\.stream) == ["node-a", "node-c"])
        #expect(try Verifier.verify(source: second).isClean)
        try? await first.close()
        try await second.close()
    }

    /// Broker failures, leader moves and injected request errors during appends: every
    /// acknowledged event is in the topic exactly once, in a chain that verifies.
    @Test func faultsDuringAppendsLoseAndDuplicateNothing() async throws {
        let seed = SeededGenerator(defaultSeed: 0x6b61_666b_61)
        var random = seed
        let cluster = try KafkaMockCluster(brokers: 3, logger: Self.quiet)
        try cluster.createTopic("ledger", partitions: 1, replicationFactor: 3)
        var c = Self.configuration(cluster)
        c.maxAttempts = 20
        let log = try await Self.open(c)
        let plan = (0..<12).map { _ in Int.random(in: 0..<5, using: &random) }
        let acked = try await withThrowingTaskGroup(of: [AppendResult].self) { group in
            for t in 0..<8 {
                group.addTask {
                    var mine: [AppendResult] = []
                    for i in 0..<40 {
                        do {
                            mine += try await log.append([Self.node("t\(t)-\(i)")], policy: Self.admin)
                        } catch let e as LedgerError where e.code == .writerFailed || e.code == .io {
                            break
                        }
                    }
                    return mine
                }
            }
            group.addTask {
                for (round, fault) in plan.enumerated() {
                    try await Task.sleep(for: .milliseconds(40))
                    switch fault {
                    case 0: cluster.inject(.produce, [.notLeaderForPartition, .requestTimedOut, .notEnoughReplicas])
                    case 1: cluster.inject(.endTransaction, [.coordinatorNotAvailable, .concurrentTransactions])
                    case 2: try cluster.setLeader(topic: "ledger", broker: 1 + round % 3)
                    case 3:
                        try cluster.setBroker(1 + round % 3, up: false)
                        try await Task.sleep(for: .milliseconds(150))
                        try cluster.setBroker(1 + round % 3, up: true)
                    default: cluster.inject(.addPartitionsToTransaction, [.concurrentTransactions])
                    }
                }
                return []
            }
            var all: [AppendResult] = []
            for try await r in group { all += r }
            return all
        }
        #expect(log.failure == nil, "seed \(seed.seed): \(log.failure?.message ?? "")")
        let events = try Self.readAll(log)
        let ids = events.map(\.id)
        #expect(Set(ids).count == ids.count, "seed \(seed.seed): an event is in the log twice")
        let offsets = Dictionary(uniqueKeysWithValues: events.map { ($0.id, $0.offset) })
        for r in acked { #expect(offsets[r.id] == r.offset, "seed \(seed.seed): acknowledged \(r.id) at \(r.offset) is missing") }
        #expect(acked.count == 320, "seed \(seed.seed)")
        let report = try Verifier.verify(source: log)
        #expect(report.isClean, "seed \(seed.seed): \(report.problem ?? "")")
        try await log.close()
    }
}

