import LedgerCore

/// The top-level members of the `data` object of a stored envelope, located in its canonical
/// JSON without building a `JSONValue` tree: what the projector reads for its most frequent event
/// types. Stored envelopes are canonical and CRC-checked, so the layout is known; anything
/// unexpected (an escape in a string, say) returns nil and the caller parses the envelope instead.
struct CanonicalFields {
    private let json: UnsafeRawBufferPointer
    private var keys: [(Int, Int)] = []     // byte ranges of member names (without quotes)
    private var values: [(Int, Int)] = []   // byte ranges of member values (strings without quotes)
    private var kinds: [UInt8] = []         // first byte of each value

    /// Locates `"data":{…}` after the envelope's leading members and indexes its members.
    init?(_ json: UnsafeRawBufferPointer) {
        self.json = json
        let marker = Array(",\"data\":{".utf8)
        // data follows actor, causationId, correlationId: within the first few hundred bytes.
        var i = 10
        var found = -1
        while i + marker.count <= min(json.count, 600) {
            if json[i] == 0x2C && json[i + 1] == 0x22 && json[i + 2] == 0x64
                && UnsafeRawBufferPointer(rebasing: json[i..<(i + marker.count)]).elementsEqual(marker)
            {
                found = i + marker.count
                break
            }
            i += 1
        }
        guard found > 0 else { return nil }
        var p = found
        if p < json.count && json[p] == 0x7D { return }  // {}
        keys.reserveCapacity(8)
        values.reserveCapacity(8)
        while p < json.count {
            guard json[p] == 0x22 else { return nil }
            let keyStart = p + 1
            p = keyStart
            while p < json.count && json[p] != 0x22 {
                if json[p] == 0x5C { return nil }
                p += 1
            }
            guard p + 1 < json.count, json[p + 1] == 0x3A else { return nil }
            keys.append((keyStart, p))
            p += 2
            guard p < json.count else { return nil }
            let first = json[p]
            kinds.append(first)
            if first == 0x22 {
                let start = p + 1
                p = start
                while p < json.count && json[p] != 0x22 {
                    if json[p] == 0x5C { return nil }
                    p += 1
                }
                values.append((start, p))
                p += 1
            } else if first == 0x7B || first == 0x5B {
                let start = p
                guard let end = CanonicalFields.skipComposite(json, from: p) else { return nil }
                values.append((start, end))
                p = end
            } else {
                let start = p
                while p < json.count && json[p] != 0x2C && json[p] != 0x7D { p += 1 }
                values.append((start, p))
            }
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

    private func find(_ key: StaticString) -> Int? {
        let k = UnsafeRawBufferPointer(start: key.utf8Start, count: key.utf8CodeUnitCount)
        for (i, r) in keys.enumerated() where r.1 - r.0 == k.count {
            if UnsafeRawBufferPointer(rebasing: json[r.0..<r.1]).elementsEqual(k) { return i }
        }
        return nil
    }

    func string(_ key: StaticString) -> String? {
        guard let i = find(key), kinds[i] == 0x22 else { return nil }
        return String(decoding: UnsafeRawBufferPointer(rebasing: json[values[i].0..<values[i].1]), as: UTF8.self)
    }

    /// The raw JSON text of a member (for columns that keep structured values).
    func raw(_ key: StaticString) -> String? {
        guard let i = find(key) else { return nil }
        if kinds[i] == 0x22 {
            return "\"" + String(decoding: UnsafeRawBufferPointer(rebasing: json[values[i].0..<values[i].1]), as: UTF8.self) + "\""
        }
        return String(decoding: UnsafeRawBufferPointer(rebasing: json[values[i].0..<values[i].1]), as: UTF8.self)
    }

    func int(_ key: StaticString) -> Int? {
        guard let i = find(key) else { return nil }
        var v = 0
        var negative = false
        var p = values[i].0
        if p < values[i].1 && json[p] == 0x2D {
            negative = true
            p += 1
        }
        guard p < values[i].1 else { return nil }
        while p < values[i].1 {
            let d = Int(json[p]) - 48
            guard d >= 0 && d <= 9 else { return double(key).flatMap { $0 == $0.rounded() ? Int($0) : nil } }
            v = v * 10 + d
            p += 1
        }
        return negative ? -v : v
    }

    func double(_ key: StaticString) -> Double? {
        guard let i = find(key) else { return nil }
        let text = String(decoding: UnsafeRawBufferPointer(rebasing: json[values[i].0..<values[i].1]), as: UTF8.self)
        return Double(text)
    }
}
