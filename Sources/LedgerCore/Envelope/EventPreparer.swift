/// Who is appending, and by which path: decides the actor, the time and whether decision types
/// are allowed.
public struct AppendPolicy: Sendable {
    public enum Mode: Sendable, Equatable {
        /// A client (CLI, HTTP, processor): the ledger sets `time` and `actor`.
        case client
        /// Admin import or replay: the request carries its own `time` and `actor`, and decision
        /// types are allowed.
        case admin
    }

    /// The authenticated principal (`user:alice`, `processor:scheduler`).
    public var actor: String
    public var mode: Mode
    /// Largest canonical `data` accepted, in bytes.
    public var maxDataBytes: Int

    /// 1 MiB: the default limit on one event's canonical `data`.
    public static let defaultMaxDataBytes = 1 << 20

    public init(actor: String, mode: Mode = .client, maxDataBytes: Int = AppendPolicy.defaultMaxDataBytes) {
        self.actor = actor
        self.mode = mode
        self.maxDataBytes = maxDataBytes
    }

    /// Whether this principal may append decision types (`processor:*`, or the admin path).
    public var mayAppendDecisions: Bool { mode == .admin || actor.hasPrefix("processor:") }
}

/// An append request that passed every check that does not depend on the log's state, with its
/// `data` in canonical form. Produced in parallel ahead of the single writer.
public struct PreparedEvent: Sendable {
    public var stream: String
    public var type: String
    public var schemaVersion: Int
    public var id: EventID?
    public var expectedVersion: ExpectedVersion
    public var causationId: EventID?
    public var correlationId: String?
    public var actor: String
    /// Admin path only: the event's own time.
    public var time: Timestamp?
    /// A processor's output: time = max(this, the head's time).
    public var notBefore: Timestamp?
    /// The canonical envelope head (actor, causation, correlation, data) and its hash state.
    public var head: EnvelopeHead
    /// RFC 8785 canonical bytes of `data`.
    public var canonicalData: ArraySlice<UInt8> { head.data }
    /// The first 16 bytes of SHA-256(stream): the stream's key in the log's indexes, computed here
    /// so that the single writer does not have to.
    public var streamKey: (UInt64, UInt64)
    /// Import of an export: the position and hashes the event must get.
    public var recorded: RecordedPosition?
}

/// The stateless half of the append path: type, authority, schema, stream rule, size.
public enum EventPreparer {
    /// Checks `request` and canonicalises its data. Throws the first rule it breaks.
    public static func prepare(
        _ request: AppendRequest, policy: AppendPolicy, catalog: EventCatalog = .standard,
        recorded: RecordedPosition? = nil, scratch: ByteWriter? = nil
    ) throws(LedgerError) -> PreparedEvent {
        guard StreamName.isValid(request.stream) else {
            throw LedgerError(
                .invalidStream,
                "stream \"\(request.stream.prefix(200))\" is not of the form category-id (category: a lowercase letter then up to 31 lowercase letters or digits; id: 1-128 of [A-Za-z0-9._:-])",
                path: "/stream")
        }
        guard let type = catalog.type(request.type, schemaVersion: request.schemaVersion) else {
            if catalog.knows(request.type) {
                throw LedgerError(
                    .unknownType, "type \(request.type) has no schema version \(request.schemaVersion) (see Schemas/events/)",
                    path: "/schemaVersion")
            }
            throw LedgerError(.unknownType, "unknown event type \"\(request.type.prefix(200))\" (the catalog is in Schemas/events/)", path: "/type")
        }
        if type.isDecision && !policy.mayAppendDecisions {
            throw LedgerError(
                .forbiddenType,
                "\(type.name) is a decision type: only a processor (processor:*) or an admin import may append it, not \(policy.actor)",
                path: "/type")
        }
        if policy.mode == .client && (request.time != nil || request.actor != nil) {
            throw LedgerError(.invalidRequest, "time and actor are set by the ledger; only an admin import carries its own")
        }
        if let violation = type.schema.validate(.object(request.data)) {
            throw LedgerError(
                .schemaViolation, "\(type.name): /data\(violation.pointer): \(violation.message)",
                path: "/data" + violation.pointer)
        }
        guard type.isStream(request.stream, of: request.data) else {
            throw LedgerError(
                .streamMismatch,
                "\(type.name) belongs to stream \(type.streamDescription) = \(type.stream(for: request.data) ?? "?"), not \(request.stream)",
                path: "/stream")
        }
        var actor = policy.actor
        if policy.mode == .admin, let own = request.actor { actor = own }
        guard StreamName.isValidPrincipal(actor) else {
            throw LedgerError(.invalidRequest, "actor \"\(actor.prefix(200))\" is not a principal name (1-128 of [A-Za-z0-9._:-])")
        }
        if let correlation = request.correlationId, !StreamName.isValidPrincipal(correlation) {
            throw LedgerError(.schemaViolation, "correlationId must be a name (1-128 of [A-Za-z0-9._:-])", path: "/correlationId")
        }
        let head = try EnvelopeHead(actor: actor, causationId: request.causationId, correlationId: request.correlationId, data: request.data, scratch: scratch)
        guard head.dataCount <= policy.maxDataBytes else {
            throw LedgerError(
                .eventTooLarge,
                "data of \(type.name) is \(head.dataCount) bytes in canonical form; the limit is \(policy.maxDataBytes) bytes",
                path: "/data")
        }
        return PreparedEvent(
            stream: request.stream, type: type.name, schemaVersion: type.schemaVersion, id: request.id,
            expectedVersion: request.expectedVersion, causationId: request.causationId,
            correlationId: request.correlationId, actor: actor, time: policy.mode == .admin ? request.time : nil,
            notBefore: request.notBefore, head: head, streamKey: streamKey(request.stream), recorded: recorded)
    }
}

