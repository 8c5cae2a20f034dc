import Foundation
@_exported import LedgerTestSupport
import LedgerCore


func fixture(_ name: String) -> URL {
    repositoryRoot.appending(path: "Tests/LedgerCoreTests/Fixtures/\(name)")
}

func parse(_ text: String) throws -> JSONValue { try JSONParser.parse(Array(text.utf8)) }

func canonical(_ text: String) throws -> String {
    String(decoding: try CanonicalJSON.encode(try parse(text)), as: UTF8.self)
}

