import Testing
import LedgerCore
import LedgerTestSupport

@Suite struct TimestampTests {
    @Test func roundTripsAndOrders() throws {
        let t = try #require(Timestamp("2026-11-30T12:34:56.789Z"))
        #expect(t.description == "2026-11-30T12:34:56.789Z")
        #expect(Timestamp("1970-01-01T00:00:00.000Z")?.milliseconds == 0)
        #expect(Timestamp("2000-03-01T00:00:00.000Z")!.milliseconds - Timestamp("2000-02-28T00:00:00.000Z")!.milliseconds == 2 * 86_400_000)
        #expect(t.startOfDay.description == "2026-11-30T00:00:00.000Z")
        var rng = SeededGenerator(seed: 3)
        for _ in 0..<2000 {
            let ms = Int64(rng.next() % 253_402_300_799_999)  // up to 9999-12-31
            let text = Timestamp(milliseconds: ms).description
            #expect(Timestamp(text)?.milliseconds == ms, "\(text)")
        }
    }

    @Test(arguments: [
        "2026-02-29T00:00:00.000Z", "2026-13-01T00:00:00.000Z", "2026-04-31T00:00:00.000Z",
        "2026-11-30T24:00:00.000Z", "2026-11-30T12:00:00Z", "2026-11-30T12:00:00.000+00:00", "2026-11-30 12:00:00.000Z",
    ])
    func refusesWhatIsNotAnInstant(text: String) {
        #expect(Timestamp(text) == nil)
    }

    @Test func acceptsLeapDay() { #expect(Timestamp("2028-02-29T23:59:59.999Z") != nil) }
}

@Suite struct IdentifierTests {
    @Test func eventIDsRoundTripLowercaseOnly() throws {
        let text = "0b6f0c51-3c1e-4e0f-9a4d-2f7f2b0c9e11"
        let id = try #require(EventID(text))
        #expect(id.description == text)
        #expect(EventID(text.uppercased()) == nil)
        #expect(EventID("0b6f0c513c1e4e0f9a4d2f7f2b0c9e11") == nil)
        let random = EventID.random()
        #expect(random.description.dropFirst(14).first == "4")
        #expect(EventID(random.description) == random)
    }

    /// The parser against a plain reference: every id with one byte replaced by any other byte is
    /// accepted exactly when the reference accepts it, with the same value.
    @Test func eventIDParsingAgreesWithAReference() {
        var rng = SeededGenerator(defaultSeed: 36)
        func reference(_ bytes: [UInt8]) -> EventID? {
            guard bytes.count == 36 else { return nil }
            var digits: [UInt64] = []
            for (i, c) in bytes.enumerated() {
                if [8, 13, 18, 23].contains(i) {
                    guard c == UInt8(ascii: "-") else { return nil }
                } else if let v = "0123456789abcdef".utf8.firstIndex(of: c) {
                    digits.append(UInt64("0123456789abcdef".utf8.distance(from: "0123456789abcdef".utf8.startIndex, to: v)))
                } else {
                    return nil
                }
            }
            return EventID(high: digits[0..<16].reduce(0) { $0 << 4 | $1 }, low: digits[16..<32].reduce(0) { $0 << 4 | $1 })
        }
        for _ in 0..<20_000 {
            var bytes = Array(EventID.random(using: &rng).description.utf8)
            bytes[Int(rng.next() % 36)] = UInt8(truncatingIfNeeded: rng.next())
            let text = String(decoding: bytes, as: UTF8.self)
            let expected = String(decoding: bytes, as: UTF8.self).utf8.elementsEqual(bytes) ? reference(bytes) : nil
            #expect(EventID(text) == expected, "\(text): \(rng.note)")
        }
    }

    /// RFC 9562 appendix A.4: UUIDv5 of "www.example.com" in the DNS namespace.
    @Test func nameBasedMatchesRFC9562() throws {
        let dns = try #require(EventID("6ba7b810-9dad-11d1-80b4-00c04fd430c8"))
        #expect(EventID.nameBased(namespace: dns, name: "www.example.com").description == "2ed6657d-e927-568b-95e1-2665a8aea6a2")
    }

    @Test func hashHexRoundTrips() throws {
        let h = Hash256.of(Array("abc".utf8))
        #expect(h.description == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(Hash256(hex: h.description) == h)
        #expect(Hash256(hex: h.description.uppercased()) == nil)
        #expect(Hash256.zero.description == String(repeating: "0", count: 64))
    }
}

@Suite struct PatternTests {
    @Test(arguments: [
        ("^[A-Za-z0-9._:-]{1,128}$(?!\\n)", "gpu-a100_01.x:y", true),
        ("^[A-Za-z0-9._:-]{1,128}$(?!\\n)", "abc\n", false),
        ("^[A-Za-z0-9._:-]{1,128}$(?!\\n)", "", false),
        ("^[A-Za-z0-9._:-]{1,128}$(?!\\n)", String(repeating: "a", count: 129), false),
        ("^[A-Za-z0-9._:-]{1,128}$(?!\\n)", "héllo", false),
        ("^(0[1-9]|1[0-2])$", "12", true),
        ("^(0[1-9]|1[0-2])$", "13", false),
        ("^[a-z]*a$", "banana", true),
        ("^[a-z]*a$", "bananb", false),
        ("b+", "aaabaaa", true),
        ("^x(?=y)", "xy", true),
        ("^x(?=y)", "xz", false),
        ("^[^a]{2}$", "éé", true),
        ("^a{2,}?b$", "aaab", true),
        ("^(ab)+$", "ababab", true),
        ("^(ab)+$", "ababa", false),
        ("^\\d\\w\\s$", "1_ ", true),
        ("^[\\u0041-\\u0043]$", "B", true),
    ])
    func matchesLikeECMAScript(pattern: String, input: String, expected: Bool) throws {
        #expect(try Pattern(pattern).matches(input) == expected)
    }

    @Test(arguments: ["(?<name>a)", "a\\1", "(?<=a)b", "\\p{L}", "a**", "(a", "[a", "a{2,1}", "(a*)*"])
    func refusesWhatItDoesNotImplement(pattern: String) {
        #expect(throws: LedgerError.self) { try Pattern(pattern) }
    }
}
