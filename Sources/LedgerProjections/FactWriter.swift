import GRDB
import Foundation
import LedgerCore
import LedgerLog

/// Applies events to the projection tables inside the projector's current transaction.
///
/// The fold is a pure function of the tables (at the checkpoint) and the events after it: the
/// little state kept in memory between events (open allocations, known names, the first open
/// day) is loaded from the tables when a run starts, so a run killed at any point and restarted
/// produces exactly what an uninterrupted run does.
final class FactWriter {
    static let dayMs: Int64 = 86_400_000
    static let bucketSize: Int64 = 4096

    // State derived from the tables (see `load`).
    private var models = Set<String>()
    private var versions = Set<String>()
    private var deployments = Set<String>()
    private var aliases = Set<String>()
    /// "model@version" → feature → its baseline's bins as canonical JSON (to check histograms).
    private var baselineBins: [String: [String: String]] = [:]
    private var openAllocations: [String: (offset: Int64, gpuType: String, gpus: Int)] = [:]
    private var openNodes: [String: (offset: Int64, gpuType: String, gpus: Int)] = [:]
    private var firstOpenDay: Int64? = nil
    private var capacity: [String: Int] = [:]
    private var allocated: [String: Int] = [:]

    static let postingKinds = ["actor", "stream", "category", "type"]

    /// The hot statements, prepared once per writer connection.
    final class Statements {
        let anomaly, cause, posting, dataset, model, version, evaluation, approval, archive, alias, deployment, drift: HotStatement
        let capacityOpen, capacityClose, price, job, allocation, allocationClose, slo, sloAlert, dayClosed, gate: HotStatement
        let windowBlock, effectBlock: HotStatement
        /// Jobs, allocations and postings of buckets new in the transaction — most of the rows
        /// left — ``FactWriter/rowsPerInsert`` to a statement (SQLite's work per statement is then shared).
        let jobs, allocations, newPostings: HotStatement

        /// `(?, ?), (?, ?), …`: `count` rows of `columns` placeholders.
        static func rows(_ count: Int, columns: Int) -> String {
            let row = "(" + Array(repeating: "?", count: columns).joined(separator: ", ") + ")"
            return Array(repeating: row, count: count).joined(separator: ", ")
        }

