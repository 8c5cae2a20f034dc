import Foundation
public import LedgerCore
public import LedgerLog

/// `ledger policy check`: what the policies in force would decide about a promotion, as of a
/// point of the log, rule by rule — without appending anything.
public enum PolicyCheck {
    /// The gate's state folded over the events before `end`.
    public static func state(_ source: any LogSource, end: Int64) throws -> Gate {
        let gate = Gate()
        let cursor = source.cursor(from: 0, end: end, filter: .all)
        while let view = try cursor.next() {
            guard gate.inputTypes.contains(view.type) else { continue }
            _ = gate.apply(try view.envelope().upcast())
        }
        return gate
    }

    /// The outcome of every policy in force that gates `promotion` (or only `policy`). With no
    /// target (`promotion.kind` nil), every policy whose models and teams cover the model.
    public static func check(_ gate: Gate, model: String, version: String, target: Promotion.Kind?, policy: String? = nil) throws -> [GateOutcome] {
        let state = gate.state
        let promotion: Promotion
        switch target {
        case .deployment?: promotion = Promotion(type: "rollout.started", model: model, version: version, kind: target!)
        case .alias?: promotion = Promotion(type: "model.alias.set", model: model, version: version, kind: target!)
        case nil: promotion = Promotion(type: "rollout.started", model: model, version: version, kind: .deployment("*"))
        }
        var policies: [GovernancePolicy]
        if let policy {
            guard let p = state.policies[policy] else {
                throw LedgerError(.notFound, "no policy \(policy) in force (policies: \(state.policies.keys.sorted().joined(separator: ", ")))")
            }
            policies = [p]
        } else if target == nil {
            policies = state.policies.values.filter { p in
                var any = p
                any.scope.deployments = nil
                any.scope.aliases = nil
                return any.gates(model: model, team: state.team(of: model), promotion: promotion)
            }.sorted { $0.name < $1.name }
        } else {
            policies = state.policies(gating: promotion)
        }
        return policies.map { state.evaluate($0, promotion: promotion) }
    }
}

/// The compliance evidence of a period (`ledger compliance report`): every promotion with the
/// gates that ran on it, their rules, approvers and evidence (offsets and hashes), the rollouts'
/// outcomes, the access grants and revocations; and the same grouped by the control each rule
/// serves (`Schemas/compliance/controls.json`).
public struct ComplianceReport: Sendable {
    public struct Control: Codable, Sendable {
        public var id: String
        public var framework: String
        public var title: String
        /// Rule-name prefixes (`evaluation`, `approval`, `lineage`, `classification`) and `access`.
        public var rules: [String]

        func serves(_ rule: String) -> Bool { rules.contains { rule == $0 || rule.hasPrefix($0 + ".") } }
    }

    struct ControlsFile: Codable {
        var controls: [Control]
    }

    /// The embedded default mapping, or `path`'s.
    public static func controls(path: String?) throws -> [Control] {
        let bytes: Data
        if let path {
            guard let data = FileManager.default.contents(atPath: path) else { throw LedgerError(.usage, "cannot read the controls file \(path)") }
            bytes = data
        } else {
            guard let file = EventCatalog.embeddedFiles.first(where: { $0.path == "compliance/controls.json" }) else {
                throw LedgerError(.internal, "the embedded Schemas/compliance/controls.json is missing")
            }
            bytes = Data(file.contents.utf8)
        }
        do {
            let controls = try JSONDecoder().decode(ControlsFile.self, from: bytes).controls
            guard !controls.isEmpty else { throw LedgerError(.usage, "the controls file names no control") }
            return controls
        } catch let error as LedgerError {
            throw error
        } catch {
            throw LedgerError(.usage, "the controls file \(path ?? "compliance/controls.json") is not {\"controls\": [{id, framework, title, rules}]}: \(error)")
        }
    }

    /// An event cited as evidence, resolved in the log.
    public struct Cited: Sendable {
        public var id: EventID
        public var offset: Int64?
        public var hash: String?
        public var type: String?
        public var summary: String?

        var json: JSONValue {
            var o: JSONObject = ["id": .string(id.description), "offset": offset.map { .number(Double($0)) } ?? .null]
            if let hash { o["hash"] = .string(hash) }
            if let type { o["type"] = .string(type) }
            if let summary { o["summary"] = .string(summary) }
            return .object(o)
        }
    }

