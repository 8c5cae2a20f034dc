/// An error a user can see: a stable code, a message that says what was wrong and what to do,
/// and where it happened in the input.
///
/// Modelled on swift-kafka-client's `KafkaError`: a struct with extensible codes rather than an
/// enum, so new codes never break callers. `description` is the one-line form the CLI prints:
/// `error: <code>: <message>`.
public struct LedgerError: Error, Sendable, Equatable, CustomStringConvertible {
    /// A stable, machine-readable error code (the strings are part of the public interface).
    public struct Code: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
        public let rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        // Input rejected (CLI exit code 2, HTTP 4xx).
        public static let invalidJSON = Code(rawValue: "invalid_json")
        public static let invalidRequest = Code(rawValue: "invalid_request")
        public static let unknownType = Code(rawValue: "unknown_type")
        public static let schemaViolation = Code(rawValue: "schema_violation")
        public static let invalidStream = Code(rawValue: "invalid_stream")
        public static let streamMismatch = Code(rawValue: "stream_mismatch")
        public static let forbiddenType = Code(rawValue: "forbidden_type")
        public static let eventTooLarge = Code(rawValue: "event_too_large")
        public static let batchTooLarge = Code(rawValue: "batch_too_large")
        public static let wrongExpectedVersion = Code(rawValue: "wrong_expected_version")
        public static let duplicateID = Code(rawValue: "duplicate_id")
        public static let timeOrder = Code(rawValue: "time_order")
        public static let importMismatch = Code(rawValue: "import_mismatch")
        // Log state (exit codes 3 and 4).
        public static let corrupt = Code(rawValue: "corrupt")
        public static let locked = Code(rawValue: "locked")
        /// Another writer took over the log (Kafka: the same transactional id, a newer epoch).
        public static let fenced = Code(rawValue: "fenced")
        // Everything else (exit code 1).
        public static let writerFailed = Code(rawValue: "writer_failed")
        public static let io = Code(rawValue: "io_error")
        public static let notFound = Code(rawValue: "not_found")
        public static let usage = Code(rawValue: "usage")
        public static let `internal` = Code(rawValue: "internal")
        public static let closed = Code(rawValue: "closed")
    }

    public var code: Code
    public var message: String
    /// JSON pointer into the offending event's `data` (schema violations), when known.
    public var path: String?
    /// Index of the offending event within its request, when the request holds several.
    public var index: Int?
    /// `wrong_expected_version`: the stream's version before the request (nil: no such stream).
    public var currentVersion: Int64?
    public var fileID: String
    public var line: Int

    public init(
        _ code: Code, _ message: String, path: String? = nil, index: Int? = nil,
        fileID: String = #fileID, line: Int = #line
    ) {
        self.code = code
        self.message = message
        self.path = path
        self.index = index
        self.fileID = fileID
        self.line = line
    }

    /// `error: <code>: <message>`, the line the CLI prints on stderr.
    public var description: String { "error: \(code): \(message)" }

    /// Whether the error rejects the caller's input (as opposed to a failure of the ledger).
    public var isRejection: Bool {
        switch code {
        case .invalidJSON, .invalidRequest, .unknownType, .schemaViolation, .invalidStream,
            .streamMismatch, .forbiddenType, .eventTooLarge, .batchTooLarge,
            .wrongExpectedVersion, .duplicateID, .timeOrder, .importMismatch:
            return true
        default:
            return false
        }
    }

    /// The CLI's exit code for this error (INTERFACES.md): 2 rejected, 3 corruption, 4 locked, 1 otherwise.
    public var exitCode: Int32 {
        if isRejection { return 2 }
        switch code {
        case .corrupt: return 3
        case .locked, .fenced: return 4
        default: return 1
        }
    }

    /// The same error, attributed to event `index` of a request.
    public func at(index: Int) -> LedgerError {
        var copy = self
        copy.index = index
        return copy
    }

    public static func == (lhs: LedgerError, rhs: LedgerError) -> Bool {
        lhs.code == rhs.code && lhs.message == rhs.message && lhs.path == rhs.path && lhs.index == rhs.index
    }
}

extension LedgerError {
    /// `error` as a ``LedgerError`` (an internal error for anything else, which is a bug).
    public static func wrap(_ error: any Error, fileID: String = #fileID, line: Int = #line) -> LedgerError {
        if let e = error as? LedgerError { return e }
        return LedgerError(.internal, "\(error)", fileID: fileID, line: line)
    }
}
