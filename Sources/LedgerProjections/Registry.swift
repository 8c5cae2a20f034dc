import GRDB
public import LedgerCore

/// The model registry (anchor: MLflow Model Registry), as of a prefix of the log.
public enum Registry {
    public struct Version: Sendable {
        public var model: String
        public var version: String
        public var source: String
        public var digest: String
        public var job: String?
        public var datasets: [String]
        public var creator: String
        public var created: Int64
        public var createdOffset: Int64
        public var metrics: JSONValue?
        public var passed: Bool?
        public var approver: String?
        /// The approver is the version's creator (allowed, but flagged).
        public var selfApproved: Bool
        public var archived: Bool
        public var aliases: [String]

        public var json: JSONValue {
            var o: JSONObject = [
                "model": .string(model), "version": .string(version), "source": .string(source), "digest": .string(digest),
                "datasets": .array(datasets.map { .string($0) }), "creator": .string(creator),
                "created": .string(Timestamp(milliseconds: created).description), "createdOffset": .number(Double(createdOffset)),
                "selfApproved": .bool(selfApproved), "archived": .bool(archived), "aliases": .array(aliases.map { .string($0) }),
            ]
            if let job { o["job"] = .string(job) }
            if let metrics { o["metrics"] = metrics }
            if let passed { o["passed"] = .bool(passed) }
            if let approver { o["approver"] = .string(approver) }
            return .object(o)
        }
    }

    public struct AliasChange: Sendable {
        public var alias: String
        public var version: String?
        public var actor: String
        public var time: Int64
        public var offset: Int64
        public var hash: String

        public var json: JSONValue {
            ["alias": .string(alias), "version": version.map { .string($0) } ?? .null, "actor": .string(actor),
             "time": .string(Timestamp(milliseconds: time).description), "offset": .number(Double(offset)), "hash": .string(hash)]
        }
    }

    public struct Model: Sendable {
        public var model: String
        public var team: String
        public var description: String?
        public var versions: [Version]
        /// alias → version, as of the query.
        public var aliases: [(String, String)]
        public var aliasHistory: [AliasChange]

        public var json: JSONValue {
            var o: JSONObject = [
                "model": .string(model), "team": .string(team), "versions": .array(versions.map(\.json)),
                "aliases": .object(JSONObject(members: aliases.map { .init(key: $0.0, value: .string($0.1)) })),
                "aliasHistory": .array(aliasHistory.map(\.json)),
            ]
            if let description { o["description"] = .string(description) }
            return .object(o)
        }
    }

    public struct Deployment: Sendable {
        public var deployment: String
        public var model: String
        public var team: String
        public var gpuType: String?
        /// The version serving all traffic (or what is left of it during a canary).
        public var live: String
        public var canary: String?
        public var weight: Int
        public var state: String
        public var lastChange: Int64

        public var json: JSONValue {
            var o: JSONObject = [
                "deployment": .string(deployment), "model": .string(model), "team": .string(team), "liveVersion": .string(live),
                "weight": .number(Double(weight)), "state": .string(state), "lastChangeOffset": .number(Double(lastChange)),
            ]
            if let canary { o["canaryVersion"] = .string(canary) }
            if let gpuType { o["gpuType"] = .string(gpuType) }
            return .object(o)
        }
    }

