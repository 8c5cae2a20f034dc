#if canImport(Glibc)
import Glibc
#endif
import LedgerCore

/// The top-level members of the `data` object of a stored envelope, located in its canonical
/// JSON without building a `JSONValue` tree: what the projector reads for its most frequent event
/// types. Stored envelopes are canonical and CRC-checked, so the layout is known; anything
/// unexpected (an escape in a string, say) returns nil and the caller parses the envelope instead.
struct CanonicalFields {
    private let json: UnsafeRawBufferPointer
    /// Each member: the byte ranges of its name and value (without the quotes of strings) and
    /// the value's first byte. One array, one allocation, per event.
    private struct Member {
        var keyStart, keyEnd, valueStart, valueEnd: Int32
        var kind: UInt8
    }
    private var members: [Member] = []

    /// Locates `"data":{…}` after the envelope's leading members and indexes its members.
    init?(_ json: UnsafeRawBufferPointer) {
        self.json = json
        // data follows actor, causationId, correlationId: within the first few hundred bytes.
        let marker: StaticString = ",\"data\":{"
        let window = min(json.count, 600)
        guard window > 10, let hit = glibcMemmem(json.baseAddress! + 10, window - 10, marker.utf8Start, marker.utf8CodeUnitCount) else { return nil }
        var p = json.baseAddress!.distance(to: UnsafeRawPointer(hit)) + marker.utf8CodeUnitCount
        if p < json.count && json[p] == 0x7D { return }  // {}
        members.reserveCapacity(12)
        while p < json.count {
            guard json[p] == 0x22 else { return nil }
            let keyStart = p + 1
            p = keyStart
            while p < json.count && json[p] != 0x22 {
                if json[p] == 0x5C { return nil }
                p += 1
            }
            guard p + 1 < json.count, json[p + 1] == 0x3A else { return nil }
            let keyEnd = p
            p += 2
            guard p < json.count else { return nil }
            let first = json[p]
            let valueStart: Int, valueEnd: Int
            if first == 0x22 {
                valueStart = p + 1
                p = valueStart
                while p < json.count && json[p] != 0x22 {
                    if json[p] == 0x5C { return nil }
                    p += 1
                }
                valueEnd = p
                p += 1
            } else if first == 0x7B || first == 0x5B {
                valueStart = p
                guard let end = CanonicalFields.skipComposite(json, from: p) else { return nil }
                p = end
                valueEnd = end
            } else {
                valueStart = p
                while p < json.count && json[p] != 0x2C && json[p] != 0x7D { p += 1 }
                valueEnd = p
            }
            members.append(Member(keyStart: Int32(keyStart), keyEnd: Int32(keyEnd), valueStart: Int32(valueStart), valueEnd: Int32(valueEnd), kind: first))
            guard p < json.count else { return nil }
            if json[p] == 0x7D { return }
            guard json[p] == 0x2C else { return nil }
            p += 1
        }
        return nil
    }

    /// The end (exclusive) of the object or array starting at `from`.
    static func skipComposite(_ json: UnsafeRawBufferPointer, from: Int) -> Int? {
        var depth = 0
        var p = from
        var inString = false
        while p < json.count {
            let c = json[p]
            if inString {
                if c == 0x5C { p += 1 } else if c == 0x22 { inString = false }
            } else if c == 0x22 {
                inString = true
            } else if c == 0x7B || c == 0x5B {
                depth += 1
            } else if c == 0x7D || c == 0x5D {
                depth -= 1
                if depth == 0 { return p + 1 }
            }
            p += 1
        }
        return nil
    }

    /// The value's byte range and first byte.
    private func find(_ key: StaticString) -> (start: Int, end: Int, kind: UInt8)? {
        let count = key.utf8CodeUnitCount
        for m in members where Int(m.keyEnd - m.keyStart) == count {
            if memcmp(json.baseAddress! + Int(m.keyStart), key.utf8Start, count) == 0 { return (Int(m.valueStart), Int(m.valueEnd), m.kind) }
        }
        return nil
    }

    func string(_ key: StaticString) -> String? {
        guard let v = find(key), v.kind == 0x22 else { return nil }
        return String(decoding: UnsafeRawBufferPointer(rebasing: json[v.start..<v.end]), as: UTF8.self)
    }

    /// A string member in the exact timestamp form, in milliseconds.
    func timestamp(_ key: StaticString) -> Int64? {
        guard let v = find(key), v.kind == 0x22 else { return nil }
        return Timestamp.parse(UnsafeBufferPointer(start: json.baseAddress!.assumingMemoryBound(to: UInt8.self) + v.start, count: v.end - v.start))?.milliseconds
    }

    /// The raw JSON text of a member (for columns that keep structured values).
    func raw(_ key: StaticString) -> String? {
        guard let v = find(key) else { return nil }
        if v.kind == 0x22 {
            return "\"" + String(decoding: UnsafeRawBufferPointer(rebasing: json[v.start..<v.end]), as: UTF8.self) + "\""
        }
        return String(decoding: UnsafeRawBufferPointer(rebasing: json[v.start..<v.end]), as: UTF8.self)
    }

    func int(_ key: StaticString) -> Int? {
        guard let m = find(key) else { return nil }
        var v = 0
        var negative = false
        var p = m.start
        if p < m.end && json[p] == 0x2D {
            negative = true
            p += 1
        }
        guard p < m.end else { return nil }
        while p < m.end {
            let d = Int(json[p]) - 48
            guard d >= 0 && d <= 9 else { return double(key).flatMap { $0 == $0.rounded() ? Int($0) : nil } }
            v = v * 10 + d
            p += 1
        }
        return negative ? -v : v
    }

    func double(_ key: StaticString) -> Double? {
        guard let v = find(key) else { return nil }
        let text = String(decoding: UnsafeRawBufferPointer(rebasing: json[v.start..<v.end]), as: UTF8.self)
        return Double(text)
    }
}

/// glibc's memmem (a GNU extension the Glibc module does not export).
@_silgen_name("memmem")
private func glibcMemmem(_ haystack: UnsafeRawPointer, _ haystackCount: Int, _ needle: UnsafeRawPointer, _ needleCount: Int) -> UnsafeMutableRawPointer?
