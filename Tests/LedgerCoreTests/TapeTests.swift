import Foundation
import Testing
@testable import LedgerCore

/// The append path's single pass (``JSONTape`` and ``EventPreparer/prepare(line:policy:tape:scratch:catalog:)``)
/// against the full path (``JSONParser``, ``AppendRequest/init(json:catalog:)``, the tree's
/// validator and canonical form): whatever the tape takes, it must prepare byte for byte what the
/// full path prepares; whatever the full path refuses, the tape must not take.
@Suite struct TapeTests {
    let catalog = EventCatalog.standard
    static let client = AppendPolicy(actor: "svc:tape-test")
    static let processor = AppendPolicy(actor: "processor:scheduler")

    /// Everything a prepared event carries, as text.
    func describe(_ e: PreparedEvent) -> String {
        "\(e.stream) \(e.type) v\(e.schemaVersion) id=\(e.id?.description ?? "-") expected=\(e.expectedVersion) "
            + "cause=\(e.causationId?.description ?? "-") corr=\(e.correlationId ?? "-") actor=\(e.actor) "
            + "time=\(e.time?.description ?? "-") notBefore=\(e.notBefore?.description ?? "-") "
            + "key=\(e.streamKey.0),\(e.streamKey.1) recorded=\(e.recorded == nil ? "-" : "yes") head=\(String(decoding: e.head.bytes, as: UTF8.self))"
    }

    /// The full path, as `ledger append` took every line before the tape.
    func tree(_ line: [UInt8], _ policy: AppendPolicy) -> Result<[String], LedgerError> {
        do {
            let value = try JSONParser.parse(line)
            let items: [JSONValue]
            if case .array(let a) = value {
                guard !a.isEmpty else { return .failure(LedgerError(.invalidRequest, "empty")) }
                items = a
            } else {
                items = [value]
            }
            var requests: [AppendRequest] = []
            for item in items { requests.append(try AppendRequest(json: item)) }
            return EventPreparer.prepare(request: requests, policy: policy).map { $0.map(describe) }
        } catch {
            return .failure(LedgerError.wrap(error))
        }
    }

    func tape(_ line: [UInt8], _ policy: AppendPolicy, _ storage: JSONTape.Storage) -> [String]? {
        line.withUnsafeBytes { EventPreparer.prepare(line: $0, policy: policy, tape: storage, scratch: ByteWriter(capacity: 64)) }?.map(describe)
    }

    /// Checks one line both ways; true when the tape took it. `valid` counts the lines the full
    /// path prepares.
    @discardableResult
    func agree(_ line: [UInt8], _ policy: AppendPolicy, _ storage: JSONTape.Storage, _ note: String, valid: inout Int) -> Bool {
        let full = tree(line, policy)
        if case .success = full { valid += 1 }
        guard let fast = tape(line, policy, storage) else {
            // The tape leaves escapes and non-ASCII text to the full path, and nothing else that is valid.
            if case .success = full, !line.contains(0x5C), line.allSatisfy({ $0 < 0x80 }) {
                Issue.record("\(note): a valid ASCII line without escapes the tape did not take: \(String(decoding: line, as: UTF8.self))")
            }
            return false
        }
        switch full {
        case .success(let events):
            #expect(fast == events, "\(note): \(String(decoding: line, as: UTF8.self))")
        case .failure(let error):
            Issue.record("\(note): the tape took a line the full path refuses (\(error.message)): \(String(decoding: line, as: UTF8.self))")
        }
        return true
    }

    /// JSON text of `value` as a client might write it: members in any order, whitespace, numbers
    /// and strings in their other legal spellings.
    func render(_ value: JSONValue, _ rng: inout SeededGenerator) -> String {
        func space() -> String { Int.random(in: 0..<6, using: &rng) == 0 ? [" ", "\n", "\t", "  ", "\r\n"].randomElement(using: &rng)! : "" }
        switch value {
        case .null: return "null"
        case .bool(let b): return b ? "true" : "false"
        case .number(let n):
            let canonical = String(decoding: try! CanonicalJSON.encode(value), as: UTF8.self)
            switch Int.random(in: 0..<8, using: &rng) {
            case 0 where n == n.rounded(.towardZero) && abs(n) < 1e15: return canonical + ".0"
            case 1 where n == n.rounded(.towardZero) && abs(n) < 1e15: return canonical + "e0"
            case 2 where n == 0: return "-0"
            case 3 where n == n.rounded(.towardZero) && abs(n) < 1e15 && n != 0: return canonical + "00E-2"
            default: return canonical
            }
        case .string(let s):
            let canonical = String(decoding: try! CanonicalJSON.encode(value), as: UTF8.self)
            if !s.isEmpty && Int.random(in: 0..<10, using: &rng) == 0 {
                // One character as a \u escape.
                var scalars = Array(s.unicodeScalars)
                let i = Int.random(in: 0..<scalars.count, using: &rng)
                if scalars[i].value < 0x10000 && scalars[i] != "\\" && scalars[i] != "\"" {
                    let escaped = String(format: "\\u%04X", scalars[i].value)
                    scalars.remove(at: i)
                    var out = String(String.UnicodeScalarView(scalars[..<i]))
                    out += escaped + String(String.UnicodeScalarView(scalars[i...]))
                    return "\"" + out.replacingOccurrences(of: "\"", with: "\\\"") + "\""
                }
            }
            return canonical
        case .array(let a):
            return "[" + space() + a.map { render($0, &rng) }.joined(separator: "," + space()) + space() + "]"
        case .object(let o):
            var members = o.members
            members.shuffle(using: &rng)
            return "{" + space() + members.map { "\"\($0.key)\"" + space() + ":" + space() + render($0.value, &rng) }.joined(separator: space() + ",") + space() + "}"
        }
    }