        init(_ db: Database) throws {
            anomaly = try HotStatement(db, "INSERT OR IGNORE INTO anomalies (offset, projection, type, message) VALUES (?, ?, ?, ?)")
            cause = try HotStatement(db, "INSERT OR IGNORE INTO audit_causes (cause_id, effect_offset) VALUES (?, ?)")
            posting = try HotStatement(db, """
                INSERT INTO audit_postings (kind, key, bucket, offsets) VALUES (?, ?, ?, ?)
                ON CONFLICT (kind, key, bucket) DO UPDATE SET offsets = CAST(offsets || excluded.offsets AS BLOB)
                """)
            dataset = try HotStatement(db, "INSERT INTO datasets VALUES (?, ?, ?, ?, ?, ?, ?, ?)")
            model = try HotStatement(db, "INSERT INTO models VALUES (?, ?, ?, ?, ?, ?)")
            version = try HotStatement(db, "INSERT INTO model_versions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
            evaluation = try HotStatement(db, "INSERT INTO model_evaluations VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)")
            approval = try HotStatement(db, "INSERT INTO model_approvals VALUES (?, ?, ?, ?, ?, ?, ?)")
            archive = try HotStatement(db, "INSERT INTO model_archives VALUES (?, ?, ?, ?, ?, ?)")
            alias = try HotStatement(db, "INSERT INTO model_aliases VALUES (?, ?, ?, ?, ?, ?, ?)")
            deployment = try HotStatement(db, "INSERT INTO deployment_events VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
            drift = try HotStatement(db, "INSERT INTO drift_alerts VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
            capacityOpen = try HotStatement(db, "INSERT INTO capacity VALUES (?, ?, ?, ?, ?, NULL, NULL)")
            capacityClose = try HotStatement(db, "UPDATE capacity SET removed_offset = ?, removed_time = ? WHERE offset = ?")
            price = try HotStatement(db, "INSERT INTO prices VALUES (?, ?, ?, ?, ?, ?)")
            job = try HotStatement(db, "INSERT INTO jobs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)")
            allocation = try HotStatement(db, "INSERT INTO allocations VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)")
            allocationClose = try HotStatement(db, "UPDATE allocations SET release_offset = ?, end_time = ? WHERE offset = ?")
            windowBlock = try HotStatement(db, "INSERT INTO window_blocks VALUES (?, ?, ?, ?, ?, ?, ?)")
            effectBlock = try HotStatement(db, "INSERT INTO audit_effect_blocks VALUES (?, ?, ?)")
            jobs = try HotStatement(db, "INSERT INTO jobs VALUES " + Statements.rows(FactWriter.rowsPerInsert, columns: 9))
            allocations = try HotStatement(db, "INSERT INTO allocations VALUES " + Statements.rows(FactWriter.rowsPerInsert, columns: 9))
            newPostings = try HotStatement(db, "INSERT INTO audit_postings (kind, key, bucket, offsets) VALUES " + Statements.rows(FactWriter.rowsPerInsert, columns: 4))
            slo = try HotStatement(db, "INSERT INTO slos VALUES (?, ?, ?, ?, ?, ?, ?)")
            sloAlert = try HotStatement(db, "INSERT INTO slo_alerts VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
            dayClosed = try HotStatement(db, "INSERT INTO days_closed VALUES (?, ?, ?)")
            gate = try HotStatement(db, "INSERT INTO gate_evaluations VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
        }
    }
    private var prepared: Statements?

    /// The prepared statements; `load` prepares them on the writer's connection.
    private func statements() throws -> Statements {
        guard let prepared else { throw LedgerError(.internal, "projections: the fact writer was used before load(_:) prepared its statements") }
        return prepared
    }

    func load(_ db: Database) throws {
        models = Set(try String.fetchAll(db, sql: "SELECT DISTINCT model FROM models"))
        versions = Set(try Row.fetchAll(db, sql: "SELECT model, version FROM model_versions").map { "\($0[0] as String)@\($0[1] as String)" })
        deployments = Set(try String.fetchAll(db, sql: "SELECT DISTINCT deployment FROM deployment_events WHERE type = 'deployment.created'"))
        baselineBins = [:]
        for row in try Row.fetchAll(db, sql: "SELECT model, version, baseline FROM model_versions WHERE baseline IS NOT NULL ORDER BY offset") {
            guard let text: String = row[2], let features = try? JSONParser.parse(Array(text.utf8)).objectValue else { continue }
            baselineBins["\(row[0] as String)@\(row[1] as String)"] = FactWriter.bins(features)
        }
        aliases = []
        for row in try Row.fetchAll(db, sql: """
            SELECT model, alias, version FROM model_aliases a
            WHERE offset = (SELECT MAX(offset) FROM model_aliases b WHERE b.model = a.model AND b.alias = a.alias)
            """)
        where (row[2] as String?) != nil {
            aliases.insert("\(row[0] as String)@\(row[1] as String)")
        }
        openAllocations = [:]
        allocated = [:]
        for row in try Row.fetchAll(db, sql: "SELECT offset, job, node, gpu_type, gpus FROM allocations WHERE release_offset IS NULL") {
            let gpuType: String = row[3]
            let gpus: Int = row[4]
            openAllocations["\(row[1] as String)|\(row[2] as String)"] = (row[0], gpuType, gpus)
            allocated[gpuType, default: 0] += gpus
        }
        openNodes = [:]
        capacity = [:]
        for row in try Row.fetchAll(db, sql: "SELECT offset, node, gpu_type, gpu_count FROM capacity WHERE removed_offset IS NULL") {
            let gpuType: String = row[2]
            let count: Int = row[3]
            openNodes[row[1]] = (row[0], gpuType, count)
            capacity[gpuType, default: 0] += count
        }
        if let last = try Int64.fetchOne(db, sql: "SELECT MAX(day) FROM days_closed") {
            firstOpenDay = last + FactWriter.dayMs
        } else {
            firstOpenDay = try Int64.fetchOne(db, sql: "SELECT last_time FROM checkpoints WHERE next_offset > 0 LIMIT 1").map { Timestamp(milliseconds: $0).startOfDay.milliseconds }
        }
        // What a rolled-back transaction had gathered is gone with it.
        pendingClosings = []
        pendingWindows = []
        pendingEffects = []
        pendingAllocations = [:]
        pendingJobs = []
        prepared = try Statements(db)
    }

    func anomaly(_ db: Database, _ e: EventFacts, _ projection: String, _ message: String) throws {
        let st = try statements().anomaly
        st.int(e.offset)
        st.text(projection)
        st.text(e.type)
        st.text(message)
        try st.run()
    }

    /// Binds each value in order and runs the statement.
    @inline(__always)
    private func run(_ st: HotStatement, _ values: [Value]) throws {
        for v in values {
            switch v {
            case .int(let i): st.int(i)
            case .double(let d): st.double(d)
            case .text(let t): st.text(t)
            }
        }
        try st.run()
    }

    enum Value {
        case int(Int64?)
        case double(Double?)
        case text(String?)
        static func i(_ v: Int?) -> Value { .int(v.map(Int64.init)) }
    }

    /// Serving windows and causation links — two thirds of the rows of a busy platform's log —
    /// are held until the transaction's flush and written packed (``WindowBlock``,
    /// ``EffectBlock``): a row per deployment, and per bucket of causes, per transaction.
    private var pendingWindows: [WindowBlock.Row] = []
    private var pendingEffects: [(cause: Int64, effect: Int64)] = []
    /// Allocations opened in this transaction, by offset: one opened and released before the
    /// flush is written once, complete, instead of inserted and then updated.
    private var pendingAllocations: [Int64: AllocationRow] = [:]

    private var pendingJobs: [JobRow] = []
    struct JobRow {
        var offset: Int64
        var job: String
        var team, project, gpuType: String?
        var gpus: Int?
        var model, datasets: String?
        var time: Int64
    }

    static let rowsPerInsert = 32

    /// Inserts `rows` ``rowsPerInsert`` at a time through `group`, the rest one by one through `single`.
    private static func insert<C: Collection>(_ rows: C, group: HotStatement, single: HotStatement, bind: (C.Element, HotStatement) -> Void) throws {
        var i = rows.startIndex
        var left = rows.count
        while left >= rowsPerInsert {
            for _ in 0..<rowsPerInsert {
                bind(rows[i], group)
                i = rows.index(after: i)
            }
            try group.run()
            left -= rowsPerInsert
        }
        while i < rows.endIndex {
            bind(rows[i], single)
            try single.run()
            i = rows.index(after: i)
        }
    }

    struct AllocationRow {
        var offset: Int64
        var job, node, gpuType: String
        var gpus: Int
        var team: String?
        var start: Int64
        var release: (offset: Int64, time: Int64)?
    }

    /// Writes the held jobs, allocations, windows and links.
    private func insertPending(_ db: Database) throws {
        let st = try statements()
        if !pendingJobs.isEmpty {
            try FactWriter.insert(pendingJobs, group: st.jobs, single: st.job) { j, s in
                s.int(j.offset); s.text(j.job); s.text(j.team); s.text(j.project); s.text(j.gpuType); s.int(j.gpus); s.text(j.model); s.text(j.datasets); s.int(j.time)
            }
            pendingJobs = []
        }
        if !pendingAllocations.isEmpty {
            try FactWriter.insert(pendingAllocations.values.sorted(by: { $0.offset < $1.offset }), group: st.allocations, single: st.allocation) { a, s in
                s.int(a.offset); s.text(a.job); s.text(a.node); s.text(a.gpuType); s.int(a.gpus); s.text(a.team); s.int(a.start)
                s.int(a.release?.offset); s.int(a.release?.time)
            }
            pendingAllocations = [:]
        }
        if !pendingWindows.isEmpty {
            try WindowBlock.insert(db, pendingWindows, statement: st.windowBlock)
            pendingWindows = []
        }
        if !pendingEffects.isEmpty {
            try EffectBlock.insert(db, pendingEffects, statement: st.effectBlock)
            pendingEffects = []
        }
    }

    func apply(_ db: Database, _ e: EventFacts) throws {
        closeDays(db, e)
        if let at = e.causeOffset {
            pendingEffects.append((at, e.offset))
        } else if let cause = e.causationId {
            let st = try statements().cause
            st.blob(cause.bytes)
            st.int(e.offset)
            try st.run()
        }
        if let hot = e.hot { return try applyHot(db, e, hot) }
        guard e.envelope != nil else { return }
        do {
            try applyData(db, e)
        } catch let unappliable as Unappliable {
            // Every member is read before the first row is written, so nothing of it was applied.
            try anomaly(db, e, FactWriter.projection(of: e.type), "\(e.type) not applied: \(unappliable.message)")
        }
    }

    /// feature → bins (canonical JSON) of a baseline stored as feature → bins.
    static func bins(_ features: JSONObject) -> [String: String] {
        var out: [String: String] = [:]
        for m in features.members { out[m.key] = m.value.description }
        return out
    }

    /// The read model an event type feeds (for its anomalies).
    static func projection(of type: String) -> String {
        switch type {
        case "node.registered", "node.removed", "price.set", "job.queued", "gpu.allocated", "gpu.released": return "chargeback"
        case "serving.window.observed", "slo.defined", "slo.burn.alerted", "slo.burn.resolved": return "slo"
        default: return "registry"
        }
    }

    /// The rows of an event whose data the projections read. Reads every member it needs before
    /// it writes anything: a missing one throws ``Unappliable`` with nothing written.
    private func applyData(_ db: Database, _ e: EventFacts) throws {
        let d = e.data
        let st = try statements()
        switch e.type {
        case "dataset.registered":
            let values: [Value] = [.int(e.offset), .text(try d.required("name")), .text(try d.required("version")), .text(try d.required("digest")), .text(try d.required("source")), .text(d.string("classification")), .int(e.time), .text(e.hash)]
            try run(st.dataset, values)
        case "model.registered":
            let model = try d.required("model")
            try run(st.model, [.int(e.offset), .text(model), .text(try d.required("team")), .text(d.string("description")), .text(e.actor), .int(e.time)])
            models.insert(model)
        case "model.version.created":
            let model = try d.required("model")
            let version = try d.required("version")
            let source = try d.required("source")
            let digest = try d.required("digest")
            guard models.contains(model) else { return try anomaly(db, e, "registry", "version \(version) of unknown model \(model)") }
            if versions.contains("\(model)@\(version)") { try anomaly(db, e, "registry", "version \(version) of \(model) created again (the first one stands)"); return }
            let features = d["baseline"]?.objectValue.map { b in JSONValue.object(JSONObject(members: b.members.map { .init(key: $0.key, value: $0.value["bins"] ?? .null) })).description }
            try run(st.version, [.int(e.offset), .text(model), .text(version), .text(source), .text(digest), .text(d.string("job")), .text(d.json("datasets") ?? "[]"), .text(features), .text(e.actor), .int(e.time), .text(e.hash)])
            versions.insert("\(model)@\(version)")
            if let baseline = d["baseline"]?.objectValue {
                baselineBins["\(model)@\(version)"] = FactWriter.bins(JSONObject(members: baseline.members.map { .init(key: $0.key, value: $0.value["bins"] ?? .null) }))
            }
        case "feature.histogram.observed":
            let (model, version, feature) = (try d.required("model"), try d.required("version"), try d.required("feature"))
            let bins = (d["bins"] ?? .null).description
            // PSI needs identical bins (SEMANTICS.md, Drift): the drift processor skips the
            // histogram; the mismatch is worth an operator's eye.
            if let expected = baselineBins["\(model)@\(version)"]?[feature], expected != bins {
                try anomaly(db, e, "registry", "histogram of \(feature) for \(model)@\(version) has bins \(bins), its baseline \(expected): no drift computed for it")
            }
        case "model.version.evaluated":
            let (model, version) = (try d.required("model"), try d.required("version"))
            guard let metrics = d["metrics"], metrics.objectValue != nil else { throw Unappliable("data member \"metrics\" is missing or not an object") }
            guard try known(db, e, model, version) else { return }
            try run(st.evaluation, [.int(e.offset), .text(model), .text(version), .text(metrics.description), .int(d["passed"]?.boolValue == true ? 1 : 0), .text(d.string("evaluator")), .text(e.actor), .int(e.time), .text(e.hash)])
        case "model.version.approved":
            let (model, version, approver) = (try d.required("model"), try d.required("version"), try d.required("approver"))
            guard try known(db, e, model, version) else { return }
            try run(st.approval, [.int(e.offset), .text(model), .text(version), .text(approver), .text(e.actor), .int(e.time), .text(e.hash)])
        case "model.version.archived":
            let (model, version) = (try d.required("model"), try d.required("version"))
            guard try known(db, e, model, version) else { return }
            try run(st.archive, [.int(e.offset), .text(model), .text(version), .text(e.actor), .int(e.time), .text(e.hash)])
        case "model.alias.set":
            let (model, alias, version) = (try d.required("model"), try d.required("alias"), try d.required("version"))
            guard try known(db, e, model, version) else { return }
            try run(st.alias, [.int(e.offset), .text(model), .text(alias), .text(version), .text(e.actor), .int(e.time), .text(e.hash)])
            aliases.insert("\(model)@\(alias)")
        case "model.alias.removed":
            let (model, alias) = (try d.required("model"), try d.required("alias"))
            let key = "\(model)@\(alias)"
            guard aliases.contains(key) else { return try anomaly(db, e, "registry", "alias \(alias) of \(model) removed but not set") }
            try run(st.alias, [.int(e.offset), .text(model), .text(alias), .text(nil), .text(e.actor), .int(e.time), .text(e.hash)])
            aliases.remove(key)
        case "deployment.created":
            let (deployment, model, version) = (try d.required("deployment"), try d.required("model"), try d.required("version"))
            if !versions.contains("\(model)@\(version)") {
                try anomaly(db, e, "registry", "deployment \(deployment) of unknown model version \(model)@\(version)")
            }
            try deploymentEvent(db, e, deployment, model: model, version: version, team: d.string("team"), gpuType: d.string("gpuType"), weight: nil, detail: d.string("service"))
            deployments.insert(deployment)
        case "rollout.started":
            let (deployment, model, version) = (try d.required("deployment"), try d.required("model"), try d.required("toVersion"))
            guard try knownDeployment(db, e, deployment) else { return }
            if !versions.contains("\(model)@\(version)") {
                try anomaly(db, e, "registry", "rollout of unknown model version \(model)@\(version)")
            }
            let detail: JSONValue = ["steps": d["steps"] ?? .null, "analysis": d["analysis"] ?? .null]
            try deploymentEvent(db, e, deployment, model: model, version: version, team: nil, gpuType: nil,
                weight: d["steps"]?.arrayValue?.first?["weight"]?.intValue, detail: detail.description)
        case "rollout.step.advanced", "rollout.paused", "rollout.resumed", "rollout.promoted", "rollout.rolled_back":
            let deployment = try d.required("deployment")
            guard try knownDeployment(db, e, deployment) else { return }
            var detail: String? = nil
            if e.type == "rollout.rolled_back" || e.type == "rollout.paused" {
                var o: JSONObject = ["reason": d["reason"] ?? .null]
                if let checks = d["checks"] { o["checks"] = checks }
                if let evidence = d["evidence"] { o["evidence"] = evidence }
                detail = JSONValue.object(o).description
            } else if let evidence = d["evidence"] {
                detail = JSONValue.object(["evidence": evidence]).description
            }
            try deploymentEvent(db, e, deployment, model: nil, version: d.string("version"), team: nil, gpuType: nil, weight: d.int("weight"), detail: detail)
        case "gate.evaluated":
            let subject = d["subject"]?.objectValue ?? [:]
            let values: [Value] = [.int(e.offset), .text(e.causationId?.description), .text(try d.required("policy")), .i(try d.requiredInt("policyVersion")),
                .text(try d.required("promotion")), .text(try subject.required("model")), .text(try subject.required("version")), .text(subject.string("deployment")),
                .text(subject.string("alias")), .text(try d.required("result")), .text(d.json("rules") ?? "[]"), .text(d.json("evidence") ?? "[]"),
                .text(e.actor), .int(e.time), .text(e.hash)]
            try run(st.gate, values)
        case "drift.alerted":
            let values: [Value] = [.int(e.offset), .text(try d.required("deployment")), .text(try d.required("model")), .text(try d.required("version")), .text(try d.required("feature")),
                .double(try d.requiredDouble("value")), .double(try d.requiredDouble("threshold")), .text(try d.required("severity")), .int(e.time), .text(e.hash)]
            try run(st.drift, values)
        case "node.registered":
            let (node, gpuType, count) = (try d.required("node"), try d.required("gpuType"), try d.requiredInt("gpuCount"))
            if let open = openNodes[node] {
                // A re-registration replaces the node's earlier capacity from now on.
                try run(st.capacityClose, [.int(e.offset), .int(e.time), .int(open.offset)])
                capacity[open.gpuType, default: 0] -= open.gpus
            }
            try run(st.capacityOpen, [.int(e.offset), .text(node), .text(gpuType), .i(count), .int(e.time)])
            openNodes[node] = (e.offset, gpuType, count)
            capacity[gpuType, default: 0] += count
        case "node.removed":
            let node = try d.required("node")
            guard let open = openNodes.removeValue(forKey: node) else { return try anomaly(db, e, "chargeback", "node \(node) removed but not registered") }
            try run(st.capacityClose, [.int(e.offset), .int(e.time), .int(open.offset)])
            capacity[open.gpuType, default: 0] -= open.gpus
        case "price.set":
            let gpuType = try d.required("gpuType")
            guard let rate = Money.exactRate(d["hourlyRate"]), let from = Timestamp.parse(d.string("effectiveFrom")) else {
                return try anomaly(db, e, "chargeback", "price without a usable rate or effectiveFrom")
            }
            try run(st.price, [.int(e.offset), .text(gpuType), .text(rate), .text(d.string("currency") ?? "USD"), .int(from), .int(e.time)])
        case "slo.defined":
            let values: [Value] = [.int(e.offset), .text(try d.required("slo")), .text(try d.required("deployment")), .double(try d.requiredDouble("objective")),
                .i(d.int("periodDays") ?? 30), .text(try d.required("sli")), .int(e.time)]
            try run(st.slo, values)
        case "slo.burn.alerted", "slo.burn.resolved":
            let values: [Value] = [.int(e.offset), .text(try d.required("slo")), .text(try d.required("deployment")), .text(try d.required("severity")),
                .text(try d.required("longWindow")), .text(try d.required("shortWindow")), .int(e.type == "slo.burn.alerted" ? 1 : 0),
                .double(d.double("burnRateLong")), .double(d.double("burnRateShort")), .double(d.double("threshold")), .int(e.time), .text(e.hash)]
            try run(st.sloAlert, values)
        case "job.queued", "gpu.allocated", "gpu.released", "serving.window.observed":
            // Their facts are read without a parse (`EventFacts.Hot`); here only when that failed.
            throw Unappliable("its data lacks a member the projection needs, or has one of another type")
        default:
            break
        }
    }

    private func applyHot(_ db: Database, _ e: EventFacts, _ hot: EventFacts.Hot) throws {
        let st = try statements()
        switch hot {
        case .jobQueued(let job, let team, let project, let gpuType, let gpus, let model, let datasets):
            pendingJobs.append(JobRow(offset: e.offset, job: job, team: team, project: project, gpuType: gpuType, gpus: gpus, model: model, datasets: datasets, time: e.time))
        case .allocation(let job, let node, let gpuType, let gpus, let team):
            let key = job + "|" + node
            if e.type == "gpu.allocated" {
                if openAllocations[key] != nil {
                    return try anomaly(db, e, "chargeback", "job \(job) allocated again on \(node) without a release; the first allocation stands")
                }
                pendingAllocations[e.offset] = AllocationRow(offset: e.offset, job: job, node: node, gpuType: gpuType, gpus: gpus, team: team, start: e.time)
                openAllocations[key] = (e.offset, gpuType, gpus)
                allocated[gpuType, default: 0] += gpus
                if allocated[gpuType, default: 0] > capacity[gpuType, default: 0] {
                    try anomaly(db, e, "chargeback", "\(allocated[gpuType, default: 0]) \(gpuType) GPUs allocated, above the \(capacity[gpuType, default: 0]) registered: idle is floored at 0")
                }
            } else {
                guard let open = openAllocations.removeValue(forKey: key) else {
                    return try anomaly(db, e, "chargeback", "release of job \(job) on \(node) without an open allocation")
                }
                if pendingAllocations[open.offset] != nil {
                    pendingAllocations[open.offset]!.release = (e.offset, e.time)
                } else {
                    let c = st.allocationClose
                    c.int(e.offset); c.int(e.time); c.int(open.offset)
                    try c.run()
                }
                allocated[open.gpuType, default: 0] -= open.gpus
            }
        case .window(let deployment, let version, let start, let end, let requests, let errors, let slow, let p99, let gpuSeconds):
            if errors > requests || (slow ?? 0) > requests || end < start {
                try anomaly(db, e, "slo", "serving window with errors or slow requests above requests, or ending before it starts")
            }
            if !deployments.contains(deployment) {
                try anomaly(db, e, "slo", "serving window of unknown deployment \(deployment)")
            }
            pendingWindows.append(WindowBlock.Row(offset: e.offset, deployment: deployment, version: version, start: start, end: end, requests: requests, errors: errors, slow: slow, p99: p99, gpuSeconds: gpuSeconds))
        }
    }

    private func known(_ db: Database, _ e: EventFacts, _ model: String, _ version: String) throws -> Bool {
        if versions.contains("\(model)@\(version)") { return true }
        try anomaly(db, e, "registry", "\(e.type) for unknown version \(version) of \(models.contains(model) ? "" : "unknown model ")\(model)")
        return false
    }

    private func knownDeployment(_ db: Database, _ e: EventFacts, _ deployment: String) throws -> Bool {
        if deployments.contains(deployment) { return true }
        try anomaly(db, e, "registry", "\(e.type) for unknown deployment \(deployment)")
        return false
    }

    private func deploymentEvent(_ db: Database, _ e: EventFacts, _ deployment: String, model: String?, version: String?, team: String?, gpuType: String?, weight: Int?, detail: String?) throws {
        try run(statements().deployment, [.int(e.offset), .text(deployment), .text(e.type), .text(model), .text(version), .text(team), .text(gpuType), .i(weight), .text(detail), .text(e.actor), .int(e.time), .text(e.hash)])
    }

    /// A UTC day is closed by the first event at or after its end (SEMANTICS.md, corrections).
    private func closeDays(_ db: Database, _ e: EventFacts) {
        guard var day = firstOpenDay else {
            firstOpenDay = Timestamp(milliseconds: e.time).startOfDay.milliseconds
            return
        }
        while day + FactWriter.dayMs <= e.time {
            pendingClosings.append((day, e.offset, e.time))
            day += FactWriter.dayMs
        }
        firstOpenDay = day
    }
    private var pendingClosings: [(Int64, Int64, Int64)] = []

    /// Writes what was gathered since the last flush and the chunk's audit postings (called
    /// before each commit).
    func flush(_ db: Database, postings: Postings) throws {
        try insertPending(db)
        let st = try statements()
        for (day, offset, time) in pendingClosings { try run(st.dayClosed, [.int(day), .int(offset), .int(time)]) }
        pendingClosings = []
        // In a fixed order, so that a rebuild writes the same rows the same way. A bucket that
        // begins at or after the chunk's first event has no rows yet: plain inserts, many to a
        // statement; an earlier one may, and its list is appended to.
        let sorted = postings.all.sorted(by: { ($0.key.kind, $0.key.bucket, $0.key.key) < ($1.key.kind, $1.key.bucket, $1.key.key) })
        let first = postings.firstOffset
        func bind(_ entry: (key: Postings.Key, value: [UInt8]), _ s: HotStatement) {
            s.text(FactWriter.postingKinds[Int(entry.key.kind)])
            s.text(entry.key.key)
            s.int(entry.key.bucket)
            s.blob(entry.value)
        }
        for entry in sorted where entry.key.bucket * FactWriter.bucketSize < first {
            bind(entry, st.posting)
            try st.posting.run()
        }
        try FactWriter.insert(sorted.filter { $0.key.bucket * FactWriter.bucketSize >= first }, group: st.newPostings, single: st.posting, bind: bind)
    }
}

/// The audit postings of a chunk of events: offsets per actor, stream, category and type, in
/// buckets of 4096 offsets (2 bytes each, relative to the bucket). Gathered by the projector's
/// reading thread; written by ``FactWriter/flush(_:postings:)``.
struct Postings: Sendable {
    struct Key: Hashable, Sendable {
        var kind: UInt8
        var key: String
        var bucket: Int64
    }
    /// Every posting list of the chunk but those of the current bucket's frequent keys.
    private(set) var entries: [Key: [UInt8]] = [:]
    /// The current bucket's lists of actors, categories and types (kinds 0, 2, 3): a platform
    /// has a few dozen of each, which recur in every event, so they are found by a short scan
    /// (the same string storage compares at once) instead of hashing the string four times an
    /// event. Moved into `entries` when the bucket changes and by ``finish()``.
    private var recent: [[(name: String, offsets: [UInt8])]] = [[], [], [], []]
    private var recentBucket: Int64 = -1
    private static let recentLimit = 32

    /// The postings of `events`, in order.
    init(_ events: ContiguousArray<EventFacts>) {
        for i in events.indices { add(events[i]) }
        finish()
    }

    init() {}

    /// The offset of the first event added (every bucket that begins at or after it is new).
    private(set) var firstOffset = Int64.max

    mutating func add(_ e: EventFacts) {
        firstOffset = min(firstOffset, e.offset)
        let bucket = e.offset / FactWriter.bucketSize
        let relative = UInt16(e.offset - bucket * FactWriter.bucketSize)
        if bucket != recentBucket {
            finish()
            recentBucket = bucket
        }
        postRecent(0, e.actor, bucket, relative)
        Postings.append(relative, to: &entries[Key(kind: 1, key: e.stream, bucket: bucket), default: []])
        postRecent(2, String(StreamName.category(of: e.stream)), bucket, relative)
        postRecent(3, e.type, bucket, relative)
    }

    @inline(__always)
    private mutating func postRecent(_ kind: Int, _ key: String, _ bucket: Int64, _ relative: UInt16) {
        for i in recent[kind].indices where recent[kind][i].name == key {
            Postings.append(relative, to: &recent[kind][i].offsets)
            return
        }
        if recent[kind].count < Postings.recentLimit {
            var offsets: [UInt8] = []
            offsets.reserveCapacity(64)
            Postings.append(relative, to: &offsets)
            recent[kind].append((key, offsets))
        } else {
            Postings.append(relative, to: &entries[Key(kind: UInt8(kind), key: key, bucket: bucket), default: []])
        }
    }

    /// Moves the current bucket's frequent lists into `entries` (the reader calls it before it
    /// hands a chunk over; ``all`` gives the same lists either way).
    mutating func finish() {
        for kind in recent.indices {
            for (name, offsets) in recent[kind] {
                // Anything already there for this key and bucket came before (a key that did not
                // fit, or an earlier finish within the bucket): lists stay in offset order.
                entries[Key(kind: UInt8(kind), key: name, bucket: recentBucket), default: []] += offsets
            }
            recent[kind].removeAll(keepingCapacity: true)
        }
    }

    /// Every list of the chunk.
    var all: [Key: [UInt8]] {
        guard recent.contains(where: { !$0.isEmpty }) else { return entries }
        var copy = self
        copy.finish()
        return copy.entries
    }

    @inline(__always)
    private static func append(_ relative: UInt16, to offsets: inout [UInt8]) {
        offsets.append(UInt8(relative & 0xFF))
        offsets.append(UInt8(relative >> 8))
    }

}
