public import Foundation
import GRDB
public import LedgerCore

/// FinOps chargeback and showback (anchors: OpenCost allocation, FOCUS 1.2), exactly as
/// SEMANTICS.md defines it: allocation intervals priced with the price in force at each instant
/// (split at `effectiveFrom`), UTC-day periods, idle capacity as its own `__idle__` rows,
/// `shareIdle`, inference usage, unpriced rows flagged, corrections to closed days.
public enum Chargeback {
    public static let idleTeam = "__idle__"
    static let dayMs: Int64 = 86_400_000
    static let msPerHour = Decimal(3_600_000)

    public enum Kind: String, Sendable, CaseIterable { case usage, idle, inference }
    public enum ChargeClass: String, Sendable { case regular, correction }
    public enum Dimension: String, Sendable, CaseIterable { case team, gpuType, project, model, day }

    public struct Options: Sendable {
        public var from: Timestamp
        public var to: Timestamp
        public var groupBy: [Dimension]
        public var shareIdle: Bool

        public init(from: Timestamp, to: Timestamp, groupBy: [Dimension] = [.team, .gpuType], shareIdle: Bool = false) {
            self.from = from
            self.to = to
            self.groupBy = groupBy
            self.shareIdle = shareIdle
        }
    }

    /// One computed charge: the finest grain, before grouping.
    public struct Line: Sendable, Equatable {
        public var team: String
        public var project: String?
        public var model: String?
        public var gpuType: String
        public var day: Int64
        public var kind: Kind
        public var chargeClass: ChargeClass
        public var currency: String
        /// False: no price was in force (cost is unknown, never zero).
        public var priced: Bool
        /// GPU-milliseconds.
        public var gpuMs: Decimal
        /// Σ GPUs × milliseconds × hourly rate; cost = this / 3,600,000.
        public var costNumerator: Decimal
        /// Idle cost received through `shareIdle` (already in currency units).
        public var idleShare: Decimal = 0

        var key: LineKey { LineKey(team: team, project: project, model: model, gpuType: gpuType, day: day, kind: kind, chargeClass: chargeClass, currency: currency, priced: priced) }
        public var cost: Decimal { costNumerator / Chargeback.msPerHour }
        public var gpuHours: Decimal { gpuMs / Chargeback.msPerHour }
    }

    struct LineKey: Hashable {
        var team: String
        var project: String?
        var model: String?
        var gpuType: String
        var day: Int64
        var kind: Kind
        var chargeClass: ChargeClass
        var currency: String
        var priced: Bool
    }

    /// A grouped row of the report.
    public struct Row: Sendable {
        public var team: String?
        public var gpuType: String?
        public var project: String?
        public var model: String?
        public var day: Int64?
        public var kind: Kind
        public var chargeClass: ChargeClass
        public var currency: String
        public var missingPrice: Bool
        /// GPU-milliseconds.
        public var gpuMs: Decimal
        /// Σ GPUs × milliseconds × rate (divided once, when printed: exact until then).
        public var costNumerator: Decimal
        public var idleShare: Decimal
        public var gpuHours: Decimal { gpuMs / Chargeback.msPerHour }
        /// nil when unpriced.
        public var cost: Decimal? { missingPrice ? nil : costNumerator / Chargeback.msPerHour }
        public var total: Decimal? { cost.map { $0 + idleShare } }
    }

    public struct Report: Sendable {
        public var from: Timestamp
        /// The query's end: the earliest of --to, the as-of point and the last event seen.
        public var end: Timestamp
        public var lines: [Line]
        public var rows: [Row]
        public var options: Options
    }

    // MARK: facts

    struct Price {
        var offset: Int64
        var effectiveFrom: Int64
        var rate: Decimal
        var currency: String
    }

    struct Interval {
        var offset: Int64
        var start: Int64
        var endOffset: Int64?
        var end: Int64?
        var gpus: Int
        var team: String
        var project: String?
        var model: String?
        var gpuType: String

        /// The end as known in the prefix up to `p` (nil: still open).
        func end(asOf p: Int64) -> Int64? {
            guard let endOffset, endOffset <= p else { return nil }
            return end
        }
    }

