import Foundation
import Testing
import LedgerCore
import LedgerLog
import LedgerProcessors

/// The processors' decisions are a function of the input log: the demo (client events played
/// with the processors deciding), a replay of its client events from empty, and a replay killed
/// with SIGKILL again and again and resumed from the processors' snapshots give byte-identical
/// logs; a processor killed between deciding and appending, restarted, writes each decision
/// exactly once. Every processor is in the comparison, the gate included.
@Suite(.serialized) struct ProcessorDeterminismTests {
    /// The client events of a simulated week, as a Replay/ scenario (processors: all).
    static func scenario(days: Int, strategy: String = "best-effort") throws -> (TemporaryDirectory, demoLog: String) {
        let demo = TemporaryDirectory("ledger-determinism-demo")
        let run = try ledger(["demo", "--days", String(days), "--strategy", strategy, "--data-dir", demo.path + "/d"])
        try #require(run.status == 0, "\(run.stderr)")
        let export = try ledger(["read", "--data-dir", demo.path + "/d"])
        var lines: [String] = []
        var decisions = 0
        for line in export.lines {
            let e = try JSONParser.parse(Array(line.utf8))
            if e["actor"]?.stringValue?.hasPrefix("processor:") == true {
                decisions += 1
                continue
            }
            var o = e.objectValue!
            for key in ["offset", "version", "prevHash", "hash"] { o[key] = nil }
            lines.append(String(decoding: try CanonicalJSON.encode(.object(o)), as: UTF8.self))
        }
        try #require(decisions > 1000, "the demo's processors decided too little: \(decisions)")
        try (lines.joined(separator: "\n") + "\n").write(toFile: demo.path + "/events.ndjson", atomically: true, encoding: .utf8)
        try #"{"processors": "all", "checks": []}"#.write(toFile: demo.path + "/scenario.json", atomically: true, encoding: .utf8)
        return (demo, export.stdout)
    }

    /// Both queueing strategies: the demo's days with every team on StrictFIFO replay to the same
    /// bytes too (the default week, BestEffortFIFO, is the test below).
    @Test func theStrictWeekReplaysByteIdentical() throws {
        let (dir, demoLog) = try Self.scenario(days: 2, strategy: "strict")
        #expect(demoLog.contains(#""queueingStrategy":"StrictFIFO""#))
        #expect(!demoLog.contains(#""queueingStrategy":"BestEffortFIFO""#))
        let fresh = dir.path + "/fresh"
        let a = try ledger(["replay", dir.path, "--data-dir", fresh])
        try #require(a.status == 0, "\(a.stderr)")
        #expect(try ledger(["read", "--data-dir", fresh]).stdout == demoLog)
    }

    @Test func replayWithKillsAndRestartsIsByteIdentical() throws {
        let (dir, demoLog) = try Self.scenario(days: 7)
        // From empty: the same bytes as the demo that made the scenario.
        let fresh = dir.path + "/fresh"
        let a = try ledger(["replay", dir.path, "--data-dir", fresh])
        try #require(a.status == 0, "\(a.stderr)")
        let freshLog = try ledger(["read", "--data-dir", fresh]).stdout
        #expect(freshLog == demoLog)
        // The gate is among the processors compared: the week's policy passes promotions and
        // denies one, and the rollout it denied is rolled back with the gate's reasons.
        #expect(demoLog.contains(#""result":"passed""#) && demoLog.contains(#""result":"denied""#))
        #expect(demoLog.contains("gate denied by policy production-promotion v1: classification"))
        // Killed at seeded points, resumed each time from the processors' snapshots.
        let killed = dir.path + "/killed"
        var rng = SeededGenerator(defaultSeed: 7001)
        var kills = 0
        var sizes: [UInt64] = []
        func logBytes() -> UInt64 {
            let segments = killed + "/segments"
            return ((try? FileManager.default.contentsOfDirectory(atPath: segments)) ?? []).reduce(0) {
                $0 + ((try? FileManager.default.attributesOfItem(atPath: segments + "/" + $1)[.size] as? UInt64) ?? 0)
            }
        }
        // Each run is killed (SIGKILL, through the runner's fault point) right before the
        // processors' k-th append of that run, k drawn from the seeded generator: the kill points
        // are chosen, not left to the machine's speed.
        var points: [Int] = []
        for _ in 0..<12 {
            let k = Int.random(in: 1...4000, using: &rng)
            points.append(k)
            let run = try ledger(
                ["replay", dir.path, "--data-dir", killed, "--resume", "--snapshot-every", String(Int.random(in: 50...700, using: &rng))],
                environment: ["LEDGER_FAULT_KILL_BEFORE_APPEND": String(k)])
            if run.status != 0 { kills += 1 }
            sizes.append(logBytes())
        }
        let finish = try ledger(["replay", dir.path, "--data-dir", killed, "--resume"])
        try #require(finish.status == 0, "\(finish.stderr)")
        #expect(kills >= 8, "kill points \(points), \(rng.note)")
        #expect(Set(sizes).count >= 5)  // the kills landed at different points
        let killedLog = try ledger(["read", "--data-dir", killed]).stdout
        #expect(killedLog.count == freshLog.count)
        #expect(killedLog == freshLog, "kill points \(points), \(rng.note)")
    }