    func examples() throws -> [String: JSONObject] { try SchemaTests().examples() }

    /// Requests of every catalog type: the example, its members mutated, the request's own
    /// members varied, in canonical and in client spellings, alone and in atomic arrays.
    @Test func theTapePreparesWhatTheFullPathPrepares() throws {
        var rng = SeededGenerator(defaultSeed: 20261203)
        let seedNote = rng.note
        let storage = JSONTape.Storage(capacity: 2)  // grows
        let examples = try examples()
        var requests: [JSONValue] = []
        for type in catalog.allTypes {
            let data = examples[type.name]!
            let stream = type.stream(for: data) ?? "x-1"
            var base: JSONObject = ["stream": .string(stream), "type": .string(type.name), "data": .object(data)]
            requests.append(.object(base))
            base["id"] = .string(EventID(high: rng.next(), low: rng.next()).description)
            requests.append(.object(base))
            for (key, value) in [("expectedVersion", JSONValue("no_stream")), ("expectedVersion", 3), ("expectedVersion", "exists"),
                ("expectedVersion", "any"), ("expectedVersion", 1.5), ("expectedVersion", -1), ("schemaVersion", 1), ("schemaVersion", 2),
                ("causationId", "7d2a1c9e-8b3f-4a6d-b1e2-5c4d3e2f1a00"), ("causationId", "7D2A1C9E-8B3F-4A6D-B1E2-5C4D3E2F1A00"),
                ("correlationId", "run:42"), ("correlationId", "run 42"), ("stream", "job-other"), ("stream", "Job-j1"),
                ("type", "no.such"), ("data", []), ("offset", 3), ("time", "2026-11-30T12:00:00.000Z")]
            {
                var o = base
                o[key] = value
                requests.append(.object(o))
            }
            for member in data.members {
                for replacement in SchemaTests().mutations(of: member.value) {
                    var d = data
                    d[member.key] = replacement
                    var o = base
                    o["data"] = .object(d)
                    requests.append(.object(o))
                }
                var d = data
                d[member.key] = nil
                var o = base
                o["data"] = .object(d)
                requests.append(.object(o))
            }
        }
        var lines = 0
        var valid = 0
        var taken = 0
        var takenFromClientSpelling = 0
        for (n, request) in requests.enumerated() {
            for policy in [Self.client, Self.processor] {
                let canonical = try CanonicalJSON.encode(request)
                for line in [canonical, Array(render(request, &rng).utf8)] {
                    lines += 1
                    if agree(line, policy, storage, "\(seedNote), request \(n)", valid: &valid) {
                        taken += 1
                        if line != canonical { takenFromClientSpelling += 1 }
                    }
                }
            }
            // Atomic requests of two.
            let other = requests[Int.random(in: 0..<requests.count, using: &rng)]
            let pair = Array(("[" + render(request, &rng) + "," + render(other, &rng) + "]").utf8)
            lines += 1
            if agree(pair, Self.processor, storage, "\(seedNote), pair \(n)", valid: &valid) { taken += 1 }
        }
        // Both ways, plenty: the tape takes every valid request without an escape or a non-ASCII
        // character (checked line by line above), and there are many the full path refuses.
        print("tape: \(taken) of \(lines) lines taken, \(valid) valid (\(takenFromClientSpelling) taken in client spellings)")
        #expect(taken * 10 > valid * 6, "\(seedNote)")
        #expect(takenFromClientSpelling > 100, "\(seedNote)")
        #expect(lines - taken > 1000, "\(seedNote)")
    }

