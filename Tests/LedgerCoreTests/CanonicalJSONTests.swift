import Foundation
import Testing
import LedgerCore

@Suite struct CanonicalJSONTests {
    /// RFC 8785 section 3.2.2 example, and appendix B's number samples.
    @Test func rfc8785Examples() throws {
        let input = #"{"numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001], "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/", "literals": [null, true, false]}"#
        let expected = #"{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\u000f\nA'B\"\\\\\"/"}"#
        #expect(try canonical(input) == expected)
    }

    /// RFC 8785 section 3.2.3: sorting by UTF-16 code units.
    @Test func sortsByUTF16CodeUnits() throws {
        let input = #"{"\u20ac": "Euro Sign", "\r": "Carriage Return", "\ufb33": "Hebrew Letter Dalet With Dagesh", "1": "One", "\ud83d\ude00": "Emoji: Grinning Face", "\u0080": "Control", "\u00f6": "Latin Small Letter O With Diaeresis"}"#
        let value = try parse(input)
        let keys = CanonicalJSON.sortedMembers(value.objectValue!).map(\.key)
        #expect(keys == ["\r", "1", "\u{80}", "ö", "€", "😀", "\u{fb33}"])
    }

    @Test func escapesOnlyWhatJCSEscapes() throws {
        #expect(try canonical(#""\u0000\u0008\u0009\u000a\u000c\u000d\u001f/é""#) == #""\u0000\b\t\n\f\r\u001f/é""#)
    }

    /// Every vector was printed by ECMAScript itself (node's `String(x)`), from a double's bits.
    @Test func numbersMatchECMAScript() throws {
        let text = try String(contentsOf: fixture("es-number-vectors.txt"), encoding: .utf8)
        var checked = 0
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: " ")
            let value = Double(bitPattern: UInt64(parts[0], radix: 16)!)
            var out: [UInt8] = []
            try CanonicalJSON.writeNumber(value, into: &out)
            #expect(String(decoding: out, as: UTF8.self) == String(parts[1]), "bits \(parts[0])")
            checked += 1
        }
        #expect(checked > 3000)
    }

    @Test func minusZeroIsZeroAndNonFiniteIsRefused() throws {
        #expect(try canonical("-0") == "0")
        #expect(throws: LedgerError.self) { try CanonicalJSON.encode(.number(.infinity)) }
        #expect(throws: LedgerError.self) { try CanonicalJSON.encode(.number(.nan)) }
    }

    /// Property: canonical text parses back to an equal value, and canonicalising is idempotent.
    @Test func roundTripsRandomValues() throws {
        var rng = SeededGenerator(seed: 7)
        for _ in 0..<500 {
            let value = randomValue(&rng, depth: 0)
            let bytes = try CanonicalJSON.encode(value)
            let back = try JSONParser.parse(bytes)
            #expect(back == value)
            #expect(try CanonicalJSON.encode(back) == bytes)
        }
    }

    func randomValue(_ rng: inout SeededGenerator, depth: Int) -> JSONValue {
        switch rng.next() % (depth > 3 ? 4 : 6) {
        case 0: return .null
        case 1: return .bool(rng.next() % 2 == 0)
        case 2:
            let bits = rng.next()
            let d = Double(bitPattern: bits)
            return .number(d.isFinite ? d : Double(Int64(bitPattern: bits) >> 12))
        case 3:
            let scalars: [Character] = ["a", "Z", "0", "\"", "\\", "\n", "\u{1}", "é", "€", "😀", "\u{fb33}", " "]
            return .string(String((0..<Int(rng.next() % 8)).map { _ in scalars[Int(rng.next() % UInt64(scalars.count))] }))
        case 4: return .array((0..<Int(rng.next() % 4)).map { _ in randomValue(&rng, depth: depth + 1) })
        default:
            var o = JSONObject()
            for i in 0..<Int(rng.next() % 5) {
                let key = ["b", "a", "€", "😀", "\u{fb33}", "aa", "A"][Int(rng.next() % 7)] + String(i)
                o[key] = randomValue(&rng, depth: depth + 1)
            }
            return .object(o)
        }
    }
}