    struct Window {
        var offset: Int64
        var end: Int64
        /// Exact; used only when `gpuAttoseconds` is nil.
        var gpuSeconds: Decimal
        /// The same in 10⁻¹⁸ s when that is exact (nearly always): summed as integers.
        var gpuAttoseconds: Int128?
        var team: String?
        var model: String?
        var gpuType: String?
    }

    struct Facts {
        var prices: [String: [Price]] = [:]
        var capacity: [String: [Interval]] = [:]
        var allocations: [String: [Interval]] = [:]
        var windows: [Window] = []
        var closed: [Int64: Int64] = [:]  // day → closing offset
    }

    static func decimal(_ value: Double) -> Decimal {
        Money.decimal(JSONValue.number(value).description) ?? Decimal(value)
    }

    /// Seconds in units of 10⁻¹⁸ s, exactly as the number's decimal form reads (the shortest
    /// digits that read back as it — what canonical JSON writes and the figures are defined
    /// by); nil when that has more than 18 decimals or does not fit.
    static func attoseconds(_ seconds: Double) -> Int128? {
        guard seconds.isFinite else { return nil }
        guard seconds != 0 else { return 0 }
        var digits: [UInt8] = []
        var exponent = 0  // seconds = 0.digits × 10^exponent
        CanonicalJSON.shortestDigits(of: abs(seconds), digits: &digits, exponent: &exponent)
        let shift = 18 + exponent - digits.count
        guard shift >= 0, shift <= 38 else { return nil }
        var value: Int128 = 0
        for d in digits { value = value * 10 + Int128(d - UInt8(ascii: "0")) }  // at most 17 digits
        for _ in 0..<shift {
            let (next, overflow) = value.multipliedReportingOverflow(by: 10)
            guard !overflow else { return nil }
            value = next
        }
        return seconds < 0 ? -value : value
    }

    /// The facts a report over [from, to) needs, as known at the query's prefix.
    ///
    /// Times never decrease in the log, so the events of the range lie at or after `recent`,
    /// the first offset whose time is at or after `from`: allocations from there to the prefix
    /// are read as one range of rows in offset order. What lies before it and still counts — an
    /// allocation started earlier and released after `from` or never — is found through
    /// `allocations_by_end`, which carries the offset. Serving windows are read by the blocks
    /// whose windowEnds reach the range (`window_blocks_by_end`). An allocation
    /// released after the prefix ended at or after the prefix's time, which is after `from`, so
    /// "ends after `from` or is still open" is the whole condition.
    static func loadFacts(_ q: QueryContext, from: Int64, to: Int64) throws -> Facts {
        let recent = min(try q.source.firstOffset(atOrAfter: Timestamp(milliseconds: from)), q.last + 1)
        return try q.read { db in
            var f = Facts()
            let last = q.last
            let prices = try HotStatement(db, "SELECT offset, gpu_type, hourly_rate, currency, effective_from FROM prices WHERE offset <= ? ORDER BY offset")
            prices.int(last)
            try prices.rows { row in
                f.prices[row.text(1), default: []].append(Price(offset: row.int(0), effectiveFrom: row.int(4), rate: Money.decimal(row.text(2)) ?? 0, currency: row.text(3)))
            }
            let capacity = try HotStatement(db, """
                SELECT offset, node, gpu_type, gpu_count, from_time, removed_offset, removed_time FROM capacity
                WHERE offset <= ? AND from_time < ? AND (removed_time IS NULL OR removed_time > ? OR removed_offset > ?)
                """)
            capacity.int(last); capacity.int(to); capacity.int(from); capacity.int(last)
            try capacity.rows { row in
                let gpuType = row.text(2)
                f.capacity[gpuType, default: []].append(Interval(offset: row.int(0), start: row.int(4), endOffset: row.optionalInt(5), end: row.optionalInt(6),
                    gpus: Int(row.int(3)), team: Chargeback.idleTeam, project: nil, model: nil, gpuType: gpuType))
            }
            try loadAllocations(db, into: &f, from: from, to: to, recent: recent, last: last)
            try loadWindows(db, into: &f, from: from, to: to, last: last)
            let closed = try HotStatement(db, "SELECT day, closed_offset FROM days_closed WHERE closed_offset <= ?")
            closed.int(last)
            try closed.rows { row in f.closed[row.int(0)] = row.int(1) }
            return f
        }
    }