extension EventPreparer {
    /// Prepares one atomic request; the error of a multi-event request carries the event's index.
    public static func prepare(
        request events: [AppendRequest], policy: AppendPolicy, recorded: [RecordedPosition?]? = nil,
        catalog: EventCatalog = .standard, scratch: ByteWriter? = nil
    ) -> Result<[PreparedEvent], LedgerError> {
        var out: [PreparedEvent] = []
        out.reserveCapacity(events.count)
        let scratch = scratch ?? ByteWriter(capacity: 1024)
        for (i, e) in events.enumerated() {
            do {
                out.append(try prepare(e, policy: policy, catalog: catalog, recorded: recorded?[i] ?? nil, scratch: scratch))
            } catch {
                return .failure(events.count > 1 ? error.at(index: i) : error)
            }
        }
        return .success(out)
    }
}

/// The index key of a stream: the first 16 bytes of the SHA-256 of its name.
public func streamKey(_ stream: String) -> (UInt64, UInt64) {
    let digest = Hash256.of(utf8: stream)
    return (digest.words.0, digest.words.1)
}

/// Syntax of stream names and principals.
public enum StreamName {
    /// `category-id`: category `[a-z][a-z0-9]{0,31}`, id 1-128 of `[A-Za-z0-9._:-]`.
    public static func isValid(_ stream: String) -> Bool {
        var stream = stream
        return stream.withUTF8 { b -> Bool in
            guard b.count >= 3, b[0] >= 0x61 && b[0] <= 0x7A else { return false }
            var i = 1
            while i < b.count && b[i] != 0x2D {
                let c = b[i]
                guard (c >= 0x61 && c <= 0x7A) || (c >= 0x30 && c <= 0x39) else { return false }
                i += 1
            }
            guard i < b.count, i <= 32 else { return false }
            let idLength = b.count - i - 1
            guard idLength >= 1 && idLength <= 128 else { return false }
            for j in (i + 1)..<b.count where !isNameByte(b[j]) { return false }
            return true
        }
    }

    /// A name or principal: 1-128 of `[A-Za-z0-9._:-]`.
    public static func isValidPrincipal(_ name: String) -> Bool {
        var name = name
        return name.withUTF8 { b in b.count >= 1 && b.count <= 128 && b.allSatisfy(isNameByte) }
    }

    @inline(__always) static func isNameByte(_ c: UInt8) -> Bool {
        (c >= 0x61 && c <= 0x7A) || (c >= 0x41 && c <= 0x5A) || (c >= 0x30 && c <= 0x39) || c == 0x2E || c == 0x5F
            || c == 0x3A || c == 0x2D
    }

    /// The category of a stream: the text before its first `-`.
    public static func category(of stream: String) -> Substring {
        // By bytes: stream names are ASCII, and a search by Character would break graphemes.
        guard let dash = stream.utf8.firstIndex(of: 0x2D) else { return stream[...] }
        return stream[..<dash]
    }
}
