import GRDB
public import LedgerCore

/// The lineage of a model version: datasets → training job (with its GPU allocations) →
/// version → evaluations → approval → gate verdicts → aliases → deployments → rollout decisions → drift and SLO
/// alerts; each step with the offset and hash of the event that recorded it.
public enum Lineage {
    public struct Step: Sendable {
        public var step: String
        public var entry: Audit.Entry
        public var note: String?

        public var json: JSONValue {
            var o = entry.json.objectValue!
            o["step"] = .string(step)
            if let note { o["note"] = .string(note) }
            return .object(o)
        }
    }

    public static func of(_ q: QueryContext, model: String, version: String) throws -> [Step] {
        guard let created = try q.read({ db in
            try Row.fetchOne(db, sql: "SELECT offset, job, datasets, actor FROM model_versions WHERE model = ? AND version = ? AND offset <= ?", arguments: [model, version, q.last])
        }) else {
            throw LedgerError(.notFound, "no version \(version) of model \(model) as of \(q.asOf)")
        }
        let createdOffset: Int64 = created[0]
        let job: String? = created[1]
        let creator: String = created[3]
        var datasets = Set((try? JSONParser.parse(Array((created[2] as String).utf8)))?.arrayValue?.compactMap(\.stringValue) ?? [])
        var steps: [Step] = []
        func add(_ step: String, _ offset: Int64, note: String? = nil) throws {
            if let e = try q.envelope(offset) { steps.append(Step(step: step, entry: Audit.Entry(e), note: note)) }
        }
        // The training job and its allocations, from the job's stream.
        var jobSteps: [Int64] = []
        if let job {
            jobSteps = try Audit.offsets(q, .stream, "job-" + job)
            for offset in jobSteps {
                if let e = try q.envelope(offset), e.type == "job.queued" {
                    for d in e.data["datasets"]?.arrayValue?.compactMap(\.stringValue) ?? [] { datasets.insert(d) }
                }
            }
        }
        try q.read { db in
            for reference in datasets.sorted() {
                let parts = reference.split(separator: "@", maxSplits: 1).map(String.init)
                guard parts.count == 2 else { continue }
                if let offset = try Int64.fetchOne(db, sql: "SELECT MAX(offset) FROM datasets WHERE name = ? AND version = ? AND offset <= ?", arguments: [parts[0], parts[1], q.last]) {
                    try add("dataset", offset)
                }
            }
        }
        for offset in jobSteps { try add("training", offset) }
        try add("version", createdOffset)
        let rows: (evaluations: [Int64], approvals: [(Int64, String)], aliases: [Int64], deployments: [(Int64, String)], drift: [Int64], gates: [(Int64, String)]) = try q.read { db in
            let evaluations = try Int64.fetchAll(db, sql: "SELECT offset FROM model_evaluations WHERE model = ? AND version = ? AND offset <= ? ORDER BY offset", arguments: [model, version, q.last])
            let approvals = try Row.fetchAll(db, sql: "SELECT offset, approver FROM model_approvals WHERE model = ? AND version = ? AND offset <= ? ORDER BY offset", arguments: [model, version, q.last]).map { ($0[0] as Int64, $0[1] as String) }
            // Alias moves onto this version, and the move or removal that took each alias off it.
            var aliases: [Int64] = []
            var holding = Set<String>()
            for a in try Row.fetchAll(db, sql: "SELECT offset, alias, version FROM model_aliases WHERE model = ? AND offset <= ? ORDER BY offset", arguments: [model, q.last]) {
                let alias: String = a[1]
                let target: String? = a[2]
                if target == version {
                    holding.insert(alias)
                    aliases.append(a[0])
                } else if holding.contains(alias) {
                    holding.remove(alias)
                    aliases.append(a[0])
                }
            }
            let names = try String.fetchAll(db, sql: """
                SELECT DISTINCT deployment FROM deployment_events WHERE model = ? AND version = ? AND offset <= ?
                """, arguments: [model, version, q.last])
            var deployments: [(Int64, String)] = []
            for name in names {
                for d in try Row.fetchAll(db, sql: "SELECT offset, type FROM deployment_events WHERE deployment = ? AND version = ? AND offset <= ? ORDER BY offset", arguments: [name, version, q.last]) {
                    deployments.append((d[0], d[1]))
                }
                for s in try Int64.fetchAll(db, sql: "SELECT offset FROM slo_alerts WHERE deployment = ? AND offset <= ? ORDER BY offset", arguments: [name, q.last]) {
                    deployments.append((s, "slo"))
                }
            }
            let drift = try Int64.fetchAll(db, sql: "SELECT offset FROM drift_alerts WHERE model = ? AND version = ? AND offset <= ? ORDER BY offset", arguments: [model, version, q.last])
            var gates: [(Int64, String)] = []
            for g in try Row.fetchAll(db, sql: "SELECT offset, policy, policy_version, result, rules, promotion, deployment, alias FROM gate_evaluations WHERE model = ? AND version = ? AND offset <= ? ORDER BY offset", arguments: [model, version, q.last]) {
                let target = (g[6] as String?).map { "deployment " + $0 } ?? (g[7] as String?).map { "alias " + $0 } ?? ""
                var note = "\(g[5] as String) to \(target): \(g[3] as String) by policy \(g[1] as String) v\(g[2] as Int)"
                let rules = (try? JSONParser.parse(Array((g[4] as String).utf8)))?.arrayValue ?? []
                let failing = rules.compactMap { r -> String? in
                    guard let o = r.objectValue, o.string("verdict") != "passed" else { return nil }
                    return "\(o.string("rule") ?? "?"): \(o.string("reason") ?? "")"
                }
                if !failing.isEmpty { note += " — " + failing.joined(separator: "; ") }
                gates.append((g[0], note))
            }
            return (evaluations, approvals, aliases, deployments.sorted { $0.0 < $1.0 }, drift, gates)
        }
        for o in rows.evaluations { try add("evaluation", o) }
        for (o, approver) in rows.approvals { try add("approval", o, note: approver == creator ? "self-approval: the approver created the version" : nil) }
        for (o, note) in rows.gates { try add("gate", o, note: note) }
        for o in rows.aliases { try add("alias", o) }
        for (o, type) in rows.deployments {
            let step = type == "deployment.created" ? "deployment" : type == "slo" ? "slo-alert" : "rollout"
            try add(step, o)
        }
        for o in rows.drift { try add("drift-alert", o) }
        return steps
    }
}
