import Foundation
import Testing
import LedgerCore
import LedgerLog
import LedgerSimulator
@testable import LedgerProjections

/// The FOCUS export passes the FinOps Foundation's own validator (focus-validator 2.2.1, FOCUS 1.2
/// rules) on a simulated week with prices, idle, shareIdle, an unpriced row and a correction.
@Suite struct FocusExportTests {
    /// `shared/tools/focus-validate`, beside the repository.
    static let validator = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().appending(path: "shared/tools/focus-validate").path

    @Test func simulatedWeekPassesTheValidator() async throws {
        let s = try await ReconciliationTests.simulate(seed: 11, days: 3)
        // An unpriced GPU type, and a price correction of a closed day.
        // (The simulation's last jobs end on day 3; these come after them.)
        try await s.add(t("12:00", day: 4), "node.registered", ["node": "t4-node-1", "gpuType": "t4", "gpuCount": 4])
        try await s.add(t("12:30", day: 4), "job.queued", ["job": "unpriced-job", "team": "vision", "gpuType": "t4", "gpus": 2, "priority": 0])
        try await s.add(t("12:30", day: 4), "gpu.allocated", ["job": "unpriced-job", "node": "t4-node-1", "gpuType": "t4", "gpus": 2, "team": "vision"], actor: "processor:scheduler")
        try await s.add(t("13:00", day: 4), "price.set", ["gpuType": "a100", "hourlyRate": 2.75, "effectiveFrom": .string(t("06:00", day: 1))])
        try await s.add(t("23:59", day: 4), "job.started", ["job": "clock"])
        let q = try s.query()
        let options = Chargeback.Options(from: Timestamp(t("00:00"))!, to: Timestamp(t("00:00", day: 5))!, groupBy: [.team, .gpuType, .day], shareIdle: true)
        let report = try Chargeback.report(q, options)
        #expect(report.rows.contains { $0.missingPrice })
        #expect(report.rows.contains { $0.chargeClass == .correction })
        #expect(report.rows.contains { $0.team == Chargeback.idleTeam })
        #expect(report.rows.contains { $0.idleShare > 0 })
        let csv = report.focus()
        #expect(csv.contains(",Correction,"))
        #expect(csv.contains(",true\n"))  // x_MissingPrice
        let file = s.dir.path + "/focus.csv"
        try csv.write(toFile: file, atomically: true, encoding: .utf8)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.validator)
        process.arguments = [file]
        let out = Pipe()
        process.standardOutput = out
        process.standardError = out
        try process.run()
        let output = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationStatus == 0, "focus-validate: \(output.suffix(2000))")
        #expect(output.contains("FOCUS 1.2 conformant"))
    }
}
