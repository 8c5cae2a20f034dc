/// RFC 8785 JSON Canonicalization Scheme (JCS).
///
/// Members sorted by the UTF-16 code units of their names, no whitespace, strings escaped as
/// ECMAScript's `JSON.stringify` does (only `"`, `\` and control characters, with the short
/// forms where they exist and lowercase `\u00xx` otherwise), and numbers in ECMAScript's
/// `Number.prototype.toString` form (see `CanonicalJSON+Number.swift`).
public enum CanonicalJSON {
    /// The canonical bytes of `value`. Throws for NaN or an infinity, which JSON cannot hold.
    public static func encode(_ value: JSONValue) throws(LedgerError) -> [UInt8] {
        let writer = ByteWriter(capacity: 256)
        try write(value, into: writer)
        return writer.array()
    }

    /// Appends the canonical bytes of `value` to `out`.
    public static func write(_ value: JSONValue, into out: inout [UInt8]) throws(LedgerError) {
        let writer = ByteWriter(capacity: 256)
        try write(value, into: writer)
        out.append(contentsOf: writer.bytes)
    }

    /// Appends the canonical bytes of `value` to `writer`.
    public static func write(_ value: JSONValue, into writer: ByteWriter) throws(LedgerError) {
        var nonFinite: Double? = nil
        writeValue(value, into: writer, nonFinite: &nonFinite)
        if let bad = nonFinite {
            throw LedgerError(.invalidJSON, "\(bad) is not a JSON number (RFC 8785 forbids NaN and infinities)")
        }
    }

    /// The recursive walk; not throwing (a non-finite number is noted and reported by the caller),
    /// which keeps the hot path free of error plumbing.
    static func writeValue(_ value: JSONValue, into writer: ByteWriter, nonFinite: inout Double?) {
        switch value {
        case .null: writer.append("null")
        case .bool(let b): writer.append(b ? "true" : "false")
        case .number(let n):
            if n.isFinite { writeFiniteNumber(n, into: writer) } else { nonFinite = n }
        case .string(let s): writer.appendJSONString(s)
        case .array(let elements):
            writer.append(UInt8(ascii: "["))
            for i in elements.indices {
                if i > 0 { writer.append(UInt8(ascii: ",")) }
                writeValue(elements[i], into: writer, nonFinite: &nonFinite)
            }
            writer.append(UInt8(ascii: "]"))
        case .object(let object):
            writer.append(UInt8(ascii: "{"))
            object.members.withUnsafeBufferPointer { members in
                for i in members.indices {
                    if i > 0 { writer.append(UInt8(ascii: ",")) }
                    writer.appendJSONString(members[i].key)
                    writer.append(UInt8(ascii: ":"))
                    writeValue(members[i].value, into: writer, nonFinite: &nonFinite)
                }
            }
            writer.append(UInt8(ascii: "}"))
        }
    }

    /// The members of `object` in RFC 8785 order (the order a ``JSONObject`` keeps).
    public static func sortedMembers(_ object: JSONObject) -> [JSONObject.Member] { object.members }

    /// Whether `a` sorts before `b` by UTF-16 code units (RFC 8785 section 3.2.3).
    public static func precedes(_ a: String, _ b: String) -> Bool {
        // For code points below U+E000 (and so for all of ASCII) UTF-8 byte order equals UTF-16
        // code unit order; past that, surrogate pairs sort below U+E000..U+FFFF, so compare UTF-16.
        var a = a
        var b = b
        let verdict: Bool? = a.withUTF8 { pa in
            b.withUTF8 { pb -> Bool? in
                let n = min(pa.count, pb.count)
                var i = 0
                while i < n {
                    let x = pa[i]
                    let y = pb[i]
                    if x != y {
                        if x < 0xEE && y < 0xEE { return x < y }
                        return nil
                    }
                    i += 1
                }
                return pa.count < pb.count
            }
        }
        if let verdict { return verdict }
        return a.utf16.lexicographicallyPrecedes(b.utf16)
    }

    /// Appends `s` as a JSON string literal, escaped as RFC 8785 prescribes.
    public static func writeString(_ s: String, into out: inout [UInt8]) {
        let writer = ByteWriter(capacity: s.utf8.count + 16)
        writer.appendJSONString(s)
        out.append(contentsOf: writer.bytes)
    }

    @inline(__always)
    static func append(_ literal: StaticString, to out: inout [UInt8]) {
        out.append(contentsOf: UnsafeBufferPointer(start: literal.utf8Start, count: literal.utf8CodeUnitCount))
    }
}
