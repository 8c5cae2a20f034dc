#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A JSON text as a flat list of its values over the text's own bytes (a "tape"): the append
/// path's single pass, with no tree of boxed values and no string copied.
///
/// The tape is the fast path for the common request only, and it is *conservative*: it accepts
/// JSON whose strings are printable ASCII without escapes (what nearly every request is), and
/// answers "not here" for anything else — an escape, a byte ≥ 0x80, a control character, a
/// syntax error. The caller then takes the full path (``JSONParser`` and the tree), which gives
/// the same verdict for what the tape accepts and the precise error for what it does not. So the
/// tape never needs error messages, and a request is never judged by two different rules: the
/// differential tests hold the two paths to identical outputs.
///
/// Duplicate member names are found where an object is put in canonical order
/// (``writeCanonical(_:into:)``), which the append path does for every object of `data`; the
/// request object's own members are checked by the reader of the request.
public struct JSONTape {
    public enum Kind: UInt8 {
        case null, `false`, `true`, number, string, array, object
    }

    /// One value. Strings: `start`/`length` are the bytes between the quotes. Numbers: the text.
    /// Arrays and objects: `count` elements or members; an object's members follow it as key,
    /// value, key, value… `next` is the index of the entry after the value and all it holds.
    public struct Entry {
        public var kind: Kind
        /// Numbers: an integer of at most 15 digits (exact as a double, canonical as written).
        public var simple: Bool
        public var start: Int32
        public var length: Int32
        public var next: Int32
        public var count: Int32
    }

    /// A thread's entry buffer, reused from text to text (it grows to the largest text seen).
    public final class Storage: @unchecked Sendable {
        // @unchecked: one thread's scratch; never shared while a tape made from it is in use.
        fileprivate var entries: UnsafeMutablePointer<Entry>
        fileprivate var capacity: Int
        public init(capacity: Int = 64) {
            self.capacity = capacity
            entries = .allocate(capacity: capacity)
        }
        deinit { entries.deallocate() }
    }

    private let base: UnsafePointer<UInt8>
    private let entries: UnsafeMutablePointer<Entry>
    /// Number of entries.
    public let count: Int

    fileprivate init(base: UnsafePointer<UInt8>, entries: UnsafeMutablePointer<Entry>, count: Int) {
        self.base = base
        self.entries = entries
        self.count = count
    }

    /// Parses `buffer` (which must stay valid while the tape is used) into `storage`; nil when
    /// the text is not one the tape takes (see the type's note), which includes every invalid
    /// text.
    public static func parse(_ buffer: UnsafeRawBufferPointer, storage: Storage) -> JSONTape? {
        guard buffer.count < Int(Int32.max), let p = buffer.baseAddress?.assumingMemoryBound(to: UInt8.self) else {
            return nil
        }
        var parser = Parser(base: p, end: buffer.count, entries: storage.entries, capacity: storage.capacity)
        let ok = parser.run()
        storage.entries = parser.entries
        storage.capacity = parser.capacity
        guard ok else { return nil }
        return JSONTape(base: p, entries: parser.entries, count: parser.count)
    }

    // MARK: reading

    @inline(__always) public subscript(_ i: Int) -> Entry { entries[i] }

    /// The bytes of a string entry (between its quotes) or a number's text.
    @inline(__always) public func bytes(_ i: Int) -> UnsafeBufferPointer<UInt8> {
        let e = entries[i]
        return UnsafeBufferPointer(start: base + Int(e.start), count: Int(e.length))
    }

    /// A string entry as a `String` (ASCII, so no validation is needed).
    public func string(_ i: Int) -> String { String(decoding: bytes(i), as: UTF8.self) }

    /// Whether string entry `i` is exactly `text`.
    @inline(__always) public func equals(_ i: Int, _ text: UnsafeBufferPointer<UInt8>) -> Bool {
        let e = entries[i]
        guard Int(e.length) == text.count else { return false }
        return text.count == 0 || memcmp(base + Int(e.start), text.baseAddress!, text.count) == 0
    }

    /// The value of a number entry; nil when it is not finite as a double (the full path refuses it).
    public func number(_ i: Int) -> Double? {
        let e = entries[i]
        let p = base + Int(e.start)
        let n = Int(e.length)
        if e.simple {
            var k = 0
            var negative = false
            if p[0] == UInt8(ascii: "-") {
                negative = true
                k = 1
            }
            var mantissa: UInt64 = 0
            while k < n {
                mantissa = mantissa &* 10 &+ UInt64(p[k] &- 0x30)
                k += 1
            }
            let v = Double(mantissa)
            return negative ? -v : v
        }
        let value = withUnsafeTemporaryAllocation(of: CChar.self, capacity: n + 1) { tmp -> Double in
            for k in 0..<n { tmp[k] = CChar(bitPattern: p[k]) }
            tmp[n] = 0
            return strtod(tmp.baseAddress!, nil)
        }
        return value.isFinite ? value : nil
    }

