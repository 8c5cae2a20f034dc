import GRDB
import GRDBSQLite
import LedgerCore

/// A prepared statement of the projector's hot path, bound and stepped through the SQLite C API
/// (GRDB prepares and owns it): no argument arrays, no statement-cache lookups per row.
final class HotStatement {
    private let statement: Statement
    private let handle: OpaquePointer
    private var index: Int32 = 0

    init(_ db: Database, _ sql: String) throws {
        statement = try db.makeStatement(sql: sql)
        handle = statement.sqliteStatement
    }

    private static let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)
    nonisolated(unsafe) private static let empty: UnsafePointer<CChar> = {
        let p = UnsafeMutablePointer<CChar>.allocate(capacity: 1)
        p.pointee = 0
        return UnsafePointer(p)
    }()

    @inline(__always) func int(_ value: Int64?) {
        index += 1
        if let value { sqlite3_bind_int64(handle, index, value) } else { sqlite3_bind_null(handle, index) }
    }

    @inline(__always) func int(_ value: Int?) { int(value.map(Int64.init)) }

    @inline(__always) func double(_ value: Double?) {
        index += 1
        if let value { sqlite3_bind_double(handle, index, value) } else { sqlite3_bind_null(handle, index) }
    }

    @inline(__always) func text(_ value: String?) {
        index += 1
        guard var value else {
            sqlite3_bind_null(handle, index)
            return
        }
        let handle = self.handle
        let index = self.index
        value.withUTF8 { bytes in
            bytes.withMemoryRebound(to: CChar.self) { chars in
                _ = sqlite3_bind_text(handle, index, chars.baseAddress ?? HotStatement.empty, Int32(chars.count), HotStatement.transient)
            }
        }
    }

    @inline(__always) func blob(_ bytes: [UInt8]) {
        index += 1
        bytes.withUnsafeBytes { raw in
            _ = sqlite3_bind_blob(handle, index, raw.baseAddress ?? UnsafeRawPointer(bitPattern: 1)!, Int32(raw.count), HotStatement.transient)
        }
    }

    /// Runs a query with the values bound since the last run, handing each row to `body`
    /// (valid only during the call).
    func rows(_ body: (RawRow) throws -> Void) throws {
        defer {
            sqlite3_reset(handle)
            index = 0
        }
        while true {
            let rc = sqlite3_step(handle)
            if rc == SQLITE_DONE { return }
            guard rc == SQLITE_ROW else {
                let db = sqlite3_db_handle(handle)
                let message = db.map { String(cString: sqlite3_errmsg($0)) } ?? "error \(rc)"
                throw LedgerError(.io, "projections: \(message) in \(statement.sql)")
            }
            try body(RawRow(handle: handle))
        }
    }

    /// Runs the statement with the values bound since the last run.
    func run() throws {
        defer {
            sqlite3_reset(handle)
            index = 0
        }
        let rc = sqlite3_step(handle)
        guard rc == SQLITE_DONE || rc == SQLITE_ROW else {
            let db = sqlite3_db_handle(handle)
            let message = db.map { String(cString: sqlite3_errmsg($0)) } ?? "error \(rc)"
            throw LedgerError(.io, "projections: \(message) in \(statement.sql)")
        }
    }
}

/// The current row of a ``HotStatement/rows(_:)`` query, read column by column (0-based)
/// without GRDB's generic decoding.
struct RawRow {
    let handle: OpaquePointer

    func isNull(_ column: Int32) -> Bool { sqlite3_column_type(handle, column) == SQLITE_NULL }
    func int(_ column: Int32) -> Int64 { sqlite3_column_int64(handle, column) }
    func optionalInt(_ column: Int32) -> Int64? { isNull(column) ? nil : int(column) }
    func double(_ column: Int32) -> Double { sqlite3_column_double(handle, column) }
    func text(_ column: Int32) -> String { optionalText(column) ?? "" }
    func optionalText(_ column: Int32) -> String? {
        guard let bytes = sqlite3_column_text(handle, column) else { return nil }
        let count = Int(sqlite3_column_bytes(handle, column))
        return String(decoding: UnsafeRawBufferPointer(start: bytes, count: count), as: UTF8.self)
    }
}
