public import LedgerCore
public import LedgerLog

/// The processors' decisions in a prefix of the log: what `ledger decisions` and
/// `GET /v1/decisions` list.
public enum Decisions {
    /// A filter on decisions.
    public struct Filter: Sendable {
        /// Only this processor's (`scheduler`, `drift`, `slo`, `rollout`, `gate`).
        public var processor: String?
        /// Only this type.
        public var type: String?
        public init(processor: String? = nil, type: String? = nil) {
            self.processor = processor
            self.type = type
        }
    }

    /// Types a processor may write: the decision types, and the rollout outcomes that a client
    /// may also write (only the processors' count).
    public static func mayBeDecision(_ type: String) -> Bool {
        EventCatalog.standard.type(type)?.isDecision == true || type == "rollout.promoted" || type == "rollout.rolled_back"
    }

    /// Every decision (an event appended by `processor:*`) before `end`, in log order.
    public static func list(_ source: any LogSource, filter: Filter = Filter(), end: Int64? = nil, limit: Int? = nil) throws -> [Envelope] {
        let actor = filter.processor.map { "processor:" + $0 }
        let cursor = source.cursor(from: 0, end: end ?? source.head, filter: .all)
        var rows: [Envelope] = []
        while let view = try cursor.next() {
            if let type = filter.type, view.type != type { continue }
            guard mayBeDecision(view.type) else { continue }
            let e = try view.envelope()
            guard e.actor.hasPrefix("processor:"), actor == nil || e.actor == actor else { continue }
            rows.append(e)
            if let limit, rows.count >= limit { break }
        }
        return rows
    }

    /// `{offset, type, stream, causationId?, correlationId?, data}`: the brief form `Replay/` expects.
    public static func brief(_ e: Envelope) -> JSONValue {
        var o: JSONObject = ["offset": .number(Double(e.offset)), "type": .string(e.type), "stream": .string(e.stream), "data": .object(e.data)]
        if let c = e.causationId { o["causationId"] = .string(c.description) }
        if let c = e.correlationId { o["correlationId"] = .string(c) }
        return .object(o)
    }
}

/// The causal chain of an event back to its first trigger (`ledger explain`), with the evidence
/// of each step resolved to offsets.
public struct CausalChain: Sendable {
    public struct Evidence: Sendable {
        public var id: String
        /// Nil when the id is not in this log.
        public var offset: Int64?
        public var event: Envelope?
    }

    public struct Step: Sendable {
        public var event: Envelope
        public var evidence: [Evidence]
    }

    /// The event first, then its cause, its cause's cause, …
    public var steps: [Step]

    /// Follows `causationId` from the event at `offset` until an event has none (or its cause is
    /// not in the log, or a cycle would begin).
    public static func explain(_ source: any LogSource, offset: Int64) throws -> CausalChain {
        guard offset >= 0, offset < source.head else {
            throw LedgerError(.notFound, "offset \(offset) is not in the log (head \(source.head))")
        }
        let ids = try source.idLookup()
        let events = EventReader(source: source)
        func event(at o: Int64) throws -> Envelope {
            guard let stored = try events.event(at: o) else { throw LedgerError(.notFound, "offset \(o) is not readable") }
            return try stored.envelope()
        }
        var chain: [Envelope] = [try event(at: offset)]
        var seen: Set<Int64> = [offset]
        while let cause = chain.last?.causationId {
            guard let o = try ids.offset(of: cause), !seen.contains(o) else { break }
            seen.insert(o)
            chain.append(try event(at: o))
        }
        var steps: [Step] = []
        for e in chain {
            var evidence: [Evidence] = []
            for idValue in e.data["evidence"]?.arrayValue ?? [] {
                guard let text = idValue.stringValue, let id = EventID(text) else { continue }
                let o = try ids.offset(of: id)
                evidence.append(Evidence(id: text, offset: o, event: try o.map { try event(at: $0) }))
            }
            steps.append(Step(event: e, evidence: evidence))
        }
        return CausalChain(steps: steps)
    }

    /// `{"chain": [{offset, id, type, actor, time, hash, summary, evidence: [{id, offset}]}]}`.
    public var json: JSONValue {
        let steps: [JSONValue] = self.steps.map { step in
            let e = step.event
            var o: JSONObject = [
                "offset": .number(Double(e.offset)), "id": .string(e.id.description), "type": .string(e.type), "actor": .string(e.actor),
                "time": .string(e.time.description), "hash": .string(e.hash.description), "summary": .string(EventSummary.of(e)),
            ]
            o["evidence"] = .array(step.evidence.map { ["id": .string($0.id), "offset": $0.offset.map { .number(Double($0)) } ?? .null] })
            return .object(o)
        }
        return ["chain": .array(steps)]
    }
}

