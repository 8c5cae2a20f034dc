import Foundation
import Testing
import GRDB
@testable import LedgerCore
import LedgerLog
@testable import LedgerProjections
import LedgerTestSupport

/// Serving windows and causation links are stored packed, many to a row; what comes out is what
/// went in, and no answer depends on where the blocks were cut.
@Suite struct PackedRowsTests {
    /// Random windows (absent members, negative and large values, windows ending before they
    /// start, offsets far apart) decode to exactly the rows encoded.
    @Test func windowBlocksDecodeToTheRowsEncoded() throws {
        var rng = SeededGenerator(defaultSeed: 41)
        for _ in 0..<200 {
            var rows: [WindowBlock.Row] = []
            var offset = Int64(rng.next() % 1_000_000_000)
            var end = Int64(rng.next() % 2_000_000_000_000)
            for _ in 0..<Int(rng.next() % 40 + 1) {
                offset += Int64(rng.next() % 3 == 0 ? rng.next() % 1_000_000 : rng.next() % 4 + 1)
                end += Int64(rng.next() % 600_000) - 200_000
                func maybe<T>(_ value: T) -> T? { rng.next() % 3 == 0 ? nil : value }
                rows.append(WindowBlock.Row(
                    offset: offset, deployment: "d", version: maybe("v\(rng.next() % 100)é"), start: end - Int64(rng.next() % 900_000) + 100_000, end: end,
                    requests: Int(rng.next() % 1_000_000), errors: Int(rng.next() % 1000) - 10, slow: maybe(Int(rng.next() % 50)),
                    p99: maybe(Double(rng.next() % 100_000) / 7), gpuSeconds: maybe(rng.next() % 5 == 0 ? 0 : Double(rng.next() % 10_000) / 3)))
            }
            let blob = WindowBlock.encode(rows[...])
            var decoded: [WindowBlock.Row] = []
            try blob.withUnsafeBytes { raw in try WindowBlock.decode(raw, first: rows[0].offset, deployment: "d") { decoded.append($0) } }
            #expect(decoded == rows, "\(rng.note)")
            // A block cut short is an error, never rows made up.
            if blob.count > 1 {
                let cut = Array(blob[..<(blob.count - 1)])
                #expect(throws: LedgerError.self, "\(rng.note)") {
                    try cut.withUnsafeBytes { raw in try WindowBlock.decode(raw, first: rows[0].offset, deployment: "d") { _ in } }
                }
            }
        }
    }

    @Test func effectBlocksDecodeToTheLinksEncoded() throws {
        var rng = SeededGenerator(defaultSeed: 43)
        for _ in 0..<200 {
            let bucket = Int64(rng.next() % 10_000)
            var links: [(cause: Int64, effect: Int64)] = (0..<Int(rng.next() % 60 + 1)).map { _ in
                let cause = bucket * FactWriter.bucketSize + Int64(rng.next() % UInt64(FactWriter.bucketSize))
                return (cause, cause + 1 + Int64(rng.next() % 3 == 0 ? rng.next() % 10_000_000 : rng.next() % 5))
            }
            links.sort { ($0.cause, $0.effect) < ($1.cause, $1.effect) }
            let blob = EffectBlock.encode(links[...], bucket: bucket)
            var decoded: [(Int64, Int64)] = []
            try blob.withUnsafeBytes { raw in try EffectBlock.decode(raw, bucket: bucket) { decoded.append(($0, $1)) } }
            #expect(decoded.map { "\($0.0)>\($0.1)" } == links.map { "\($0.cause)>\($0.effect)" }, "\(rng.note)")
        }
    }

    /// The projections of a simulated day built in large transactions (blocks of hundreds of
    /// windows, links of thousands of events to a row) and one event to a transaction (a block
    /// per window and per link): the SLO status, the day's chargeback and the causal chains of
    /// random events agree as of random offsets, most of them inside a large block.
    @Test func answersAsOfAnyOffsetDoNotDependOnWhereBlocksEnd() async throws {
        var rng = SeededGenerator(defaultSeed: 47)
        let s = try await ReconciliationTests.simulate(seed: rng.next() % 1000, days: 1)
        let large = try s.query()
        let singles = TemporaryDirectory()
        let small = try ProjectionStore(path: singles.path + "/p.sqlite")
        do {
            let projector = try Projector(store: small, source: s.log)
            projector.chunkSize = 1
            try await projector.catchUp()
        }
        let (windows, links) = try await large.store.pool.read { db in (try WindowBlock.all(db).count, try EffectBlock.all(db).count) }
        let blocks = try await large.store.pool.read { db in (try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM window_blocks")!, try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM audit_effect_blocks")!) }
        #expect(windows > 100 && links > 100, "the simulated day has windows and links to pack")
        #expect(blocks.0 * 20 < windows && blocks.1 * 20 < links, "the large transactions packed them (\(blocks) blocks)")
        let ids = try LogReader(directory: s.dir.path).idLookup()
        let day = Timestamp("2026-11-23T00:00:00.000Z")!
        for _ in 0..<12 {
            let at = Int64(rng.next() % UInt64(s.log.head))
            let a = try QueryContext(store: large.store, source: s.log, asOf: .offset(at))
            let b = try QueryContext(store: small, source: s.log, asOf: .offset(at))
            #expect(try SLOStatus.all(a).map(\.json) == SLOStatus.all(b).map(\.json), "as of \(at), \(rng.note)")
            let options = Chargeback.Options(from: day, to: day.adding(milliseconds: 86_400_000))
            #expect(try Chargeback.report(a, options).json == Chargeback.report(b, options).json, "as of \(at), \(rng.note)")
            for _ in 0..<5 {
                let event = Int64(rng.next() % UInt64(at + 1))
                #expect(try Audit.chain(a, offset: event, ids: ids).effects.map(\.offset) == Audit.chain(b, offset: event, ids: ids).effects.map(\.offset),
                    "event \(event) as of \(at), \(rng.note)")
            }
        }
    }

    /// A database of the release before blocks (migration v4) has a row per window and per link;
    /// migration v5 packs them, and what comes out is every row that was there.
    @Test func migrationPacksTheRowsOfAnOlderDatabase() throws {
        var rng = SeededGenerator(defaultSeed: 53)
        let dir = TemporaryDirectory()
        let queue = try DatabaseQueue(path: dir.path + "/p.sqlite")
        try ProjectionSchema.migrator().migrate(queue, upTo: "v4: secondary indexes deferred during a bulk build")
        var windows: [WindowBlock.Row] = []
        var links: [(cause: Int64, effect: Int64)] = []
        try queue.write { db in
            var offset: Int64 = 0
            for _ in 0..<1500 {
                offset += Int64(rng.next() % 7 + 1)
                let w = WindowBlock.Row(offset: offset, deployment: "d\(rng.next() % 3)", version: "v\(rng.next() % 4)",
                    start: 1_000 * offset, end: 1_000 * offset + 300_000, requests: Int(rng.next() % 100), errors: Int(rng.next() % 3),
                    slow: rng.next() % 2 == 0 ? nil : 1, p99: 12.5, gpuSeconds: rng.next() % 3 == 0 ? nil : 0.25)
                windows.append(w)
                try db.execute(sql: "INSERT INTO serving_windows VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", arguments: [
                    w.offset, w.deployment, w.version, w.start, w.end, w.requests, w.errors, w.slow, w.p99, w.gpuSeconds])
                if rng.next() % 2 == 0 {
                    let cause = Int64(rng.next() % UInt64(offset))
                    links.append((cause, offset))
                    try db.execute(sql: "INSERT INTO audit_effects VALUES (?, ?)", arguments: [cause, offset])
                }
            }
        }
        try ProjectionSchema.migrator().migrate(queue)
        let (packedWindows, packedLinks, oldTables) = try queue.read { db in
            (try WindowBlock.all(db), try EffectBlock.all(db),
             try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM sqlite_master WHERE name IN ('serving_windows', 'audit_effects')"))
        }
        #expect(packedWindows == windows, "\(rng.note)")
        #expect(packedLinks.map { "\($0.cause)>\($0.effect)" } == links.sorted { ($0.cause, $0.effect) < ($1.cause, $1.effect) }.map { "\($0.cause)>\($0.effect)" }, "\(rng.note)")
        #expect(oldTables == 0)
    }
}
