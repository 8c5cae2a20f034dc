import Foundation
import Synchronization
import Testing
import LedgerCore
@testable import LedgerLog

/// `ledger append`'s streaming ingest (run under Thread Sanitizer by `.ci/run`): lines prepared on
/// both cores into shared result slots, submitted in chunks, delivered in input order.
@Suite struct IngestTests {
    @Test func linesArePreparedInParallelAndDeliveredInOrder() throws {
        let seed = SeededGenerator(defaultSeed: 0x1e57)
        var random = seed
        let dir = TemporaryDirectory()
        var options = testOptions()
        options.fsync = .never
        let log = try SegmentLog.open(directory: dir.path, options: options)
        // 3,000 lines (chunks large enough to be split over two threads), about one in 25 bad.
        var text = ""
        var bad: Set<Int> = []
        for i in 1...3000 {
            if Int.random(in: 0..<25, using: &random) == 0 {
                bad.insert(i)
                text += #"{"stream":"job-x\#(i)","type":"job.queued","data":{"job":"x\#(i)","team":"vision","gpuType":"a100","gpus":"many","priority":1}}"# + "\n"
            } else if i % 7 == 0 {
                text += "[" + (0..<3).map { k in #"{"stream":"job-b\#(i)-\#(k)","type":"job.queued","data":{"job":"b\#(i)-\#(k)","team":"vision","gpuType":"a100","gpus":1,"priority":1}}"# }.joined(separator: ",") + "]\n"
            } else {
                text += #"{"stream":"job-j\#(i)","type":"job.queued","data":{"job":"j\#(i)","team":"vision","gpuType":"a100","gpus":2,"priority":1}}"# + "\n"
            }
        }
        let delivered = Mutex<[LineIngest.LineResult]>([])
        let ingest = LineIngest(log: log, policy: user, mode: .append) { results in delivered.withLock { $0 += results } }
        let summary = try ingest.run(bytes: Array(text.utf8))
        try log.close()
        let results = delivered.withLock { $0 }
        #expect(results.map(\.line) == Array(1...3000), "seed \(seed.seed)")
        #expect(summary.rejected == bad.count, "seed \(seed.seed)")
        var next: Int64 = 0
        for r in results {
            switch r.result {
            case .success(let acks):
                #expect(!bad.contains(r.line), "seed \(seed.seed): line \(r.line) should have been refused")
                #expect(acks.first?.offset == next, "seed \(seed.seed): line \(r.line) landed out of order")
                next += Int64(acks.count)
            case .failure(let e):
                #expect(bad.contains(r.line), "seed \(seed.seed): line \(r.line): \(e)")
                #expect(e.code == .schemaViolation)
            }
        }
        #expect(summary.events == Int(next))
        #expect(try Verifier.verify(directory: dir.path).events == next)
    }

    /// Lines longer than the limit are refused as soon as the limit is passed and skipped as they
    /// arrive, never held whole: one far past it (spanning many reads), one just past it (whole in
    /// a chunk), one at the end of the input without a newline; the lines around them land.
    @Test func overLongLinesAreRefusedWithoutBeingHeld() throws {
        let dir = TemporaryDirectory()
        var options = testOptions()
        options.fsync = .never
        let log = try SegmentLog.open(directory: dir.path, options: options)
        func good(_ i: Int) -> String {
            #"{"stream":"job-g\#(i)","type":"job.queued","data":{"job":"g\#(i)","team":"vision","gpuType":"a100","gpus":2,"priority":1}}"# + "\n"
        }
        func long(_ bytes: Int) -> String { #"{"stream":"job-l","type":"job.queued","data":{"job":"l","team":""# + String(repeating: "x", count: bytes) + #""}}"# }
        let limit = 64 << 10
        let text = good(1) + long(8 << 20) + "\n" + good(3) + long(limit) + "\n" + good(5) + long(3 << 20)
        let delivered = Mutex<[LineIngest.LineResult]>([])
        let ingest = LineIngest(log: log, policy: user, mode: .append, maxLineBytes: limit) { results in delivered.withLock { $0 += results } }
        let summary = try ingest.run(bytes: Array(text.utf8))
        try log.close()
        let results = delivered.withLock { $0 }
        #expect(results.map(\.line) == [1, 2, 3, 4, 5, 6])
        #expect(summary.rejected == 3 && summary.events == 3)
        for r in results where [2, 4, 6].contains(r.line) {
            guard case .failure(let e) = r.result else {
                Issue.record("line \(r.line) was accepted")
                continue
            }
            #expect(e.code == .batchTooLarge && e.message.contains("more than the \(limit) a request line may hold"), "\(e)")
        }
        #expect(results.filter { if case .success = $0.result { return true } else { return false } }.map(\.line) == [1, 3, 5])
        // Never more than the limit and one read (1 MiB) held at once, for an 8 MiB line.
        #expect(ingest.largestPending <= limit + (1 << 20) + 4096, "held \(ingest.largestPending) bytes")
    }
}