    /// Allocation intervals of the range, each with its job's project and model (the job's
    /// latest `job.queued` at or before the allocation).
    static func loadAllocations(_ db: Database, into f: inout Facts, from: Int64, to: Int64, recent: Int64, last: Int64) throws {
        let columns = "offset, gpu_type, gpus, team, start_time, release_offset, end_time, job"
        let inRange = try HotStatement(db, "SELECT \(columns) FROM allocations WHERE offset >= ? AND offset <= ? AND start_time < ? AND (end_time IS NULL OR end_time > ?)")
        inRange.int(recent); inRange.int(last); inRange.int(to); inRange.int(from)
        let earlier = try HotStatement(db, """
            SELECT \(columns) FROM allocations INDEXED BY allocations_by_end WHERE end_time > ? AND offset < ? AND start_time < ?
            UNION ALL SELECT \(columns) FROM allocations INDEXED BY allocations_by_end WHERE end_time IS NULL AND offset < ? AND start_time < ?
            """)
        earlier.int(from); earlier.int(recent); earlier.int(to); earlier.int(recent); earlier.int(to)
        var intervals: [(Interval, String)] = []
        for statement in [earlier, inRange] {
            try statement.rows { row in
                intervals.append((Interval(offset: row.int(0), start: row.int(4), endOffset: row.optionalInt(5), end: row.optionalInt(6),
                    gpus: Int(row.int(2)), team: row.text(3), project: nil, model: nil, gpuType: row.text(1)), row.text(7)))
            }
        }
        // Jobs queued from `recent` on, read as a range; a job queued earlier through the index.
        var queued: [String: [(offset: Int64, project: String?, model: String?)]] = [:]
        let jobs = try HotStatement(db, "SELECT offset, job, project, model FROM jobs WHERE offset >= ? AND offset <= ?")
        jobs.int(recent); jobs.int(last)
        try jobs.rows { row in queued[row.text(1), default: []].append((row.int(0), row.optionalText(2), row.optionalText(3))) }
        let job = try HotStatement(db, "SELECT project, model FROM jobs WHERE job = ? AND offset <= ? ORDER BY offset DESC LIMIT 1")
        for (interval, name) in intervals {
            var a = interval
            if let latest = queued[name]?.last(where: { $0.offset <= a.offset }) {
                (a.project, a.model) = (latest.project, latest.model)
            } else {
                job.text(name); job.int(a.offset)
                try job.rows { row in (a.project, a.model) = (row.optionalText(0), row.optionalText(1)) }
            }
            f.allocations[a.gpuType, default: []].append(a)
        }
    }

    /// Serving windows that end within the range and carry GPU-seconds, each with the team,
    /// model and GPU type of its deployment as last created at or before it.
    static func loadWindows(_ db: Database, into f: inout Facts, from: Int64, to: Int64, last: Int64) throws {
        struct Created { var offset: Int64; var team, model, gpuType: String? }
        var created: [String: [Created]] = [:]
        let deployments = try HotStatement(db, "SELECT offset, deployment, team, model, gpu_type FROM deployment_events WHERE type = 'deployment.created' AND offset <= ? ORDER BY offset")
        deployments.int(last)
        try deployments.rows { row in
            created[row.text(1), default: []].append(Created(offset: row.int(0), team: row.optionalText(2), model: row.optionalText(3), gpuType: row.optionalText(4)))
        }
        // The blocks that can hold a window ending in the range with GPU-seconds, logged in the
        // prefix; their rows filtered one by one.
        let rows = try WindowBlock.rows(db, """
            SELECT first_offset, deployment, rows FROM window_blocks
            WHERE max_end >= ? AND min_end < ? AND first_offset <= ? AND gpu = 1
            """, [from, to, last], last: last) { r in r.end >= from && r.end < to && (r.gpuSeconds ?? 0) > 0 }
        for r in rows {
            let seconds = r.gpuSeconds!
            let units = attoseconds(seconds)
            let d = created[r.deployment]?.last(where: { $0.offset <= r.offset })
            f.windows.append(Window(offset: r.offset, end: r.end, gpuSeconds: units == nil ? decimal(seconds) : 0, gpuAttoseconds: units,
                team: d?.team, model: d?.model, gpuType: d?.gpuType))
        }
        f.windows.sort { $0.offset < $1.offset }
    }