    /// Lines with random bytes flipped, removed or inserted: the tape never takes what the full
    /// path refuses, and prepares the same events for what it takes.
    @Test func damagedLinesAreNeverTakenForSomethingElse() throws {
        var rng = SeededGenerator(defaultSeed: 77)
        let seedNote = rng.note
        let storage = JSONTape.Storage()
        let examples = try examples()
        let types = catalog.allTypes
        var taken = 0
        var valid = 0
        for n in 0..<20_000 {
            let type = types[Int.random(in: 0..<types.count, using: &rng)]
            let data = examples[type.name]!
            let request: JSONValue = ["stream": .string(type.stream(for: data) ?? "x-1"), "type": .string(type.name), "data": .object(data)]
            var line = Array(render(request, &rng).utf8)
            for _ in 0..<Int.random(in: 1...3, using: &rng) {
                let i = Int.random(in: 0..<line.count, using: &rng)
                switch Int.random(in: 0..<4, using: &rng) {
                case 0: line[i] = UInt8.random(in: 0...255, using: &rng)
                case 1: line.remove(at: i)
                case 2: line.insert(Array("\"{}[],:0-.e\\ \u{1}".utf8).randomElement(using: &rng)!, at: i)
                default: line[i] = Array("\"{}[],:0123456789-.eE\\ azAZ".utf8).randomElement(using: &rng)!
                }
            }
            if agree(line, Self.processor, storage, "\(seedNote), line \(n)", valid: &valid) { taken += 1 }
        }
        // Some damage leaves a valid request (a digit for a digit, a letter in a name).
        #expect(taken > 100, "\(seedNote)")
    }

    /// The tape's canonical form of random JSON values equals RFC 8785's from the tree.
    @Test func canonicalFormFromTheTapeEqualsTheTrees() throws {
        var rng = SeededGenerator(defaultSeed: 5)
        let seedNote = rng.note
        let storage = JSONTape.Storage()
        func randomValue(_ depth: Int) -> JSONValue {
            switch Int.random(in: 0..<(depth > 3 ? 4 : 7), using: &rng) {
            case 0: return .null
            case 1: return .bool(Bool.random(using: &rng))
            case 2:
                let forms: [Double] = [0, 1, -1, 0.5, 1e21, 1e-7, 123456789012345, 1234567890123456789, 0.1 + 0.2, -3.75e-300, 5e-324, 1.7976931348623157e308]
                return .number(Bool.random(using: &rng) ? forms.randomElement(using: &rng)! : Double(Int.random(in: -1_000_000...1_000_000, using: &rng)))
            case 3: return .string(["", "a", "job-7", "with space", "x_y.z:1", "~/"].randomElement(using: &rng)!)
            case 4, 5:
                var o = JSONObject()
                for _ in 0..<Int.random(in: 0..<6, using: &rng) {
                    o[["a", "b", "aa", "B", "a_b", "Z", "z", "ab", "", "10", "9"].randomElement(using: &rng)!] = randomValue(depth + 1)
                }
                return .object(o)
            default: return .array((0..<Int.random(in: 0..<4, using: &rng)).map { _ in randomValue(depth + 1) })
            }
        }
        var compared = 0
        for n in 0..<5_000 {
            let value = randomValue(0)
            let text = Array(render(value, &rng).utf8)
            let expected = try CanonicalJSON.encode(JSONParser.parse(text))
            let writer = ByteWriter(capacity: 16)
            let ok = text.withUnsafeBytes { raw -> Bool in
                guard let tape = JSONTape.parse(raw, storage: storage) else { return false }
                return tape.writeCanonical(0, into: writer)
            }
            if ok {
                compared += 1
                #expect(writer.array() == expected, "\(seedNote), value \(n): \(String(decoding: text, as: UTF8.self))")
            }
        }
        #expect(compared > 3_000, "\(seedNote)")
        // A repeated name is never written: the full path names it.
        let duplicate = Array(#"{"a":1,"b":{"x":1,"x":2}}"#.utf8)
        let ok = duplicate.withUnsafeBytes { raw in JSONTape.parse(raw, storage: storage).map { $0.writeCanonical(0, into: ByteWriter(capacity: 8)) } }
        #expect(ok == false)
    }

    /// The string scan reads eight bytes at a time: strings of every length from 0 to 40, with
    /// every byte value placed at every position (and the string ending at every distance from the
    /// end of the buffer), are taken exactly when the byte-by-byte rule takes them — printable
    /// ASCII and DEL, no quote inside, no backslash — and then span exactly their bytes.
    @Test func theStringScanAgreesWithTheByteRuleAtEveryPosition() throws {
        let storage = JSONTape.Storage()
        var checked = 0
        for length in 0...40 {
            for position in 0..<max(1, length) {
                for byte in UInt8.min...UInt8.max {
                    var content = [UInt8](repeating: UInt8(ascii: "a"), count: length)
                    if length > 0 { content[position] = byte }
                    let text = [0x22] + content + [0x22]
                    let byteRule = content.allSatisfy { $0 >= 0x20 && $0 < 0x80 && $0 != 0x22 && $0 != 0x5C }
                    let span: (Int, Int)? = text.withUnsafeBytes { raw in
                        guard let tape = JSONTape.parse(raw, storage: storage) else { return nil }
                        let b = tape.bytes(0)
                        return (b.baseAddress! - raw.baseAddress!.assumingMemoryBound(to: UInt8.self), b.count)
                    }
                    if byteRule {
                        #expect(span?.0 == 1 && span?.1 == length, "length \(length), byte \(byte) at \(position)")
                    } else {
                        // A quote ends the string early (the rest is then not JSON); anything else is the full path's.
                        #expect(span == nil, "length \(length), byte \(byte) at \(position) taken")
                    }
                    checked += 1
                }
            }
        }
        #expect(checked > 200_000)
    }
}
