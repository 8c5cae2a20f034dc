import Foundation
@_exported import LedgerTestSupport
import LedgerCore
import Logging
@testable import LedgerLog

/// A clock that starts at a fixed instant and moves only when told.
final class TestClock: @unchecked Sendable {
    private let lock = NSLock()
    private var ms: Int64
    init(_ start: String = "2026-11-30T12:00:00.000Z") { ms = Timestamp(start)!.milliseconds }
    func advance(_ delta: Int64) { lock.withLock { ms += delta } }
    var now: Timestamp { lock.withLock { Timestamp(milliseconds: ms) } }
}

func testOptions(clock: TestClock = TestClock()) -> LogOptions {
    var options = LogOptions()
    options.clock = { clock.now }
    // Recovery warnings are what the fault tests provoke on purpose (thousands of them); the
    // tests assert the outcome, so only errors are printed.
    options.logger.logLevel = .error
    return options
}

let user = AppendPolicy(actor: "user:test")
let admin = AppendPolicy(actor: "user:admin", mode: .admin)

func queued(_ job: String, team: String = "vision", gpus: Int = 2, id: EventID? = nil, expected: ExpectedVersion = .any) -> AppendRequest {
    AppendRequest(
        stream: "job-\(job)", type: "job.queued",
        data: ["job": .string(job), "team": .string(team), "gpuType": "a100", "gpus": .number(Double(gpus)), "priority": 1],
        id: id, expectedVersion: expected)
}

func started(_ job: String, id: EventID? = nil, expected: ExpectedVersion = .any) -> AppendRequest {
    AppendRequest(stream: "job-\(job)", type: "job.started", data: ["job": .string(job)], id: id, expectedVersion: expected)
}

/// Every event of a log, in order, as owned copies.
func readAll(_ cursor: LogCursor) throws -> [StoredEvent] {
    var out: [StoredEvent] = []
    while let view = try cursor.next() { out.append(view.stored()) }
    return out
}

/// All the bytes of every file under `path`, by relative path (for "left byte-identical").
func snapshot(_ path: String) throws -> [String: Data] {
    var out: [String: Data] = [:]
    let base = URL(fileURLWithPath: path)
    guard let walker = FileManager.default.enumerator(at: base, includingPropertiesForKeys: [.isRegularFileKey]) else { return out }
    for case let url as URL in walker {
        guard (try url.resourceValues(forKeys: [.isRegularFileKey])).isRegularFile == true else { continue }
        out[String(url.path.dropFirst(base.path.count))] = try Data(contentsOf: url)
    }
    return out
}

