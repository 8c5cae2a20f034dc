import Foundation
import Testing

/// Every Replay/ scenario passes `ledger replay --check`, and a wrong expectation is caught with its place.
@Suite struct ReplayTests {
    static var scenarios: [String] {
        let root = repositoryRoot.appending(path: "Replay").path
        return ((try? FileManager.default.contentsOfDirectory(atPath: root)) ?? [])
            .filter { FileManager.default.fileExists(atPath: root + "/" + $0 + "/scenario.json") }.sorted()
    }

    @Test func thereAreAtLeastSevenScenarios() {
        #expect(Self.scenarios.count >= 7)
    }

    @Test(arguments: ReplayTests.scenarios)
    func scenarioMatchesItsExpectations(name: String) throws {
        let run = try ledger(["replay", repositoryRoot.appending(path: "Replay/\(name)").path, "--check"])
        #expect(run.status == 0, "\(run.stdout)\(run.stderr)")
        #expect(run.stdout.contains("all ") && run.stdout.contains("checks match"))
    }

    @Test func aDifferenceIsReportedWithItsPlace() throws {
        let scratch = TemporaryDirectory("ledger-replay-copy")
        let copy = scratch.path + "/idle-share"
        try FileManager.default.copyItem(atPath: repositoryRoot.appending(path: "Replay/idle-share").path, toPath: copy)
        let file = copy + "/expected/chargeback.json"
        let text = try String(contentsOfFile: file, encoding: .utf8)
        try text.replacing("\"cost\":72", with: "\"cost\":73").write(toFile: file, atomically: true, encoding: .utf8)
        let run = try ledger(["replay", copy, "--check"])
        #expect(run.status == 1)
        #expect(run.stdout.contains("FAIL chargeback.json"))
        #expect(run.stdout.contains("line 1, column"))
        #expect(run.stdout.contains("\"cost\":73"))
    }
}
