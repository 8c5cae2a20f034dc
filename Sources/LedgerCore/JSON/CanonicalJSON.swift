/// RFC 8785 JSON Canonicalization Scheme (JCS).
///
/// Members sorted by the UTF-16 code units of their names, no whitespace, strings escaped as
/// ECMAScript's `JSON.stringify` does (only `"`, `\` and control characters, with the short
/// forms where they exist and lowercase `\u00xx` otherwise), and numbers in ECMAScript's
/// `Number.prototype.toString` form (see `CanonicalJSON+Number.swift`).
public enum CanonicalJSON {
    /// The canonical bytes of `value`. Throws for NaN or an infinity, which JSON cannot hold.
    public static func encode(_ value: JSONValue) throws(LedgerError) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(128)
        try write(value, into: &out)
        return out
    }

    /// Appends the canonical bytes of `value` to `out`.
    public static func write(_ value: JSONValue, into out: inout [UInt8]) throws(LedgerError) {
        switch value {
        case .null: append("null", to: &out)
        case .bool(let b): append(b ? "true" : "false", to: &out)
        case .number(let n): try writeNumber(n, into: &out)
        case .string(let s): writeString(s, into: &out)
        case .array(let elements):
            out.append(UInt8(ascii: "["))
            var first = true
            for element in elements {
                if !first { out.append(UInt8(ascii: ",")) }
                first = false
                try write(element, into: &out)
            }
            out.append(UInt8(ascii: "]"))
        case .object(let object):
            out.append(UInt8(ascii: "{"))
            var first = true
            for member in sortedMembers(object) {
                if !first { out.append(UInt8(ascii: ",")) }
                first = false
                writeString(member.key, into: &out)
                out.append(UInt8(ascii: ":"))
                try write(member.value, into: &out)
            }
            out.append(UInt8(ascii: "}"))
        }
    }

    /// The members of `object` in RFC 8785 order (by UTF-16 code units of the names).
    public static func sortedMembers(_ object: JSONObject) -> [JSONObject.Member] {
        let members = object.members
        var sorted = true
        var i = 1
        while i < members.count {
            if !precedes(members[i - 1].key, members[i].key) {
                sorted = false
                break
            }
            i += 1
        }
        if sorted { return members }
        return members.sorted { precedes($0.key, $1.key) }
    }

    /// Whether `a` sorts before `b` by UTF-16 code units (RFC 8785 section 3.2.3).
    @inlinable
    public static func precedes(_ a: String, _ b: String) -> Bool {
        // For code points below U+E000 (and so for all of ASCII) UTF-8 byte order equals UTF-16
        // code unit order; past that, surrogate pairs sort below U+E000..U+FFFF, so compare UTF-16.
        var ia = a.utf8.makeIterator()
        var ib = b.utf8.makeIterator()
        while true {
            switch (ia.next(), ib.next()) {
            case (nil, nil): return false
            case (nil, _): return true
            case (_, nil): return false
            case (let x?, let y?):
                if x == y { continue }
                if x < 0xEE && y < 0xEE { return x < y }
                return a.utf16.lexicographicallyPrecedes(b.utf16)
            }
        }
    }

    /// Appends `s` as a JSON string literal, escaped as RFC 8785 prescribes.
    public static func writeString(_ s: String, into out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        var s = s
        s.withUTF8 { bytes in
            var runStart = 0
            for i in 0..<bytes.count {
                let b = bytes[i]
                guard b < 0x20 || b == 0x22 || b == 0x5C else { continue }
                if runStart < i { out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[runStart..<i])) }
                runStart = i + 1
                out.append(UInt8(ascii: "\\"))
                switch b {
                case 0x22: out.append(0x22)
                case 0x5C: out.append(0x5C)
                case 0x08: out.append(UInt8(ascii: "b"))
                case 0x09: out.append(UInt8(ascii: "t"))
                case 0x0A: out.append(UInt8(ascii: "n"))
                case 0x0C: out.append(UInt8(ascii: "f"))
                case 0x0D: out.append(UInt8(ascii: "r"))
                default:
                    let hex: [UInt8] = Array("0123456789abcdef".utf8)
                    out.append(contentsOf: [UInt8(ascii: "u"), 0x30, 0x30, hex[Int(b >> 4)], hex[Int(b & 0xF)]])
                }
            }
            if runStart < bytes.count { out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[runStart...])) }
        }
        out.append(UInt8(ascii: "\""))
    }

    @inline(__always)
    static func append(_ literal: StaticString, to out: inout [UInt8]) {
        out.append(contentsOf: UnsafeBufferPointer(start: literal.utf8Start, count: literal.utf8CodeUnitCount))
    }
}
