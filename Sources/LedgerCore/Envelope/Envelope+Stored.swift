extension Envelope {
    /// Reads a stored envelope: the canonical JSON the log writes (RFC 8785 member order, no
    /// whitespace). The members are read in that fixed order straight from the bytes — only `data`
    /// becomes a tree —, which is what a processor, the projector and `ledger read` do for every
    /// event. Bytes in any other form (whitespace, another order, an unknown member, a number
    /// that is not plain digits) are read by the general parser, ``init(json:)``, so the result
    /// and the errors are always what that parser gives.
    public init(stored json: UnsafeRawBufferPointer) throws(LedgerError) {
        if let fast = StoredEnvelopeReader.read(json) {
            self = fast
        } else {
            try self.init(json: try JSONParser.parse(json))
        }
    }
}

/// The fixed-layout reader behind ``Envelope/init(stored:)``: nil whenever the bytes are not
/// exactly in the writer's layout, and the caller falls back to the general parser.
enum StoredEnvelopeReader {
    static func read(_ json: UnsafeRawBufferPointer) -> Envelope? {
        var c = JSONParser.Cursor(json)
        guard c.end > 0 else { return nil }

        /// Consumes `text` if the bytes at the cursor are exactly it.
        func expect(_ text: StaticString, _ c: inout JSONParser.Cursor) -> Bool {
            let n = text.utf8CodeUnitCount
            guard c.end - c.index >= n else { return false }
            let p = text.utf8Start
            for i in 0..<n where c.byte(c.index + i) != p[i] { return false }
            c.index += n
            return true
        }
        func string(_ c: inout JSONParser.Cursor) -> String? {
            guard c.index < c.end, c.byte(c.index) == UInt8(ascii: "\"") else { return nil }
            return try? c.string()
        }
        /// A quoted run of exactly `count` bytes without escapes, as a buffer.
        func quoted(_ count: Int, _ c: inout JSONParser.Cursor) -> UnsafeBufferPointer<UInt8>? {
            guard c.end - c.index >= count + 2, c.byte(c.index) == UInt8(ascii: "\""),
                c.byte(c.index + count + 1) == UInt8(ascii: "\"")
            else { return nil }
            let b = UnsafeBufferPointer(start: c.base.unsafelyUnwrapped + c.index + 1, count: count)
            c.index += count + 2
            return b
        }
        /// A non-negative integer in canonical form (no sign, exponent or leading zero).
        func integer(_ c: inout JSONParser.Cursor) -> Int64? {
            let start = c.index
            var v: Int64 = 0
            while c.index < c.end, case let d = c.byte(c.index) &- 0x30, d < 10 {
                v = v &* 10 &+ Int64(d)
                c.index += 1
            }
            let digits = c.index - start
            guard digits > 0, digits <= 15, digits == 1 || c.byte(start) != UInt8(ascii: "0") else { return nil }
            return v
        }
        func hexHash(_ c: inout JSONParser.Cursor) -> Hash256? {
            guard let b = quoted(64, &c) else { return nil }
            return Hash256(hexBytes: UnsafeRawBufferPointer(b))
        }

        guard expect(#"{"actor":"#, &c), let actor = string(&c) else { return nil }
        var causationId: EventID? = nil
        if expect(#","causationId":"#, &c) {
            guard let b = quoted(36, &c), let id = EventID.parse(b) else { return nil }
            causationId = id
        }
        var correlationId: String? = nil
        if expect(#","correlationId":"#, &c) {
            guard let s = string(&c) else { return nil }
            correlationId = s
        }
        guard expect(#","data":"#, &c), c.index < c.end, c.byte(c.index) == UInt8(ascii: "{"),
            case .object(let data)? = try? c.object(depth: 2)  // as deep as the general parser counts it
        else { return nil }
        guard expect(#","hash":"#, &c), let hash = hexHash(&c),
            expect(#","id":"#, &c), let idBytes = quoted(36, &c), let id = EventID.parse(idBytes),
            expect(#","offset":"#, &c), let offset = integer(&c),
            expect(#","prevHash":"#, &c), let prevHash = hexHash(&c),
            expect(#","schemaVersion":"#, &c), let schemaVersion = integer(&c),
            expect(#","stream":"#, &c), let stream = string(&c),
            expect(#","time":"#, &c), let timeBytes = quoted(24, &c), let time = Timestamp.parse(timeBytes),
            expect(#","type":"#, &c), let type = string(&c),
            expect(#","version":"#, &c), let version = integer(&c),
            expect("}", &c), c.index == c.end
        else { return nil }
        return Envelope(
            offset: offset, id: id, stream: stream, version: version, type: type, schemaVersion: Int(schemaVersion),
            time: time, actor: actor, causationId: causationId, correlationId: correlationId, data: data,
            prevHash: prevHash, hash: hash)
    }
}
