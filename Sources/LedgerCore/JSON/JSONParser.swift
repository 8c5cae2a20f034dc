#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A strict JSON parser: RFC 8259 grammar, I-JSON constraints (RFC 7493) as RFC 8785 requires.
///
/// Rejected, with the byte position: invalid UTF-8, lone surrogates in `\u` escapes,
/// unescaped control characters, duplicate member names, numbers outside the double range,
/// nesting deeper than ``maxDepth``, and anything after the top-level value.
public struct JSONParser {
    /// Deepest nesting of arrays and objects accepted.
    public static let maxDepth = 64

    /// Parses one JSON text.
    public static func parse(_ bytes: some Collection<UInt8>) throws(LedgerError) -> JSONValue {
        let result: Result<JSONValue, LedgerError>? = bytes.withContiguousStorageIfAvailable { buffer in
            Result { () throws(LedgerError) -> JSONValue in try parse(UnsafeRawBufferPointer(buffer)) }
        }
        if let result { return try result.get() }
        return try parse(Array(bytes))
    }

    /// Parses one JSON text held in `buffer`.
    public static func parse(_ buffer: UnsafeRawBufferPointer) throws(LedgerError) -> JSONValue {
        var parser = Cursor(buffer)
        parser.skipWhitespace()
        let value = try parser.value(depth: 0)
        parser.skipWhitespace()
        if parser.index != parser.end {
            throw parser.error("unexpected \(parser.describeCurrent()) after the JSON value")
        }
        return value
    }

    struct Cursor {
        let base: UnsafePointer<UInt8>?
        let end: Int
        var index = 0
        var scratch: [UInt8] = []

        init(_ buffer: UnsafeRawBufferPointer) {
            base = buffer.baseAddress?.assumingMemoryBound(to: UInt8.self)
            end = buffer.count
        }

        @inline(__always) func byte(_ i: Int) -> UInt8 { base.unsafelyUnwrapped[i] }

        func error(_ message: String) -> LedgerError {
            LedgerError(.invalidJSON, "at byte \(index): \(message)")
        }

        func describeCurrent() -> String {
            guard index < end else { return "end of input" }
            let b = byte(index)
            if b >= 0x21 && b < 0x7F { return "'\(Character(Unicode.Scalar(b)))'" }
            return "byte 0x\(String(b, radix: 16))"
        }

        @inline(__always) mutating func skipWhitespace() {
            while index < end {
                let b = byte(index)
                guard b == 0x20 || b == 0x0A || b == 0x0D || b == 0x09 else { return }
                index += 1
            }
        }

        mutating func value(depth: Int) throws(LedgerError) -> JSONValue {
            guard index < end else { throw error("unexpected end of input, expected a value") }
            switch byte(index) {
            case UInt8(ascii: "{"): return try object(depth: depth + 1)
            case UInt8(ascii: "["): return try array(depth: depth + 1)
            case UInt8(ascii: "\""): return .string(try string())
            case UInt8(ascii: "t"): try literal("true"); return .bool(true)
            case UInt8(ascii: "f"): try literal("false"); return .bool(false)
            case UInt8(ascii: "n"): try literal("null"); return .null
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return .number(try number())
            default: throw error("unexpected \(describeCurrent()), expected a value")
            }
        }

        mutating func literal(_ word: StaticString) throws(LedgerError) {
            let count = word.utf8CodeUnitCount
            guard end - index >= count else { throw error("unexpected end of input in the literal \(word)") }
            let p = word.utf8Start
            for i in 0..<count where byte(index + i) != p[i] {
                throw error("unexpected \(describeCurrent()), expected a JSON value")
            }
            index += count
        }

