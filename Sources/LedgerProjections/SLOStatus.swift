import GRDB
public import LedgerCore

/// SLO status (anchors: Google SRE Workbook ch. 5, Sloth), as SEMANTICS.md defines it: good and
/// total over the rolling period, error budget remaining, burn rates over the alerting windows,
/// open alerts.
public enum SLOStatus {
    /// The alerting windows (SEMANTICS.md's table), in milliseconds.
    public static let windows: [(String, Int64)] = [("5m", 300_000), ("30m", 1_800_000), ("1h", 3_600_000), ("6h", 21_600_000), ("3d", 259_200_000)]

    public struct Status: Sendable {
        public var slo: String
        public var deployment: String
        public var sli: String
        public var objective: Double
        public var periodDays: Int
        /// The latest windowEnd seen for the deployment (nil: no observation yet).
        public var now: Int64?
        public var total: Int64
        public var good: Int64
        /// 1 − (bad/total) / (1 − objective); nil without requests.
        public var budgetRemaining: Double?
        /// Burn rate over each window; nil for a window without requests.
        public var burnRates: [(String, Double?)]
        public var openAlerts: [Alert]

        public var json: JSONValue {
            var o: JSONObject = [
                "slo": .string(slo), "deployment": .string(deployment), "sli": .string(sli), "objective": .number(objective),
                "periodDays": .number(Double(periodDays)), "total": .number(Double(total)), "good": .number(Double(good)),
                "bad": .number(Double(total - good)),
                "burnRates": .object(JSONObject(members: burnRates.map { .init(key: $0.0, value: $0.1.map { .number(round6($0)) } ?? .null) })),
                "openAlerts": .array(openAlerts.map(\.json)),
            ]
            o["now"] = now.map { .string(Timestamp(milliseconds: $0).description) } ?? .null
            o["budgetRemaining"] = budgetRemaining.map { .number(round6($0)) } ?? .null
            o["sliValue"] = total > 0 ? .number(round6(Double(good) / Double(total))) : .null
            return .object(o)
        }
    }

    public struct Alert: Sendable {
        public var severity: String
        public var longWindow: String
        public var shortWindow: String
        public var since: Int64
        public var offset: Int64
        public var burnRateLong: Double?
        public var threshold: Double?

        public var json: JSONValue {
            ["severity": .string(severity), "longWindow": .string(longWindow), "shortWindow": .string(shortWindow),
             "since": .string(Timestamp(milliseconds: since).description), "offset": .number(Double(offset)),
             "burnRateLong": burnRateLong.map { .number($0) } ?? .null, "threshold": threshold.map { .number($0) } ?? .null]
        }
    }

    static func round6(_ x: Double) -> Double { (x * 1_000_000).rounded() / 1_000_000 }

    /// Every SLO defined as of the query, with its status then.
    public static func all(_ q: QueryContext) throws -> [Status] {
        try q.read { db in
            let definitions = try Row.fetchAll(db, sql: """
                SELECT slo, deployment, objective, period_days, sli FROM slos s WHERE offset <= ?
                AND offset = (SELECT MAX(offset) FROM slos t WHERE t.slo = s.slo AND t.offset <= ?) ORDER BY slo
                """, arguments: [q.last, q.last])
            var out: [Status] = []
            for d in definitions {
                let slo: String = d[0]
                let deployment: String = d[1]
                let objective: Double = d[2]
                let periodDays: Int = d[3]
                let sli: String = d[4]
                // The latest windowEnd: whole blocks at or below the prefix by their bounds, the
                // blocks it cuts through row by row.
                var now = try Int64.fetchOne(db, sql: "SELECT MAX(max_end) FROM window_blocks WHERE deployment = ? AND last_offset <= ?", arguments: [deployment, q.last])
                for r in try WindowBlock.rows(db, "SELECT first_offset, deployment, rows FROM window_blocks WHERE deployment = ? AND first_offset <= ? AND last_offset > ?",
                    [deployment, q.last, q.last], last: q.last) {
                    now = max(now ?? r.end, r.end)
                }
                var status = Status(slo: slo, deployment: deployment, sli: sli, objective: objective, periodDays: periodDays, now: now, total: 0, good: 0, budgetRemaining: nil, burnRates: windows.map { ($0.0, nil) }, openAlerts: [])
                if let now {
                    let period = Int64(periodDays) * 86_400_000
                    // Observations attributed by windowEnd, in (now − period, now].
                    let rows = try WindowBlock.rows(db, """
                        SELECT first_offset, deployment, rows FROM window_blocks
                        WHERE deployment = ? AND max_end > ? AND min_end <= ? AND first_offset <= ?
                        """, [deployment, now - period, now, q.last], last: q.last) { $0.end > now - period && $0.end <= now }
                    var perWindow = windows.map { _ in (Int64(0), Int64(0)) }  // (total, bad)
                    for r in rows {
                        let end = r.end
                        let requests = Int64(r.requests)
                        let bad = Int64(sli == "latency" ? r.slow ?? 0 : r.errors)
                        status.total += requests
                        status.good += requests - min(requests, bad)
                        for (i, w) in windows.enumerated() where end > now - w.1 {
                            perWindow[i].0 += requests
                            perWindow[i].1 += min(requests, bad)
                        }
                    }
                    if status.total > 0 {
                        status.budgetRemaining = 1 - (Double(status.total - status.good) / Double(status.total)) / (1 - objective)
                    }
                    status.burnRates = windows.enumerated().map { i, w in
                        let (total, bad) = perWindow[i]
                        return (w.0, total > 0 ? (Double(bad) / Double(total)) / (1 - objective) : nil)
                    }
                }
                // Open alerts: the latest of each (severity, long, short) pair is an alert.
                var latest: [String: Alert?] = [:]
                for a in try Row.fetchAll(db, sql: "SELECT severity, long_window, short_window, alerted, time, offset, burn_long, threshold FROM slo_alerts WHERE slo = ? AND offset <= ? ORDER BY offset", arguments: [slo, q.last]) {
                    let key = "\(a[0] as String)/\(a[1] as String)/\(a[2] as String)"
                    latest[key] = (a[3] as Int) == 1 ? Alert(severity: a[0], longWindow: a[1], shortWindow: a[2], since: a[4], offset: a[5], burnRateLong: a[6], threshold: a[7]) : nil
                }
                status.openAlerts = latest.values.compactMap { $0 }.sorted { $0.offset < $1.offset }
                out.append(status)
            }
            return out
        }
    }
}
