import Foundation
import LedgerCore
import LedgerLog
import LedgerTestSupport
import Testing

/// `ledger repair` on the two ways an acknowledged tail goes bad: the file truncated (a restored
/// copy that is behind) and a flipped byte in the last batch.
@Suite struct RepairTests {
    /// Three appends of 60 events (three batches at least), acknowledged and fsynced.
    func populated() throws -> TemporaryDirectory {
        let dir = TemporaryDirectory("repair")
        for b in 0..<3 {
            let lines = (0..<60).map { i in #"{"stream":"job-b\#(b)-\#(i)","type":"job.queued","data":{"job":"b\#(b)-\#(i)","team":"vision","gpuType":"a100","gpus":1,"priority":1}}"# }
            let run = try ledger(["append", "--data-dir", dir.path, "--quiet"], input: lines.joined(separator: "\n") + "\n")
            #expect(run.status == 0, "\(run.stderr)")
        }
        return dir
    }

    func segment(_ dir: TemporaryDirectory) -> String { dir.path + "/segments/00000000000000000000.log" }

    func check(_ dir: TemporaryDirectory, damage: (String) throws -> Void) throws {
        let before = try ledger(["read", "--data-dir", dir.path]).lines
        #expect(before.count == 180)
        try damage(segment(dir))
        #expect(try ledger(["verify", "--data-dir", dir.path]).status == 3)
        // Without --confirm nothing changes.
        let dry = try ledger(["repair", "--data-dir", dir.path, "--format", "json"])
        #expect(dry.status == 0, "\(dry.stderr)")
        let plan = try JSONParser.parse(Array(dry.stdout.utf8))
        #expect(plan["needed"]?.boolValue == true)
        #expect(try ledger(["verify", "--data-dir", dir.path]).status == 3)
        let newHead = try #require(plan["newHead"]?.intValue)
        #expect(newHead < 180 && newHead > 0)
        #expect(plan["lostEvents"]?.intValue == 180 - newHead)

        let run = try ledger(["repair", "--data-dir", dir.path, "--confirm", "--format", "json"])
        #expect(run.status == 0, "\(run.stderr)")
        let result = try JSONParser.parse(Array(run.stdout.utf8))
        #expect(result["record"]?["lost"]?["from"]?.intValue == newHead)
        #expect(result["record"]?["lost"]?["to"]?.intValue == 180)
        #expect((result["record"]?["quarantine"]?.arrayValue?.count ?? 0) == 1)
        // What stays is exactly the prefix of what was there, and it verifies.
        let after = try ledger(["read", "--data-dir", dir.path]).lines
        #expect(after == Array(before.prefix(newHead)))
        let verify = try ledger(["verify", "--data-dir", dir.path, "--format", "json"])
        #expect(verify.status == 0, "\(verify.stderr)")
        let report = try JSONParser.parse(Array(verify.stdout.utf8))
        #expect(report["repairs"]?.arrayValue?.count == 1, "verify does not report the repair")
        // The writer opens again and continues the chain at the new head.
        let append = try ledger(["append", "--data-dir", dir.path], input: #"{"stream":"job-after","type":"job.queued","data":{"job":"after","team":"vision","gpuType":"a100","gpus":1,"priority":1}}"# + "\n")
        #expect(append.status == 0, "\(append.stderr)")
        #expect(append.stdout.contains("\"offset\":\(newHead)"))
        #expect(try ledger(["verify", "--data-dir", dir.path]).status == 0)
        // A clean log needs no repair.
        #expect(try ledger(["repair", "--data-dir", dir.path]).stdout.contains("nothing to repair"))
    }

    @Test func aTruncatedAcknowledgedTailIsCutBackToTheLastWholeBatch() throws {
        let dir = try populated()
        try check(dir) { path in
            let size = try #require(FileManager.default.attributesOfItem(atPath: path)[.size] as? Int)
            #expect(truncate(path, off_t(size - 50)) == 0)
        }
    }

    @Test func aFlippedByteInTheLastBatchIsCutBackToTheBatchBefore() throws {
        let dir = try populated()
        try check(dir) { path in
            let handle = try #require(FileHandle(forUpdatingAtPath: path))
            let size = try handle.seekToEnd()
            try handle.seek(toOffset: size - 30)
            let byte = try #require(try handle.read(upToCount: 1)?.first)
            try handle.seek(toOffset: size - 30)
            try handle.write(contentsOf: Data([byte ^ 0x20]))
            try handle.close()
        }
    }
}
