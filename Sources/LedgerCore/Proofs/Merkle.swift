public import Crypto

/// The Merkle tree over the log (RFC 9162 §2.1; `Schemas/proofs.md`): leaf *i* is the event at
/// offset *i*, its leaf hash `SHA-256(0x00 ‖ event hash)`, an interior node
/// `SHA-256(0x01 ‖ left ‖ right)`, the tree of *n* leaves split at the largest power of two below
/// *n*. Proof generation reads the hashes of complete, aligned subtrees from a ``MerkleNodes``
/// source; verification is the RFC's algorithms, pure.
public enum Merkle {
    /// `SHA-256(0x00 ‖ event hash)` (``BulkSHA256/leaf(_:)``: the compression function on the
    /// fixed padding of 33 bytes).
    @inline(__always)
    public static func leafHash(_ eventHash: Hash256) -> Hash256 { BulkSHA256.leaf(eventHash) }

    /// `SHA-256(0x01 ‖ left ‖ right)` (``BulkSHA256/node(_:_:)``).
    @inline(__always)
    public static func nodeHash(_ left: Hash256, _ right: Hash256) -> Hash256 { BulkSHA256.node(left, right) }

    /// The root of the empty tree: SHA-256 of nothing.
    public static let emptyRoot = Hash256.of([UInt8]())

    /// The largest power of two strictly below `n` (n ≥ 2).
    @inline(__always)
    static func split(_ n: Int64) -> Int64 {
        var k: Int64 = 1
        while k << 1 < n { k <<= 1 }
        return k
    }

    // MARK: generation

    /// MTH(D[start ..< start + count]) — the ranges the RFC's recursions visit start on a multiple
    /// of their left part, so every power-of-two range here is an aligned, complete subtree.
    public static func subtreeHash(_ nodes: some MerkleNodes, start: Int64, count: Int64) throws -> Hash256 {
        precondition(count > 0)
        if count & (count - 1) == 0 {
            let level = count.trailingZeroBitCount
            return try nodes.node(level: level, index: start >> Int64(level))
        }
        let k = split(count)
        return nodeHash(try subtreeHash(nodes, start: start, count: k), try subtreeHash(nodes, start: start + k, count: count - k))
    }

    /// The root of the first `size` leaves.
    public static func root(_ nodes: some MerkleNodes, size: Int64) throws -> Hash256 {
        size == 0 ? emptyRoot : try subtreeHash(nodes, start: 0, count: size)
    }

    /// PATH(index, D[0 ..< size]): the inclusion proof of leaf `index` in the tree of `size` leaves.
    public static func inclusionProof(_ nodes: some MerkleNodes, index: Int64, size: Int64) throws -> [Hash256] {
        precondition(index >= 0 && index < size)
        var path: [Hash256] = []
        func walk(_ m: Int64, _ start: Int64, _ n: Int64) throws {
            guard n > 1 else { return }
            let k = split(n)
            if m < k {
                try walk(m, start, k)
                path.append(try subtreeHash(nodes, start: start + k, count: n - k))
            } else {
                try walk(m - k, start + k, n - k)
                path.append(try subtreeHash(nodes, start: start, count: k))
            }
        }
        try walk(index, 0, size)
        return path
    }

    /// PROOF(first, D[0 ..< second]): the consistency proof between the trees of `first` and
    /// `second` leaves (0 < first ≤ second).
    public static func consistencyProof(_ nodes: some MerkleNodes, first: Int64, second: Int64) throws -> [Hash256] {
        precondition(first > 0 && first <= second)
        var proof: [Hash256] = []
        func sub(_ m: Int64, _ start: Int64, _ n: Int64, _ whole: Bool) throws {
            if m == n {
                if !whole { proof.append(try subtreeHash(nodes, start: start, count: n)) }
                return
            }
            let k = split(n)
            if m <= k {
                try sub(m, start, k, whole)
                proof.append(try subtreeHash(nodes, start: start + k, count: n - k))
            } else {
                try sub(m - k, start + k, n - k, false)
                proof.append(try subtreeHash(nodes, start: start, count: k))
            }
        }
        try sub(first, 0, second, true)
        return proof
    }

    // MARK: verification (RFC 9162 §2.1.3.2, §2.1.4.2)

    /// Whether `proof` shows the leaf with `leafHash` at `index` in the tree of `size` leaves with `root`.
    public static func verifyInclusion(index: Int64, size: Int64, leafHash: Hash256, proof: [Hash256], root: Hash256) -> Bool {
        guard index >= 0, index < size else { return false }
        var fn = index
        var sn = size - 1
        var r = leafHash
        for p in proof {
            if sn == 0 { return false }
            if fn & 1 == 1 || fn == sn {
                r = nodeHash(p, r)
                if fn & 1 == 0 {
                    while fn & 1 == 0 && fn != 0 {
                        fn >>= 1
                        sn >>= 1
                    }
                }
            } else {
                r = nodeHash(r, p)
            }
            fn >>= 1
            sn >>= 1
        }
        return sn == 0 && r == root
    }

