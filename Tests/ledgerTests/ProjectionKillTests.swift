import Foundation
import Testing
import LedgerCore
import LedgerLog
import LedgerProjections

/// `ledger project` killed with SIGKILL at 50+ points and restarted each time ends with exactly
/// the rows of a fresh rebuild: each transaction commits its rows with its checkpoint.
@Suite struct ProjectionKillTests {
    @Test func killAndRestartEqualsRebuild() throws {
        let dir = TemporaryDirectory("ledger-project-kill")
        let demo = try ledger(["demo", "--days", "1", "--data-dir", dir.path])
        try #require(demo.status == 0, "\(demo.stderr)")
        try FileManager.default.removeItem(atPath: dir.path + "/projections")
        let head = try LogReader(directory: dir.path).head
        var rng = SeededGenerator(defaultSeed: 20_261_204)
        var kills = 0
        var progressSeen: Set<Int64> = []
        for _ in 0..<200 {
            let child = Process()
            child.executableURL = URL(fileURLWithPath: ledgerBinary)
            child.arguments = ["project", "--data-dir", dir.path, "--chunk", "97"]
            child.standardOutput = FileHandle.nullDevice
            child.standardError = FileHandle.nullDevice
            let before = (try? ProjectionStore(dataDirectory: dir.path).checkpoint().nextOffset) ?? 0
            try child.run()
            // Kill it mid-run: once it has committed something, after a random delay.
            let deadline = Date().addingTimeInterval(30)
            while child.isRunning && Date() < deadline, ((try? ProjectionStore(dataDirectory: dir.path).checkpoint().nextOffset) ?? 0) == before {
                usleep(2_000)
            }
            usleep(UInt32.random(in: 0...60_000, using: &rng))
            if child.isRunning {
                kill(child.processIdentifier, SIGKILL)
                child.waitUntilExit()
                if child.terminationReason == .uncaughtSignal { kills += 1 }
            } else {
                child.waitUntilExit()
            }
            let store = try ProjectionStore(dataDirectory: dir.path)
            let checkpoint = try store.checkpoint().nextOffset
            progressSeen.insert(checkpoint)
            if checkpoint == head && kills >= 50 { break }
            if checkpoint == head {
                // Done before enough kills: start over, to kill it some more.
                try FileManager.default.removeItem(atPath: dir.path + "/projections")
            }
        }
        #expect(kills >= 50)
        #expect(progressSeen.count > 10)
        // Finish (if the last run was killed), then compare with a rebuild from scratch.
        let finish = try ledger(["project", "--data-dir", dir.path])
        #expect(finish.status == 0)
        let reader = try LogReader(directory: dir.path)
        let survived = try ProjectionStore(dataDirectory: dir.path).dump()
        let other = TemporaryDirectory("ledger-project-fresh")
        let fresh = try ProjectionStore(dataDirectory: other.path)
        try Projector(store: fresh, source: reader).rebuild()
        let rebuilt = try fresh.dump()
        #expect(rebuilt.count > 10_000)
        #expect(survived == rebuilt, "\(rng.note)")
    }
}