    // MARK: computing

    /// The report for `options`, as of the query's prefix.
    public static func report(_ q: QueryContext, _ options: Options) throws -> Report {
        let from = options.from.milliseconds
        let end = min(options.to.milliseconds, q.last >= 0 ? q.time : options.from.milliseconds, lastEventTime(q))
        var lines: [Line] = []
        if end > from {
            let facts = try loadFacts(q, from: from, to: end)
            var day = Timestamp(milliseconds: from).startOfDay.milliseconds
            while day < end {
                let s = max(from, day)
                let e = min(end, day + dayMs)
                if let closing = facts.closed[day] {
                    lines += compute(facts, day: day, start: s, end: e, prefix: closing, gpuTypes: nil)
                    lines += corrections(facts, day: day, start: s, end: e, closing: closing, last: q.last)
                } else {
                    lines += compute(facts, day: day, start: s, end: e, prefix: q.last, gpuTypes: nil)
                }
                day += dayMs
            }
        }
        if options.shareIdle { shareIdle(&lines) }
        return Report(from: options.from, end: Timestamp(milliseconds: max(from, end)), lines: lines, rows: group(lines, by: options.groupBy), options: options)
    }

    static func lastEventTime(_ q: QueryContext) -> Int64 {
        guard q.last >= 0, let e = try? q.source.event(at: q.last) else { return 0 }
        return e.time.milliseconds
    }

    /// Price change points of a type within [start, end), known in the prefix `p`: (instant, rate or nil).
    static func priceSteps(_ prices: [Price]?, prefix p: Int64, start: Int64, end: Int64) -> [(Int64, Price?)] {
        let known = knownPrices(prices, prefix: p)
        var inForce: Price? = nil
        var steps: [(Int64, Price?)] = []
        for price in known {
            if price.effectiveFrom <= start {
                inForce = price  // the later in the log wins among equal effectiveFrom (sorted by offset)
            } else if price.effectiveFrom < end {
                if let last = steps.last, last.0 == price.effectiveFrom { steps.removeLast() }
                steps.append((price.effectiveFrom, price))
            }
        }
        return [(start, inForce)] + steps
    }

