import Foundation
import Testing
import LedgerCore
import LedgerLog
@testable import LedgerProjections

@Suite struct ChargebackTests {
    func day(_ d: Int = 0, days: Int = 1) -> Chargeback.Options {
        let from = Timestamp("2026-11-23T00:00:00.000Z")!.adding(milliseconds: Int64(d) * 86_400_000)
        return Chargeback.Options(from: from, to: from.adding(milliseconds: Int64(days) * 86_400_000), groupBy: [.team, .gpuType])
    }

    /// Cost = GPUs × hours × rate, from allocation to release; idle = capacity − allocated, priced.
    @Test func allocationsAndIdle() async throws {
        let s = try ScenarioLog()
        try await pool(s, gpus: 8, rate: 2.5)
        try await allocate(s, "j1", team: "vision", gpus: 4, at: t("01:00"))
        try await release(s, "j1", team: "vision", gpus: 4, at: t("04:00"))
        try await s.add(t("00:00", day: 1), "job.started", ["job": "tick"])  // closes the day
        let r = try Chargeback.report(try s.query(), day())
        #expect(r.cost(team: "vision", kind: .usage) == dec("30"))      // 4 × 3 h × 2.5
        #expect(r.hours(team: "vision") == dec("12"))
        #expect(r.cost(team: Chargeback.idleTeam, kind: .idle) == dec("450"))  // (8 × 24 − 12) × 2.5
        #expect(r.cost() == dec("480"))                                  // capacity × price: 8 × 24 × 2.5
    }

    /// The query's end is the earliest of --to, the as-of point and the last event seen; an open
    /// interval is charged up to it.
    @Test func openIntervalsAreChargedToTheQueryEnd() async throws {
        let s = try ScenarioLog()
        try await pool(s, gpus: 8, rate: 1)
        try await allocate(s, "j1", team: "nlp", gpus: 2, at: t("02:00"))
        try await s.add(t("05:00"), "job.started", ["job": "j1"])
        let marker = try await s.add(t("07:30"), "job.started", ["job": "other"])
        var r = try Chargeback.report(try s.query(), day())
        #expect(r.end.description == t("07:30"))
        #expect(r.cost(team: "nlp") == dec("11"))  // 2 GPUs × 5.5 h
        r = try Chargeback.report(try s.query(.offset(marker.offset - 1)), day())
        #expect(r.cost(team: "nlp") == dec("6"))  // up to 05:00
        r = try Chargeback.report(try s.query(.time(Timestamp(t("06:00"))!)), day())
        #expect(r.cost(team: "nlp") == dec("6"))  // the ledger had seen time up to 05:00 only
        var options = day()
        options.to = Timestamp(t("04:00"))!
        r = try Chargeback.report(try s.query(), options)
        #expect(r.cost(team: "nlp") == dec("4"))
        #expect(r.end.description == t("04:00"))
    }

    /// An interval across a price change is split at effectiveFrom; equal effectiveFrom: the later in the log wins.
    @Test func priceChangesSplitIntervals() async throws {
        let s = try ScenarioLog()
        try await pool(s, gpus: 4, rate: 2)
        try await s.add(t("00:10"), "price.set", ["gpuType": "a100", "hourlyRate": 3, "effectiveFrom": .string(t("12:00"))])
        try await s.add(t("00:20"), "price.set", ["gpuType": "a100", "hourlyRate": 4, "effectiveFrom": .string(t("12:00"))])
        try await allocate(s, "j1", team: "vision", gpus: 1, at: t("10:00"))
        try await release(s, "j1", team: "vision", gpus: 1, at: t("14:00"))
        try await s.add(t("00:00", day: 1), "job.started", ["job": "tick"])
        let r = try Chargeback.report(try s.query(), day())
        #expect(r.cost(team: "vision") == dec("12"))   // 2 h × 2 + 2 h × 4
        #expect(r.cost() == dec("4") * dec("12") * dec("2") + dec("4") * dec("12") * dec("4"))  // capacity × price over the day
    }

