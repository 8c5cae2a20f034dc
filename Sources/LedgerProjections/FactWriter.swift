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

    /// Audit postings gathered since the last flush: "kind\u{0}key" → bucket → relative offsets.
    private var postings: [String: [Int64: [UInt8]]] = [:]

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
    }

    func anomaly(_ db: Database, _ e: EventFacts, _ projection: String, _ message: String) throws {
        try db.execute(
            sql: "INSERT OR IGNORE INTO anomalies (offset, projection, type, message) VALUES (?, ?, ?, ?)",
            arguments: [e.offset, projection, e.type, message])
    }

    func apply(_ db: Database, _ e: EventFacts) throws {
        closeDays(db, e)
        post("actor", e.actor, e.offset)
        post("stream", e.stream, e.offset)
        post("category", String(StreamName.category(of: e.stream)), e.offset)
        post("type", e.type, e.offset)
        if let cause = e.causationId {
            try db.execute(sql: "INSERT OR IGNORE INTO audit_causes (cause_id, effect_offset) VALUES (?, ?)", arguments: [Data(cause.bytes), e.offset])
        }
        guard e.envelope != nil else { return }
        let d = e.data
        switch e.type {
        case "dataset.registered":
            try db.execute(sql: "INSERT INTO datasets VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                arguments: [e.offset, d.string("name"), d.string("version"), d.string("digest"), d.string("source"), d.string("classification"), e.time, e.hash])
        case "model.registered":
            let model = d.string("model")!
            try db.execute(sql: "INSERT INTO models VALUES (?, ?, ?, ?, ?, ?)", arguments: [e.offset, model, d.string("team"), d.string("description"), e.actor, e.time])
            models.insert(model)
        case "model.version.created":
            let model = d.string("model")!
            let version = d.string("version")!
            guard models.contains(model) else { return try anomaly(db, e, "registry", "version \(version) of unknown model \(model)") }
            if versions.contains("\(model)@\(version)") { try anomaly(db, e, "registry", "version \(version) of \(model) created again (the first one stands)"); return }
            let features = d["baseline"]?.objectValue.map { b in JSONValue.object(JSONObject(members: b.members.map { .init(key: $0.key, value: $0.value["bins"] ?? .null) })).description }
            try db.execute(sql: "INSERT INTO model_versions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                arguments: [e.offset, model, version, d.string("source"), d.string("digest"), d.string("job"), d.json("datasets") ?? "[]", features, e.actor, e.time, e.hash])
            versions.insert("\(model)@\(version)")
        case "model.version.evaluated":
            guard try known(db, e, d) else { return }
            try db.execute(sql: "INSERT INTO model_evaluations VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                arguments: [e.offset, d.string("model"), d.string("version"), d.json("metrics"), d["passed"]?.boolValue == true ? 1 : 0, d.string("evaluator"), e.actor, e.time, e.hash])
        case "model.version.approved":
            guard try known(db, e, d) else { return }
            try db.execute(sql: "INSERT INTO model_approvals VALUES (?, ?, ?, ?, ?, ?, ?)",
                arguments: [e.offset, d.string("model"), d.string("version"), d.string("approver"), e.actor, e.time, e.hash])
        case "model.version.archived":
            guard try known(db, e, d) else { return }
            try db.execute(sql: "INSERT INTO model_archives VALUES (?, ?, ?, ?, ?, ?)", arguments: [e.offset, d.string("model"), d.string("version"), e.actor, e.time, e.hash])
        case "model.alias.set":
            guard try known(db, e, d) else { return }
            try db.execute(sql: "INSERT INTO model_aliases VALUES (?, ?, ?, ?, ?, ?, ?)",
                arguments: [e.offset, d.string("model"), d.string("alias"), d.string("version"), e.actor, e.time, e.hash])
            aliases.insert("\(d.string("model")!)@\(d.string("alias")!)")
        case "model.alias.removed":
            let key = "\(d.string("model")!)@\(d.string("alias")!)"
            guard aliases.contains(key) else { return try anomaly(db, e, "registry", "alias \(d.string("alias")!) of \(d.string("model")!) removed but not set") }
            try db.execute(sql: "INSERT INTO model_aliases VALUES (?, ?, ?, NULL, ?, ?, ?)", arguments: [e.offset, d.string("model"), d.string("alias"), e.actor, e.time, e.hash])
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
        case "drift.alerted":
            try db.execute(sql: "INSERT INTO drift_alerts VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                arguments: [e.offset, d.string("deployment"), d.string("model"), d.string("version"), d.string("feature"), d.double("value"), d.double("threshold"), d.string("severity"), e.time, e.hash])
        case "node.registered":
            let node = d.string("node")!
            if let open = openNodes[node] {
                // A re-registration replaces the node's earlier capacity from now on.
                try db.execute(sql: "UPDATE capacity SET removed_offset = ?, removed_time = ? WHERE offset = ?", arguments: [e.offset, e.time, open.offset])
                capacity[open.gpuType, default: 0] -= open.gpus
            }
            let gpuType = d.string("gpuType")!
            let count = d.int("gpuCount")!
            try db.execute(sql: "INSERT INTO capacity VALUES (?, ?, ?, ?, ?, NULL, NULL)", arguments: [e.offset, node, gpuType, count, e.time])
            openNodes[node] = (e.offset, gpuType, count)
            capacity[gpuType, default: 0] += count
        case "node.removed":
            let node = d.string("node")!
            guard let open = openNodes.removeValue(forKey: node) else { return try anomaly(db, e, "chargeback", "node \(node) removed but not registered") }
            try db.execute(sql: "UPDATE capacity SET removed_offset = ?, removed_time = ? WHERE offset = ?", arguments: [e.offset, e.time, open.offset])
            capacity[open.gpuType, default: 0] -= open.gpus
        case "price.set":
            guard let rate = Money.exactRate(d["hourlyRate"]), let from = Timestamp.parse(d.string("effectiveFrom")) else {
                return try anomaly(db, e, "chargeback", "price without a usable rate or effectiveFrom")
            }
            try db.execute(sql: "INSERT INTO prices VALUES (?, ?, ?, ?, ?, ?)", arguments: [e.offset, d.string("gpuType"), rate, d.string("currency") ?? "USD", from, e.time])
        case "job.queued":
            try db.execute(sql: "INSERT INTO jobs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                arguments: [e.offset, d.string("job"), d.string("team"), d.string("project"), d.string("gpuType"), d.int("gpus"), d.string("model"), d.json("datasets"), e.time])
        case "gpu.allocated":
            let job = d.string("job")!
            let node = d.string("node")!
            let key = job + "|" + node
            let gpuType = d.string("gpuType")!
            let gpus = d.int("gpus")!
            if openAllocations[key] != nil {
                return try anomaly(db, e, "chargeback", "job \(job) allocated again on \(node) without a release; the first allocation stands")
            }
            try db.execute(sql: "INSERT INTO allocations VALUES (?, ?, ?, ?, ?, ?, ?, NULL, NULL)", arguments: [e.offset, job, node, gpuType, gpus, d.string("team"), e.time])
            openAllocations[key] = (e.offset, gpuType, gpus)
            allocated[gpuType, default: 0] += gpus
            if allocated[gpuType, default: 0] > capacity[gpuType, default: 0] {
                try anomaly(db, e, "chargeback", "\(allocated[gpuType, default: 0]) \(gpuType) GPUs allocated, above the \(capacity[gpuType, default: 0]) registered: idle is floored at 0")
            }
        case "gpu.released":
            let job = d.string("job")!
            let node = d.string("node")!
            guard let open = openAllocations.removeValue(forKey: job + "|" + node) else {
                return try anomaly(db, e, "chargeback", "release of job \(job) on \(node) without an open allocation")
            }
            try db.execute(sql: "UPDATE allocations SET release_offset = ?, end_time = ? WHERE offset = ?", arguments: [e.offset, e.time, open.offset])
            allocated[open.gpuType, default: 0] -= open.gpus
        case "serving.window.observed":
            let requests = d.int("requests") ?? 0
            let errors = d.int("errors") ?? 0
            let start = Timestamp.parse(d.string("windowStart")) ?? 0
            let end = Timestamp.parse(d.string("windowEnd")) ?? 0
            if errors > requests || (d.int("slowRequests") ?? 0) > requests || end < start {
                try anomaly(db, e, "slo", "serving window with errors or slow requests above requests, or ending before it starts")
            }
            if !deployments.contains(d.string("deployment")!) {
                try anomaly(db, e, "slo", "serving window of unknown deployment \(d.string("deployment")!)")
            }
            try db.execute(sql: "INSERT INTO serving_windows VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                arguments: [e.offset, d.string("deployment"), d.string("version"), start, end, requests, errors, d.int("slowRequests"), d.double("p99Ms"), d.double("gpuSeconds")])
        case "slo.defined":
            try db.execute(sql: "INSERT INTO slos VALUES (?, ?, ?, ?, ?, ?, ?)",
                arguments: [e.offset, d.string("slo"), d.string("deployment"), d.double("objective"), d.int("periodDays") ?? 30, d.string("sli"), e.time])
        case "slo.burn.alerted", "slo.burn.resolved":
            try db.execute(sql: "INSERT INTO slo_alerts VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                arguments: [e.offset, d.string("slo"), d.string("deployment"), d.string("severity"), d.string("longWindow"), d.string("shortWindow"),
                    e.type == "slo.burn.alerted" ? 1 : 0, d.double("burnRateLong"), d.double("burnRateShort"), d.double("threshold"), e.time, e.hash])
        default:
            break
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
        try db.execute(sql: "INSERT INTO deployment_events VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            arguments: [e.offset, d.string("deployment"), e.type, model, version, team, gpuType, weight, detail, e.actor, e.time, e.hash])
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

    private func post(_ kind: String, _ key: String, _ offset: Int64) {
        let bucket = offset / FactWriter.bucketSize
        let relative = UInt16(offset - bucket * FactWriter.bucketSize)
        postings[kind + "\u{0}" + key, default: [:]][bucket, default: []].append(contentsOf: [UInt8(relative & 0xFF), UInt8(relative >> 8)])
    }

    /// Writes what was gathered since the last flush (called before each commit).
    func flush(_ db: Database) throws {
        for (day, offset, time) in pendingClosings {
            try db.execute(sql: "INSERT INTO days_closed VALUES (?, ?, ?)", arguments: [day, offset, time])
        }
        pendingClosings = []
        let statement = try db.cachedStatement(sql: """
            INSERT INTO audit_postings (kind, key, bucket, offsets) VALUES (?, ?, ?, ?)
            ON CONFLICT (kind, key, bucket) DO UPDATE SET offsets = CAST(offsets || excluded.offsets AS BLOB)
            """)
        for (compound, buckets) in postings {
            let split = compound.firstIndex(of: "\u{0}")!
            let kind = String(compound[..<split])
            let key = String(compound[compound.index(after: split)...])
            for (bucket, bytes) in buckets {
                try statement.execute(arguments: [kind, key, bucket, Data(bytes)])
            }
        }
        postings = [:]
    }
}
