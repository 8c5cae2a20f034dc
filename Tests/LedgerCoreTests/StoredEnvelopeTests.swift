import Testing
import LedgerCore
import LedgerTestSupport

/// `Envelope(stored:)` reads the writer's layout member by member; it must give exactly what the
/// general parser gives, and fall back to it for anything else.
@Suite struct StoredEnvelopeTests {
    static func randomEnvelope(_ rng: inout SeededGenerator) -> Envelope {
        func text(_ rng: inout SeededGenerator) -> String {
            let alphabet = Array("abc-XYZ_09 \"\\\u{1}é€😀/")
            return String((0..<Int(rng.next() % 12)).map { _ in alphabet[Int(rng.next() % UInt64(alphabet.count))] })
        }
        var data = JSONObject()
        for _ in 0..<Int(rng.next() % 5) {
            switch rng.next() % 4 {
            case 0: data[text(&rng)] = .string(text(&rng))
            case 1: data[text(&rng)] = .number(Double(Int64(rng.next() % 2_000_000) - 1_000_000) / 8)
            case 2: data[text(&rng)] = .array([.bool(true), .null, .object(["k": .string(text(&rng))])])
            default: data[text(&rng)] = .object([:])
            }
        }
        func hash(_ rng: inout SeededGenerator) -> Hash256 {
            Hash256.of((0..<8).map { _ in UInt8(truncatingIfNeeded: rng.next()) })
        }
        return Envelope(
            offset: Int64(rng.next() % 3 == 0 ? 0 : rng.next() % 1_000_000_000_000), id: EventID.random(),
            stream: "s-" + text(&rng), version: Int64(rng.next() % 100_000), type: "t." + text(&rng),
            schemaVersion: Int(1 + rng.next() % 3),
            time: Timestamp(milliseconds: Int64(rng.next() % 4_000_000_000_000)), actor: text(&rng),
            causationId: rng.next() % 2 == 0 ? EventID.random() : nil,
            correlationId: rng.next() % 2 == 0 ? text(&rng) : nil, data: data,
            prevHash: hash(&rng), hash: hash(&rng))
    }

    @Test func agreesWithTheGeneralParserOnStoredBytes() throws {
        var rng = SeededGenerator(defaultSeed: 9)
        for _ in 0..<3000 {
            let envelope = Self.randomEnvelope(&rng)
            let bytes = try envelope.canonicalBytes(includingHash: true)
            let general = try Envelope(json: try JSONParser.parse(bytes))
            let stored = try bytes.withUnsafeBytes { b throws(LedgerError) in try Envelope(stored: b) }
            #expect(general == envelope, "\(rng.note)")
            #expect(stored == general, "\(String(decoding: bytes, as: UTF8.self)) \(rng.note)")
        }
    }

    /// Other forms of the same envelope (whitespace, reordered members, an extra member, a number
    /// written as 1e0) are read by the general parser with the same result; broken ones fail
    /// with the general parser's error.
    @Test func otherFormsGiveTheGeneralParsersAnswer() throws {
        var rng = SeededGenerator(defaultSeed: 10)
        let envelope = Self.randomEnvelope(&rng)
        let canonical = String(decoding: try envelope.canonicalBytes(includingHash: true), as: UTF8.self)
        let variants = [
            canonical.replacingOccurrences(of: ",\"hash\":", with: ", \"hash\":"),
            "{\"zzz\":1," + canonical.dropFirst(),
            canonical.replacingOccurrences(of: "\"schemaVersion\":\(envelope.schemaVersion)", with: "\"schemaVersion\":\(envelope.schemaVersion).0"),
            "\n" + canonical,
        ]
        for v in variants {
            let bytes = Array(v.utf8)
            let stored = try bytes.withUnsafeBytes { b throws(LedgerError) in try Envelope(stored: b) }
            #expect(stored == envelope, "\(v)")
        }
        let broken = [
            canonical.replacingOccurrences(of: "\"prevHash\":\"", with: "\"prevHash\":\"x"),
            String(canonical.dropLast()),
            canonical.replacingOccurrences(of: "\"offset\":\(envelope.offset)", with: "\"offset\":-1"),
            canonical.replacingOccurrences(of: ",\"time\":", with: ",\"time\":1,\"time\":"),
        ]
        for v in broken {
            let bytes = Array(v.utf8)
            var general: LedgerError?
            do { _ = try Envelope(json: try JSONParser.parse(bytes)) } catch let e as LedgerError { general = e }
            var stored: LedgerError?
            do { _ = try bytes.withUnsafeBytes { b throws(LedgerError) in try Envelope(stored: b) } } catch let e as LedgerError { stored = e }
            #expect(general != nil, "\(v)")
            #expect(stored?.message == general?.message, "\(v)")
        }
    }
}