    /// The member of object entry `object` named `name`: the index of its value.
    public func member(_ object: Int, _ name: UnsafeBufferPointer<UInt8>) -> Int? {
        let e = entries[object]
        guard e.kind == .object else { return nil }
        var k = object + 1
        for _ in 0..<Int(e.count) {
            if equals(k, name) { return k + 1 }
            k = Int(entries[k + 1].next)
        }
        return nil
    }

    // MARK: canonical form

    /// Appends the RFC 8785 form of entry `i`; false when an object repeats a member name or a
    /// number is not finite (the full path then says which).
    public func writeCanonical(_ i: Int, into w: ByteWriter) -> Bool {
        let e = entries[i]
        switch e.kind {
        case .null: w.append("null")
        case .false: w.append("false")
        case .true: w.append("true")
        case .string:
            // Printable ASCII without `"` or `\`: RFC 8785 writes it as it is.
            w.reserve(Int(e.length) + 2)
            w.append(0x22)
            w.append(UnsafeRawBufferPointer(bytes(i)))
            w.append(0x22)
        case .number:
            if e.simple && !(e.length == 2 && base[Int(e.start)] == UInt8(ascii: "-") && base[Int(e.start) + 1] == UInt8(ascii: "0")) {
                // An integer below 10^15 is its own shortest form (leading zeros are not JSON);
                // only -0 is written 0.
                w.append(UnsafeRawBufferPointer(bytes(i)))
            } else {
                guard let v = number(i) else { return false }
                CanonicalJSON.writeFiniteNumber(v, into: w)
            }
        case .array:
            w.append(UInt8(ascii: "["))
            var k = i + 1
            for n in 0..<Int(e.count) {
                if n > 0 { w.append(UInt8(ascii: ",")) }
                guard writeCanonical(k, into: w) else { return false }
                k = Int(entries[k].next)
            }
            w.append(UInt8(ascii: "]"))
        case .object:
            let count = Int(e.count)
            if count == 0 {
                w.append("{}")
                return true
            }
            return withUnsafeTemporaryAllocation(of: Int32.self, capacity: count) { keys -> Bool in
                // The members' key entries, put in canonical order: for ASCII names, byte order
                // is UTF-16 order. Insertion sort: objects are small and often nearly sorted.
                var k = i + 1
                for n in 0..<count {
                    var j = n
                    while j > 0 && keyOrder(k, Int(keys[j - 1])) < 0 {
                        keys[j] = keys[j - 1]
                        j -= 1
                    }
                    keys[j] = Int32(k)
                    k = Int(entries[k + 1].next)
                }
                w.append(UInt8(ascii: "{"))
                for n in 0..<count {
                    let key = Int(keys[n])
                    if n > 0 {
                        guard keyOrder(Int(keys[n - 1]), key) < 0 else { return false }  // a duplicate name
                        w.append(UInt8(ascii: ","))
                    }
                    _ = writeCanonical(key, into: w)
                    w.append(UInt8(ascii: ":"))
                    guard writeCanonical(key + 1, into: w) else { return false }
                }
                w.append(UInt8(ascii: "}"))
                return true
            }
        }
        return true
    }

    /// Byte order of two string entries (negative, zero, positive).
    @inline(__always) private func keyOrder(_ a: Int, _ b: Int) -> Int {
        let x = entries[a]
        let y = entries[b]
        let n = Int(min(x.length, y.length))
        if n > 0 {
            let c = memcmp(base + Int(x.start), base + Int(y.start), n)
            if c != 0 { return Int(c) }
        }
        return Int(x.length) - Int(y.length)
    }
}

/// The tape's single pass: a struct on the caller's stack (no dynamic exclusivity checks, no
/// reference counting in the loop).
private struct Parser {
    let base: UnsafePointer<UInt8>
    let end: Int
    var entries: UnsafeMutablePointer<JSONTape.Entry>
    var capacity: Int
    var count = 0

    init(base: UnsafePointer<UInt8>, end: Int, entries: UnsafeMutablePointer<JSONTape.Entry>, capacity: Int) {
        self.base = base
        self.end = end
        self.entries = entries
        self.capacity = capacity
    }

    mutating func run() -> Bool {
        var i = skipWhitespace(0)
        guard value(&i, depth: 0) else { return false }
        i = skipWhitespace(i)
        return i == end
    }


    @inline(__always) func byte(_ i: Int) -> UInt8 { base[i] }

    @inline(__always) func skipWhitespace(_ from: Int) -> Int {
        var i = from
        while i < end {
            let b = byte(i)
            guard b == 0x20 || b == 0x0A || b == 0x0D || b == 0x09 else { break }
            i += 1
        }
        return i
    }

    mutating func value(_ i: inout Int, depth: Int) -> Bool {
        guard i < end else { return false }
        switch byte(i) {
        case UInt8(ascii: "\""): return string(&i)
        case UInt8(ascii: "{"): return container(&i, depth: depth + 1, isObject: true)
        case UInt8(ascii: "["): return container(&i, depth: depth + 1, isObject: false)
        case UInt8(ascii: "t"): return literal(&i, "true", .true)
        case UInt8(ascii: "f"): return literal(&i, "false", .false)
        case UInt8(ascii: "n"): return literal(&i, "null", .null)
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return number(&i)
        default: return false
        }
    }