    public struct Gate: Sendable {
        public var offset: Int64
        public var hash: String
        public var policy: String
        public var policyVersion: Int
        public var result: String
        public var rules: [RuleVerdict]
        public var approvers: [String]
        public var evidence: [Cited]

        var json: JSONValue {
            ["offset": .number(Double(offset)), "hash": .string(hash), "policy": .string(policy), "policyVersion": .number(Double(policyVersion)),
             "result": .string(result), "rules": .array(rules.map(\.json)), "approvers": .array(approvers.map { .string($0) }),
             "evidence": .array(evidence.map(\.json))]
        }
    }

    public struct PromotionRecord: Sendable {
        public var offset: Int64
        public var id: EventID
        public var hash: String
        public var time: Timestamp
        public var actor: String
        public var promotion: Promotion
        public var gates: [Gate] = []
        /// For a rollout: `promoted`, `rolled_back` (with the reason) or `in progress`.
        public var outcome: String?
        public var outcomeOffset: Int64?
        /// No policy gated it.
        public var ungated: Bool { gates.isEmpty }
        public var result: String { ungated ? "ungated" : gates.contains { $0.result != "passed" } ? "denied" : "passed" }

        var json: JSONValue {
            var o: JSONObject = [
                "offset": .number(Double(offset)), "id": .string(id.description), "hash": .string(hash), "time": .string(time.description),
                "actor": .string(actor), "type": .string(promotion.type), "subject": .object(promotion.subject), "result": .string(result),
                "gates": .array(gates.map(\.json)),
            ]
            if let outcome { o["outcome"] = .string(outcome) }
            if let outcomeOffset { o["outcomeOffset"] = .number(Double(outcomeOffset)) }
            return .object(o)
        }
    }

    public struct AccessChange: Sendable {
        public var offset: Int64
        public var hash: String
        public var time: Timestamp
        public var type: String
        public var principal: String
        public var role: String
        public var streamPrefix: String?
        public var actor: String

        var json: JSONValue {
            var o: JSONObject = ["offset": .number(Double(offset)), "hash": .string(hash), "time": .string(time.description), "type": .string(type),
                                 "principal": .string(principal), "role": .string(role), "actor": .string(actor)]
            if let streamPrefix { o["streamPrefix"] = .string(streamPrefix) }
            return .object(o)
        }
    }

    public var from: Timestamp
    public var to: Timestamp
    /// The offsets the period covers: [first, end).
    public var first: Int64
    public var end: Int64
    public var promotions: [PromotionRecord]
    public var access: [AccessChange]
    public var controls: [Control]