        mutating func object(depth: Int) throws(LedgerError) -> JSONValue {
            guard depth <= JSONParser.maxDepth else { throw error("nesting deeper than \(JSONParser.maxDepth)") }
            index += 1
            var members: [JSONObject.Member] = []
            skipWhitespace()
            if index < end && byte(index) == UInt8(ascii: "}") {
                index += 1
                return .object(JSONObject(sortedMembers: members))
            }
            let objectStart = index
            members.reserveCapacity(8)
            while true {
                skipWhitespace()
                guard index < end, byte(index) == UInt8(ascii: "\"") else {
                    throw error("unexpected \(describeCurrent()), expected a member name")
                }
                let key = try string()
                skipWhitespace()
                guard index < end, byte(index) == UInt8(ascii: ":") else {
                    throw error("unexpected \(describeCurrent()), expected ':'")
                }
                index += 1
                skipWhitespace()
                let value = try value(depth: depth)
                // Insert in canonical order; a name seen before is a duplicate (I-JSON).
                var j = members.count
                if j == 0 || CanonicalJSON.precedes(members[j - 1].key, key) {
                    members.append(JSONObject.Member(key: key, value: value))
                } else {
                    var lo = 0
                    var hi = members.count
                    while lo < hi {
                        let mid = (lo + hi) / 2
                        if CanonicalJSON.precedes(members[mid].key, key) { lo = mid + 1 } else { hi = mid }
                    }
                    j = lo
                    if members[j].key == key {
                        index = objectStart
                        throw error("duplicate member name \"\(key)\" in the object")
                    }
                    members.insert(JSONObject.Member(key: key, value: value), at: j)
                }
                skipWhitespace()
                guard index < end else { throw error("unexpected end of input in an object") }
                let b = byte(index)
                index += 1
                if b == UInt8(ascii: ",") { continue }
                if b == UInt8(ascii: "}") { return .object(JSONObject(sortedMembers: members)) }
                index -= 1
                throw error("unexpected \(describeCurrent()), expected ',' or '}'")
            }
        }

        mutating func array(depth: Int) throws(LedgerError) -> JSONValue {
            guard depth <= JSONParser.maxDepth else { throw error("nesting deeper than \(JSONParser.maxDepth)") }
            index += 1
            var elements: [JSONValue] = []
            skipWhitespace()
            if index < end && byte(index) == UInt8(ascii: "]") {
                index += 1
                return .array(elements)
            }
            while true {
                skipWhitespace()
                elements.append(try value(depth: depth))
                skipWhitespace()
                guard index < end else { throw error("unexpected end of input in an array") }
                let b = byte(index)
                index += 1
                if b == UInt8(ascii: ",") { continue }
                if b == UInt8(ascii: "]") { return .array(elements) }
                index -= 1
                throw error("unexpected \(describeCurrent()), expected ',' or ']'")
            }
        }

        mutating func string() throws(LedgerError) -> String {
            index += 1  // opening quote
            let start = index
            var ascii = true
            // Fast path: no escapes. Find the closing quote, noting non-ASCII bytes.
            while index < end {
                let b = byte(index)
                if b == UInt8(ascii: "\"") {
                    let bytes = UnsafeBufferPointer(start: base.unsafelyUnwrapped + start, count: index - start)
                    index += 1
                    if ascii { return String(decoding: bytes, as: UTF8.self) }
                    guard let s = String(validating: bytes, as: UTF8.self) else {
                        index = start
                        throw error("invalid UTF-8 in a string")
                    }
                    return s
                }
                if b == UInt8(ascii: "\\") { break }
                if b < 0x20 { throw error("unescaped control character 0x\(String(b, radix: 16)) in a string") }
                if b >= 0x80 { ascii = false }
                index += 1
            }
            guard index < end else { throw error("unterminated string") }
            // Slow path: escapes present.
            scratch.removeAll(keepingCapacity: true)
            scratch.append(contentsOf: UnsafeBufferPointer(start: base.unsafelyUnwrapped + start, count: index - start))
            while index < end {
                let b = byte(index)
                if b == UInt8(ascii: "\"") {
                    index += 1
                    guard let s = String(validating: scratch, as: UTF8.self) else {
                        throw error("invalid UTF-8 in a string")
                    }
                    return s
                }
                if b < 0x20 { throw error("unescaped control character 0x\(String(b, radix: 16)) in a string") }
                if b != UInt8(ascii: "\\") {
                    scratch.append(b)
                    index += 1
                    continue
                }
                index += 1
                guard index < end else { break }
                let e = byte(index)
                index += 1
                switch e {
                case UInt8(ascii: "\""): scratch.append(0x22)
                case UInt8(ascii: "\\"): scratch.append(0x5C)
                case UInt8(ascii: "/"): scratch.append(0x2F)
                case UInt8(ascii: "b"): scratch.append(0x08)
                case UInt8(ascii: "f"): scratch.append(0x0C)
                case UInt8(ascii: "n"): scratch.append(0x0A)
                case UInt8(ascii: "r"): scratch.append(0x0D)
                case UInt8(ascii: "t"): scratch.append(0x09)
                case UInt8(ascii: "u"):
                    var scalar = try hex4()
                    if scalar >= 0xD800 && scalar <= 0xDBFF {
                        guard end - index >= 6, byte(index) == UInt8(ascii: "\\"), byte(index + 1) == UInt8(ascii: "u")
                        else { throw error("lone high surrogate \\u\(String(scalar, radix: 16)) in a string") }
                        index += 2
                        let low = try hex4()
                        guard low >= 0xDC00 && low <= 0xDFFF else {
                            throw error("high surrogate not followed by a low surrogate in a string")
                        }
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    } else if scalar >= 0xDC00 && scalar <= 0xDFFF {
                        throw error("lone low surrogate \\u\(String(scalar, radix: 16)) in a string")
                    }
                    appendUTF8(scalar)
                default:
                    index -= 1
                    throw error("invalid escape \\\(describeCurrent()) in a string")
                }
            }
            throw error("unterminated string")
        }