/// One-line summaries of events, for decisions and explanations.
public enum EventSummary {
    public static func of(_ e: Envelope) -> String {
        let d = e.data
        func s(_ k: String) -> String { d[k]?.stringValue ?? "?" }
        func n(_ k: String) -> String {
            guard let v = d[k]?.doubleValue else { return "?" }
            return v == v.rounded() && abs(v) < 1e15 ? String(Int64(v)) : String(v)
        }
        switch e.type {
        case "job.queued": return "job \(s("job")) of \(s("team")) wants \(n("gpus")) \(s("gpuType")) (priority \(n("priority")))"
        case "job.admitted":
            return "job \(s("job")) admitted on \(s("node")) with \(n("gpus")) GPUs after \(n("waitedSeconds")) s" + (d["borrowed"]?.boolValue == true ? ", borrowing (share \(n("clusterQueueShare")))" : "")
        case "job.rejected": return "job \(s("job")) rejected: \(s("reason"))"
        case "job.preempted": return "job \(s("job")) preempted: \(s("reason"))" + (d["preemptor"] != nil ? " by \(s("preemptor"))" : "")
        case "gpu.allocated": return "\(n("gpus")) \(s("gpuType")) on \(s("node")) to job \(s("job")) (\(s("team")))"
        case "gpu.released": return "\(n("gpus")) \(s("gpuType")) on \(s("node")) released by job \(s("job")) (\(s("team")))"
        case "job.completed": return "job \(s("job")) \(s("outcome"))"
        case "job.cancelled": return "job \(s("job")) cancelled"
        case "node.removed": return "node \(s("node")) removed: \(s("reason"))"
        case "model.version.created": return "\(s("model")) version \(s("version")) created (baseline of \(d["baseline"]?.objectValue?.keys.joined(separator: ", ") ?? "no features"))"
        case "rollout.started": return "rollout of \(s("model")) version \(s("toVersion")) on \(s("deployment"))"
        case "rollout.step.advanced": return "\(s("deployment")) canary \(s("version")) advanced to \(n("weight"))% on \(d["evidence"]?.arrayValue?.count ?? 0) windows"
        case "rollout.promoted": return "\(s("deployment")) promoted version \(s("version")) on \(d["evidence"]?.arrayValue?.count ?? 0) windows"
        case "rollout.rolled_back": return "\(s("deployment")) rolled back version \(s("version")): \(s("reason"))"
        case "rollout.paused": return "\(s("deployment")) paused: \(s("reason"))"
        case "serving.window.observed":
            return "\(s("deployment")) version \(s("version")) window to \(s("windowEnd")): \(n("requests")) requests, \(n("errors")) errors, p99 \(n("p99Ms")) ms"
        case "feature.histogram.observed": return "\(s("deployment")) version \(s("version")) histogram of \(s("feature")) at \(s("windowEnd"))"
        case "drift.alerted": return "\(s("severity")) drift of \(s("feature")) in \(s("deployment")) version \(s("version")): PSI \(n("value")) ≥ \(n("threshold"))"
        case "slo.burn.alerted":
            return "\(s("severity")) on \(s("slo")): burn \(n("burnRateLong")) over \(s("longWindow")), \(n("burnRateShort")) over \(s("shortWindow")) > \(n("threshold"))"
        case "gate.evaluated":
            let subject = d["subject"]?.objectValue ?? [:]
            let target = subject["deployment"]?.stringValue.map { "deployment " + $0 } ?? subject["alias"]?.stringValue.map { "alias " + $0 } ?? "?"
            let failing = (d["rules"]?.arrayValue ?? []).compactMap(RuleVerdict.init(json:)).filter { $0.verdict != .passed }
                .map(\.summary)
            return "gate \(s("result")) \(subject["model"]?.stringValue ?? "?") version \(subject["version"]?.stringValue ?? "?") to \(target) under \(s("policy")) v\(n("policyVersion"))"
                + (failing.isEmpty ? "" : " — " + failing.joined(separator: "; "))
        case "policy.set": return "policy \(s("policy")) v\(n("version")): \(d["rules"]?.objectValue?.keys.joined(separator: ", ") ?? "")"
        case "model.version.evaluated":
            let metrics = (d["metrics"]?.objectValue ?? [:]).map { "\($0.key) \($0.value.doubleValue.map { RolloutController.text($0) } ?? "?")" }.joined(separator: ", ")
            return "\(s("model")) version \(s("version")) evaluated by \(d["evaluator"]?.stringValue ?? e.actor): \(metrics), \(d["passed"]?.boolValue == true ? "passed" : "not passed")"
        case "dataset.registered": return "dataset \(s("name"))@\(s("version")) (\(d["classification"]?.stringValue ?? "unclassified")) registered with digest \(s("digest"))"
        case "model.version.approved": return "\(s("model")) version \(s("version")) approved by \(s("approver"))"
        case "access.granted": return "\(s("principal")) granted \(s("role"))" + (d["streamPrefix"]?.stringValue.map { " on \($0)*" } ?? "")
        case "access.revoked": return "\(s("principal")) revoked \(s("role"))"
        case "slo.burn.resolved": return "resolved \(s("severity")) on \(s("slo")) (\(s("longWindow"))/\(s("shortWindow")))"
        default: return e.stream
        }
    }
}
