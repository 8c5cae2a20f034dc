import Foundation
import LedgerCore
import LedgerLog
import Testing

/// The CLI as a new user meets it: times as people write them, --to dates that include the day,
/// replays of a bare export, progress only on a terminal.
@Suite struct QueryOptionsTests {
    /// A node of 8 A100 at $2/h from 2026-11-23T00:00Z, and an event on 2026-11-26 so that three
    /// days are seen: every whole day is 8 × 24 × 2 = $384 of idle.
    static func pricedPool() throws -> TemporaryDirectory {
        let dir = TemporaryDirectory("ledger-times")
        let lines = [
            #"{"id":"\#(EventID.random())","stream":"node-n1","type":"node.registered","time":"2026-11-23T00:00:00.000Z","actor":"user:ops","data":{"node":"n1","gpuType":"a100","gpuCount":8}}"#,
            #"{"id":"\#(EventID.random())","stream":"pricing-a100","type":"price.set","time":"2026-11-23T00:00:00.000Z","actor":"user:ops","data":{"gpuType":"a100","hourlyRate":2,"effectiveFrom":"2026-11-23T00:00:00.000Z"}}"#,
            #"{"id":"\#(EventID.random())","stream":"job-x","type":"job.cancelled","time":"2026-11-26T00:00:00.000Z","actor":"user:ops","data":{"job":"x"}}"#,
        ]
        try (lines.joined(separator: "\n") + "\n").write(toFile: dir.path + "/in.ndjson", atomically: true, encoding: .utf8)
        let run = try ledger(["import", "--preserve-time", "--data-dir", dir.path + "/d", dir.path + "/in.ndjson"])
        #expect(run.status == 0, "\(run.stderr)")
        return dir
    }

    func total(_ dir: TemporaryDirectory, _ args: [String]) throws -> Double? {
        let run = try ledger(["chargeback", "--data-dir", dir.path + "/d", "--format", "json"] + args)
        #expect(run.status == 0, "\(args): \(run.stderr)")
        return try JSONParser.parse(Array(run.stdout.utf8))["totals"]?.arrayValue?.first?["total"]?.doubleValue
    }

    @Test func chargebackToADateIncludesTheDayAndATimeIsExclusive() throws {
        let dir = try Self.pricedPool()
        #expect(try total(dir, ["--from", "2026-11-23", "--to", "2026-11-23"]) == 384)
        #expect(try total(dir, ["--from", "2026-11-23", "--to", "2026-11-24"]) == 768)
        #expect(try total(dir, ["--from", "2026-11-23", "--to", "2026-11-24T00:00:00Z"]) == 384)
        // RFC 3339 as people write it: fractions of any length, offsets.
        #expect(try total(dir, ["--from", "2026-11-23T01:00:00+01:00", "--to", "2026-11-24T12:00:00.5Z"]) == 576)
        #expect(try total(dir, ["--from", "2026-11-23t00:00:00z", "--to", "2026-11-23T12:00:00.000000Z"]) == 192)
        let bad = try ledger(["chargeback", "--data-dir", dir.path + "/d", "--from", "2026-11-23", "--to", "2026-02-30"])
        #expect(bad.status != 0)
        #expect(bad.stderr.contains("2026-02-30"))
    }

    /// Two GPU types priced in two currencies: the table prints one total per currency (it added
    /// them into one number before), as the JSON and CSV exports do.
    @Test func chargebackTotalsAreKeptPerCurrency() throws {
        let dir = TemporaryDirectory("ledger-currencies")
        let lines = [
            #"{"id":"\#(EventID.random())","stream":"node-n1","type":"node.registered","time":"2026-11-23T00:00:00.000Z","actor":"user:ops","data":{"node":"n1","gpuType":"a100","gpuCount":8}}"#,
            #"{"id":"\#(EventID.random())","stream":"pricing-a100","type":"price.set","time":"2026-11-23T00:00:00.000Z","actor":"user:ops","data":{"gpuType":"a100","hourlyRate":2,"effectiveFrom":"2026-11-23T00:00:00.000Z"}}"#,
            #"{"id":"\#(EventID.random())","stream":"node-n2","type":"node.registered","time":"2026-11-23T00:00:00.000Z","actor":"user:ops","data":{"node":"n2","gpuType":"l4","gpuCount":4}}"#,
            #"{"id":"\#(EventID.random())","stream":"pricing-l4","type":"price.set","time":"2026-11-23T00:00:00.000Z","actor":"user:ops","data":{"gpuType":"l4","hourlyRate":1.5,"currency":"EUR","effectiveFrom":"2026-11-23T00:00:00.000Z"}}"#,
            #"{"id":"\#(EventID.random())","stream":"job-x","type":"job.cancelled","time":"2026-11-24T00:00:00.000Z","actor":"user:ops","data":{"job":"x"}}"#,
        ]
        try (lines.joined(separator: "\n") + "\n").write(toFile: dir.path + "/in.ndjson", atomically: true, encoding: .utf8)
        let imported = try ledger(["import", "--preserve-time", "--data-dir", dir.path + "/d", dir.path + "/in.ndjson"])
        #expect(imported.status == 0, "\(imported.stderr)")
        // A day of idle: 8 × 24 × 2 = 384 USD and 4 × 24 × 1.5 = 144 EUR.
        let table = try ledger(["chargeback", "--data-dir", dir.path + "/d", "--from", "2026-11-23", "--to", "2026-11-23"])
        #expect(table.status == 0, "\(table.stderr)")
        #expect(table.lines.last?.hasPrefix("total 144.00 EUR + 384.00 USD (") == true, "\(table.stdout)")
        let json = try ledger(["chargeback", "--data-dir", dir.path + "/d", "--format", "json", "--from", "2026-11-23", "--to", "2026-11-23"])
        let totals = try JSONParser.parse(Array(json.stdout.utf8))["totals"]?.arrayValue ?? []
        #expect(totals.map { $0["currency"]?.stringValue ?? "" } == ["EUR", "USD"])
        #expect(totals.map { $0["total"]?.doubleValue ?? 0 } == [144, 384])
    }

