#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import Foundation
import LedgerCore
import LedgerKafka
import LedgerLog
import Logging

struct BenchKafka: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kafka",
        abstract: "Appends through Kafka on librdkafka's mock cluster, against `kcat -P` producing the same envelopes to the same cluster.",
        discussion: """
            Starts a 3-broker mock cluster in this process, appends --events events through the \
            ledger's Kafka writer (requests of --batch-size events from --submitters concurrent \
            tasks; each group of requests one transaction, acknowledged once committed), then \
            has kcat produce the same number of records — the envelopes the ledger wrote, keyed by \
            stream — to a second topic of the same cluster with the same producer settings \
            (enable.idempotence, acks=all, linger.ms=1). kcat sends no headers and no transactions, \
            so the ratio is conservative.
            """)

    @Option(help: "Events to append.") var events: Int = 100_000
    @Option(help: "Events per atomic request.") var batchSize: Int = 100
    @Option(help: "Concurrent submitters.") var submitters: Int = 8

    func run() async throws {
        Terminal.line("ledger bench kafka — \(machineDescription())")
        var quiet = Logger(label: "bench.kafka")
        quiet.logLevel = .critical
        let cluster = try KafkaMockCluster(brokers: 3, logger: quiet)
        try cluster.createTopic("ledger", partitions: 1, replicationFactor: 3)
        try cluster.createTopic("kcat", partitions: 1, replicationFactor: 3)
        var c = KafkaConfiguration(brokers: cluster.bootstrapServers, topic: "ledger")
        c.logger = quiet
        let configuration = c
        let log = try await BlockingPool.shared.run { try KafkaLog.openWriter(configuration) }
        let admin = AppendPolicy(actor: "user:bench", mode: .admin)
        let perTask = max(1, events / max(1, submitters))
        let size = max(1, batchSize)
        let start = monotonicSeconds()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for t in 0..<submitters {
                group.addTask {
                    var i = 0
                    while i < perTask {
                        let n = min(size, perTask - i)
                        let requests = (0..<n).map { j in
                            AppendRequest(stream: "node-b\(t)-\((i + j) % 500)", type: "node.registered", data: ["node": .string("b\(t)-\((i + j) % 500)"), "gpuType": "a100", "gpuCount": 8])
                        }
                        _ = try await log.append(requests, policy: admin)
                        i += n
                    }
                }
            }
            try await group.waitForAll()
        }
        let seconds = monotonicSeconds() - start
        let appended = log.head
        // The last events the mock still holds (it keeps about 5 MiB of a partition) give kcat its input.
        let sampleFrom = max(0, appended - 2000)
        let cursor = log.cursor(from: sampleFrom, end: appended, filter: .all)
        var sample: [[UInt8]] = []
        while let v = try cursor.next() { sample.append(Array(v.streamBytes) + [0x09] + Array(v.json) + [0x0A]) }
        try await log.close()
        let ledgerRate = Double(appended) / seconds
        Terminal.line("ledger  \(Format.count(appended)) events in \(Format.fixed(seconds, 2)) s: \(Format.count(Int64(ledgerRate))) events/s (requests of \(size), \(submitters) submitters)")
        guard !sample.isEmpty else { throw LedgerError(.internal, "no events to give kcat") }

        let input = "/tmp/ledger-bench-kafka-\(getpid()).tsv"
        var bytes: [UInt8] = []
        for i in 0..<Int(appended) { bytes += sample[i % sample.count] }
        try Data(bytes).write(to: URL(fileURLWithPath: input))
        defer { unlink(input) }
        let kcat = Process()
        kcat.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        kcat.arguments = [
            "kcat", "-P", "-b", cluster.bootstrapServers, "-t", "kcat", "-p", "0", "-K", "\t", "-X", "enable.idempotence=true", "-X", "acks=all",
            "-X", "linger.ms=1", "-l", input,
        ]
        kcat.standardError = FileHandle.nullDevice
        let kcatStart = monotonicSeconds()
        try kcat.run()
        kcat.waitUntilExit()
        let kcatSeconds = monotonicSeconds() - kcatStart
        guard kcat.terminationStatus == 0 else { throw LedgerError(.internal, "kcat -P failed (exit \(kcat.terminationStatus)); is kcat installed?") }
        let kcatRate = Double(appended) / kcatSeconds
        Terminal.line("kcat -P \(Format.count(appended)) records in \(Format.fixed(kcatSeconds, 2)) s: \(Format.count(Int64(kcatRate))) records/s (same envelopes, no headers)")
        Terminal.line("ledger / kcat: \(Format.fixed(ledgerRate / kcatRate, 2))× (target ≥ 0.8×)")
    }
}
