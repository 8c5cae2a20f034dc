import Crypto
import Foundation
import Testing
@testable import LedgerCore

/// The tree against a plain recursive reference written from RFC 9162 §2.1 in this file, for
/// every size from 1 to 300; the verifiers against tampering; checkpoint notes and keys.
@Suite struct MerkleTests {
    // MARK: the reference (RFC 9162 §2.1.1, §2.1.3.1, §2.1.4.1, recursively over the leaves)

    static func sha(_ bytes: [UInt8]) -> [UInt8] { Array(SHA256.hash(data: bytes)) }
    static func k(_ n: Int) -> Int {
        var k = 1
        while k * 2 < n { k *= 2 }
        return k
    }
    static func mth(_ d: ArraySlice<[UInt8]>) -> [UInt8] {
        if d.isEmpty { return sha([]) }
        if d.count == 1 { return sha([0] + d.first!) }
        let split = d.startIndex + k(d.count)
        return sha([1] + mth(d[d.startIndex..<split]) + mth(d[split...]))
    }
    static func path(_ m: Int, _ d: ArraySlice<[UInt8]>) -> [[UInt8]] {
        if d.count <= 1 { return [] }
        let split = d.startIndex + k(d.count)
        if m < k(d.count) { return path(m, d[d.startIndex..<split]) + [mth(d[split...])] }
        return path(m - k(d.count), d[split...]) + [mth(d[d.startIndex..<split])]
    }
    static func subproof(_ m: Int, _ d: ArraySlice<[UInt8]>, _ b: Bool) -> [[UInt8]] {
        if m == d.count { return b ? [] : [mth(d)] }
        let kk = k(d.count)
        let split = d.startIndex + kk
        if m <= kk { return subproof(m, d[d.startIndex..<split], b) + [mth(d[split...])] }
        return subproof(m - kk, d[split...], false) + [mth(d[d.startIndex..<split])]
    }

    /// Event hashes of a log of `n` events (any 32 bytes will do).
    static func events(_ n: Int) -> [[UInt8]] { (0..<n).map { sha(Array("event \($0)".utf8)) } }

    static func tree(_ events: [[UInt8]]) -> InMemoryMerkleNodes {
        var t = InMemoryMerkleNodes()
        for e in events { t.append(leafHash: Merkle.leafHash(Hash256(bytes: e))) }
        return t
    }