    /// No price in force: the row is reported unpriced (cost null, missingPrice), never as zero.
    @Test func missingPricesAreFlagged() async throws {
        let s = try ScenarioLog()
        try await pool(s, gpuType: "h100", gpus: 8, rate: nil)
        try await s.add(t("00:00"), "price.set", ["gpuType": "h100", "hourlyRate": 5, "effectiveFrom": .string(t("06:00"))])
        try await allocate(s, "j1", team: "nlp", gpus: 2, at: t("04:00"), gpuType: "h100")
        try await release(s, "j1", team: "nlp", gpus: 2, at: t("08:00"), gpuType: "h100")
        try await s.add(t("00:00", day: 1), "job.started", ["job": "tick"])
        let r = try Chargeback.report(try s.query(), day())
        let usage = r.rows.filter { $0.team == "nlp" }
        #expect(usage.count == 2)
        let unpriced = try #require(usage.first { $0.missingPrice })
        #expect(unpriced.cost == nil)
        #expect(unpriced.gpuHours == dec("4"))
        let priced = try #require(usage.first { !$0.missingPrice })
        #expect(priced.cost == dec("20"))
        #expect(r.json.description.contains("\"missingPrice\":true"))
        #expect(r.rows.contains { $0.team == Chargeback.idleTeam && $0.missingPrice && $0.cost == nil })
    }

    /// Periods are UTC days: an interval across midnight is split there.
    @Test func intervalsAcrossMidnightAreSplit() async throws {
        let s = try ScenarioLog()
        try await pool(s, gpus: 8, rate: 1)
        try await allocate(s, "j1", team: "speech", gpus: 3, at: t("22:00"))
        try await release(s, "j1", team: "speech", gpus: 3, at: t("03:00", day: 1))
        try await s.add(t("00:00", day: 2), "job.started", ["job": "tick"])
        var options = day(0, days: 2)
        options.groupBy = [.team, .day]
        let r = try Chargeback.report(try s.query(), options)
        let speech = r.rows.filter { $0.team == "speech" }.sorted { $0.day! < $1.day! }
        #expect(speech.map(\.cost) == [dec("6"), dec("9")])
        #expect(speech.map { Timestamp(milliseconds: $0.day!).description } == [t("00:00"), t("00:00", day: 1)])
    }

    /// shareIdle distributes each gpuType and day's idle cost by allocated cost; it leaves the
    /// __idle__ row; idle with no priced allocation stays; unpriced allocations weigh nothing.
    @Test func shareIdle() async throws {
        let s = try ScenarioLog()
        try await pool(s, gpus: 10, rate: 1)
        try await pool(s, gpuType: "l4", gpus: 4, rate: 1)
        try await pool(s, gpuType: "t4", gpus: 2, rate: nil)
        try await allocate(s, "a", team: "vision", gpus: 3, at: t("00:00"))
        try await allocate(s, "b", team: "nlp", gpus: 1, at: t("00:00"))
        try await allocate(s, "u", team: "recsys", gpus: 2, at: t("00:00"), gpuType: "t4")
        try await s.add(t("00:00", day: 1), "job.started", ["job": "tick"])
        var options = day()
        options.shareIdle = true
        let r = try Chargeback.report(try s.query(), options)
        // a100: vision 72, nlp 24, idle 6 × 24 = 144 → vision gets 108, nlp 36.
        let vision = try #require(r.rows.first { $0.team == "vision" })
        let nlp = try #require(r.rows.first { $0.team == "nlp" })
        #expect(vision.cost == dec("72") && vision.idleShare == dec("108") && vision.total == dec("180"))
        #expect(nlp.idleShare == dec("36"))
        let idleA100 = try #require(r.rows.first { $0.team == Chargeback.idleTeam && $0.gpuType == "a100" })
        #expect((idleA100.cost ?? 0) + idleA100.idleShare == 0)
        // l4: nobody allocated: its idle stays __idle__.
        let idleL4 = try #require(r.rows.first { $0.team == Chargeback.idleTeam && $0.gpuType == "l4" })
        #expect(idleL4.cost == dec("96") && idleL4.idleShare == 0)
        // t4 is unpriced: nothing to distribute, nothing received.
        #expect(r.rows.first { $0.team == "recsys" }?.idleShare == 0)
        // No double counting: the total is the same with and without sharing.
        let plain = try Chargeback.report(try s.query(), day())
        #expect(r.rows.reduce(Decimal(0)) { $0 + ($1.total ?? 0) } == plain.cost(kind: .usage) + plain.cost(kind: .idle) + plain.cost(kind: .inference))
    }

