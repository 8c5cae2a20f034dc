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

    /// Every entry, sorted by key (for writing a run).
    func sortedEntries() -> [(IndexKey, UInt64)] {
        var out: [(IndexKey, UInt64)] = []
        out.reserveCapacity(count)
        for slot in slots where slot.value != 0 { out.append((IndexKey(hi: slot.hi, lo: slot.lo), slot.value - 1)) }
        out.sort { $0.0 < $1.0 }
        return out
    }
}
