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

    /// A file appended again after it landed (what a producer does when it cannot tell how far a
    /// crashed run got): every line is an idempotent retry, answered with its original offset and
    /// version and writing nothing — in order, shuffled (the sequencer's read-back cursor goes
    /// backwards and across batches and segments), and with one line's data changed, which is
    /// refused as `duplicate_id` naming the original's offset.
    @Test func aFileAppendedAgainIsAnsweredFromTheLog() throws {
        var random = SeededGenerator(defaultSeed: 0x5e7)
        let note = random.note
        let dir = TemporaryDirectory()
        var options = testOptions()
        options.fsync = .never
        options.segmentBytes = 64 * 1024
        options.maxBatchBytes = 16 * 1024
        var lines: [String] = []
        for i in 0..<2000 {
            let id = EventID.random(using: &random)
            lines.append(#"{"id":"\#(id)","stream":"job-r\#(i)","type":"job.queued","data":{"job":"r\#(i)","team":"vision","gpuType":"a100","gpus":2,"priority":1}}"#)
        }
        func ingest(_ lines: [String]) throws -> [Int: Result<[AppendResult], LedgerError>] {
            let log = try SegmentLog.open(directory: dir.path, options: options)
            defer { try? log.close() }
            let delivered = Mutex<[LineIngest.LineResult]>([])
            let ingest = LineIngest(log: log, policy: user, mode: .append) { results in delivered.withLock { $0 += results } }
            _ = try ingest.run(bytes: Array((lines.joined(separator: "\n") + "\n").utf8))
            return Dictionary(uniqueKeysWithValues: delivered.withLock { $0 }.map { ($0.line, $0.result) })
        }
        let first = try ingest(lines)
        let original = first.mapValues { try? $0.get() }
        #expect(original.values.allSatisfy { $0?.count == 1 }, "\(note)")
        let stored = try snapshot(dir.path + "/segments")
        #expect(try LogReader(directory: dir.path).statistics().segments.count > 2, "\(note)")

        let again = try ingest(lines)
        for (line, r) in again { #expect((try? r.get()) == original[line]!, "\(note): line \(line)") }

        var order = Array(lines.indices)
        order.shuffle(using: &random)
        var shuffled = order.map { lines[$0] }
        let changed = 137
        shuffled[changed] = shuffled[changed].replacingOccurrences(of: #""gpus":2"#, with: #""gpus":3"#)
        let mixed = try ingest(shuffled)
        for (k, i) in order.enumerated() {
            let r = mixed[k + 1]!
            if k == changed {
                guard case .failure(let e) = r else {
                    Issue.record("\(note): a retry with other data was accepted")
                    continue
                }
                #expect(e.code == .duplicateID && e.message.contains("offset \(original[i + 1]!![0].offset)"), "\(note): \(e)")
            } else {
                #expect((try? r.get()) == original[i + 1]!, "\(note): line \(i + 1) shuffled to \(k + 1)")
            }
        }
        #expect(try snapshot(dir.path + "/segments") == stored, "\(note): a retry wrote something")
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

