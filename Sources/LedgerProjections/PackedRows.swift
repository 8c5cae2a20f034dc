import Foundation
import GRDB
import LedgerCore

/// Rows packed many to a SQLite row: the two most frequent facts of a busy platform's log —
/// serving windows and causation links, two thirds of its rows — are written as blocks (one row
/// per deployment, or per bucket of causes, per transaction) instead of a row each. SQLite's
/// work is per row (the statement's run, the record, the B-tree insert), so a block of a few
/// hundred costs about what one row did; queries read the blocks that can hold what they ask
/// for and filter the decoded rows by offset, so an answer as of any offset is what the rows
/// one by one gave. The formats are
/// described at ``WindowBlock`` and ``EffectBlock``.
enum PackedRows {
    /// Unsigned LEB128.
    @inline(__always)
    static func put(_ value: UInt64, _ out: inout [UInt8]) {
        var v = value
        while v >= 0x80 {
            out.append(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        out.append(UInt8(v))
    }

    /// Signed values as zigzag LEB128.
    @inline(__always)
    static func put(signed value: Int64, _ out: inout [UInt8]) {
        put(UInt64(bitPattern: (value << 1) ^ (value >> 63)), &out)
    }

    /// Reads the values ``put(_:_:)`` wrote; a truncated or overlong value is an error (a block
    /// is only ever written by this code, so that means damage).
    struct Reader {
        let bytes: UnsafeRawBufferPointer
        var at = 0
        init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

        var atEnd: Bool { at >= bytes.count }

        mutating func unsigned() throws -> UInt64 {
            var result: UInt64 = 0
            var shift: UInt64 = 0
            while at < bytes.count, shift < 64 {
                let b = bytes[at]
                at += 1
                result |= UInt64(b & 0x7F) << shift
                if b < 0x80 { return result }
                shift += 7
            }
            throw LedgerError(.corrupt, "projections: a packed block ends inside a value (damaged database; run `ledger project --rebuild`)")
        }

        mutating func signed() throws -> Int64 {
            let u = try unsigned()
            return Int64(bitPattern: u >> 1) ^ -Int64(bitPattern: u & 1)
        }

        mutating func double() throws -> Double {
            guard at + 8 <= bytes.count else { throw LedgerError(.corrupt, "projections: a packed block ends inside a number (damaged database; run `ledger project --rebuild`)") }
            var bits: UInt64 = 0
            for i in 0..<8 { bits |= UInt64(bytes[at + i]) << (8 * UInt64(i)) }
            at += 8
            return Double(bitPattern: bits)
        }

        mutating func string() throws -> String {
            let count = Int(try unsigned())
            guard at + count <= bytes.count else { throw LedgerError(.corrupt, "projections: a packed block ends inside a string (damaged database; run `ledger project --rebuild`)") }
            defer { at += count }
            return String(decoding: UnsafeRawBufferPointer(rebasing: bytes[at..<(at + count)]), as: UTF8.self)
        }
    }

    @inline(__always)
    static func put(_ value: Double, _ out: inout [UInt8]) {
        let bits = value.bitPattern
        for i in 0..<8 { out.append(UInt8(truncatingIfNeeded: bits >> (8 * UInt64(i)))) }
    }

    static func put(_ value: String, _ out: inout [UInt8]) {
        var value = value
        value.withUTF8 { bytes in
            put(UInt64(bytes.count), &out)
            out.append(contentsOf: bytes)
        }
    }
}

/// Serving windows of one deployment, consecutive in one transaction (`window_blocks`): each row
/// is a flags byte (1: version, 2: slow, 4: p99, 8: gpuSeconds present), the offset's distance
/// from the previous row's (from the block's first offset for the first row), windowEnd as a
/// zigzag distance from the previous row's windowEnd (from 0 for the first), windowStart as its
/// distance before windowEnd, requests, errors, then the optional members in flag order (version
/// as length and UTF-8, slow as a varint, p99 and gpuSeconds as IEEE 754 little endian).
struct WindowBlock {
    struct Row: Equatable {
        var offset: Int64
        var deployment: String
        var version: String?
        var start, end: Int64
        var requests, errors: Int
        var slow: Int?
        var p99, gpuSeconds: Double?
    }

    /// Rows written per block at most, so that a query never decodes much it does not need.
    static let capacity = 512

    static func encode(_ rows: ArraySlice<Row>) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(rows.count * 40)
        var previousOffset = rows.first?.offset ?? 0
        var previousEnd: Int64 = 0
        for r in rows {
            var flags: UInt8 = 0
            if r.version != nil { flags |= 1 }
            if r.slow != nil { flags |= 2 }
            if r.p99 != nil { flags |= 4 }
            if r.gpuSeconds != nil { flags |= 8 }
            out.append(flags)
            PackedRows.put(UInt64(r.offset - previousOffset), &out)
            PackedRows.put(signed: r.end - previousEnd, &out)
            PackedRows.put(signed: r.end - r.start, &out)
            PackedRows.put(signed: Int64(r.requests), &out)
            PackedRows.put(signed: Int64(r.errors), &out)
            if let v = r.version { PackedRows.put(v, &out) }
            if let s = r.slow { PackedRows.put(signed: Int64(s), &out) }
            if let p = r.p99 { PackedRows.put(p, &out) }
            if let g = r.gpuSeconds { PackedRows.put(g, &out) }
            previousOffset = r.offset
            previousEnd = r.end
        }
        return out
    }

    /// Inserts `rows` (in offset order) as blocks: per deployment, in the order of each one's
    /// first row, at most ``capacity`` to a block.
    static func insert(_ db: Database, _ rows: [Row], statement: HotStatement? = nil) throws {
        let st = try statement ?? HotStatement(db, "INSERT INTO window_blocks VALUES (?, ?, ?, ?, ?, ?, ?)")
        var order: [String: Int] = [:]
        var groups: [[Row]] = []
        for r in rows {
            if let i = order[r.deployment] { groups[i].append(r) } else {
                order[r.deployment] = groups.count
                groups.append([r])
            }
        }
        for group in groups {
            var start = 0
            while start < group.count {
                let block = group[start..<min(group.count, start + capacity)]
                var minEnd = Int64.max, maxEnd = Int64.min, gpu = false
                for r in block {
                    minEnd = min(minEnd, r.end)
                    maxEnd = max(maxEnd, r.end)
                    if let g = r.gpuSeconds, g > 0 { gpu = true }
                }
                st.int(block.first!.offset); st.int(block.last!.offset); st.text(block.first!.deployment)
                st.int(minEnd); st.int(maxEnd); st.int(gpu ? 1 : 0); st.blob(encode(block))
                try st.run()
                start = block.endIndex
            }
        }
    }

    /// Each row of a block whose first row is at `first`, in offset order.
    static func decode(_ blob: UnsafeRawBufferPointer, first: Int64, deployment: String, _ body: (Row) throws -> Void) throws {
        var reader = PackedRows.Reader(blob)
        var offset = first
        var end: Int64 = 0
        while !reader.atEnd {
            let flags = blob[reader.at]
            reader.at += 1
            offset += Int64(try reader.unsigned())
            end += try reader.signed()
            let start = end - (try reader.signed())
            let requests = Int(try reader.signed())
            let errors = Int(try reader.signed())
            let version = flags & 1 != 0 ? try reader.string() : nil
            let slow = flags & 2 != 0 ? Int(try reader.signed()) : nil
            let p99 = flags & 4 != 0 ? try reader.double() : nil
            let gpuSeconds = flags & 8 != 0 ? try reader.double() : nil
            try body(Row(offset: offset, deployment: deployment, version: version, start: start, end: end, requests: requests, errors: errors, slow: slow, p99: p99, gpuSeconds: gpuSeconds))
        }
    }

    /// Every window stored, in offset order.
    static func all(_ db: Database) throws -> [Row] {
        try rows(db, "SELECT first_offset, deployment, rows FROM window_blocks", [], last: .max).sorted { $0.offset < $1.offset }
    }

    /// Every window of the blocks `sql` selects (columns: first_offset, deployment, rows), with an
    /// offset at or below `last`, for which `keep` holds.
    static func rows(_ db: Database, _ sql: String, _ arguments: StatementArguments, last: Int64, keep: (Row) -> Bool = { _ in true }) throws -> [Row] {
        var out: [Row] = []
        let cursor = try GRDB.Row.fetchCursor(db, sql: sql, arguments: arguments)
        while let block = try cursor.next() {
            let first: Int64 = block[0]
            let deployment: String = block[1]
            let data: Data = block[2]
            try data.withUnsafeBytes { raw in
                try decode(raw, first: first, deployment: deployment) { r in
                    if r.offset <= last && keep(r) { out.append(r) }
                }
            }
        }
        return out
    }
}

/// Causation links whose causes lie in one bucket of 4096 offsets, gathered in one transaction
/// (`audit_effect_blocks`, keyed by the bucket and the block's smallest effect offset): pairs
/// sorted by cause then effect, each the cause's position in the bucket and the effect's
/// distance after its cause, both unsigned LEB128.
enum EffectBlock {
    static func encode(_ links: ArraySlice<(cause: Int64, effect: Int64)>, bucket: Int64) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(links.count * 4)
        for link in links {
            PackedRows.put(UInt64(link.cause - bucket * FactWriter.bucketSize), &out)
            PackedRows.put(UInt64(link.effect - link.cause), &out)
        }
        return out
    }