    @inline(__always) mutating func push(_ kind: JSONTape.Kind, start: Int, length: Int, simple: Bool = false) -> Int {
        if count == capacity {
            let grown = UnsafeMutablePointer<JSONTape.Entry>.allocate(capacity: capacity * 2)
            grown.moveInitialize(from: entries, count: count)
            entries.deallocate()
            entries = grown
            capacity *= 2
        }
        let index = count
        (entries + index).initialize(to: JSONTape.Entry(kind: kind, simple: simple, start: Int32(start), length: Int32(length), next: Int32(index + 1), count: 0))
        count += 1
        return index
    }

    mutating func literal(_ i: inout Int, _ word: StaticString, _ kind: JSONTape.Kind) -> Bool {
        let n = word.utf8CodeUnitCount
        guard end - i >= n, memcmp(base + i, word.utf8Start, n) == 0 else { return false }
        _ = push(kind, start: i, length: n)
        i += n
        return true
    }

    mutating func string(_ i: inout Int) -> Bool {
        let start = i + 1
        var k = start
        // Eight bytes at a time while none of them ends the string or needs the full path: a
        // quote, a backslash, a control character (< 0x20) or a non-ASCII byte (≥ 0x80).
        let ones: UInt64 = 0x0101_0101_0101_0101
        while k + 8 <= end {
            let x = UInt64(littleEndian: UnsafeRawPointer(base + k).loadUnaligned(as: UInt64.self))
            let quote = x ^ (ones &* 0x22)
            let backslash = x ^ (ones &* 0x5C)
            let stop = ((quote &- ones) & ~quote) | ((backslash &- ones) & ~backslash) | ((x &- ones &* 0x20) & ~x) | x
            if stop & (ones &* 0x80) != 0 { break }
            k += 8
        }
        while k < end {
            let b = byte(k)
            if b == 0x22 {
                _ = push(.string, start: start, length: k - start)
                i = k + 1
                return true
            }
            // An escape, a control character or a non-ASCII byte: the full path's.
            if b == 0x5C || b &- 0x20 >= 0x60 { return false }
            k += 1
        }
        return false
    }

    mutating func number(_ i: inout Int) -> Bool {
        let start = i
        var k = i
        if byte(k) == UInt8(ascii: "-") { k += 1 }
        guard k < end, isDigit(byte(k)) else { return false }
        var digits = 0
        if byte(k) == UInt8(ascii: "0") {
            k += 1
            if k < end && isDigit(byte(k)) { return false }
        } else {
            while k < end, isDigit(byte(k)) {
                digits += 1
                k += 1
            }
        }
        var simple = true
        if k < end && byte(k) == UInt8(ascii: ".") {
            simple = false
            k += 1
            guard k < end, isDigit(byte(k)) else { return false }
            while k < end, isDigit(byte(k)) { k += 1 }
        }
        if k < end && (byte(k) == UInt8(ascii: "e") || byte(k) == UInt8(ascii: "E")) {
            simple = false
            k += 1
            if k < end && (byte(k) == UInt8(ascii: "+") || byte(k) == UInt8(ascii: "-")) { k += 1 }
            guard k < end, isDigit(byte(k)) else { return false }
            while k < end, isDigit(byte(k)) { k += 1 }
        }
        let index = push(.number, start: start, length: k - start, simple: simple && digits <= 15)
        if !entries[index].simple {
            // Out of a double's range: the full path's error.
            guard JSONTape(base: base, entries: entries, count: count).number(index) != nil else { return false }
        }
        i = k
        return true
    }

    @inline(__always) func isDigit(_ b: UInt8) -> Bool { b &- UInt8(ascii: "0") < 10 }

    /// An array or an object (`isObject`): its entry, then its elements or members.
    mutating func container(_ i: inout Int, depth: Int, isObject: Bool) -> Bool {
        guard depth <= JSONParser.maxDepth else { return false }
        let close = isObject ? UInt8(ascii: "}") : UInt8(ascii: "]")
        let index = push(isObject ? .object : .array, start: i, length: 0)
        var k = skipWhitespace(i + 1)
        var members: Int32 = 0
        if k < end && byte(k) == close {
            i = k + 1
            return true
        }
        while true {
            k = skipWhitespace(k)
            if isObject {
                guard k < end, byte(k) == UInt8(ascii: "\""), string(&k) else { return false }
                k = skipWhitespace(k)
                guard k < end, byte(k) == UInt8(ascii: ":") else { return false }
                k = skipWhitespace(k + 1)
            }
            guard value(&k, depth: depth) else { return false }
            members += 1
            k = skipWhitespace(k)
            guard k < end else { return false }
            let b = byte(k)
            k += 1
            if b == UInt8(ascii: ",") { continue }
            guard b == close else { return false }
            entries[index].count = members
            entries[index].next = Int32(count)
            i = k
            return true
        }
    }
}