    /// The lines of one day window [start, end) with the knowledge of offsets ≤ `prefix`.
    ///
    /// Usage and idle are integrated in whole GPU-milliseconds per line and price (integers), and
    /// priced once per line and price at the end: the same exact sums as pricing each interval,
    /// without a `Decimal` multiplication and addition per interval (which was nearly all of a
    /// month's report).
    static func compute(_ f: Facts, day: Int64, start: Int64, end: Int64, prefix p: Int64, gpuTypes: Set<String>?) -> [Line] {
        var out: [LineKey: Line] = [:]
        func add(_ key: LineKey, gpuMs: Decimal, numerator: Decimal) {
            if var line = out[key] {
                line.gpuMs += gpuMs
                line.costNumerator += numerator
                out[key] = line
            } else {
                out[key] = Line(team: key.team, project: key.project, model: key.model, gpuType: key.gpuType, day: key.day, kind: key.kind, chargeClass: key.chargeClass, currency: key.currency, priced: key.priced, gpuMs: gpuMs, costNumerator: numerator)
            }
        }
        // GPU-milliseconds per line and price in force (by its index in `prices`; -1: unpriced).
        struct Integral: Hashable {
            var key: LineKey
            var price: Int
        }
        var integrals: [Integral: Int64] = [:]
        var prices: [Price] = []
        var priceIndex: [Int64: Int] = [:]  // a price's offset → its index in `prices`
        func reference(_ price: Price?) -> Int {
            guard let price else { return -1 }
            if let known = priceIndex[price.offset] { return known }
            priceIndex[price.offset] = prices.count
            prices.append(price)
            return prices.count - 1
        }
        func integrate(_ key: LineKey, gpuMs: Int64, price: Price?) {
            integrals[Integral(key: key, price: reference(price)), default: 0] += gpuMs
        }
        var types = Set(f.capacity.keys).union(f.allocations.keys)
        if let gpuTypes { types = types.intersection(gpuTypes) }
        for gpuType in types.sorted() {
            let steps = priceSteps(f.prices[gpuType], prefix: p, start: start, end: end)
            let fallbackCurrency = currency(f, gpuType)
            // Piecewise-constant capacity and allocation, as deltas at instants.
            var deltas: [(Int64, Int, Int)] = []  // (instant, Δcapacity, Δallocated)
            for c in f.capacity[gpuType] ?? [] where c.offset <= p {
                let s = max(start, c.start)
                let e = min(end, c.end(asOf: p) ?? Int64.max)
                if s < e {
                    deltas.append((s, c.gpus, 0))
                    deltas.append((e, -c.gpus, 0))
                }
            }
            for a in f.allocations[gpuType] ?? [] where a.offset <= p {
                let s = max(start, a.start)
                let e = min(end, a.end(asOf: p) ?? Int64.max)
                guard s < e else { continue }
                deltas.append((s, 0, a.gpus))
                deltas.append((e, 0, -a.gpus))
                // Usage: the interval split at every price change within it.
                for (i, step) in steps.enumerated() {
                    let segStart = max(s, step.0)
                    let segEnd = min(e, i + 1 < steps.count ? steps[i + 1].0 : end)
                    guard segStart < segEnd else { continue }
                    let key = LineKey(team: a.team, project: a.project, model: a.model, gpuType: gpuType, day: day, kind: .usage, chargeClass: .regular,
                        currency: step.1?.currency ?? fallbackCurrency, priced: step.1 != nil)
                    integrate(key, gpuMs: Int64(a.gpus) * (segEnd - segStart), price: step.1)
                }
            }
            // Idle: capacity minus allocated, floored at 0, integrated and priced on its own
            // (price changes are instants of the sweep too).
            for step in steps { deltas.append((step.0, 0, 0)) }
            deltas.sort { $0.0 < $1.0 }
            var capacityNow = 0
            var allocatedNow = 0
            var stepIndex = 0
            var i = 0
            while i < deltas.count {
                let t = deltas[i].0
                while i < deltas.count && deltas[i].0 == t {
                    capacityNow += deltas[i].1
                    allocatedNow += deltas[i].2
                    i += 1
                }
                let next = i < deltas.count ? deltas[i].0 : end
                guard next > t, t < end else { continue }
                while stepIndex + 1 < steps.count && steps[stepIndex + 1].0 <= t { stepIndex += 1 }
                let idle = max(0, capacityNow - allocatedNow)
                guard idle > 0 else { continue }
                let price = steps[stepIndex].1
                let key = LineKey(team: idleTeam, project: nil, model: nil, gpuType: gpuType, day: day, kind: .idle, chargeClass: .regular,
                    currency: price?.currency ?? fallbackCurrency, priced: price != nil)
                integrate(key, gpuMs: Int64(idle) * (min(next, end) - t), price: price)
            }
        }
        // Inference: GPU-seconds of serving windows, at the rate in force at windowEnd (the
        // known prices of each type sorted once, not per window); GPU-seconds summed
        // as integers (10⁻¹⁸ s) like the above, when the window's figure is exact in them.
        var attoseconds: [Integral: Int128] = [:]
        var known: [String: [Price]] = [:]
        for w in f.windows where w.offset <= p && w.end >= start && w.end < end && (gpuTypes == nil || gpuTypes!.contains(w.gpuType ?? "")) {
            let gpuType = w.gpuType ?? "unknown"
            var price: Price? = nil
            if let type = w.gpuType {
                if known[type] == nil { known[type] = knownPrices(f.prices[type], prefix: p) }
                price = priceInForce(known[type]!, at: w.end)
            }
            let key = LineKey(team: w.team ?? "unknown", project: nil, model: w.model, gpuType: gpuType, day: day, kind: .inference, chargeClass: .regular,
                currency: price?.currency ?? currency(f, gpuType), priced: price != nil)
            if let units = w.gpuAttoseconds {
                attoseconds[Integral(key: key, price: reference(price)), default: 0] += units
            } else {
                let gpuMs = w.gpuSeconds * 1000
                add(key, gpuMs: gpuMs, numerator: price.map { gpuMs * $0.rate } ?? 0)
            }
        }
        // Priced once per line and price (the sums are exact, so their order does not matter).
        for (integral, ms) in integrals {
            let gpuMs = Decimal(ms)
            add(integral.key, gpuMs: gpuMs, numerator: integral.price >= 0 ? gpuMs * prices[integral.price].rate : 0)
        }
        for (integral, units) in attoseconds {
            // 10⁻¹⁸ s = 10⁻¹⁵ ms (a sum below 10²⁰ GPU-seconds: within Decimal's 38 digits).
            let gpuMs = Decimal(sign: units < 0 ? .minus : .plus, exponent: -15, significand: Decimal(string: String(units.magnitude)) ?? 0)
            add(integral.key, gpuMs: gpuMs, numerator: integral.price >= 0 ? gpuMs * prices[integral.price].rate : 0)
        }
        return out.values.sorted(by: lineOrder)
    }

