#if canImport(Glibc)
import Glibc
#endif
public import GRDB
import LedgerCore
import LedgerLog

/// The SQLite database of the projections (`<data>/projections/ledger.sqlite`, WAL), opened
/// through GRDB's `DatabasePool` so queries read while the projector writes.
public final class ProjectionStore: Sendable {
    public let path: String
    public let pool: DatabasePool

    /// Opens (creating and migrating if needed) the projections of a data directory.
    public init(dataDirectory: String) throws {
        let directory = dataDirectory + "/projections"
        if mkdir(directory, 0o700) != 0 && errno != EEXIST {
            throw LedgerError(.io, "mkdir \(directory): \(String(cString: strerror(errno)))")
        }
        path = directory + "/ledger.sqlite"
        pool = try ProjectionStore.openPool(path)
    }

    init(path: String) throws {
        self.path = path
        pool = try ProjectionStore.openPool(path)
    }

    static func openPool(_ path: String) throws -> DatabasePool {
        var configuration = Configuration()
        configuration.prepareDatabase { db in
            // Projections are derived data: a crash may lose the last transactions, never their
            // consistency (each commits its rows with its checkpoint), so NORMAL is enough under WAL.
            try db.execute(sql: "PRAGMA synchronous = NORMAL; PRAGMA cache_size = -65536; PRAGMA temp_store = MEMORY")
        }
        do {
            let pool = try DatabasePool(path: path, configuration: configuration)
            try ProjectionSchema.migrator().migrate(pool)
            return pool
        } catch let error as DatabaseError {
            throw LedgerError(.io, "projections database \(path): \(error.message ?? "\(error)")")
        }
    }

    /// Empties the database at once (its file truncated) and makes the schema again: deleting
    /// the rows table by table visits every page of a large database.
    func erase() throws {
        try pool.erase()
        try ProjectionSchema.migrator().migrate(pool)
    }

    /// The checkpoint: every event before `nextOffset` is applied.
    public struct Checkpoint: Sendable, Equatable {
        public var nextOffset: Int64
        public var lastHash: String
        public var lastTime: Int64
    }

    public func checkpoint() throws -> Checkpoint {
        try pool.read { db in try ProjectionStore.checkpoint(db) }
    }

    static func checkpoint(_ db: Database) throws -> Checkpoint {
        // All projections advance together; the smallest is the truth if they ever differ.
        let rows = try Row.fetchAll(db, sql: "SELECT next_offset, last_hash, last_time FROM checkpoints ORDER BY next_offset")
        guard let row = rows.first else { return Checkpoint(nextOffset: 0, lastHash: String(repeating: "0", count: 64), lastTime: 0) }
        return Checkpoint(nextOffset: row[0], lastHash: row[1], lastTime: row[2])
    }

    /// Every table's rows in a fixed order, as text: a rebuilt projection dumps the same.
    public func dump() throws -> String {
        try pool.read { db in
            var out = ""
            for (table, order) in ProjectionSchema.tables {
                out += "## \(table)\n"
                switch table {
                case "window_blocks":
                    // The rows packed, whatever the blocks (they depend on where transactions ended).
                    for r in try WindowBlock.all(db) { out += "\(r)\n" }
                case "audit_effect_blocks":
                    for link in try EffectBlock.all(db) { out += "\(link.cause) -> \(link.effect)\n" }
                default:
                    for row in try Row.fetchAll(db, sql: "SELECT * FROM \(table) ORDER BY \(order)") {
                        out += row.description + "\n"
                    }
                }
            }
            return out
        }
    }
}
