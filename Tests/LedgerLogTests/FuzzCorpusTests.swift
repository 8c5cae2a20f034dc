import Foundation
import Testing
import LedgerCore
import LedgerLog

/// The fuzz targets' kept corpus and every crash input `Tests/fuzz.sh` ever found, run through
/// the same properties (a broken property traps, failing the suite): what fuzzing found once
/// stays tested.
@Suite struct FuzzCorpusTests {
    static let targets: [(String, @Sendable (UnsafeRawBufferPointer) -> Void)] = [
        ("json", Fuzzing.json), ("canonical", Fuzzing.canonical), ("schema", Fuzzing.schema), ("batch", LogFuzzing.batch),
    ]

    func inputs(_ folder: String) throws -> [URL] {
        let dir = repositoryRoot.appending(path: "Tests/Fuzz/\(folder)")
        guard FileManager.default.fileExists(atPath: dir.path) else { return [] }
        return try FileManager.default.contentsOfDirectory(at: dir, includingPropertiesForKeys: nil).sorted { $0.path < $1.path }
    }

    @Test(arguments: ["json", "canonical", "schema", "batch"])
    func corpusAndCrashesKeepTheirProperties(target: String) throws {
        let check = try #require(Self.targets.first { $0.0 == target }?.1)
        let corpus = try inputs("corpus/\(target)")
        let crashes = try inputs("crashes/\(target)")
        #expect(corpus.count >= 3, "the corpus of \(target) is missing")
        for file in corpus + crashes {
            let bytes = try Data(contentsOf: file)
            bytes.withUnsafeBytes { check($0) }
        }
    }
}