    /// The prices of a type known in the prefix `p`, in the order that decides which is in force.
    static func knownPrices(_ prices: [Price]?, prefix p: Int64) -> [Price] {
        (prices ?? []).filter { $0.offset <= p }.sorted { ($0.effectiveFrom, $0.offset) < ($1.effectiveFrom, $1.offset) }
    }

    /// The price in force at `instant` among `known` (sorted by ``knownPrices(_:prefix:)``): the
    /// last one effective at or before it (the later in the log among equal effectiveFrom).
    static func priceInForce(_ known: [Price], at instant: Int64) -> Price? {
        var low = 0
        var high = known.count
        while low < high {
            let mid = (low + high) / 2
            if known[mid].effectiveFrom <= instant { low = mid + 1 } else { high = mid }
        }
        return low > 0 ? known[low - 1] : nil
    }

    static func currency(_ f: Facts, _ gpuType: String) -> String { f.prices[gpuType]?.last?.currency ?? "USD" }

    /// Corrections to a closed day: each later event that changes its charges (a retroactive
    /// price, a late inference window) adds lines carrying the difference it makes.
    static func corrections(_ f: Facts, day: Int64, start: Int64, end: Int64, closing: Int64, last: Int64) -> [Line] {
        var events: [(Int64, String?)] = []  // (offset, gpuType for a price; nil for a window)
        for (gpuType, prices) in f.prices {
            for price in prices where price.offset > closing && price.offset <= last && price.effectiveFrom < end { events.append((price.offset, gpuType)) }
        }
        for w in f.windows where w.offset > closing && w.offset <= last && w.end >= start && w.end < end { events.append((w.offset, nil)) }
        events.sort { $0.0 < $1.0 }
        var out: [Line] = []
        for (offset, gpuType) in events {
            let scope: Set<String>? = gpuType.map { [$0] }
            var before: [LineKey: Line] = [:]
            var after: [LineKey: Line] = [:]
            if let scope {
                for l in compute(f, day: day, start: start, end: end, prefix: offset - 1, gpuTypes: scope) { before[l.key] = l }
                for l in compute(f, day: day, start: start, end: end, prefix: offset, gpuTypes: scope) { after[l.key] = l }
            } else {
                // A window adds exactly its own charge.
                var f1 = f
                f1.windows = f.windows.filter { $0.offset == offset }
                f1.capacity = [:]
                f1.allocations = [:]
                for l in compute(f1, day: day, start: start, end: end, prefix: offset, gpuTypes: nil) { after[l.key] = l }
            }
            for key in Set(before.keys).union(after.keys) {
                let a = after[key]
                let b = before[key]
                let gpuMs = (a?.gpuMs ?? 0) - (b?.gpuMs ?? 0)
                let numerator = (a?.costNumerator ?? 0) - (b?.costNumerator ?? 0)
                guard gpuMs != 0 || numerator != 0 else { continue }
                var line = a ?? b!
                line.chargeClass = .correction
                line.gpuMs = gpuMs
                line.costNumerator = numerator
                out.append(line)
            }
        }
        return out.sorted(by: lineOrder)
    }