    /// Costs are exact; rounding (half-even, to cents) happens only when printing.
    @Test func exactArithmetic() async throws {
        let s = try ScenarioLog()
        try await pool(s, gpus: 3, rate: 0.1)
        try await allocate(s, "j1", team: "t", gpus: 1, at: t("00:00"))
        try await release(s, "j1", team: "t", gpus: 1, at: Timestamp(milliseconds: Timestamp(t("00:00"))!.milliseconds + 1_000).description)  // one second
        try await s.add(t("00:00", day: 1), "job.started", ["job": "tick"])
        let r = try Chargeback.report(try s.query(), day())
        let row = try #require(r.rows.first { $0.team == "t" })
        #expect(row.costNumerator == dec("100"))  // 1 GPU × 1000 ms × 0.1: the cost is 100/3,600,000 exactly
        #expect(Money.text(row.cost!) == "0.00")
        #expect(Money.text(dec("0.125")) == "0.12")
        #expect(Money.text(dec("0.135")) == "0.14")
        #expect(Money.text(dec("2.5"), scale: 0) == "2")
        // 0.1 is the decimal 0.1, not the double 0.1000000000000000055…
        #expect(r.cost() == dec("7.2"))
    }

    /// Allocations above capacity (imported history) floor idle at 0 and raise an anomaly.
    @Test func overcommitFloorsIdleAndIsAnAnomaly() async throws {
        let s = try ScenarioLog()
        try await pool(s, gpus: 2, rate: 1)
        try await allocate(s, "j1", team: "t", gpus: 2, at: t("01:00"))
        try await allocate(s, "j2", team: "t", gpus: 2, at: t("02:00"))
        try await s.add(t("00:00", day: 1), "job.started", ["job": "tick"])
        let q = try s.query()
        let r = try Chargeback.report(q, day())
        #expect(r.hours(kind: .idle) == dec("2"))  // only the first hour had free GPUs
        #expect(try Audit.anomalies(q).contains { $0.type == "gpu.allocated" && $0.message.contains("above the 2 registered") })
        let release = try await s.add(t("00:30", day: 1), "gpu.released", ["job": "nope", "node": "n-a100", "gpuType": "a100", "gpus": 1, "team": "t"], actor: "processor:scheduler")
        #expect(try Audit.anomalies(try s.query()).contains { $0.offset == release.offset })
    }

