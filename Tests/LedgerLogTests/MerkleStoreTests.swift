import Foundation
import Testing
import LedgerCore
@testable import LedgerLog

/// The tree on disk: caught up in pieces it equals the tree built at once and the reference; a
/// torn write or a crash between the levels' writes is cut back on open and caught up again to
/// the same roots; a log truncated below the tree is followed.
@Suite struct MerkleStoreTests {
    func log(_ n: Int) async throws -> (TemporaryDirectory, SegmentLog) {
        let dir = TemporaryDirectory()
        let log = try SegmentLog.open(directory: dir.path + "/d", options: testOptions())
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
}
