import Foundation
import Testing
import LedgerCore
@testable import LedgerLog

/// The tree on disk: caught up in pieces it equals the tree built at once and the reference; a
/// torn write or a crash between the levels' writes is cut back on open and caught up again to
/// the same roots; a log truncated below the tree is followed.
@Suite struct MerkleStoreTests {
    /// A log of `n` events whose writer does not keep the tree up (these tests build it).
    func log(_ n: Int) async throws -> (TemporaryDirectory, SegmentLog) {
        let dir = TemporaryDirectory()
        var options = testOptions()
        options.maintainTree = false
        let log = try SegmentLog.open(directory: dir.path + "/d", options: options)
        var requests: [AppendRequest] = []
        for i in 0..<n { requests.append(queued("j\(i)", gpus: 1 + i % 4)) }
        for chunk in stride(from: 0, to: n, by: 100) {
            _ = try await log.append(Array(requests[chunk..<min(n, chunk + 100)]), policy: user)
        }
        return (dir, log)
    }

    @Test func caughtUpInPiecesItIsTheTreeOfTheLog() async throws {
        let (dir, log) = try await log(1000)
        // The reference: every stored event hash, folded in memory.
        var reference = InMemoryMerkleNodes()
        var frontier = MerkleFrontier()
        let cursor = log.cursor(from: 0)
        while let view = try cursor.next() {
            let hash = try view.envelope().hash
            #expect(view.storedHash == hash, "offset \(view.offset)")
            reference.append(leafHash: Merkle.leafHash(hash))
            frontier.append(leafHash: Merkle.leafHash(hash))
        }
        let tree = try MerkleStore(dataDirectory: dir.path + "/d")
        var rng = SeededGenerator(defaultSeed: 4242)
        var size: Int64 = 0
        while size < 1000 {
            size = min(1000, size + Int64.random(in: 1...97, using: &rng))
            try tree.catchUp(log, to: size)
            #expect(try tree.root(size: size) == (try Merkle.root(reference, size: size)), "size \(size), \(rng.note)")
        }
        #expect(try tree.root(size: 1000) == frontier.root)
        for m in [0, 1, 511, 512, 999] as [Int64] {
            #expect(try tree.inclusionProof(index: m, size: 1000) == (try Merkle.inclusionProof(reference, index: m, size: 1000)))
        }
        #expect(try tree.consistencyProof(first: 300, second: 1000) == (try Merkle.consistencyProof(reference, first: 300, second: 1000)))
        try await log.close()
    }

    @Test func tornAndMissingWritesAreCutBackAndCaughtUpAgain() async throws {
        let (dir, log) = try await log(700)
        let data = dir.path + "/d"
        let root = try { () throws -> Hash256 in
            let tree = try MerkleStore(dataDirectory: data)
            try tree.catchUp(log)
            return try tree.root(size: 700)
        }()
        let merkle = MerkleStore.directory(dataDirectory: data)
        // A torn tail of level 0, a level 3 shorter than level 2 says, a missing top level.
        let h0 = try FileHandle(forUpdating: URL(fileURLWithPath: merkle + "/level-00.bin"))
        try h0.truncate(atOffset: UInt64(650 * 32 + 13))
        try h0.close()
        let h3 = try FileHandle(forUpdating: URL(fileURLWithPath: merkle + "/level-03.bin"))
        try h3.truncate(atOffset: UInt64(40 * 32))
        try h3.close()
        try FileManager.default.removeItem(atPath: merkle + "/level-09.bin")
        let reopened = try MerkleStore(dataDirectory: data)
        let cut = try reopened.size
        #expect(cut <= 650 && cut >= 320 && cut < 512, "cut back to \(cut)")  // level 3's 40 nodes cover 320; no level 9 means < 512
        for level in 0..<10 {
            let path = merkle + "/level-0\(level).bin"
            let bytes = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0
            #expect(Int64(bytes) == (cut >> Int64(level)) * 32, "level \(level) after the cut")
        }
        try reopened.catchUp(log)
        #expect(try reopened.root(size: 700) == root)
        // The log truncated below the tree (a torn tail repaired): the tree follows it down.
        try reopened.truncate(to: 123)
        #expect(try reopened.size == 123)
        try reopened.catchUp(log)
        #expect(try reopened.root(size: 700) == root)
        try await log.close()
    }

