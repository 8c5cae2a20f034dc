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
    private var openAllocations: [String: (offset: Int64, gpuType: String, gpus: Int)] = [:]
    private var openNodes: [String: (offset: Int64, gpuType: String, gpus: Int)] = [:]
    private var firstOpenDay: Int64? = nil
    private var capacity: [String: Int] = [:]
    private var allocated: [String: Int] = [:]

    /// Audit postings gathered since the last flush: (kind, key, bucket) → relative offsets (2 bytes each).
    struct PostingKey: Hashable {
        var kind: UInt8
        var key: String
        var bucket: Int64
    }
    private var postings: [PostingKey: [UInt8]] = [:]
    static let postingKinds = ["actor", "stream", "category", "type"]

    /// The hot statements, prepared once per writer connection.
    final class Statements {
        let anomaly, cause, posting, dataset, model, version, evaluation, approval, archive, alias, deployment, drift: HotStatement
        let capacityOpen, capacityClose, price, job, allocationOpen, allocationClose, window, slo, sloAlert, dayClosed, gate: HotStatement

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
            allocationOpen = try HotStatement(db, "INSERT INTO allocations VALUES (?, ?, ?, ?, ?, ?, ?, NULL, NULL)")
            allocationClose = try HotStatement(db, "UPDATE allocations SET release_offset = ?, end_time = ? WHERE offset = ?")
            window = try HotStatement(db, "INSERT INTO serving_windows VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
            slo = try HotStatement(db, "INSERT INTO slos VALUES (?, ?, ?, ?, ?, ?, ?)")
            sloAlert = try HotStatement(db, "INSERT INTO slo_alerts VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
            dayClosed = try HotStatement(db, "INSERT INTO days_closed VALUES (?, ?, ?)")
            gate = try HotStatement(db, "INSERT INTO gate_evaluations VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
        }
    }
    private var statements: Statements?

    func load(_ db: Database) throws {
        models = Set(try String.fetchAll(db, sql: "SELECT DISTINCT model FROM models"))
        versions = Set(try Row.fetchAll(db, sql: "SELECT model, version FROM model_versions").map { "\($0[0] as String)@\($0[1] as String)" })
        deployments = Set(try String.fetchAll(db, sql: "SELECT DISTINCT deployment FROM deployment_events WHERE type = 'deployment.created'"))
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
        postings = [:]
        statements = try Statements(db)
    }

    func anomaly(_ db: Database, _ e: EventFacts, _ projection: String, _ message: String) throws {
        let st = statements!.anomaly
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

    func apply(_ db: Database, _ e: EventFacts) throws {
        closeDays(db, e)
        post(0, e.actor, e.offset)
        post(1, e.stream, e.offset)
        post(2, String(StreamName.category(of: e.stream)), e.offset)
        post(3, e.type, e.offset)
        if let cause = e.causationId {
            let st = statements!.cause
            st.blob(cause.bytes)
            st.int(e.offset)
            try st.run()
        }
        if let hot = e.hot { return try applyHot(db, e, hot) }
        guard e.envelope != nil else { return }
        let d = e.data
        switch e.type {
        case "dataset.registered":
            try run(statements!.dataset, [.int(e.offset), .text(d.string("name")), .text(d.string("version")), .text(d.string("digest")), .text(d.string("source")), .text(d.string("classification")), .int(e.time), .text(e.hash)])
        case "model.registered":
            let model = d.string("model")!
            try run(statements!.model, [.int(e.offset), .text(model), .text(d.string("team")), .text(d.string("description")), .text(e.actor), .int(e.time)])
            models.insert(model)
        case "model.version.created":
            let model = d.string("model")!
            let version = d.string("version")!
            guard models.contains(model) else { return try anomaly(db, e, "registry", "version \(version) of unknown model \(model)") }
            if versions.contains("\(model)@\(version)") { try anomaly(db, e, "registry", "version \(version) of \(model) created again (the first one stands)"); return }
            let features = d["baseline"]?.objectValue.map { b in JSONValue.object(JSONObject(members: b.members.map { .init(key: $0.key, value: $0.value["bins"] ?? .null) })).description }
            try run(statements!.version, [.int(e.offset), .text(model), .text(version), .text(d.string("source")), .text(d.string("digest")), .text(d.string("job")), .text(d.json("datasets") ?? "[]"), .text(features), .text(e.actor), .int(e.time), .text(e.hash)])
            versions.insert("\(model)@\(version)")
        case "model.version.evaluated":
            guard try known(db, e, d) else { return }
            try run(statements!.evaluation, [.int(e.offset), .text(d.string("model")), .text(d.string("version")), .text(d.json("metrics")), .int(d["passed"]?.boolValue == true ? 1 : 0), .text(d.string("evaluator")), .text(e.actor), .int(e.time), .text(e.hash)])
        case "model.version.approved":
            guard try known(db, e, d) else { return }
            try run(statements!.approval, [.int(e.offset), .text(d.string("model")), .text(d.string("version")), .text(d.string("approver")), .text(e.actor), .int(e.time), .text(e.hash)])
        case "model.version.archived":
            guard try known(db, e, d) else { return }
            try run(statements!.archive, [.int(e.offset), .text(d.string("model")), .text(d.string("version")), .text(e.actor), .int(e.time), .text(e.hash)])
        case "model.alias.set":
            guard try known(db, e, d) else { return }
            try run(statements!.alias, [.int(e.offset), .text(d.string("model")), .text(d.string("alias")), .text(d.string("version")), .text(e.actor), .int(e.time), .text(e.hash)])
            aliases.insert("\(d.string("model")!)@\(d.string("alias")!)")
        case "model.alias.removed":
            let key = "\(d.string("model")!)@\(d.string("alias")!)"
            guard aliases.contains(key) else { return try anomaly(db, e, "registry", "alias \(d.string("alias")!) of \(d.string("model")!) removed but not set") }
            try run(statements!.alias, [.int(e.offset), .text(d.string("model")), .text(d.string("alias")), .text(nil), .text(e.actor), .int(e.time), .text(e.hash)])
            aliases.remove(key)
        case "deployment.created":
            let deployment = d.string("deployment")!
            if !versions.contains("\(d.string("model")!)@\(d.string("version")!)") {
                try anomaly(db, e, "registry", "deployment \(deployment) of unknown model version \(d.string("model")!)@\(d.string("version")!)")
            }
            try deploymentEvent(db, e, d, model: d.string("model"), version: d.string("version"), team: d.string("team"), gpuType: d.string("gpuType"), weight: nil, detail: d.string("service"))
            deployments.insert(deployment)
        case "rollout.started":
            guard try knownDeployment(db, e, d) else { return }
            if !versions.contains("\(d.string("model")!)@\(d.string("toVersion")!)") {
                try anomaly(db, e, "registry", "rollout of unknown model version \(d.string("model")!)@\(d.string("toVersion")!)")
            }
            let detail: JSONValue = ["steps": d["steps"] ?? .null, "analysis": d["analysis"] ?? .null]
            try deploymentEvent(db, e, d, model: d.string("model"), version: d.string("toVersion"), team: nil, gpuType: nil,
                weight: d["steps"]?.arrayValue?.first?["weight"]?.intValue, detail: detail.description)
        case "rollout.step.advanced", "rollout.paused", "rollout.resumed", "rollout.promoted", "rollout.rolled_back":
            guard try knownDeployment(db, e, d) else { return }
            var detail: String? = nil
            if e.type == "rollout.rolled_back" || e.type == "rollout.paused" {
                var o: JSONObject = ["reason": d["reason"] ?? .null]
                if let checks = d["checks"] { o["checks"] = checks }
                if let evidence = d["evidence"] { o["evidence"] = evidence }
                detail = JSONValue.object(o).description
            } else if let evidence = d["evidence"] {
                detail = JSONValue.object(["evidence": evidence]).description
            }
            try deploymentEvent(db, e, d, model: nil, version: d.string("version"), team: nil, gpuType: nil, weight: d.int("weight"), detail: detail)
        case "gate.evaluated":
            let subject = d["subject"]?.objectValue ?? [:]
            try run(statements!.gate, [.int(e.offset), .text(e.causationId?.description), .text(d.string("policy")), .i(d.int("policyVersion")),
                .text(d.string("promotion")), .text(subject.string("model")), .text(subject.string("version")), .text(subject.string("deployment")),
                .text(subject.string("alias")), .text(d.string("result")), .text(d.json("rules") ?? "[]"), .text(d.json("evidence") ?? "[]"),
                .text(e.actor), .int(e.time), .text(e.hash)])
        case "drift.alerted":
            try run(statements!.drift, [.int(e.offset), .text(d.string("deployment")), .text(d.string("model")), .text(d.string("version")), .text(d.string("feature")), .double(d.double("value")), .double(d.double("threshold")), .text(d.string("severity")), .int(e.time), .text(e.hash)])
        case "node.registered":
            let node = d.string("node")!
            if let open = openNodes[node] {
                // A re-registration replaces the node's earlier capacity from now on.
                try run(statements!.capacityClose, [.int(e.offset), .int(e.time), .int(open.offset)])
                capacity[open.gpuType, default: 0] -= open.gpus
            }
            let gpuType = d.string("gpuType")!
            let count = d.int("gpuCount")!
            try run(statements!.capacityOpen, [.int(e.offset), .text(node), .text(gpuType), .i(count), .int(e.time)])
            openNodes[node] = (e.offset, gpuType, count)
            capacity[gpuType, default: 0] += count
        case "node.removed":
            let node = d.string("node")!
            guard let open = openNodes.removeValue(forKey: node) else { return try anomaly(db, e, "chargeback", "node \(node) removed but not registered") }
            try run(statements!.capacityClose, [.int(e.offset), .int(e.time), .int(open.offset)])
            capacity[open.gpuType, default: 0] -= open.gpus
        case "price.set":
            guard let rate = Money.exactRate(d["hourlyRate"]), let from = Timestamp.parse(d.string("effectiveFrom")) else {
                return try anomaly(db, e, "chargeback", "price without a usable rate or effectiveFrom")
            }
            try run(statements!.price, [.int(e.offset), .text(d.string("gpuType")), .text(rate), .text(d.string("currency") ?? "USD"), .int(from), .int(e.time)])
        case "slo.defined":
            try run(statements!.slo, [.int(e.offset), .text(d.string("slo")), .text(d.string("deployment")), .double(d.double("objective")), .i(d.int("periodDays") ?? 30), .text(d.string("sli")), .int(e.time)])
        case "slo.burn.alerted", "slo.burn.resolved":
            try run(statements!.sloAlert, [.int(e.offset), .text(d.string("slo")), .text(d.string("deployment")), .text(d.string("severity")), .text(d.string("longWindow")), .text(d.string("shortWindow")),
                .int(e.type == "slo.burn.alerted" ? 1 : 0), .double(d.double("burnRateLong")), .double(d.double("burnRateShort")), .double(d.double("threshold")), .int(e.time), .text(e.hash)])
        default:
            break
        }
    }

    private func applyHot(_ db: Database, _ e: EventFacts, _ hot: EventFacts.Hot) throws {
        let st = statements!
        switch hot {
        case .jobQueued(let job, let team, let project, let gpuType, let gpus, let model, let datasets):
            try run(st.job, [.int(e.offset), .text(job), .text(team), .text(project), .text(gpuType), .i(gpus), .text(model), .text(datasets), .int(e.time)])
        case .allocation(let job, let node, let gpuType, let gpus, let team):
            let key = job + "|" + node
            if e.type == "gpu.allocated" {
                if openAllocations[key] != nil {
                    return try anomaly(db, e, "chargeback", "job \(job) allocated again on \(node) without a release; the first allocation stands")
                }
                try run(st.allocationOpen, [.int(e.offset), .text(job), .text(node), .text(gpuType), .i(gpus), .text(team), .int(e.time)])
                openAllocations[key] = (e.offset, gpuType, gpus)
                allocated[gpuType, default: 0] += gpus
                if allocated[gpuType, default: 0] > capacity[gpuType, default: 0] {
                    try anomaly(db, e, "chargeback", "\(allocated[gpuType, default: 0]) \(gpuType) GPUs allocated, above the \(capacity[gpuType, default: 0]) registered: idle is floored at 0")
                }
            } else {
                guard let open = openAllocations.removeValue(forKey: key) else {
                    return try anomaly(db, e, "chargeback", "release of job \(job) on \(node) without an open allocation")
                }
                try run(st.allocationClose, [.int(e.offset), .int(e.time), .int(open.offset)])
                allocated[open.gpuType, default: 0] -= open.gpus
            }
        case .window(let deployment, let version, let start, let end, let requests, let errors, let slow, let p99, let gpuSeconds):
            if errors > requests || (slow ?? 0) > requests || end < start {
                try anomaly(db, e, "slo", "serving window with errors or slow requests above requests, or ending before it starts")
            }
            if !deployments.contains(deployment) {
                try anomaly(db, e, "slo", "serving window of unknown deployment \(deployment)")
            }
            try run(st.window, [.int(e.offset), .text(deployment), .text(version), .int(start), .int(end), .i(requests), .i(errors), .i(slow), .double(p99), .double(gpuSeconds)])
        }
    }

    private func known(_ db: Database, _ e: EventFacts, _ d: JSONObject) throws -> Bool {
        let model = d.string("model")!
        let version = d.string("version")!
        if versions.contains("\(model)@\(version)") { return true }
        try anomaly(db, e, "registry", "\(e.type) for unknown version \(version) of \(models.contains(model) ? "" : "unknown model ")\(model)")
        return false
    }

    private func knownDeployment(_ db: Database, _ e: EventFacts, _ d: JSONObject) throws -> Bool {
        if deployments.contains(d.string("deployment")!) { return true }
        try anomaly(db, e, "registry", "\(e.type) for unknown deployment \(d.string("deployment")!)")
        return false
    }

    private func deploymentEvent(_ db: Database, _ e: EventFacts, _ d: JSONObject, model: String?, version: String?, team: String?, gpuType: String?, weight: Int?, detail: String?) throws {
        try run(statements!.deployment, [.int(e.offset), .text(d.string("deployment")), .text(e.type), .text(model), .text(version), .text(team), .text(gpuType), .i(weight), .text(detail), .text(e.actor), .int(e.time), .text(e.hash)])
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

    @inline(__always)
    private func post(_ kind: UInt8, _ key: String, _ offset: Int64) {
        let bucket = offset / FactWriter.bucketSize
        let relative = UInt16(offset - bucket * FactWriter.bucketSize)
        let k = PostingKey(kind: kind, key: key, bucket: bucket)
        if postings[k] == nil { postings[k] = [] ; postings[k]!.reserveCapacity(16) }
        postings[k]!.append(UInt8(relative & 0xFF))
        postings[k]!.append(UInt8(relative >> 8))
    }

    /// Writes what was gathered since the last flush (called before each commit).
    func flush(_ db: Database) throws {
        let st = statements!
        for (day, offset, time) in pendingClosings { try run(st.dayClosed, [.int(day), .int(offset), .int(time)]) }
        pendingClosings = []
        // In a fixed order, so that a rebuild writes the same rows the same way.
        for (k, bytes) in postings.sorted(by: { ($0.key.kind, $0.key.bucket, $0.key.key) < ($1.key.kind, $1.key.bucket, $1.key.key) }) {
            st.posting.text(FactWriter.postingKinds[Int(k.kind)])
            st.posting.text(k.key)
            st.posting.int(k.bucket)
            st.posting.blob(bytes)
            try st.posting.run()
        }
        postings = [:]
    }
}