        mutating func hex4() throws(LedgerError) -> UInt32 {
            guard end - index >= 4 else { throw error("truncated \\u escape") }
            var v: UInt32 = 0
            for _ in 0..<4 {
                let b = byte(index)
                let d: UInt32
                switch b {
                case UInt8(ascii: "0")...UInt8(ascii: "9"): d = UInt32(b - UInt8(ascii: "0"))
                case UInt8(ascii: "a")...UInt8(ascii: "f"): d = UInt32(b - UInt8(ascii: "a") + 10)
                case UInt8(ascii: "A")...UInt8(ascii: "F"): d = UInt32(b - UInt8(ascii: "A") + 10)
                default: throw error("invalid hex digit in \\u escape")
                }
                v = v << 4 | d
                index += 1
            }
            return v
        }

        mutating func appendUTF8(_ scalar: UInt32) {
            switch scalar {
            case 0..<0x80:
                scratch.append(UInt8(scalar))
            case 0x80..<0x800:
                scratch.append(UInt8(0xC0 | (scalar >> 6)))
                scratch.append(UInt8(0x80 | (scalar & 0x3F)))
            case 0x800..<0x10000:
                scratch.append(UInt8(0xE0 | (scalar >> 12)))
                scratch.append(UInt8(0x80 | ((scalar >> 6) & 0x3F)))
                scratch.append(UInt8(0x80 | (scalar & 0x3F)))
            default:
                scratch.append(UInt8(0xF0 | (scalar >> 18)))
                scratch.append(UInt8(0x80 | ((scalar >> 12) & 0x3F)))
                scratch.append(UInt8(0x80 | ((scalar >> 6) & 0x3F)))
                scratch.append(UInt8(0x80 | (scalar & 0x3F)))
            }
        }

        mutating func number() throws(LedgerError) -> Double {
            let start = index
            var negative = false
            if byte(index) == UInt8(ascii: "-") {
                negative = true
                index += 1
            }
            guard index < end, isDigit(byte(index)) else { throw error("invalid number") }
            var mantissa: UInt64 = 0
            var digits = 0
            if byte(index) == UInt8(ascii: "0") {
                index += 1
                if index < end && isDigit(byte(index)) { throw error("invalid number: leading zero") }
            } else {
                while index < end, isDigit(byte(index)) {
                    if digits < 19 { mantissa = mantissa &* 10 &+ UInt64(byte(index) - UInt8(ascii: "0")) }
                    digits += 1
                    index += 1
                }
            }
            var simple = true
            if index < end && byte(index) == UInt8(ascii: ".") {
                simple = false
                index += 1
                guard index < end, isDigit(byte(index)) else { throw error("invalid number: no digit after '.'") }
                while index < end, isDigit(byte(index)) { index += 1 }
            }
            if index < end && (byte(index) == UInt8(ascii: "e") || byte(index) == UInt8(ascii: "E")) {
                simple = false
                index += 1
                if index < end && (byte(index) == UInt8(ascii: "+") || byte(index) == UInt8(ascii: "-")) { index += 1 }
                guard index < end, isDigit(byte(index)) else { throw error("invalid number: no digit in exponent") }
                while index < end, isDigit(byte(index)) { index += 1 }
            }
            if simple && digits <= 15 {
                let v = Double(mantissa)
                return negative ? -v : v
            }
            // General case: the C library's correctly rounded conversion on a NUL-terminated copy.
            let length = index - start
            let value = withUnsafeTemporaryAllocation(of: CChar.self, capacity: length + 1) { tmp -> Double in
                for i in 0..<length { tmp[i] = CChar(bitPattern: byte(start + i)) }
                tmp[length] = 0
                return strtod(tmp.baseAddress!, nil)
            }
            guard value.isFinite else {
                index = start
                throw error("number out of the range of a double")
            }
            return value
        }

        @inline(__always) func isDigit(_ b: UInt8) -> Bool { b &- UInt8(ascii: "0") < 10 }
    }
}
