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