    /// Scans the events whose time is in [from, to), and after `to` only the gates and rollout
    /// outcomes of the period's promotions.
    public static func build(_ source: any LogSource, from: Timestamp, to: Timestamp, controls: [Control]) throws -> ComplianceReport {
        guard from < to else { throw LedgerError(.usage, "--from \(from) must be before --to \(to)") }
        let first = try source.firstOffset(atOrAfter: from)
        let end = try source.firstOffset(atOrAfter: to)
        var report = ComplianceReport(from: from, to: to, first: first, end: end, promotions: [], access: [], controls: controls)
        var byID: [EventID: Int] = [:]
        var rollouts: [String: Int] = [:]  // rollout.started id → promotion index
        let ids = try source.idLookup()
        let reader = EventReader(source: source)
        func cite(_ id: EventID) throws -> Cited {
            guard let o = try ids.offset(of: id), let e = try reader.event(at: o)?.envelope() else { return Cited(id: id) }
            return Cited(id: id, offset: o, hash: e.hash.description, type: e.type, summary: EventSummary.of(e))
        }
        let wanted: Set<String> = ["deployment.created", "rollout.started", "model.alias.set", "gate.evaluated", "rollout.promoted",
                                   "rollout.rolled_back", "access.granted", "access.revoked"]
        let cursor = source.cursor(from: first, end: nil, filter: .all)
        while let view = try cursor.next() {
            let inPeriod = view.offset < end
            let type = view.type
            guard wanted.contains(type) else { continue }
            if !inPeriod && !["gate.evaluated", "rollout.promoted", "rollout.rolled_back"].contains(type) { continue }
            if !inPeriod && byID.isEmpty { break }
            let e = try view.envelope().upcast()
            switch type {
            case "deployment.created", "rollout.started", "model.alias.set":
                guard let promotion = Promotion(e) else { continue }
                byID[e.id] = report.promotions.count
                if type == "rollout.started" {
                    rollouts[e.id.description] = report.promotions.count
                }
                report.promotions.append(PromotionRecord(offset: e.offset, id: e.id, hash: e.hash.description, time: e.time, actor: e.actor, promotion: promotion,
                    outcome: type == "rollout.started" ? "in progress" : nil))
            case "gate.evaluated":
                guard let cause = e.causationId, let i = byID[cause] else { continue }
                let d = e.data
                let rules = (d["rules"]?.arrayValue ?? []).compactMap(RuleVerdict.init(json:))
                let evidence = try (d["evidence"]?.arrayValue ?? []).compactMap { $0.stringValue.flatMap(EventID.init) }.map(cite)
                var approvers: [String] = []
                for c in evidence where c.type == "model.version.approved" {
                    if let o = c.offset, let a = try reader.event(at: o)?.envelope().data["approver"]?.stringValue, !approvers.contains(a) { approvers.append(a) }
                }
                report.promotions[i].gates.append(Gate(offset: e.offset, hash: e.hash.description, policy: d["policy"]?.stringValue ?? "?",
                    policyVersion: d["policyVersion"]?.intValue ?? 0, result: d["result"]?.stringValue ?? "?", rules: rules, approvers: approvers, evidence: evidence))
            case "rollout.promoted", "rollout.rolled_back":
                guard let c = e.correlationId, let i = rollouts[c], report.promotions[i].outcomeOffset == nil else { continue }
                report.promotions[i].outcome = type == "rollout.promoted" ? "promoted" : "rolled back: " + (e.data["reason"]?.stringValue ?? "")
                report.promotions[i].outcomeOffset = e.offset
            default:
                let d = e.data
                report.access.append(AccessChange(offset: e.offset, hash: e.hash.description, time: e.time, type: type,
                    principal: d["principal"]?.stringValue ?? "?", role: d["role"]?.stringValue ?? "?", streamPrefix: d["streamPrefix"]?.stringValue, actor: e.actor))
            }
        }
        return report
    }

    /// One control's findings: each gated promotion's verdicts on the rules the control covers.
    public struct Finding: Sendable {
        public var promotion: Int
        public var gate: Int
        public var rules: [RuleVerdict]
    }

    public func findings(_ control: Control) -> [Finding] {
        var out: [Finding] = []
        for (i, p) in promotions.enumerated() {
            for (g, gate) in p.gates.enumerated() {
                let rules = gate.rules.filter { control.serves($0.rule) }
                if !rules.isEmpty { out.append(Finding(promotion: i, gate: g, rules: rules)) }
            }
        }
        return out
    }

    public var totals: (promotions: Int, passed: Int, denied: Int, ungated: Int) {
        (promotions.count, promotions.filter { $0.result == "passed" }.count, promotions.filter { $0.result == "denied" }.count, promotions.filter(\.ungated).count)
    }

    public var json: JSONValue {
        let t = totals
        let controlsJSON: [JSONValue] = controls.map { c in
            let f = findings(c)
            let failing = f.filter { $0.rules.contains { $0.verdict != .passed } }.count
            var o: JSONObject = ["id": .string(c.id), "framework": .string(c.framework), "title": .string(c.title), "rules": .array(c.rules.map { .string($0) })]
            o["gates"] = .number(Double(f.count))
            o["gatesWithFailingRules"] = .number(Double(failing))
            o["findings"] = .array(f.map { x in
                let p = promotions[x.promotion]
                return ["promotionOffset": .number(Double(p.offset)), "gateOffset": .number(Double(p.gates[x.gate].offset)), "policy": .string(p.gates[x.gate].policy),
                        "rules": .array(x.rules.map(\.json))]
            })
            if c.rules.contains("access") { o["accessChanges"] = .number(Double(access.count)) }
            return .object(o)
        }
        return [
            "period": ["from": .string(from.description), "to": .string(to.description), "firstOffset": .number(Double(first)), "endOffset": .number(Double(end))],
            "totals": ["promotions": .number(Double(t.promotions)), "passed": .number(Double(t.passed)), "denied": .number(Double(t.denied)), "ungated": .number(Double(t.ungated))],
            "promotions": .array(promotions.map(\.json)),
            "access": .array(access.map(\.json)),
            "controls": .array(controlsJSON),
        ]
    }