    /// Every registered model with its versions and aliases.
    public static func models(_ q: QueryContext, only name: String? = nil) throws -> [Model] {
        try q.read { db in
            var out: [Model] = []
            let modelRows = try Row.fetchAll(db, sql: """
                SELECT model, team, description FROM models m WHERE offset <= ? AND (? IS NULL OR model = ?)
                AND offset = (SELECT MAX(offset) FROM models n WHERE n.model = m.model AND n.offset <= ?) ORDER BY model
                """, arguments: [q.last, name, name, q.last])
            for row in modelRows {
                let model: String = row[0]
                var m = Model(model: model, team: row[1], description: row[2], versions: [], aliases: [], aliasHistory: [])
                for a in try Row.fetchAll(db, sql: "SELECT alias, version, actor, time, offset, hash FROM model_aliases WHERE model = ? AND offset <= ? ORDER BY offset", arguments: [model, q.last]) {
                    m.aliasHistory.append(AliasChange(alias: a[0], version: a[1], actor: a[2], time: a[3], offset: a[4], hash: a[5]))
                }
                var current: [String: String] = [:]
                for change in m.aliasHistory { current[change.alias] = change.version }
                m.aliases = current.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
                for v in try Row.fetchAll(db, sql: "SELECT version, source, digest, job, datasets, actor, time, offset FROM model_versions WHERE model = ? AND offset <= ? ORDER BY offset", arguments: [model, q.last]) {
                    let version: String = v[0]
                    let evaluation = try Row.fetchOne(db, sql: "SELECT metrics, passed FROM model_evaluations WHERE model = ? AND version = ? AND offset <= ? ORDER BY offset DESC LIMIT 1", arguments: [model, version, q.last])
                    let approver = try String.fetchOne(db, sql: "SELECT approver FROM model_approvals WHERE model = ? AND version = ? AND offset <= ? ORDER BY offset DESC LIMIT 1", arguments: [model, version, q.last])
                    let archived = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM model_archives WHERE model = ? AND version = ? AND offset <= ?", arguments: [model, version, q.last]) ?? 0
                    let creator: String = v[5]
                    let datasets = (try? JSONParser.parse(Array((v[4] as String).utf8)))?.arrayValue?.compactMap(\.stringValue) ?? []
                    m.versions.append(Version(
                        model: model, version: version, source: v[1], digest: v[2], job: v[3], datasets: datasets, creator: creator, created: v[6],
                        createdOffset: v[7], metrics: (evaluation?[0] as String?).flatMap { try? JSONParser.parse(Array($0.utf8)) },
                        passed: evaluation.map { ($0[1] as Int) != 0 }, approver: approver, selfApproved: approver == creator,
                        archived: archived > 0, aliases: m.aliases.filter { $0.1 == version }.map(\.0)))
                }
                out.append(m)
            }
            return out
        }
    }

    /// Every deployment and its state: stable, progressing (a canary at some weight), paused, rolled_back.
    public static func deployments(_ q: QueryContext) throws -> [Deployment] {
        try q.read { db in
            var byName: [String: Deployment] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT deployment, type, model, version, team, gpu_type, weight, offset FROM deployment_events WHERE offset <= ? ORDER BY offset", arguments: [q.last]) {
                let name: String = row[0]
                let type: String = row[1]
                let version: String? = row[3]
                let offset: Int64 = row[7]
                if type == "deployment.created" {
                    byName[name] = Deployment(deployment: name, model: row[2], team: row[4], gpuType: row[5], live: version ?? "", canary: nil, weight: 0, state: "stable", lastChange: offset)
                    continue
                }
                guard var d = byName[name] else { continue }
                switch type {
                case "rollout.started":
                    d.canary = version
                    d.weight = row[6] ?? 0
                    d.state = "progressing"
                case "rollout.step.advanced":
                    d.weight = row[6] ?? d.weight
                case "rollout.paused":
                    if d.canary != nil { d.state = "paused" }
                case "rollout.resumed":
                    if d.canary != nil { d.state = "progressing" }
                case "rollout.promoted":
                    d.live = version ?? d.canary ?? d.live
                    d.canary = nil
                    d.weight = 0
                    d.state = "stable"
                case "rollout.rolled_back":
                    d.canary = nil
                    d.weight = 0
                    d.state = "rolled_back"
                default: break
                }
                d.lastChange = offset
                byName[name] = d
            }
            return byName.values.sorted { $0.deployment < $1.deployment }
        }
    }
}
