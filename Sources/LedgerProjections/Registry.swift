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

    /// The governance gates' verdicts on one promotion (an alias move, a rollout, a deployment's
    /// creation): `denied` when any policy denied it, `passed` when every one passed.
    public struct GateStatus: Sendable {
        public struct Verdict: Sendable {
            public var policy: String
            public var policyVersion: Int
            public var result: String
            /// The rules that did not pass: `rule: reason`.
            public var reasons: [String]
            public var offset: Int64
            public var hash: String
        }

        public var verdicts: [Verdict]
        public var result: String { verdicts.contains { $0.result != "passed" } ? "denied" : "passed" }
        /// `denied by prod v2 (approval: …)`.
        public var summary: String {
            let denied = verdicts.filter { $0.result != "passed" }
            if denied.isEmpty { return "passed " + verdicts.map { "\($0.policy) v\($0.policyVersion)" }.joined(separator: ", ") }
            return "denied by " + denied.map { "\($0.policy) v\($0.policyVersion) (\($0.reasons.joined(separator: "; ")))" }.joined(separator: ", ")
        }

        public var json: JSONValue {
            ["result": .string(result), "verdicts": .array(verdicts.map {
                ["policy": .string($0.policy), "policyVersion": .number(Double($0.policyVersion)), "result": .string($0.result),
                 "reasons": .array($0.reasons.map { .string($0) }), "offset": .number(Double($0.offset)), "hash": .string($0.hash)]
            })]
        }

        /// Whether some verdict of the query's prefix is linked to its promotion by id only
        /// (projected before links were kept by offset, or its promotion was not in the log
        /// before it): asked once per query, passed to ``of(_:_:promotionAt:linkedByID:)``.
        static func linkedByID(_ q: QueryContext, _ db: Database) throws -> Bool {
            try Bool.fetchOne(db, sql: """
                SELECT EXISTS (SELECT 1 FROM audit_causes c JOIN gate_evaluations g ON g.offset = c.effect_offset WHERE g.offset <= ?)
                """, arguments: [q.last]) ?? false
        }

        /// The gates on the promotion at `offset`, as of the query (nil: none gated it, or none has reported yet).
        ///
        /// A verdict is linked to its promotion by the promotion's offset (`audit_effect_blocks`), read
        /// without touching the log. Only when some verdict's link was kept by id is the
        /// promotion's id read from the log and those verdicts found by it as well.
        static func of(_ q: QueryContext, _ db: Database, promotionAt offset: Int64, linkedByID: Bool) throws -> GateStatus? {
            let effects = try EffectBlock.effects(db, of: offset, last: q.last)
            var rows = effects.isEmpty ? [] : try Row.fetchAll(db, sql: """
                SELECT policy, policy_version, result, rules, offset, hash FROM gate_evaluations
                WHERE offset IN (\(effects.map(String.init).joined(separator: ", "))) ORDER BY offset
                """)
            if linkedByID, let id = try q.envelope(offset)?.id {
                let known = Set(rows.map { $0[4] as Int64 })
                rows += try Row.fetchAll(db, sql: "SELECT policy, policy_version, result, rules, offset, hash FROM gate_evaluations WHERE trigger_id = ? AND offset <= ? ORDER BY offset",
                    arguments: [id.description, q.last]).filter { !known.contains($0[4] as Int64) }
                rows.sort { ($0[4] as Int64) < ($1[4] as Int64) }
            }
            guard !rows.isEmpty else { return nil }
            return GateStatus(verdicts: rows.map { r in
                let rules = (try? JSONParser.parse(Array((r[3] as String).utf8)))?.arrayValue ?? []
                let reasons = rules.compactMap { rule -> String? in
                    guard let o = rule.objectValue, o.string("verdict") != "passed", let name = o.string("rule"), let reason = o.string("reason") else { return nil }
                    return "\(name)\(o.string("metric").map { " " + $0 } ?? ""): \(reason)"
                }
                return Verdict(policy: r[0], policyVersion: r[1], result: r[2], reasons: reasons, offset: r[4], hash: r[5])
            })
        }
    }

    public struct AliasChange: Sendable {
        public var alias: String
        public var version: String?
        public var actor: String
        public var time: Int64
        public var offset: Int64
        public var hash: String
        /// The gates' verdicts on this move.
        public var gate: GateStatus?

        public var json: JSONValue {
            var o: JSONObject = ["alias": .string(alias), "version": version.map { .string($0) } ?? .null, "actor": .string(actor),
             "time": .string(Timestamp(milliseconds: time).description), "offset": .number(Double(offset)), "hash": .string(hash)]
            if let gate { o["gate"] = gate.json }
            return .object(o)
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
        /// alias → the gates' verdicts on the move that set it (a denied alias stays shown as
        /// denied until a later move passes).
        public var aliasGates: [String: GateStatus] = [:]

        public var json: JSONValue {
            var o: JSONObject = [
                "model": .string(model), "team": .string(team), "versions": .array(versions.map(\.json)),
                "aliases": .object(JSONObject(members: aliases.map { .init(key: $0.0, value: .string($0.1)) })),
                "aliasHistory": .array(aliasHistory.map(\.json)),
            ]
            // Only when a gate judged an alias (a log without policies answers as it always did).
            if !aliasGates.isEmpty {
                o["aliasGates"] = .object(JSONObject(members: aliasGates.sorted { $0.key < $1.key }.map { .init(key: $0.key, value: $0.value.json) }))
            }
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
        /// The gates' verdicts on the latest rollout (or on the creation, before any rollout).
        public var gate: GateStatus?
        var gatedOffset: Int64 = -1

        public var json: JSONValue {
            var o: JSONObject = [
                "deployment": .string(deployment), "model": .string(model), "team": .string(team), "liveVersion": .string(live),
                "weight": .number(Double(weight)), "state": .string(state), "lastChangeOffset": .number(Double(lastChange)),
            ]
            if let canary { o["canaryVersion"] = .string(canary) }
            if let gpuType { o["gpuType"] = .string(gpuType) }
            if let gate { o["gate"] = gate.json }
            return .object(o)
        }
    }

    /// Every registered model with its versions and aliases.
    public static func models(_ q: QueryContext, only name: String? = nil) throws -> [Model] {
        try q.read { db in
            var out: [Model] = []
            let linkedByID = try GateStatus.linkedByID(q, db)
            let modelRows = try Row.fetchAll(db, sql: """
                SELECT model, team, description FROM models m WHERE offset <= ? AND (? IS NULL OR model = ?)
                AND offset = (SELECT MAX(offset) FROM models n WHERE n.model = m.model AND n.offset <= ?) ORDER BY model
                """, arguments: [q.last, name, name, q.last])
            for row in modelRows {
                let model: String = row[0]
                var m = Model(model: model, team: row[1], description: row[2], versions: [], aliases: [], aliasHistory: [])
                for a in try Row.fetchAll(db, sql: "SELECT alias, version, actor, time, offset, hash FROM model_aliases WHERE model = ? AND offset <= ? ORDER BY offset", arguments: [model, q.last]) {
                    let version: String? = a[1]
                    let gate = version == nil ? nil : try GateStatus.of(q, db, promotionAt: a[4], linkedByID: linkedByID)
                    m.aliasHistory.append(AliasChange(alias: a[0], version: version, actor: a[2], time: a[3], offset: a[4], hash: a[5], gate: gate))
                }
                var current: [String: String] = [:]
                for change in m.aliasHistory {
                    current[change.alias] = change.version
                    m.aliasGates[change.alias] = change.gate
                }
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
                    byName[name] = Deployment(deployment: name, model: row[2], team: row[4], gpuType: row[5], live: version ?? "", canary: nil, weight: 0, state: "stable", lastChange: offset, gatedOffset: offset)
                    continue
                }
                guard var d = byName[name] else { continue }
                switch type {
                case "rollout.started":
                    d.gatedOffset = offset
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
            var out = byName.values.sorted { $0.deployment < $1.deployment }
            let linkedByID = try GateStatus.linkedByID(q, db)
            for i in out.indices { out[i].gate = try GateStatus.of(q, db, promotionAt: out[i].gatedOffset, linkedByID: linkedByID) }
            return out
        }
    }
}
