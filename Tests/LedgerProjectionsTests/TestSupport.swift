import Foundation
@_exported import LedgerTestSupport
import LedgerCore
import LedgerLog
@testable import LedgerProjections

/// A log written event by event with chosen times and actors (the admin path), and its projections.
final class ScenarioLog: @unchecked Sendable {
    let dir = TemporaryDirectory()
    let log: SegmentLog
    var store: ProjectionStore!
    var offsets: [Int64] = []

    init() throws {
        var options = LogOptions()
        options.fsync = .never
        log = try SegmentLog.open(directory: dir.path, options: options)
    }

    deinit { try? log.close() }

    /// Appends one event; the stream comes from the catalog's rule for the type.
    @discardableResult
    func add(_ time: String, _ type: String, _ data: JSONValue, actor: String = "user:test", causation: EventID? = nil, id: EventID? = nil) async throws -> AppendResult {
        let t = EventCatalog.standard.type(type)!
        let object = data.objectValue!
        let stream = t.stream(for: object)!
        let request = AppendRequest(stream: stream, type: type, data: object, id: id ?? .random(), causationId: causation, time: Timestamp(time)!, actor: actor)
        let result = try await log.append([request], policy: AppendPolicy(actor: "user:admin", mode: .admin))[0]
        offsets.append(result.offset)
        return result
    }

    /// Brings the projections up to the head and returns a query context.
    func query(_ asOf: AsOf = .head) throws -> QueryContext {
        if store == nil { store = try ProjectionStore(dataDirectory: dir.path) }
        let projector = try Projector(store: store, source: log)
        try projector.catchUp()
        return try QueryContext(store: store, source: log, asOf: asOf)
    }
}

extension Chargeback.Report {
    /// Cost of the rows matching the filters (nil if any matching row is unpriced).
    func cost(team: String? = nil, gpuType: String? = nil, kind: Chargeback.Kind? = nil, chargeClass: Chargeback.ChargeClass = .regular) -> Decimal {
        rows.filter { (team == nil || $0.team == team) && (gpuType == nil || $0.gpuType == gpuType) && (kind == nil || $0.kind == kind) && $0.chargeClass == chargeClass && !$0.missingPrice }
            .reduce(Decimal(0)) { $0 + $1.costNumerator } / Decimal(3_600_000)
    }

    func hours(team: String? = nil, gpuType: String? = nil, kind: Chargeback.Kind? = nil) -> Decimal {
        rows.filter { (team == nil || $0.team == team) && (gpuType == nil || $0.gpuType == gpuType) && (kind == nil || $0.kind == kind) && $0.chargeClass == .regular }
            .reduce(Decimal(0)) { $0 + $1.gpuMs } / Decimal(3_600_000)
    }
}

func dec(_ text: String) -> Decimal { Decimal(string: text)! }

let day0 = "2026-11-23"
func t(_ clock: String, day: Int = 0) -> String {
    let base = Timestamp("2026-11-23T00:00:00.000Z")!.milliseconds + Int64(day) * 86_400_000
    let parts = clock.split(separator: ":").map { Int64($0)! }
    let ms = base + parts[0] * 3_600_000 + (parts.count > 1 ? parts[1] * 60_000 : 0)
    return Timestamp(milliseconds: ms).description
}

/// A small pool: one node of `gpus` GPUs of a type, priced.
func pool(_ s: ScenarioLog, gpuType: String = "a100", gpus: Int = 8, rate: Double? = 2.0, at time: String = t("00:00")) async throws {
    try await s.add(time, "node.registered", ["node": .string("n-\(gpuType)"), "gpuType": .string(gpuType), "gpuCount": .number(Double(gpus))])
    if let rate {
        try await s.add(time, "price.set", ["gpuType": .string(gpuType), "hourlyRate": .number(rate), "effectiveFrom": .string(time)])
    }
}

func allocate(_ s: ScenarioLog, _ job: String, team: String, gpus: Int, at time: String, gpuType: String = "a100", project: String? = nil) async throws {
    var q: JSONObject = ["job": .string(job), "team": .string(team), "gpuType": .string(gpuType), "gpus": .number(Double(gpus)), "priority": 0]
    if let project { q["project"] = .string(project) }
    try await s.add(time, "job.queued", .object(q))
    try await s.add(time, "gpu.allocated", ["job": .string(job), "node": .string("n-\(gpuType)"), "gpuType": .string(gpuType), "gpus": .number(Double(gpus)), "team": .string(team)], actor: "processor:scheduler")
}

func release(_ s: ScenarioLog, _ job: String, team: String, gpus: Int, at time: String, gpuType: String = "a100") async throws {
    try await s.add(time, "gpu.released", ["job": .string(job), "node": .string("n-\(gpuType)"), "gpuType": .string(gpuType), "gpus": .number(Double(gpus)), "team": .string(team)], actor: "processor:scheduler")
}
