import CLZ4

/// An open-addressing hash table from 128-bit keys to values below 2^63: the memtables of the
/// indexes and the sequencer's per-request scratch. Much cheaper than `Dictionary` here: no
/// SipHash per operation (a seeded multiply–xorshift mix instead, so crafted keys cannot be
/// aimed at one bucket from outside the process), linear probing in flat arrays.
public struct KeyTable: Sendable {
    /// One slot: a key and its value + 1 (0 marks an empty slot). One cache line holds 2.6 slots.
    private struct Slot {
        var hi: UInt64
        var lo: UInt64
        var value: UInt64
    }

    private var slots: [Slot]
    private var mask: Int
    public private(set) var count = 0

    /// Random per process, so that the layout cannot be predicted from outside.
    static let seed: (UInt64, UInt64) = {
        var g = SystemRandomNumberGenerator()
        return (g.next() | 1, g.next() | 1)
    }()

    public init(capacity: Int = 16) {
        var n = 16
        while n < capacity * 2 { n <<= 1 }
        slots = [Slot](repeating: Slot(hi: 0, lo: 0, value: 0), count: n)
        mask = n - 1
    }

    var isEmpty: Bool { count == 0 }

    /// Slots allocated (twice the entries it takes before it grows).
    public var capacity: Int { slots.count }

    /// Empties the table, keeping its slots.
    public mutating func removeAll() {
        slots.withUnsafeMutableBufferPointer { $0.update(repeating: Slot(hi: 0, lo: 0, value: 0)) }
        count = 0
    }

    @inline(__always) private func slot(_ hi: UInt64, _ lo: UInt64) -> Int {
        var z = (hi &* KeyTable.seed.0) ^ (lo &* KeyTable.seed.1)
        z ^= z >> 29
        z &*= 0xBF58_476D_1CE4_E5B9
        z ^= z >> 32
        return Int(truncatingIfNeeded: z) & mask
    }

    @inline(__always) public func lookup(_ key: IndexKey) -> UInt64? {
        var i = slot(key.hi, key.lo)
        return slots.withUnsafeBufferPointer { s in
            while true {
                let stored = s[i]
                if stored.value == 0 { return nil }
                if stored.hi == key.hi && stored.lo == key.lo { return stored.value - 1 }
                i = (i + 1) & mask
            }
        }
    }

    /// Brings the slot where `key` would be found into the cache (a hint; see ``KeyIndex/prefetch(_:)``).
    @inline(__always) func prefetch(_ key: IndexKey) {
        let i = slot(key.hi, key.lo)
        slots.withUnsafeBufferPointer { ledger_prefetch($0.baseAddress! + i) }
    }

    /// Inserts or replaces.
    @inline(__always) public mutating func set(_ key: IndexKey, _ value: UInt64) {
        if (count + 1) * 2 > slots.count { grow() }
        var i = slot(key.hi, key.lo)
        let mask = self.mask
        let added: Bool = slots.withUnsafeMutableBufferPointer { s in
            while true {
                if s[i].value == 0 {
                    s[i] = Slot(hi: key.hi, lo: key.lo, value: value + 1)
                    return true
                }
                if s[i].hi == key.hi && s[i].lo == key.lo {
                    s[i].value = value + 1
                    return false
                }
                i = (i + 1) & mask
            }
        }
        if added { count += 1 }
    }

    private mutating func grow() {
        var bigger = KeyTable(capacity: slots.count)
        for slot in slots where slot.value != 0 {
            bigger.set(IndexKey(hi: slot.hi, lo: slot.lo), slot.value - 1)
        }
        self = bigger
    }

    /// Every entry, sorted by key (for writing a run). Keys are ids and SHA-256 prefixes, spread
    /// evenly: the entries are distributed by their top 16 bits (one counting pass, one placing
    /// pass), and each of the 65,536 buckets — a handful of entries — is then sorted on its own.
    /// Keys that crowd into few buckets (time-ordered ids) still come out sorted, a bucket at a time.
    /// The comparison sort of all entries it replaces was most of the index thread's time.
    func sortedEntries() -> [(IndexKey, UInt64)] {
        let bucketBits = 16
        var starts = [Int](repeating: 0, count: (1 << bucketBits) + 1)
        slots.withUnsafeBufferPointer { s in
            for slot in s where slot.value != 0 { starts[Int(slot.hi >> UInt64(64 - bucketBits)) + 1] += 1 }
        }
        for b in 0..<(1 << bucketBits) { starts[b + 1] += starts[b] }
        let total = count
        return [(IndexKey, UInt64)](unsafeUninitializedCapacity: total) { out, initialized in
            var next = starts
            slots.withUnsafeBufferPointer { s in
                for slot in s where slot.value != 0 {
                    let b = Int(slot.hi >> UInt64(64 - bucketBits))
                    (out.baseAddress! + next[b]).initialize(to: (IndexKey(hi: slot.hi, lo: slot.lo), slot.value - 1))
                    next[b] += 1
                }
            }
            initialized = total
            for b in 0..<(1 << bucketBits) {
                let lo = starts[b]
                let hi = starts[b + 1]
                if hi - lo <= 1 { continue }
                if hi - lo > 32 {
                    out[lo..<hi].sort { $0.0 < $1.0 }
                    continue
                }
                // Insertion sort: a bucket of evenly spread keys holds about four.
                for i in (lo + 1)..<hi {
                    let item = out[i]
                    var j = i
                    while j > lo && item.0 < out[j - 1].0 {
                        out[j] = out[j - 1]
                        j -= 1
                    }
                    out[j] = item
                }
            }
        }
    }
}