    @Test func rootsAndProofsAgreeWithTheReferenceForEverySizeUpTo300() throws {
        var rng = SeededGenerator(defaultSeed: 9162)
        let all = Self.events(300)
        var t = InMemoryMerkleNodes()
        var frontier = MerkleFrontier()
        for n in 1...300 {
            let leaf = Merkle.leafHash(Hash256(bytes: all[n - 1]))
            t.append(leafHash: leaf)
            frontier.append(leafHash: leaf)
            let d = all[0..<n]
            let root = Hash256(bytes: Self.mth(d))
            #expect(try Merkle.root(t, size: Int64(n)) == root, "size \(n), seed \(rng.seed)")
            #expect(frontier.root == root, "size \(n)")
            // Every leaf for small trees, a seeded sample for larger ones.
            let indices = n <= 40 ? Array(0..<n) : (0..<8).map { _ in Int.random(in: 0..<n, using: &rng) } + [0, n - 1]
            for m in indices {
                let proof = try Merkle.inclusionProof(t, index: Int64(m), size: Int64(n))
                #expect(proof.map(\.bytes) == Self.path(m, d), "PATH(\(m), \(n)), seed \(rng.seed)")
                #expect(proof.count <= Int(log2(Double(n)).rounded(.up)))
                #expect(Merkle.verifyInclusion(index: Int64(m), size: Int64(n), leafHash: Merkle.leafHash(Hash256(bytes: all[m])), proof: proof, root: root))
            }
            let firsts = n <= 40 ? Array(1...n) : (0..<8).map { _ in Int.random(in: 1...n, using: &rng) } + [1, n]
            for m in firsts {
                let proof = try Merkle.consistencyProof(t, first: Int64(m), second: Int64(n))
                #expect(proof.map(\.bytes) == Self.subproof(m, d, true), "PROOF(\(m), \(n)), seed \(rng.seed)")
                #expect(proof.count <= Int(log2(Double(n)).rounded(.up)) + 1)
                #expect(Merkle.verifyConsistency(first: Int64(m), second: Int64(n), firstRoot: Hash256(bytes: Self.mth(all[0..<m])), secondRoot: root, proof: proof),
                    "consistency \(m) → \(n)")
            }
        }
        #expect(try Merkle.root(InMemoryMerkleNodes(), size: 0) == Hash256(bytes: Self.sha([])))
    }

    /// The bulk leaf and node hashes (the compression function on fixed padding) against
    /// swift-crypto's SHA-256 of the same bytes, on random inputs.
    @Test func bulkLeafAndNodeHashesAreSHA256OfTheirInputs() throws {
        var rng = SeededGenerator(defaultSeed: 33_65)
        for _ in 0..<2_000 {
            let a = (0..<32).map { _ in UInt8.random(in: 0...255, using: &rng) }
            let b = (0..<32).map { _ in UInt8.random(in: 0...255, using: &rng) }
            let (ha, hb) = (Hash256(bytes: a), Hash256(bytes: b))
            #expect(BulkSHA256.leaf(ha) == Hash256(bytes: Self.sha([0] + a)), "seed \(rng.seed)")
            #expect(BulkSHA256.node(ha, hb) == Hash256(bytes: Self.sha([1] + a + b)), "seed \(rng.seed)")
            #expect(BulkSHA256.node(ha, hb) == Merkle.nodeHash(ha, hb) && BulkSHA256.leaf(hb) == Merkle.leafHash(hb))
        }
    }

    @Test func tamperedProofsAreRefused() throws {
        var rng = SeededGenerator(defaultSeed: 6962)
        let all = Self.events(257)
        let t = Self.tree(all)
        let n: Int64 = 257
        let root = try Merkle.root(t, size: n)
        for _ in 0..<60 {
            let m = Int64.random(in: 0..<n, using: &rng)
            let leaf = Merkle.leafHash(Hash256(bytes: all[Int(m)]))
            let proof = try Merkle.inclusionProof(t, index: m, size: n)
            #expect(Merkle.verifyInclusion(index: m, size: n, leafHash: leaf, proof: proof, root: root))
            var forged = proof
            let i = Int.random(in: 0..<forged.count, using: &rng)
            var bytes = forged[i].bytes
            bytes[Int.random(in: 0..<32, using: &rng)] ^= 0x01
            forged[i] = Hash256(bytes: bytes)
            #expect(!Merkle.verifyInclusion(index: m, size: n, leafHash: leaf, proof: forged, root: root), "seed \(rng.seed)")
            #expect(!Merkle.verifyInclusion(index: (m + 1) % n, size: n, leafHash: leaf, proof: proof, root: root))
            #expect(!Merkle.verifyInclusion(index: m, size: n, leafHash: leaf, proof: Array(proof.dropLast()), root: root))
            #expect(!Merkle.verifyInclusion(index: n, size: n, leafHash: leaf, proof: proof, root: root))  // an index outside the tree
            #expect(!Merkle.verifyInclusion(index: m, size: n, leafHash: Merkle.leafHash(Hash256(bytes: Self.sha([1]))), proof: proof, root: root))
            let first = Int64.random(in: 1..<n, using: &rng)
            let c = try Merkle.consistencyProof(t, first: first, second: n)
            let firstRoot = try Merkle.root(t, size: first)
            #expect(Merkle.verifyConsistency(first: first, second: n, firstRoot: firstRoot, secondRoot: root, proof: c))
            // A rewritten prefix: the root of another history of the same size.
            var other = all
            other[Int.random(in: 0..<Int(first), using: &rng)] = Self.sha([2])
            let otherRoot = Hash256(bytes: Self.mth(other[0..<Int(first)]))
            #expect(!Merkle.verifyConsistency(first: first, second: n, firstRoot: otherRoot, secondRoot: root, proof: c))
            #expect(!Merkle.verifyConsistency(first: first, second: n, firstRoot: firstRoot, secondRoot: root, proof: Array(c.dropFirst())))
        }
    }

    @Test func checkpointNotesSignParseAndVerify() throws {
        let key = try SigningKey.generate(name: "ledger-test")
        let other = try SigningKey.generate(name: "ledger-test")
        #expect(try SigningKey(parsing: key.encoded).verifierKey.encoded == key.verifierKey.encoded)
        let verifier = try VerifierKey(parsing: key.verifierKey.encoded)
        let cp = Checkpoint(origin: "platform-ledger.local/x", size: 42, root: Hash256.of(utf8: "root"), extensions: ["time 2026-11-23T00:00:00.000Z"])
        let text = try cp.signed(by: key)
        let note = try Checkpoint.parse(note: text)
        #expect(note.checkpoint == cp)
        #expect(note.isSigned(by: verifier))
        #expect(!note.isSigned(by: other.verifierKey))
        // The body altered after signing: the signature no longer holds.
        let altered = try Checkpoint.parse(note: text.replacingOccurrences(of: "\n42\n", with: "\n43\n"))
        #expect(!altered.isSigned(by: verifier))
        for bad in ["", "origin\n42\n", text.replacingOccurrences(of: "— ", with: "- "), text.replacingOccurrences(of: "\n42\n", with: "\n042\n")] {
            #expect(throws: LedgerError.self) { try Checkpoint.parse(note: bad) }
        }
        // The key id: the first 4 bytes of SHA-256(name ‖ 0x0A ‖ 0x01 ‖ public key).
        let expected = Array(SHA256.hash(data: Array("ledger-test".utf8) + [0x0A, 0x01] + Array(key.privateKey.publicKey.rawRepresentation)).prefix(4))
        #expect(verifier.keyHash == expected)
        #expect(throws: LedgerError.self) { try VerifierKey(parsing: "ledger-test+00000000+" + key.verifierKey.encoded.split(separator: "+", maxSplits: 2)[2]) }
    }
}