    /// Inference: gpuSeconds at the deployment's gpuType rate at windowEnd, to its team; no gpuType → unpriced.
    @Test func inference() async throws {
        let s = try ScenarioLog()
        try await s.add(t("00:00"), "price.set", ["gpuType": "l4", "hourlyRate": 0.8, "effectiveFrom": .string(t("00:00"))])
        try await s.add(t("00:00"), "price.set", ["gpuType": "l4", "hourlyRate": 1.6, "effectiveFrom": .string(t("12:00"))])
        try await s.add(t("00:00"), "model.registered", ["model": "m", "team": "risk"])
        try await s.add(t("00:00"), "model.version.created", ["model": "m", "version": "1", "source": "s3://m/1", "digest": .string("sha256:" + String(repeating: "a", count: 64))])
        try await s.add(t("00:00"), "deployment.created", ["deployment": "api", "model": "m", "version": "1", "team": "risk", "gpuType": "l4"])
        try await s.add(t("00:00"), "deployment.created", ["deployment": "cpu-api", "model": "m", "version": "1", "team": "risk"])
        func window(_ d: String, end: String, gpuSeconds: Double) async throws {
            try await s.add(end, "serving.window.observed", ["deployment": .string(d), "version": "1", "windowStart": .string(end), "windowEnd": .string(end), "requests": 10, "errors": 0, "p99Ms": 5, "gpuSeconds": .number(gpuSeconds)])
        }
        try await window("api", end: t("11:00"), gpuSeconds: 3600)
        try await window("api", end: t("12:00"), gpuSeconds: 1800)
        try await window("cpu-api", end: t("13:00"), gpuSeconds: 900)
        try await s.add(t("00:00", day: 1), "job.started", ["job": "tick"])
        let r = try Chargeback.report(try s.query(), day())
        let priced = r.rows.filter { $0.kind == .inference && !$0.missingPrice }
        #expect(priced.count == 1)
        #expect(priced[0].team == "risk" && priced[0].gpuType == "l4")
        #expect(priced[0].cost == dec("1.6"))  // 1 h × 0.8 + 0.5 h × 1.6
        let unpriced = try #require(r.rows.first { $0.kind == .inference && $0.missingPrice })
        #expect(unpriced.cost == nil && unpriced.gpuHours == dec("0.25"))
    }

    /// A change to a closed day adds Correction rows carrying the difference; the original rows never change.
    @Test func correctionsOfClosedDays() async throws {
        let s = try ScenarioLog()
        try await pool(s, gpus: 4, rate: 1)
        try await allocate(s, "j1", team: "vision", gpus: 2, at: t("06:00"))
        try await release(s, "j1", team: "vision", gpus: 2, at: t("18:00"))
        let closing = try await s.add(t("01:00", day: 1), "job.started", ["job": "tick"])
        let before = try Chargeback.report(try s.query(), day())
        // A retroactive price for the closed day: from noon, 3 instead of 1.
        try await s.add(t("02:00", day: 1), "price.set", ["gpuType": "a100", "hourlyRate": 3, "effectiveFrom": .string(t("12:00"))])
        let after = try Chargeback.report(try s.query(), day())
        #expect(after.cost(team: "vision", kind: .usage) == before.cost(team: "vision", kind: .usage))
        #expect(after.cost(team: "vision", kind: .usage, chargeClass: .correction) == dec("24"))   // 2 × 6 h × (3 − 1)
        #expect(after.cost(team: Chargeback.idleTeam, chargeClass: .correction) == dec("72"))      // ((4 − 2) × 6 h + 4 × 6 h) × 2
        #expect(after.cost(chargeClass: .correction) == dec("96"))                                  // = capacity 4 × 12 h × 2
        // As of the closing event, nothing is corrected yet: past answers do not change.
        let asOfClosing = try Chargeback.report(try s.query(.offset(closing.offset)), day())
        #expect(asOfClosing.rows.map(\.cost) == before.rows.map(\.cost))
        #expect(!asOfClosing.rows.contains { $0.chargeClass == .correction })
        // An open day takes the new price in place, without corrections.
        let open = try ScenarioLog()
        try await pool(open, gpus: 4, rate: 1)
        try await allocate(open, "j1", team: "vision", gpus: 2, at: t("06:00"))
        try await release(open, "j1", team: "vision", gpus: 2, at: t("18:00"))
        try await open.add(t("20:00"), "price.set", ["gpuType": "a100", "hourlyRate": 3, "effectiveFrom": .string(t("12:00"))])
        let r = try Chargeback.report(try open.query(), day())
        #expect(!r.rows.contains { $0.chargeClass == .correction })
        #expect(r.cost(team: "vision") == dec("48"))
    }
}