    @Test func asOfTakesDatesAndRFC3339() throws {
        let dir = try Self.pricedPool()
        func asOf(_ text: String) throws -> Int? {
            let run = try ledger(["registry", "models", "--data-dir", dir.path + "/d", "--format", "json", "--as-of", text])
            #expect(run.status == 0, "\(text): \(run.stderr)")
            return try JSONParser.parse(Array(run.stdout.utf8))["asOf"]?["offset"]?.intValue
        }
        #expect(try asOf("2026-11-23") == 1)  // the end of that day: both events of the 23rd
        #expect(try asOf("2026-11-25T23:59:59.999+00:00") == 1)
        #expect(try asOf("2026-11-26T00:00:00Z") == 2)
        #expect(try asOf("0") == 0)
    }

    @Test func replayOfABareExportRunsTheProcessors() throws {
        let dir = TemporaryDirectory("ledger-bare-replay")
        let events = [
            #"{"id":"\#(EventID.random())","stream":"node-n1","type":"node.registered","time":"2026-11-23T00:00:00.000Z","actor":"user:ops","data":{"node":"n1","gpuType":"a100","gpuCount":8}}"#,
            #"{"id":"\#(EventID.random())","stream":"team-vision","type":"quota.set","time":"2026-11-23T00:00:00.000Z","actor":"user:ops","data":{"team":"vision","gpuType":"a100","nominal":8}}"#,
            #"{"id":"\#(EventID.random())","stream":"job-j1","type":"job.queued","time":"2026-11-23T00:00:01.000Z","actor":"svc:ci","data":{"job":"j1","team":"vision","gpuType":"a100","gpus":4,"priority":1}}"#,
        ]
        try FileManager.default.createDirectory(atPath: dir.path + "/export", withIntermediateDirectories: true)
        try (events.joined(separator: "\n") + "\n").write(toFile: dir.path + "/export/events.ndjson", atomically: true, encoding: .utf8)
        let run = try ledger(["replay", dir.path + "/export", "--data-dir", dir.path + "/out"])
        #expect(run.status == 0, "\(run.stderr)")
        let types = try ledger(["read", "--data-dir", dir.path + "/out"]).lines.map { try JSONParser.parse(Array($0.utf8))["type"]?.stringValue }
        #expect(types == ["node.registered", "quota.set", "job.queued", "job.admitted", "gpu.allocated"])
        let check = try ledger(["replay", dir.path + "/export", "--check"])
        #expect(check.status != 0 && check.stderr.contains("no checks"))
    }

    /// Progress appears on a terminal (under `script`, which gives the command a pty) and never
    /// when standard error is a pipe.
    @Test func progressOnlyOnATerminal() throws {
        let dir = TemporaryDirectory("ledger-progress")
        let demo = try ledger(["demo", "--days", "1", "--data-dir", dir.path + "/d"])
        try #require(demo.status == 0)
        let piped = try ledger(["verify", "--data-dir", dir.path + "/d"])
        #expect(piped.status == 0)
        #expect(!piped.stderr.contains("verify:"))
        let tty = try runProgram("script", ["-qec", "\(ledgerBinary) verify --data-dir \(dir.path)/d", "/dev/null"])
        #expect(tty.status == 0)
        #expect(tty.stdout.contains("\r"))
        #expect(tty.stdout.contains(" events ("))
        #expect(tty.stdout.contains("verify: ok"))
    }
}
