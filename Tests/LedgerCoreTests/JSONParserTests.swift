import Testing
import LedgerCore

@Suite struct JSONParserTests {
    @Test func parsesEveryKindOfValue() throws {
        let v = try parse(#" { "a" : [1, -2.5e3, true, false, null, "x\u00e9\n"], "b": {} } "#)
        #expect(v["a"] == [1, -2500, true, false, nil, "xé\n"])
        #expect(v["b"] == .object(JSONObject()))
    }

    @Test(arguments: [
        ("", "end of input"),
        ("{", "end of input"),
        ("[1,]", "expected a value"),
        ("{\"a\":1,}", "member name"),
        ("01", "leading zero"),
        ("1.", "no digit after"),
        ("1e", "no digit in exponent"),
        ("-", "invalid number"),
        ("\"abc", "unterminated"),
        ("\"a\u{01}\"", "control character"),
        ("\"\\x\"", "invalid escape"),
        ("\"\\ud800\"", "lone high surrogate"),
        ("\"\\udc00\"", "lone low surrogate"),
        ("{\"a\":1,\"a\":2}", "duplicate member name"),
        ("1e400", "range of a double"),
        ("[1] 2", "after the JSON value"),
        ("tru", "literal"),
        ("nope", "expected a JSON value"),
        ("NaN", "expected a value"),
    ])
    func rejectsMalformedInput(text: String, fragment: String) {
        #expect {
            _ = try parse(text)
        } throws: { error in
            guard let e = error as? LedgerError else { return false }
            return e.code == .invalidJSON && e.message.contains(fragment)
        }
    }

    @Test func rejectsInvalidUTF8() {
        for bytes: [UInt8] in [[0x22, 0xFF, 0x22], [0x22, 0xC0, 0xAF, 0x22], [0x22, 0xED, 0xA0, 0x80, 0x22]] {
            #expect(throws: LedgerError.self) { try JSONParser.parse(bytes) }
        }
    }

    @Test func rejectsDeepNesting() {
        let deep = String(repeating: "[", count: 65) + String(repeating: "]", count: 65)
        #expect(throws: LedgerError.self) { try parse(deep) }
        let ok = String(repeating: "[", count: 64) + String(repeating: "]", count: 64)
        #expect(throws: Never.self) { try parse(ok) }
    }

    @Test func detectsDuplicatesInLargeObjects() throws {
        var members = (0..<100).map { "\"k\($0)\":\($0)" }
        #expect(throws: Never.self) { try parse("{" + members.joined(separator: ",") + "}") }
        members.append("\"k42\":0")
        #expect(throws: LedgerError.self) { try parse("{" + members.joined(separator: ",") + "}") }
    }

    @Test func decodesSurrogatePairs() throws {
        #expect(try parse(#""\ud83d\ude00""#) == "😀")
    }
}
