import Foundation
import Testing
import LedgerCore
@testable import LedgerLog

@Suite struct IndexTests {
    /// Many flushes and compactions: every id and stream version is still found after a restart,
    /// the runs stay few (size-tiered), and the restart replays at most one memtable.
    @Test func idsAndVersionsSurviveFlushesCompactionAndRestart() async throws {
        let dir = TemporaryDirectory()
        var options = testOptions()
        options.indexFlushThreshold = 64
        let log = try SegmentLog.open(directory: dir.path, options: options)
        var ids: [(EventID, Int64, String)] = []
        for batch in 0..<40 {
            let requests = (0..<50).map { i in queued("b\(batch)-\(i)", id: .random()) }
            let results = try await log.append(requests, policy: user)
            ids += results.map { ($0.id, $0.offset, $0.stream) }
        }
        // Every stream gets a second event, so versions matter too.
        _ = try await log.append((0..<50).map { started("b0-\($0)") }, policy: user)
        try await log.close()

        let reopened = try SegmentLog.open(directory: dir.path, options: options)
        #expect(reopened.head == 2050)
        #expect(reopened.index.indexedThrough >= 2050 - 2 * 64 - 50)
        #expect(reopened.index.ids.runCount <= 8)
        var rng = SeededGenerator(seed: 5)
        for _ in 0..<150 {
            let (id, offset, stream) = ids[Int(rng.next() % UInt64(ids.count))]
            let job = String(stream.dropFirst(4))
            let again = try await reopened.append([queued(job, id: id)], policy: user)
            #expect(again[0].offset == offset)
        }
        #expect(reopened.head == 2050)
        let v = try await reopened.append([started("b0-7", expected: .exactly(1))], policy: user)
        #expect(v[0].version == 2)
        let fresh = try await reopened.append([queued("b39-49", expected: .exactly(0))], policy: user)
        #expect(fresh[0].version == 1)
        try await reopened.close()
    }

    @Test func keyTableBehavesLikeADictionary() {
        var table = KeyTable(capacity: 4)
        var reference: [IndexKey: UInt64] = [:]
        var rng = SeededGenerator(seed: 8)
        for _ in 0..<20_000 {
            let key = IndexKey(hi: rng.next() % 3000, lo: rng.next() % 2)
            let value = rng.next() % (1 << 40)
            table.set(key, value)
            reference[key] = value
        }
        #expect(table.count == reference.count)
        for (k, v) in reference { #expect(table.lookup(k) == v) }
        #expect(table.lookup(IndexKey(hi: 99_999, lo: 0)) == nil)
        let sorted = table.sortedEntries()
        #expect(sorted.map(\.0) == reference.keys.sorted())
        // Emptied, it keeps its slots and forgets every key; filled again, it is a dictionary again.
        let slots = table.capacity
        table.removeAll()
        #expect(table.count == 0 && table.capacity == slots)
        #expect(reference.keys.allSatisfy { table.lookup($0) == nil })
        table.set(IndexKey(hi: 5, lo: 1), 7)
        #expect(table.lookup(IndexKey(hi: 5, lo: 1)) == 7 && table.count == 1)
    }

    /// Runs are written from `sortedEntries()`, which distributes by the top 16 bits before it
    /// sorts: evenly spread keys, keys crowded into a few buckets (time-ordered ids), a bucket
    /// holding exactly one or 33 keys, and the extremes all come out in order, each with its value.
    @Test func keyTableEntriesComeOutSortedWhateverTheirSpread() {
        var rng = SeededGenerator(seed: 31)
        var table = KeyTable(capacity: 16)
        var reference: [IndexKey: UInt64] = [:]
        func add(_ key: IndexKey) {
            let value = rng.next() % (1 << 40)
            table.set(key, value)
            reference[key] = value
        }
        for _ in 0..<150_000 { add(IndexKey(hi: rng.next(), lo: rng.next())) }
        let crowded: UInt64 = 0x0190_0000_0000_0000
        for i in 0..<5_000 { add(IndexKey(hi: crowded | UInt64(i % 700) << 20 | (rng.next() & 0xFFFFF), lo: rng.next())) }
        for i in 0..<33 { add(IndexKey(hi: 0xABCD_0000_0000_0000 | UInt64(33 - i), lo: 0)) }
        add(IndexKey(hi: 0x1234_5678_0000_0000, lo: 0))
        add(IndexKey(hi: 0, lo: 0))
        add(IndexKey(hi: .max, lo: .max))
        add(IndexKey(hi: .max, lo: 0))
        let sorted = table.sortedEntries()
        #expect(sorted.count == reference.count)
        #expect(sorted.map(\.0) == reference.keys.sorted(), "\(rng.note)")
        #expect(sorted.allSatisfy { reference[$0.0] == $0.1 })
    }

    @Test func bloomFiltersHaveNoFalseNegativesAndFewFalsePositives() {
        var bloom = BloomFilter(capacity: 10_000)
        var rng = SeededGenerator(seed: 2)
        let keys = (0..<10_000).map { _ in IndexKey(hi: rng.next(), lo: rng.next()) }
        for k in keys { bloom.insert(k) }
        #expect(keys.allSatisfy { bloom.mayContain($0) })
        let falsePositives = (0..<100_000).filter { _ in bloom.mayContain(IndexKey(hi: rng.next(), lo: rng.next())) }.count
        #expect(falsePositives < 2_000)
    }
}
