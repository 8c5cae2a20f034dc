import Synchronization
public import LedgerCore
public import LedgerLog
import GRDB
import Foundation

/// `--as-of OFFSET|TIME`: the prefix of the log a query answers for (SEMANTICS.md): an offset
/// includes the event at that offset; a time includes every event whose time is at or before it.
public enum AsOf: Sendable, Equatable, CustomStringConvertible {
    case head
    case offset(Int64)
    case time(Timestamp)

    /// Parses an offset (`12345`), an RFC 3339 time (`2026-11-30T12:00:00Z`, any fraction, any
    /// offset), or a date (`2026-11-30`: as of the end of that UTC day, every event of the day
    /// included).
    public init(parsing text: String, option: String = "--as-of") throws(LedgerError) {
        if let n = Int64(text), n >= 0 {
            self = .offset(n)
        } else if let t = QueryTime(text) {
            self = .time(t.isDate ? t.endOfDay.adding(milliseconds: -1) : t.instant)
        } else {
            throw LedgerError(.usage, "\(option) takes an offset (0, 1, …), a date (2026-11-30: the end of that UTC day) or an RFC 3339 time (2026-11-30T12:00:00Z), not \"\(text.prefix(64))\"")
        }
    }

    public var description: String {
        switch self {
        case .head: return "head"
        case .offset(let o): return "offset \(o)"
        case .time(let t): return t.description
        }
    }
}

/// What every query is answered against: the projections, the log (for hashes and event
/// details), and the resolved prefix.
public final class QueryContext: @unchecked Sendable {
    // @unchecked: `reader` is only used under its mutex.
    public let store: ProjectionStore
    public let source: any LogSource
    /// The last offset included (−1 for an empty prefix).
    public let last: Int64
    /// The time of the as-of point: the event at `last`, or the requested time.
    public let time: Int64
    public let asOf: AsOf
    private let reader: Mutex<EventReader>

    /// Resolves `asOf` against the log and checks the projections have got that far.
    public init(store: ProjectionStore, source: any LogSource, asOf: AsOf) throws {
        self.store = store
        self.source = source
        self.asOf = asOf
        reader = Mutex(EventReader(source: source))
        let checkpoint = try store.checkpoint()
        let projected = checkpoint.nextOffset - 1
        var last: Int64
        switch asOf {
        case .head: last = projected
        case .offset(let o): last = o
        case .time(let t): last = try source.lastOffset(atOrBefore: t)
        }
        guard last <= projected else {
            throw LedgerError(.usage, "the projections are built up to offset \(projected); \(asOf) is beyond (run `ledger project`)")
        }
        if last >= source.head {
            throw LedgerError(.usage, "\(asOf) is beyond the log's head (\(source.head - 1))")
        }
        self.last = last
        switch asOf {
        case .time(let t): time = t.milliseconds
        default: time = last >= 0 ? (try source.event(at: last)?.time.milliseconds ?? 0) : 0
        }
    }

    func read<T>(_ body: (Database) throws -> T) throws -> T {
        do {
            return try store.pool.read(body)
        } catch let error as DatabaseError {
            throw LedgerError(.io, "projections: \(error.message ?? "\(error)")")
        }
    }

    /// The envelope at `offset`.
    func envelope(_ offset: Int64) throws -> Envelope? {
        try reader.withLock { try $0.event(at: offset)?.envelope() }
    }

    /// The as-of point for JSON answers.
    public var asOfJSON: JSONValue {
        ["offset": .number(Double(last)), "time": .string(Timestamp(milliseconds: time).description)]
    }
}
