#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension EventPreparer {
    /// One request line (an object, or an array of them for an atomic request) prepared in a
    /// single pass over its bytes: parsed into `tape`, the request's members read, `data`
    /// validated and written in canonical form straight from the tape. Nil when the line is not
    /// one the tape takes or breaks any rule: the caller then takes the full path (the tree),
    /// which prepares exactly the same events when it succeeds and names the fault when not.
    /// Requests only (`ledger append`, not import records).
    public static func prepare(
        line: UnsafeRawBufferPointer, policy: AppendPolicy, tape storage: JSONTape.Storage, scratch: ByteWriter,
        catalog: EventCatalog = .standard
    ) -> [PreparedEvent]? {
        guard let tape = JSONTape.parse(line, storage: storage) else { return nil }
        let root = tape[0]
        if root.kind == .object {
            guard let event = prepare(tape, 0, policy: policy, catalog: catalog, scratch: scratch) else { return nil }
            return [event]
        }
        guard root.kind == .array, root.count > 0 else { return nil }
        var out: [PreparedEvent] = []
        out.reserveCapacity(Int(root.count))
        var k = 1
        for _ in 0..<Int(root.count) {
            guard let event = prepare(tape, k, policy: policy, catalog: catalog, scratch: scratch) else { return nil }
            out.append(event)
            k = Int(tape[k].next)
        }
        return out
    }

    /// The request object at entry `i`: the members and rules of ``AppendRequest/fastPath(_:)``,
    /// then every check of ``prepare(_:policy:catalog:recorded:scratch:)``.
    static func prepare(_ tape: JSONTape, _ i: Int, policy: AppendPolicy, catalog: EventCatalog, scratch: ByteWriter) -> PreparedEvent? {
        let object = tape[i]
        guard object.kind == .object, object.count >= 3, object.count <= 8 else { return nil }
        var seen: UInt8 = 0
        var stream: String?
        var typeName: String?
        var data = -1
        var schemaVersion = 1
        var id: EventID?
        var expected = ExpectedVersion.any
        var causation: EventID?
        var correlation: String?
        var k = i + 1
        for _ in 0..<Int(object.count) {
            let key = tape.bytes(k)
            let v = k + 1
            let value = tape[v]
            let bit: UInt8
            if named(key, "stream") {
                guard value.kind == .string else { return nil }
                let s = tape.string(v)
                guard StreamName.isValid(s) else { return nil }
                stream = s
                bit = 1
            } else if named(key, "type") {
                guard value.kind == .string else { return nil }
                let t = tape.string(v)
                guard AppendRequest.isTypeName(t) else { return nil }
                typeName = t
                bit = 2
            } else if named(key, "data") {
                guard value.kind == .object else { return nil }
                data = v
                bit = 4
            } else if named(key, "id") {
                guard value.kind == .string, let parsed = EventID.parse(tape.bytes(v)) else { return nil }
                id = parsed
                bit = 8
            } else if named(key, "expectedVersion") {
                if value.kind == .string {
                    let s = tape.bytes(v)
                    if named(s, "any") {
                        expected = .any
                    } else if named(s, "no_stream") {
                        expected = .noStream
                    } else if named(s, "exists") {
                        expected = .exists
                    } else {
                        return nil
                    }
                } else {
                    guard value.kind == .number, let n = tape.number(v), n >= 0, n <= 9_007_199_254_740_991,
                        n == n.rounded(.towardZero)
                    else { return nil }
                    expected = .exactly(Int64(n))
                }
                bit = 16
            } else if named(key, "schemaVersion") {
                guard value.kind == .number, let n = tape.number(v), n >= 1, n <= 1000, n == n.rounded(.towardZero) else { return nil }
                schemaVersion = Int(n)
                bit = 32
            } else if named(key, "causationId") {
                guard value.kind == .string, let parsed = EventID.parse(tape.bytes(v)) else { return nil }
                causation = parsed
                bit = 64
            } else if named(key, "correlationId") {
                guard value.kind == .string else { return nil }
                let c = tape.string(v)
                guard StreamName.isValidPrincipal(c) else { return nil }
                correlation = c
                bit = 128
            } else {
                return nil
            }
            // A member named twice: the full path's error.
            guard seen & bit == 0 else { return nil }
            seen |= bit
            k = Int(tape[v].next)
        }
        guard let stream, let typeName, data >= 0,
            let type = catalog.type(typeName, schemaVersion: schemaVersion),
            !type.isDecision || policy.mayAppendDecisions,
            type.schema.verdict(tape, data) == .valid,
            type.isStream(stream, tape: tape, data: data),
            StreamName.isValidPrincipal(policy.actor),
            let head = EnvelopeHead(
                actor: policy.actor, causationId: causation, correlationId: correlation, scratch: scratch,
                writeData: { tape.writeCanonical(data, into: $0) }),
            head.dataCount <= policy.maxDataBytes
        else { return nil }
        return PreparedEvent(
            stream: stream, type: type.name, schemaVersion: type.schemaVersion, id: id,
            expectedVersion: expected, causationId: causation, correlationId: correlation, actor: policy.actor,
            time: nil, notBefore: nil, head: head, streamKey: streamKey(stream), recorded: nil)
    }

    @inline(__always) private static func named(_ bytes: UnsafeBufferPointer<UInt8>, _ name: StaticString) -> Bool {
        bytes.count == name.utf8CodeUnitCount && memcmp(bytes.baseAddress!, name.utf8Start, bytes.count) == 0
    }
}

extension EventType {
    /// ``isStream(_:of:)`` for `data` on a tape: the first rule whose field is a string decides.
    func isStream(_ stream: String, tape: JSONTape, data: Int) -> Bool {
        rules: for rule in streamRules {
            var object = data
            for name in rule.path.dropLast() {
                var name = name
                guard let next = name.withUTF8({ tape.member(object, $0) }), tape[next].kind == .object else { continue rules }
                object = next
            }
            var last = rule.path.last!
            guard let at = last.withUTF8({ tape.member(object, $0) }), tape[at].kind == .string else { continue rules }
            let key = tape.bytes(at)
            var stream = stream
            var category = rule.category
            return stream.withUTF8 { s in
                category.withUTF8 { c in
                    s.count == c.count + 1 + key.count && s[c.count] == 0x2D
                        && memcmp(s.baseAddress!, c.baseAddress!, c.count) == 0
                        && (key.count == 0 || memcmp(s.baseAddress! + c.count + 1, key.baseAddress!, key.count) == 0)
                }
            }
        }
        return false
    }
}
