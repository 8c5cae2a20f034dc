import Foundation
@_exported import LedgerTestSupport
import LedgerCore
import LedgerLog
@testable import LedgerProcessors

/// A log fed event by event (admin path, chosen times), with the processors run to quiescence
/// after each event, as a replay does.
final class Play: @unchecked Sendable {
    let dir = TemporaryDirectory()
    let log: SegmentLog
    var runner: ProcessorRunner
    /// Every decision so far, in log order.
    var decisions: [(offset: Int64, type: String, data: JSONObject, causation: EventID, correlation: String?)] = []
    var clock: Int64 = Timestamp("2026-11-23T00:00:00.000Z")!.milliseconds

    init(processors: [any Processor] = ProcessorRunner.standard()) throws {
        var options = LogOptions()
        options.fsync = .never
        log = try SegmentLog.open(directory: dir.path, options: options)
        runner = ProcessorRunner(log: log, dataDirectory: dir.path, processors: processors)
    }

    deinit { try? log.close() }

    /// Appends a client event `seconds` after the previous one; returns its id and the decisions
    /// that followed it.
    @discardableResult
    /// `run: false` appends without running the processors (events that arrive together).
    func add(_ type: String, _ data: JSONValue, after seconds: Double = 1, actor: String = "user:test", schemaVersion: Int = 1, run: Bool = true) async throws -> (EventID, [(type: String, data: JSONObject)]) {
        clock += Int64(seconds * 1000)
        let t = EventCatalog.standard.type(type)!
        let object = data.objectValue!
        let id = EventID.random()
        let request = AppendRequest(stream: t.stream(for: object)!, type: type, data: object, id: id, schemaVersion: schemaVersion, time: Timestamp(milliseconds: clock), actor: actor)
        _ = try await log.append([request], policy: AppendPolicy(actor: "user:admin", mode: .admin))
        guard run else { return (id, []) }
        let made = try await runner.runToQuiescence()
        for d in made { decisions.append((d.offset, d.decision.type, d.decision.data, d.decision.causationId, d.decision.correlationId)) }
        return (id, made.map { ($0.decision.type, $0.decision.data) })
    }

    /// The decisions of these types so far.
    func of(_ types: String...) -> [JSONObject] { decisions.filter { types.contains($0.type) }.map(\.data) }

    // Shorthands for the scheduler's inputs.
    func node(_ name: String, _ type: String = "a100", gpus: Int = 8) async throws {
        try await add("node.registered", ["node": .string(name), "gpuType": .string(type), "gpuCount": .number(Double(gpus))])
    }

    /// A quota.set: v1 (StrictFIFO, as every quota before v2) unless a strategy is given, then v2
    /// (`""`: v2 without the field, which means BestEffortFIFO).
    func quota(_ team: String, _ type: String = "a100", nominal: Int, borrowing: Int = 0, cohort: String? = nil, weight: Double? = nil, strategy: String? = nil) async throws {
        var data: JSONObject = ["team": .string(team), "gpuType": .string(type), "nominal": .number(Double(nominal)), "borrowingLimit": .number(Double(borrowing))]
        if let cohort { data["cohort"] = .string(cohort) }
        if let weight { data["weight"] = .number(weight) }
        if let strategy, !strategy.isEmpty { data["queueingStrategy"] = .string(strategy) }
        try await add("quota.set", .object(data), schemaVersion: strategy == nil ? 1 : 2)
    }

    @discardableResult
    func queue(_ job: String, team: String, gpus: Int, type: String = "a100", priority: Int = 0, after seconds: Double = 1) async throws -> [(type: String, data: JSONObject)] {
        try await add("job.queued", ["job": .string(job), "team": .string(team), "gpuType": .string(type), "gpus": .number(Double(gpus)), "priority": .number(Double(priority))], after: seconds).1
    }

    @discardableResult
    func complete(_ job: String, after seconds: Double = 1) async throws -> [(type: String, data: JSONObject)] {
        try await add("job.completed", ["job": .string(job), "outcome": "succeeded"], after: seconds).1
    }

    /// The node each job was last admitted on.
    func placement() -> [String: String] {
        var out: [String: String] = [:]
        for d in decisions where d.type == "job.admitted" { out[d.data["job"]!.stringValue!] = d.data["node"]!.stringValue! }
        return out
    }

    func admittedJobs() -> [String] { of("job.admitted").map { $0["job"]!.stringValue! } }
}
