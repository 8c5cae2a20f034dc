import Foundation
import Testing
import LedgerCore
import LedgerLog

/// A child `ledger append` fed continuously and killed with SIGKILL at random moments, 100 times:
/// every event it acknowledged is in the log afterwards, at the offset it acknowledged, with the
/// chain intact.
@Suite struct KillTests {
    final class Acks: @unchecked Sendable {
        let lock = NSLock()
        var byOffset: [Int64: String] = [:]
        func add(_ line: Substring) {
            guard let v = try? JSONParser.parse(Array(line.utf8)), let o = v["offset"]?.intValue, let id = v["id"]?.stringValue else { return }
            lock.withLock { byOffset[Int64(o)] = id }
        }
        var snapshot: [Int64: String] { lock.withLock { byOffset } }
    }

    @Test func sigkillLosesNoAcknowledgedEvent() throws {
        signal(SIGPIPE, SIG_IGN)  // the feeder writes into a pipe whose reader gets killed
        let dir = TemporaryDirectory("ledger-kill")
        let acks = Acks()
        var rng = SeededGenerator(defaultSeed: 20_261_203)
        var kills = 0
        var stoppedWhileWriting = 0
        for round in 0..<100 {
            let child = Process()
            child.executableURL = URL(fileURLWithPath: ledgerBinary)
            child.arguments = ["append", "--data-dir", dir.path]
            let stdin = Pipe()
            let stdout = Pipe()
            child.standardInput = stdin
            child.standardOutput = stdout
            child.standardError = FileHandle.nullDevice
            try child.run()
            let feeding = NSLock()
            nonisolated(unsafe) var feed = true
            let feeder = Thread {
                var n = 0
                while feeding.withLock({ feed }) {
                    // Batches of a few lines, some of them atomic multi-event requests.
                    var chunk = ""
                    for _ in 0..<8 {
                        n += 1
                        if n % 5 == 0 {
                            chunk += "[" + queuedLine("r\(round)-\(n)a", id: .random()) + "," + queuedLine("r\(round)-\(n)b", id: .random()) + "]\n"
                        } else {
                            chunk += queuedLine("r\(round)-\(n)", id: .random()) + "\n"
                        }
                    }
                    do { try stdin.fileHandleForWriting.write(contentsOf: Data(chunk.utf8)) } catch { return }
                }
            }
            feeder.start()
            let reader = Thread {
                var pending = Data()
                while true {
                    let chunk = stdout.fileHandleForReading.availableData
                    if chunk.isEmpty { break }
                    pending.append(chunk)
                    while let newline = pending.firstIndex(of: 0x0A) {
                        acks.add(Substring(String(decoding: pending[pending.startIndex..<newline], as: UTF8.self)))
                        pending.removeSubrange(pending.startIndex...newline)
                    }
                }
            }
            reader.start()
            // Kill while it is busy: once this round's first acknowledgement is in, after a random delay.
            let before = acks.snapshot.count
            let deadline = Date().addingTimeInterval(20)
            while acks.snapshot.count == before && Date() < deadline { usleep(500) }
            usleep(UInt32.random(in: 0...40_000, using: &rng))
            kill(child.processIdentifier, SIGKILL)
            child.waitUntilExit()
            if child.terminationReason == .uncaughtSignal { kills += 1 }
            feeding.withLock { feed = false }
            try? stdin.fileHandleForWriting.close()
            while !reader.isFinished { usleep(1000) }
            if acks.snapshot.count > before { stoppedWhileWriting += 1 }

            // Recover (as the next writer would) and check every acknowledged event.
            let log = try SegmentLog.open(directory: dir.path)
            let acknowledged = acks.snapshot
            if let highest = acknowledged.keys.max() { #expect(log.head > highest, "round \(round), \(rng.note)") }
            let cursor = log.cursor()
            var seen: [Int64: String] = [:]
            while let view = try cursor.next() { seen[view.offset] = view.id.description }
            for (offset, id) in acknowledged {
                #expect(seen[offset] == id, "round \(round): acknowledged offset \(offset) lost or changed; \(rng.note)")
            }
            try log.close()
        }
        #expect(kills == 100)
        #expect(acks.snapshot.count > 1000)
        #expect(stoppedWhileWriting > 90)
        let verify = try Verifier.verify(directory: dir.path)
        #expect(verify.isClean, "\(verify.problem ?? "")")
    }
}