    /// Inserts `links` as blocks, one per bucket of causes, each sorted by cause then effect and
    /// keyed by its smallest effect offset.
    static func insert(_ db: Database, _ links: [(cause: Int64, effect: Int64)], statement: HotStatement? = nil) throws {
        let st = try statement ?? HotStatement(db, "INSERT INTO audit_effect_blocks VALUES (?, ?, ?)")
        let sorted = links.sorted { ($0.cause, $0.effect) < ($1.cause, $1.effect) }
        var start = 0
        while start < sorted.count {
            let bucket = sorted[start].cause / FactWriter.bucketSize
            var end = start + 1
            while end < sorted.count && sorted[end].cause / FactWriter.bucketSize == bucket { end += 1 }
            let block = sorted[start..<end]
            st.int(bucket); st.int(block.lazy.map(\.effect).min()!); st.blob(encode(block, bucket: bucket))
            try st.run()
            start = end
        }
    }

    static func decode(_ blob: UnsafeRawBufferPointer, bucket: Int64, _ body: (_ cause: Int64, _ effect: Int64) -> Void) throws {
        var reader = PackedRows.Reader(blob)
        while !reader.atEnd {
            let cause = bucket * FactWriter.bucketSize + Int64(try reader.unsigned())
            body(cause, cause + Int64(try reader.unsigned()))
        }
    }

    /// Every link stored by the cause's offset, sorted.
    static func all(_ db: Database) throws -> [(cause: Int64, effect: Int64)] {
        var links: [(cause: Int64, effect: Int64)] = []
        for row in try GRDB.Row.fetchAll(db, sql: "SELECT cause_bucket, links FROM audit_effect_blocks") {
            let blob: Data = row[1]
            try blob.withUnsafeBytes { raw in try decode(raw, bucket: row[0]) { links.append(($0, $1)) } }
        }
        return links.sorted { ($0.cause, $0.effect) < ($1.cause, $1.effect) }
    }

    /// The offsets of the events linked to the cause at `cause` by offset, at or below `last`, in order.
    static func effects(_ db: Database, of cause: Int64, last: Int64) throws -> [Int64] {
        let bucket = cause / FactWriter.bucketSize
        var out: [Int64] = []
        for blob in try Data.fetchAll(db, sql: "SELECT links FROM audit_effect_blocks WHERE cause_bucket = ? AND first_effect <= ?", arguments: [bucket, last]) {
            try blob.withUnsafeBytes { raw in
                try decode(raw, bucket: bucket) { c, e in
                    if c == cause && e <= last { out.append(e) }
                }
            }
        }
        return out.sorted()
    }
}