    /// Whether `proof` shows the tree of `second` leaves with `secondRoot` extends the tree of
    /// `first` leaves with `firstRoot`.
    public static func verifyConsistency(first: Int64, second: Int64, firstRoot: Hash256, secondRoot: Hash256, proof: [Hash256]) -> Bool {
        guard first >= 0, first <= second else { return false }
        if first == second { return proof.isEmpty && firstRoot == secondRoot }
        if first == 0 { return proof.isEmpty && firstRoot == emptyRoot }  // the empty tree is a prefix of every tree
        guard !proof.isEmpty else { return false }
        var path = proof
        if first & (first - 1) == 0 { path.insert(firstRoot, at: 0) }
        var fn = first - 1
        var sn = second - 1
        while fn & 1 == 1 {
            fn >>= 1
            sn >>= 1
        }
        var fr = path[0]
        var sr = path[0]
        for c in path.dropFirst() {
            if sn == 0 { return false }
            if fn & 1 == 1 || fn == sn {
                fr = nodeHash(c, fr)
                sr = nodeHash(c, sr)
                if fn & 1 == 0 {
                    while fn & 1 == 0 && fn != 0 {
                        fn >>= 1
                        sn >>= 1
                    }
                }
            } else {
                sr = nodeHash(sr, c)
            }
            fn >>= 1
            sn >>= 1
        }
        return fr == firstRoot && sr == secondRoot && sn == 0
    }
}

/// Where proof generation reads the hashes of complete, aligned subtrees: level 0 holds the leaf
/// hashes, level *l* node *i* covers leaves `i·2^l ..< (i+1)·2^l`.
public protocol MerkleNodes {
    func node(level: Int, index: Int64) throws -> Hash256
}

/// Complete-subtree hashes kept in memory (tests, small trees, a bundle's own checks).
public struct InMemoryMerkleNodes: MerkleNodes, Sendable {
    public private(set) var levels: [[Hash256]] = [[]]

    public init() {}

    /// Appends a leaf (its leaf hash) and every subtree it completes.
    public mutating func append(leafHash: Hash256) {
        levels[0].append(leafHash)
        var level = 0
        while levels[level].count % 2 == 0 {
            let n = levels[level].count
            let parent = Merkle.nodeHash(levels[level][n - 2], levels[level][n - 1])
            if levels.count == level + 1 { levels.append([]) }
            levels[level + 1].append(parent)
            level += 1
        }
    }

    public var size: Int64 { Int64(levels[0].count) }

    public func node(level: Int, index: Int64) throws -> Hash256 {
        guard level < levels.count, index >= 0, index < Int64(levels[level].count) else {
            throw LedgerError(.notFound, "no complete Merkle subtree at level \(level), index \(index)")
        }
        return levels[level][Int(index)]
    }
}

extension Hash256 {
    /// Writes the 32 bytes at `offset` of `buffer`.
    @inline(__always)
    public func write(into buffer: inout [UInt8], at offset: Int) {
        precondition(offset >= 0 && offset + 32 <= buffer.count)
        withUnsafeBytes(of: bigEndianBytes) { bytes in
            buffer.withUnsafeMutableBytes { ($0.baseAddress! + offset).copyMemory(from: bytes.baseAddress!, byteCount: 32) }
        }
    }
}

/// The right edge of a tree being grown leaf by leaf: the roots of its complete subtrees, largest
/// first. Gives the root of every prefix as the leaves stream past, in O(log n) memory (what
/// `ledger verify` and a bundle check use, with no stored tree).
public struct MerkleFrontier: Sendable {
    /// (level, hash) of each complete subtree, levels strictly decreasing.
    private var stack: [(Int, Hash256)] = []
    public private(set) var size: Int64 = 0

    public init() {}

    public mutating func append(leafHash: Hash256) {
        var node = (0, leafHash)
        while let last = stack.last, last.0 == node.0 {
            stack.removeLast()
            node = (node.0 + 1, Merkle.nodeHash(last.1, node.1))
        }
        stack.append(node)
        size += 1
    }

    /// The root of the leaves so far (RFC 9162: the complete subtrees folded from the right).
    public var root: Hash256 {
        guard var r = stack.last?.1 else { return Merkle.emptyRoot }
        for (_, h) in stack.dropLast().reversed() { r = Merkle.nodeHash(h, r) }
        return r
    }
}
