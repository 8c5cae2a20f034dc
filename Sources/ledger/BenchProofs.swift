import ArgumentParser
import Foundation
import LedgerCore
import LedgerLog

/// `ledger bench proofs`: the Merkle tree's cost per appended event, and proof times on a large tree.
struct BenchProofs: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "proofs", abstract: "The Merkle tree: leaves appended per second, inclusion and consistency proof times on a tree of --events leaves.",
        discussion: """
            Builds a tree of --events synthetic leaves in --work-dir (kept, so a second run measures proofs only), then times \
            --proofs inclusion proofs at random offsets and as many consistency proofs, each generated from the tree on disk \
            and verified. With --data-dir, also catches a fresh tree up over that log (read, hash extracted, leaf and nodes \
            hashed and written): the tree's cost per event of a real log.
            """)
    @Option(help: "Leaves in the tree.") var events: Int64 = 10_000_000
    @Option(help: "Proofs of each kind to time.") var proofs: Int = 1000
    @Option(name: .customLong("work-dir"), help: "Where the synthetic tree lives.") var workDir: String = "/tmp/ledger-bench-proofs"
    @Option(name: .customLong("data-dir"), help: "A log to catch a fresh tree up over.") var dataDir: String?

    func run() throws {
        Terminal.line("ledger bench proofs — \(machineDescription())")
        // The hash the tree pays about once per event: SHA-256 of a 65-byte node.
        let sha = BulkSHA256()
        var h = Hash256.zero
        var start = monotonicSeconds()
        let node = [UInt8](repeating: 1, count: 65)
        node.withUnsafeBytes { b in for _ in 0..<1_000_000 { h = sha.hash(b) } }
        let evp = monotonicSeconds() - start
        start = monotonicSeconds()
        var input = [UInt8](repeating: 1, count: 65)
        for _ in 0..<1_000_000 {
            h.write(into: &input, at: 1)
            h = Hash256.of(input)
        }
        let general = monotonicSeconds() - start
        start = monotonicSeconds()
        for _ in 0..<1_000_000 { h = BulkSHA256.node(h, h) }
        let fixed = monotonicSeconds() - start
        Terminal.line("node hash (65 bytes): OpenSSL init/update/final \(Format.fixed(general * 1000, 0)) ns, the compression function on fixed padding \(Format.fixed(fixed * 1000, 0)) ns (\(h.description.prefix(8)); EVP with a reused context \(Format.fixed(evp * 1000, 0)) ns)")
        let dir = workDir + "/tree-\(events)"
        try FileIO.makeDirectory(workDir)
        try FileIO.makeDirectory(dir)
        let tree = try MerkleStore(dataDirectory: dir)
        let have = try tree.size
        if have < events {
            let start = monotonicSeconds()
            var i = have
            while i < events {
                let n = min(events - i, 1 << 20)
                try tree.append(leafHashes: (i..<(i + n)).lazy.map { BulkSHA256.leaf(Hash256(words: (UInt64($0), 0, 0, 0))) })
                i += n
            }
            let seconds = monotonicSeconds() - start
            Terminal.line("tree: \(Format.count(events - have)) leaves appended in \(Format.fixed(seconds, 2)) s = \(Format.count(Int64(Double(events - have) / seconds))) leaves/s (\(Format.fixed(seconds / Double(events - have) * 1e6, 2)) µs per leaf: its leaf hash and every subtree it completes, hashed and written)")
        } else {
            Terminal.line("tree: \(Format.count(events)) leaves already in \(dir)")
        }
        let root = try tree.root(size: events)
        var rng = SystemRandomNumberGenerator()
        var inclusion: [Double] = []
        var sizes: [Int] = []
        for _ in 0..<proofs {
            let m = Int64.random(in: 0..<events, using: &rng)
            let start = monotonicSeconds()
            let proof = try tree.inclusionProof(index: m, size: events)
            let leaf = try tree.leaf(m)
            guard Merkle.verifyInclusion(index: m, size: events, leafHash: leaf, proof: proof, root: root) else {
                throw LedgerError(.corrupt, "the inclusion proof of \(m) does not verify")
            }
            inclusion.append(monotonicSeconds() - start)
            sizes.append(proof.count)
        }
        var consistency: [Double] = []
        for _ in 0..<proofs {
            let m = Int64.random(in: 1...events, using: &rng)
            let start = monotonicSeconds()
            let proof = try tree.consistencyProof(first: m, second: events)
            guard Merkle.verifyConsistency(first: m, second: events, firstRoot: try tree.root(size: m), secondRoot: root, proof: proof) else {
                throw LedgerError(.corrupt, "the consistency proof from \(m) does not verify")
            }
            consistency.append(monotonicSeconds() - start)
        }
        func q(_ v: [Double], _ p: Double) -> String { Latencies(seconds: v).us(p) + " µs" }
        Terminal.line("inclusion proofs at \(Format.count(events)) leaves (generated from disk and verified): p50 \(q(inclusion, 0.5)), p99 \(q(inclusion, 0.99)), max \(q(inclusion, 1)); \(sizes.max() ?? 0) hashes at most")
        Terminal.line("consistency proofs (with the earlier root computed too): p50 \(q(consistency, 0.5)), p99 \(q(consistency, 0.99))")
        if let dataDir {
            let reader = try LogReader(directory: dataDir)
            let scratch = workDir + "/catch-up"
            try? FileManager.default.removeItem(atPath: scratch)
            try FileIO.makeDirectory(scratch)
            let fresh = try MerkleStore(dataDirectory: scratch)
            let start = monotonicSeconds()
            let n = try fresh.catchUp(reader)
            let seconds = monotonicSeconds() - start
            Terminal.line("catch-up over \(dataDir): \(Format.count(n)) events in \(Format.fixed(seconds, 2)) s = \(Format.count(Int64(Double(n) / seconds))) events/s (\(Format.fixed(seconds / Double(n) * 1e6, 2)) µs per event, reading the log included)")
        }
    }
}