    /// The root of the log's first `size` events, folded from its stored hashes.
    func logRoot(_ data: String, size: Int64) throws -> Hash256 {
        var frontier = MerkleFrontier()
        let cursor = try LogReader(directory: data).cursor(from: 0, end: size)
        while let view = try cursor.next() { frontier.append(leafHash: Merkle.leafHash(try view.envelope().hash)) }
        #expect(frontier.size == size)
        return frontier.root
    }

    func append(_ log: SegmentLog, _ n: Int, from first: Int, rng: inout SeededGenerator) async throws {
        var i = first
        while i < first + n {
            let k = min(first + n - i, Int.random(in: 1...60, using: &rng))
            _ = try await log.append((i..<(i + k)).map { queued("j\($0)", gpus: 1 + $0 % 4) }, policy: user)
            i += k
        }
    }

    /// The writer keeps the tree up from the hashes it computed: after close the tree holds every
    /// event and its root is the log's; a tree deleted meanwhile is rebuilt from the log (the gap)
    /// and then followed; a tree longer than the log is cut back when the log opens; another
    /// reader extending the same tree at the same time changes nothing.
    @Test func theWriterKeepsTheTreeUpAsItAppends() async throws {
        let dir = TemporaryDirectory()
        let data = dir.path + "/d"
        var rng = SeededGenerator(defaultSeed: 9_162_1)
        var log = try SegmentLog.open(directory: data, options: testOptions())
        try await append(log, 1000, from: 0, rng: &rng)
        try await log.close()
        #expect(try MerkleStore(dataDirectory: data).size == 1000, "\(rng.note)")
        #expect(try MerkleStore(dataDirectory: data).root(size: 1000) == (try logRoot(data, size: 1000)))

        // Deleted: the next round fills the gap from the log, then adds the new events.
        try FileManager.default.removeItem(atPath: MerkleStore.directory(dataDirectory: data))
        log = try SegmentLog.open(directory: data, options: testOptions())
        try await append(log, 10, from: 1000, rng: &rng)
        try await log.close()
        #expect(try MerkleStore(dataDirectory: data).size == 1010)
        #expect(try MerkleStore(dataDirectory: data).root(size: 1010) == (try logRoot(data, size: 1010)))

        // Longer than the log (leaves of events a crash took back): cut back on open.
        try MerkleStore(dataDirectory: data).append(leafHashes: (0..<37).map { Hash256(words: (UInt64($0), 1, 2, 3)) })
        #expect(try MerkleStore(dataDirectory: data).size == 1047)
        log = try SegmentLog.open(directory: data, options: testOptions())
        #expect(try MerkleStore(dataDirectory: data).size == 1010)

        // A reader catching the same tree up (a checkpoint, a proof) while the writer keeps it.
        let reader = try LogReader(directory: data)
        let other = try MerkleStore(dataDirectory: data)
        for round in 0..<20 {
            try await append(log, 25, from: 1010 + round * 25, rng: &rng)
            try other.catchUp(reader)
        }
        try await log.close()
        #expect(try other.size == 1510)
        #expect(try other.root(size: 1510) == (try logRoot(data, size: 1510)))
    }

    /// The tree is derived data: when it cannot be written the writer says so and stops keeping
    /// it, and the appends go on.
    @Test func aTreeThatCannotBeWrittenDoesNotStopTheAppends() async throws {
        let dir = TemporaryDirectory()
        let data = dir.path + "/d"
        try FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: true)
        // A file where the tree's directory would be: it cannot be created.
        FileManager.default.createFile(atPath: MerkleStore.directory(dataDirectory: data), contents: Data("x".utf8))
        var rng = SeededGenerator(defaultSeed: 404)
        let log = try SegmentLog.open(directory: data, options: testOptions())
        try await append(log, 300, from: 0, rng: &rng)
        #expect(log.head == 300)
        try await log.close()
        #expect(try Verifier.verify(directory: data, depth: .integrity).events == 300)
    }
}
