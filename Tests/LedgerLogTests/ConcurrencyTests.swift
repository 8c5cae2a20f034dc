import Foundation
import Synchronization
import Testing
import LedgerCore
@testable import LedgerLog

/// The log under concurrent writers and readers (run under Thread Sanitizer by `.ci/run`): 32
/// tasks appending with expected versions to shared and own streams, an in-process tail, an
/// external reader and a Merkle tree catching up, all at once. Every acknowledged event is in the
/// log exactly once, at the offset and version it was acknowledged with; each stream's versions are
/// gap-free; the chain verifies; the tail and the reader saw every event in order.
@Suite struct ConcurrencyTests {
    @Test func concurrentAppendersReadersAndTreeAgree() async throws {
        let dir = TemporaryDirectory()
        var options = testOptions()
        options.segmentBytes = 64 * 1024
        let log = try SegmentLog.open(directory: dir.path, options: options)
        let tasks = 32
        let perTask = 40
        let total = Int64(tasks * perTask)
        // The in-process tail: follows the head signal until it has seen every event.
        let tail = Task { () throws -> [Int64] in
            var seen: [Int64] = []
            let cursor = log.cursor(from: 0)
            for await _ in log.headUpdates() {
                while let view = try cursor.next() { seen.append(view.offset) }
                if Int64(seen.count) >= total { break }
            }
            return seen
        }
        let acks = try await withThrowingTaskGroup(of: [(String, Int64, Int64)].self) { group in
            for t in 0..<tasks {
                group.addTask {
                    var mine: [(String, Int64, Int64)] = []
                    for i in 0..<perTask {
                        // Half the events to the task's own stream with an exact expected version,
                        // half to a stream shared by every task, with `any`.
                        let own = i % 2 == 0
                        let stream = own ? "job-t\(t)" : "job-shared"
                        let expected: ExpectedVersion = own ? (i == 0 ? .noStream : .exactly(Int64(i / 2 - 1))) : .any
                        let request = AppendRequest(stream: stream, type: "job.started", data: ["job": .string(stream.dropFirst(4).description)],
                            expectedVersion: expected)
                        let r = try await log.append([request], policy: user)
                        mine.append((stream, r[0].offset, r[0].version))
                    }
                    return mine
                }
            }
            var all: [(String, Int64, Int64)] = []
            for try await mine in group { all += mine }
            return all
        }
        // A tree catching up on another thread while the log is still open.
        let treeRoot = try await BlockingPool.shared.run { () throws -> Hash256 in
            let tree = try MerkleStore(dataDirectory: dir.path)
            try tree.catchUp(log, to: total)
            return try tree.root(size: total)
        }
        #expect(acks.count == Int(total))
        #expect(Set(acks.map(\.1)) == Set(0..<total))  // every offset acknowledged exactly once
        var byStream: [String: [Int64]] = [:]
        for a in acks { byStream[a.0, default: []].append(a.2) }
        for (stream, versions) in byStream { #expect(versions.sorted() == Array(0..<Int64(versions.count)), "\(stream)") }
        // What the log holds is what was acknowledged, and the chain verifies.
        var frontier = MerkleFrontier()
        var previous = Hash256.zero
        let cursor = log.cursor(from: 0)
        var stored: [Int64: (String, Int64)] = [:]
        while let view = try cursor.next() {
            let e = try view.envelope()
            let computed = try e.computeHash()
            #expect(e.prevHash == previous && computed == e.hash, "offset \(e.offset)")
            previous = e.hash
            stored[e.offset] = (e.stream, e.version)
            frontier.append(leafHash: Merkle.leafHash(e.hash))
        }
        for a in acks { #expect(stored[a.1]?.0 == a.0 && stored[a.1]?.1 == a.2, "offset \(a.1)") }
        #expect(frontier.root == treeRoot)
        let seen = try await tail.value
        #expect(seen == Array(0..<total))
        let reader = try LogReader(directory: dir.path)
        #expect(try readAll(reader.cursor(from: 0)).map(\.offset) == Array(0..<total))
        try await log.close()
    }

    /// The fault tests install I/O hooks (`FileIO.install`) while other tests' logs are writing
    /// (their writers, syncers and Merkle threads call into `FileIO` at any moment). Installing and
    /// removing them under a log that appends and keeps its tree must neither race (Thread
    /// Sanitizer checks this in `.ci/run`) nor touch that log's files: hooks for another directory
    /// see none of its calls, and every append is acknowledged.
    @Test func ioHooksComeAndGoWhileAnotherLogWrites() async throws {
        let dir = TemporaryDirectory()
        let elsewhere = TemporaryDirectory()
        let log = try SegmentLog.open(directory: dir.path, options: testOptions())
        let writer = Task {
            for i in 0..<300 { _ = try await log.append([queued("h\(i)")], policy: user) }
        }
        let journal = CountingJournal(directory: elsewhere.path)
        var installed: [IOFaults] = []
        for _ in 0..<200 {
            let faults = IOFaults(directory: elsewhere.path, failing: .write, at: 1, with: .error(EIO))
            installed.append(faults)
            FileIO.install(faults)
            FileIO.install(journal)
            await Task.yield()
            FileIO.remove(faults)
            FileIO.remove(journal)
        }
        try await writer.value
        try await log.close()
        for faults in installed { #expect(faults.counts.writes == 0 && faults.counts.syncs == 0 && !faults.counts.fired) }
        #expect(journal.calls.load(ordering: .relaxed) == 0)
        #expect(try Verifier.verify(directory: dir.path).isClean)
        #expect(log.head == 300)
    }
}

/// Counts the calls on files under its directory (the filter is the journal's own, as the
/// power-loss tests' is).
final class CountingJournal: IOJournal {
    let directory: String
    let calls = Atomic<Int>(0)
    init(directory: String) { self.directory = directory }
    private func saw(_ path: String) { if path.hasPrefix(directory) { calls.add(1, ordering: .relaxed) } }
    func willCreate(_ path: String) throws { saw(path) }
    func willWrite(fd: Int32, path: String, offset: Int64, count: Int) throws { saw(path) }
    func willSync(_ path: String) throws -> Int {
        saw(path)
        return 0
    }
    func didSync(_ path: String, _ mark: Int) {}
    func willRename(_ from: String, _ to: String) throws { saw(from) }
}