    /// Distributes each gpuType and day's idle cost to the teams in proportion to their priced
    /// allocated cost; what is distributed leaves the `__idle__` row (OpenCost's weighted split).
    static func shareIdle(_ lines: inout [Line]) {
        struct Bucket: Hashable {
            var gpuType: String
            var day: Int64
            var currency: String
        }
        var idleIndex: [Bucket: Int] = [:]
        var weights: [Bucket: [(Int, Decimal)]] = [:]
        for (i, l) in lines.enumerated() where l.chargeClass == .regular && l.priced {
            let b = Bucket(gpuType: l.gpuType, day: l.day, currency: l.currency)
            if l.kind == .idle { idleIndex[b] = i } else if l.kind == .usage { weights[b, default: []].append((i, l.cost)) }
        }
        for (bucket, idle) in idleIndex {
            guard let ws = weights[bucket] else { continue }
            let total = ws.reduce(Decimal(0)) { $0 + $1.1 }
            guard total > 0 else { continue }
            let idleCost = lines[idle].cost
            var given = Decimal(0)
            for (j, (index, weight)) in ws.enumerated() {
                // The last share takes the remainder, so shares sum to the idle cost exactly.
                let share = j == ws.count - 1 ? idleCost - given : idleCost * weight / total
                lines[index].idleShare += share
                given += share
            }
            lines[idle].idleShare -= idleCost
        }
    }

    static func lineOrder(_ a: Line, _ b: Line) -> Bool {
        if a.day != b.day { return a.day < b.day }
        let ka = [a.gpuType, a.kind.rawValue, a.team, a.project ?? "", a.model ?? "", a.chargeClass.rawValue, a.priced ? "0" : "1"]
        let kb = [b.gpuType, b.kind.rawValue, b.team, b.project ?? "", b.model ?? "", b.chargeClass.rawValue, b.priced ? "0" : "1"]
        return ka.lexicographicallyPrecedes(kb)
    }

    static func rowOrder(_ a: Row, _ b: Row) -> Bool {
        if (a.day ?? 0) != (b.day ?? 0) { return (a.day ?? 0) < (b.day ?? 0) }
        let ka = [a.team ?? "", a.gpuType ?? "", a.project ?? "", a.model ?? "", a.kind.rawValue, a.chargeClass.rawValue, a.missingPrice ? "1" : "0"]
        let kb = [b.team ?? "", b.gpuType ?? "", b.project ?? "", b.model ?? "", b.kind.rawValue, b.chargeClass.rawValue, b.missingPrice ? "1" : "0"]
        return ka.lexicographicallyPrecedes(kb)
    }

    /// Rows grouped by the chosen dimensions (plus kind, class, currency and whether priced).
    static func group(_ lines: [Line], by dimensions: [Dimension]) -> [Row] {
        struct Key: Hashable {
            var team, gpuType, project, model: String?
            var day: Int64?
            var kind: Kind
            var chargeClass: ChargeClass
            var currency: String
            var priced: Bool
        }
        let d = Set(dimensions)
        var rows: [Key: Row] = [:]
        var order: [Key] = []
        for l in lines {
            let key = Key(
                team: d.contains(.team) ? l.team : nil, gpuType: d.contains(.gpuType) ? l.gpuType : nil,
                project: d.contains(.project) ? l.project : nil, model: d.contains(.model) ? l.model : nil,
                day: d.contains(.day) ? l.day : nil, kind: l.kind, chargeClass: l.chargeClass, currency: l.currency, priced: l.priced)
            if var row = rows[key] {
                row.gpuMs += l.gpuMs
                row.costNumerator += l.costNumerator
                row.idleShare += l.idleShare
                rows[key] = row
            } else {
                rows[key] = Row(team: key.team, gpuType: key.gpuType, project: key.project, model: key.model, day: key.day, kind: l.kind,
                    chargeClass: l.chargeClass, currency: l.currency, missingPrice: !l.priced, gpuMs: l.gpuMs,
                    costNumerator: l.costNumerator, idleShare: l.idleShare)
                order.append(key)
            }
        }
        return order.map { rows[$0]! }.sorted(by: rowOrder)
    }
}