    /// The report as Markdown, for an auditor's working papers.
    public var markdown: String {
        var out: [String] = []
        let t = totals
        out.append("# Compliance report, \(from) to \(to)")
        out.append("")
        out.append("Offsets \(first) to \(end - 1) of the log. \(t.promotions) promotions: \(t.passed) passed their gates, \(t.denied) denied, \(t.ungated) ungated (no policy in scope). \(access.count) access changes.")
        out.append("")
        out.append("## Controls")
        for c in controls {
            let f = findings(c)
            out.append("")
            out.append("### \(c.id) — \(c.title)")
            out.append("")
            out.append("\(c.framework). Rules: \(c.rules.joined(separator: ", ")).")
            out.append("")
            if c.rules.contains("access") { out.append("- \(access.count) access grants and revocations in the period (below).") }
            if f.isEmpty && !c.rules.contains("access") { out.append("- No gate ran a rule of this control in the period.") }
            for x in f {
                let p = promotions[x.promotion]
                let g = p.gates[x.gate]
                let verdicts = x.rules.map { "\($0.name) **\($0.verdict.rawValue)** (\(Self.escape($0.reason)))" }.joined(separator: "; ")
                out.append("- #\(p.offset) \(p.promotion.model)@\(p.promotion.version) to \(p.promotion.target): gate #\(g.offset) \(g.policy) v\(g.policyVersion) — \(verdicts)")
            }
        }
        out.append("")
        out.append("## Promotions")
        out.append("")
        out.append("| offset | time | promotion | subject | by | result | gates | approvers | outcome |")
        out.append("|---:|---|---|---|---|---|---|---|---|")
        for p in promotions {
            let gates = p.gates.map { "#\($0.offset) \($0.policy) v\($0.policyVersion) \($0.result)" }.joined(separator: "<br>")
            let approvers = Array(Set(p.gates.flatMap(\.approvers))).sorted().joined(separator: ", ")
            out.append("| \(p.offset) | \(p.time) | \(p.promotion.type) | \(p.promotion.model)@\(p.promotion.version) to \(p.promotion.target) | \(p.actor) | \(p.result) | \(gates.isEmpty ? "—" : gates) | \(approvers.isEmpty ? "—" : approvers) | \(Self.escape(p.outcome ?? "—")) |")
        }
        out.append("")
        out.append("## Evidence")
        for p in promotions where !p.ungated {
            out.append("")
            out.append("### #\(p.offset) \(p.promotion.type) \(p.promotion.model)@\(p.promotion.version) to \(p.promotion.target) (hash `\(p.hash)`)")
            for g in p.gates {
                out.append("")
                out.append("Gate #\(g.offset) (hash `\(g.hash)`), policy \(g.policy) v\(g.policyVersion): **\(g.result)**")
                out.append("")
                for r in g.rules {
                    let vt = [r.value.map { "value " + $0.text }, r.threshold.map { "threshold " + $0.text }].compactMap { $0 }.joined(separator: ", ")
                    out.append("- \(r.name): \(r.verdict.rawValue)\(vt.isEmpty ? "" : " (\(vt))") — \(Self.escape(r.reason))")
                }
                for c in g.evidence {
                    out.append("- evidence #\(c.offset.map(String.init) ?? "?") \(c.type ?? "not in this log") `\(c.hash ?? c.id.description)`\(c.summary.map { ": " + Self.escape($0) } ?? "")")
                }
            }
        }
        out.append("")
        out.append("## Access grants and revocations")
        out.append("")
        out.append("| offset | time | change | principal | role | by | hash |")
        out.append("|---:|---|---|---|---|---|---|")
        for a in access {
            out.append("| \(a.offset) | \(a.time) | \(a.type == "access.granted" ? "granted" : "revoked") | \(a.principal) | \(a.role)\(a.streamPrefix.map { " on " + $0 + "*" } ?? "") | \(a.actor) | `\(a.hash)` |")
        }
        return out.joined(separator: "\n") + "\n"
    }

    static func escape(_ s: String) -> String { s.replacingOccurrences(of: "|", with: "\\|").replacingOccurrences(of: "\n", with: " ") }
}
