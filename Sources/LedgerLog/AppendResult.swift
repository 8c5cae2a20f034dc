public import LedgerCore

/// Where an appended event landed: `{"offset","stream","version","id"}` in the CLI and HTTP API.
public struct AppendResult: Sendable, Equatable {
    public var offset: Int64
    public var stream: String
    public var version: Int64
    public var id: EventID

    public init(offset: Int64, stream: String, version: Int64, id: EventID) {
        self.offset = offset
        self.stream = stream
        self.version = version
        self.id = id
    }

    public var json: JSONValue {
        ["offset": .number(Double(offset)), "stream": .string(stream), "version": .number(Double(version)), "id": .string(id.description)]
    }
}

/// When an append is acknowledged.
public enum FsyncPolicy: String, Sendable, CaseIterable {
    /// After its bytes are fsynced (group commit: concurrent appends share one fsync). The default.
    case always
    /// Never fsync: acknowledged once written to the page cache. For benchmarks only — a power
    /// loss can lose acknowledged events.
    case never
    /// Fsync only when the log is closed: for replays and demos, which can be run again.
    case onClose = "on-close"
}