    @Test func aProcessorKilledBetweenDecidingAndAppendingDecidesEachThingOnce() throws {
        let (dir, _) = try Self.scenario(days: 2)
        let clean = dir.path + "/clean"
        let faulty = dir.path + "/faulty"
        for d in [clean, faulty] {
            let r = try ledger(["import", "--preserve-time", "--data-dir", d, dir.path + "/events.ndjson"])
            try #require(r.status == 0, "\(r.stderr)")
        }
        try #require(try ledger(["process", "--data-dir", clean]).status == 0)
        // Killed right before its 1st, 2nd, 4th, 6th … append: decided, not yet written.
        var killedRuns = 0
        for k in [0, 1, 3, 5, 8, 12] {
            let r = try ledger(["process", "--data-dir", faulty, "--snapshot-every", "1", "--chunk", "2000"], environment: ["LEDGER_FAULT_KILL_BEFORE_APPEND": String(k)])
            if r.status != 0 { killedRuns += 1 }
        }
        #expect(killedRuns >= 4)
        try #require(try ledger(["process", "--data-dir", faulty, "--chunk", "2000"]).status == 0)
        let again = try ledger(["process", "--data-dir", faulty])
        #expect(again.status == 0)
        // Each decision exactly once: no two decisions for the same (processor, trigger, index),
        // and every id is the derived one.
        var seen: Set<String> = []
        var decisions = 0
        for line in try ledger(["read", "--data-dir", faulty]).lines {
            let e = try JSONParser.parse(Array(line.utf8))
            guard let actor = e["actor"]?.stringValue, actor.hasPrefix("processor:") else { continue }
            decisions += 1
            let key = "\(e["type"]!.stringValue!) \(e["stream"]!.stringValue!) \(CanonicalJSON.encodeString(e["data"]!)) \(e["causationId"]!.stringValue!)"
            #expect(!seen.contains(key), "decided twice: \(key.prefix(200))")
            seen.insert(key)
        }
        #expect(decisions > 1000)
        // And the decisions are the clean run's, once each.
        func decisionSet(_ d: String) throws -> Set<String> {
            Set(try ledger(["decisions", "--format", "brief", "--data-dir", d]).lines.map { line in
                var o = try! JSONParser.parse(Array(line.utf8)).objectValue!
                o["offset"] = nil
                return CanonicalJSON.encodeString(.object(o))
            })
        }
        #expect(try decisionSet(faulty) == decisionSet(clean))
        #expect(try LogReader(directory: faulty).head == LogReader(directory: clean).head)
    }
}

extension CanonicalJSON {
    static func encodeString(_ v: JSONValue) -> String { String(decoding: (try? encode(v)) ?? [], as: UTF8.self) }
}

@Suite struct ProcessorCLITests {
    @Test func processRefusesADirectoryWithoutALogAndCreatesNothing() throws {
        let dir = TemporaryDirectory("ledger-process-none")
        let missing = dir.path + "/nothing-here"
        let run = try ledger(["process", "--data-dir", missing])
        #expect(run.status == 1)
        #expect(run.stderr.contains("error: not_found: there is no ledger in"))
        #expect(!FileManager.default.fileExists(atPath: missing))
    }

    @Test func explainWalksARollbackBackToTheObservations() throws {
        let dir = TemporaryDirectory("ledger-explain")
        let out = dir.path + "/out"
        let replay = try ledger(["replay", repositoryRoot.appending(path: "Replay/rollout-drift-rollback").path, "--data-dir", out])
        try #require(replay.status == 0, "\(replay.stderr)")
        let decisions = try ledger(["decisions", "--type", "rollout.rolled_back", "--format", "brief", "--data-dir", out]).lines
        try #require(decisions.count == 1)
        let offset = try JSONParser.parse(Array(decisions[0].utf8))["offset"]!.intValue!
        let explain = try ledger(["explain", String(offset), "--format", "json", "--data-dir", out])
        #expect(explain.status == 0)
        let chain = try JSONParser.parse(Array(explain.stdout.utf8))["chain"]!.arrayValue!
        // rollback ← drift alert ← the histogram observation, each with offset and hash.
        #expect(chain.map { $0["type"]!.stringValue! } == ["rollout.rolled_back", "drift.alerted", "feature.histogram.observed"])
        #expect(chain.allSatisfy { ($0["hash"]?.stringValue?.count ?? 0) == 64 })
        #expect(chain[1]["evidence"]!.arrayValue!.allSatisfy { $0["offset"]?.intValue != nil })
        let bad = try ledger(["explain", "999999", "--data-dir", out])
        #expect(bad.status == 1 && bad.stderr.contains("not_found"))
    }
}
