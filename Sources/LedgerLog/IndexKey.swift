import CLZ4
import LedgerCore

/// A 128-bit key of the on-disk indexes: an event id as is, or the first 16 bytes of the SHA-256
/// of a stream name (collisions are as unlikely as SHA-256's, and cannot be crafted).
public struct IndexKey: Hashable, Comparable, Sendable {
    public var hi: UInt64
    public var lo: UInt64

    public init(hi: UInt64, lo: UInt64) {
        self.hi = hi
        self.lo = lo
    }

    init(id: EventID) {
        hi = id.high
        lo = id.low
    }

    init(stream: String) {
        let digest = Hash256.of(utf8: stream)
        hi = digest.words.0
        lo = digest.words.1
    }

    public static func < (a: IndexKey, b: IndexKey) -> Bool { a.hi != b.hi ? a.hi < b.hi : a.lo < b.lo }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(hi ^ (lo &* 0x9E37_79B9_7F4A_7C15))
    }

    /// A well-mixed 64-bit hash for the Bloom filter (independent of Swift's per-process seed,
    /// so filters written to disk stay valid).
    var bloomHash: UInt64 {
        var z = hi ^ (lo << 32 | lo >> 32) ^ 0x6A09_E667_F3BC_C908
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        z ^= z >> 31
        z ^= lo
        z = (z ^ (z >> 33)) &* 0xFF51_AFD7_ED55_8CCD
        z = (z ^ (z >> 33)) &* 0xC4CE_B9FE_1A85_EC53
        return z ^ (z >> 33)
    }
}

/// The index keys of a request's first event, computed where the request is prepared (on the
/// callers' threads) so that the sequencer can prefetch their index slots without touching the
/// request itself.
struct RequestKeys: Sendable {
    var id: IndexKey?
    var stream: IndexKey

    init?(_ events: [PreparedEvent]) {
        guard let first = events.first else { return nil }
        id = first.id.map { IndexKey(id: $0) }
        stream = IndexKey(hi: first.streamKey.0, lo: first.streamKey.1)
    }
}

/// A blocked Bloom filter: each key sets 7 bits inside one 512-bit block (one cache line), so a
/// lookup costs one memory access. About 12 bits per key: under 1% false positives.
struct BloomFilter {
    static let bitsPerKey = 12
    static let probes = 7
    var words: [UInt64]

    var blockCount: Int { words.count / 8 }

    init(capacity: Int) {
        let bits = max(512, capacity * BloomFilter.bitsPerKey)
        words = [UInt64](repeating: 0, count: (bits + 511) / 512 * 8)
    }

    init(words: [UInt64]) { self.words = words }

    @inline(__always) func positions(_ h: UInt64) -> (block: Int, bits: UInt64) {
        let block = Int((UInt64(UInt32(truncatingIfNeeded: h)) &* UInt64(blockCount)) >> 32)
        // Bit positions from a second mix of the hash: 7 probes × 9 bits.
        var z = (h >> 32 | h << 32) &* 0xD6E8_FEB8_6659_FD93
        z ^= z >> 32
        return (block, z)
    }

    mutating func insert(_ key: IndexKey) {
        let h = key.bloomHash
        let (block, bits) = positions(h)
        var b = bits
        words.withUnsafeMutableBufferPointer { w in
            for _ in 0..<BloomFilter.probes {
                let bit = Int(b & 511)
                w[block * 8 + bit >> 6] |= 1 << UInt64(bit & 63)
                b = (b >> 9) | (b << 55)
            }
        }
    }

    /// Brings the block `key` maps to into the cache (a hint).
    @inline(__always) func prefetch(_ key: IndexKey) {
        let (block, _) = positions(key.bloomHash)
        words.withUnsafeBufferPointer { ledger_prefetch($0.baseAddress! + block * 8) }
    }

    @inline(__always) func mayContain(_ key: IndexKey) -> Bool {
        let h = key.bloomHash
        let (block, bits) = positions(h)
        var b = bits
        return words.withUnsafeBufferPointer { w in
            for _ in 0..<BloomFilter.probes {
                let bit = Int(b & 511)
                if w[block * 8 + bit >> 6] & (1 << UInt64(bit & 63)) == 0 { return false }
                b = (b >> 9) | (b << 55)
            }
            return true
        }
    }
}
