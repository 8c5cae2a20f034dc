import Foundation
import Hummingbird
import LedgerCore
import LedgerLog
import LedgerProcessors
import LedgerProjections
import NIOCore

extension LedgerAPI {
    /// Runs a projection query on the blocking pool, against the prefix `asOf` names.
    func query<T: Sendable>(_ q: Query, _ body: @escaping @Sendable (QueryContext) throws -> T) async throws -> T {
        guard let store else { throw APIError(.notFound, "not_found", "this server keeps no projections") }
        let asOf = try q.asOf()
        let log = self.log
        return try await blocking { try body(try QueryContext(store: store, source: log, asOf: asOf)) }
    }

    func registryModels(_ request: Request, _ context: LedgerRequestContext) async throws -> Response {
        _ = try context.require(.reader, .writer, .finops, .auditor, .admin, for: "read the registry")
        let body = try await query(Query(request)) { q in JSONValue.object(["asOf": q.asOfJSON, "models": .array(try Registry.models(q).map(\.json))]) }
        return JSONResponse.make(body)
    }

    func registryModel(_ request: Request, _ context: LedgerRequestContext) async throws -> Response {
        _ = try context.require(.reader, .writer, .finops, .auditor, .admin, for: "read the registry")
        let name = try context.parameters.required("model")
        let body = try await query(Query(request)) { q -> JSONValue in
            guard let m = try Registry.models(q, only: name).first else { throw APIError.notFound("no model \(name) as of \(q.asOf)") }
            return ["asOf": q.asOfJSON, "model": m.json]
        }
        return JSONResponse.make(body)
    }

    func registryDeployments(_ request: Request, _ context: LedgerRequestContext) async throws -> Response {
        _ = try context.require(.reader, .writer, .finops, .auditor, .admin, for: "read the registry")
        let body = try await query(Query(request)) { q in JSONValue.object(["asOf": q.asOfJSON, "deployments": .array(try Registry.deployments(q).map(\.json))]) }
        return JSONResponse.make(body)
    }

    /// `GET /v1/chargeback?from&to&groupBy&shareIdle&format&asOf`: JSON, CSV or FOCUS 1.2 CSV,
    /// chosen by `format` or by `Accept` (`text/csv`). A date given to `to` includes that day;
    /// a time is exclusive.
    func chargeback(_ request: Request, _ context: LedgerRequestContext) async throws -> Response {
        _ = try context.require(.finops, .auditor, .admin, for: "read chargeback")
        let q = Query(request)
        guard let from = try q.time("from") else { throw APIError.badRequest("invalid_parameter", "from is required (a date or an RFC 3339 time)") }
        guard let to = try q.time("to") else { throw APIError.badRequest("invalid_parameter", "to is required (a date, inclusive, or an RFC 3339 time, exclusive)") }
        var dims: [Chargeback.Dimension] = [.team, .gpuType]
        if let text = q.string("groupBy") {
            dims = try text.split(separator: ",").map { name in
                guard let d = Chargeback.Dimension(rawValue: String(name)) else {
                    throw APIError.badRequest("invalid_parameter", "groupBy takes team, gpuType, project, model, day; not \(name.prefix(40))")
                }
                return d
            }
            guard !dims.isEmpty else { throw APIError.badRequest("invalid_parameter", "groupBy takes team, gpuType, project, model, day") }
        }
        let options = Chargeback.Options(from: from.instant, to: to.isDate ? to.endOfDay : to.instant, groupBy: dims, shareIdle: try q.bool("shareIdle"))
        guard options.from < options.to else { throw APIError.badRequest("invalid_parameter", "from must be before to") }
        var format = q.string("format") ?? ""
        if format.isEmpty {
            let accept = request.headers[.accept] ?? ""
            format = accept.contains("text/csv") ? (accept.contains("focus") ? "focus" : "csv") : "json"
        }
        guard ["json", "csv", "focus"].contains(format) else { throw APIError.badRequest("invalid_parameter", "format is json, csv or focus, not \(format.prefix(40))") }
        let chosen = format
        let answer = try await query(q) { ctx -> [UInt8] in
            let report = try Chargeback.report(ctx, options)
            switch chosen {
            case "csv": return Array(report.csv.utf8)
            case "focus": return Array(report.focus().utf8)
            default: return try CanonicalJSON.encode(report.json)
            }
        }
        return JSONResponse.raw(answer, contentType: format == "json" ? "application/json" : "text/csv; charset=utf-8")
    }

    func slo(_ request: Request, _ context: LedgerRequestContext) async throws -> Response {
        _ = try context.require(.reader, .writer, .auditor, .admin, for: "read SLO status")
        let body = try await query(Query(request)) { q in JSONValue.object(["asOf": q.asOfJSON, "slos": .array(try SLOStatus.all(q).map(\.json))]) }
        return JSONResponse.make(body)
    }

    /// `GET /v1/audit/events?actor|stream|category|type&since&until&limit&asOf`.
    func auditEvents(_ request: Request, _ context: LedgerRequestContext) async throws -> Response {
        _ = try context.require(.auditor, .admin, for: "read the audit trail")
        let q = Query(request)
        let given: [(Audit.Key, String?)] = [(.actor, try q.name("actor")), (.stream, try q.name("stream")), (.category, try q.name("category")), (.type, try q.name("type"))]
        let chosen = given.filter { $0.1 != nil }
        guard chosen.count == 1, let (key, v) = chosen.first, let value = v else {
            throw APIError.badRequest("invalid_parameter", "give exactly one of actor, stream, category, type")
        }
        let since = try q.time("since")?.instant
        let until = try q.time("until").map { $0.isDate ? $0.endOfDay.adding(milliseconds: -1) : $0.instant }
        let limit = try q.limit(default: 1000, max: configuration.maxReadLimit)
        let body = try await query(q) { ctx in
            JSONValue.object(["asOf": ctx.asOfJSON, "events": .array(try Audit.events(ctx, key, value, fromTime: since, toTime: until, limit: limit).map(\.json))])
        }
        return JSONResponse.make(body)
    }

    func auditChain(_ request: Request, _ context: LedgerRequestContext) async throws -> Response {
        _ = try context.require(.auditor, .admin, for: "read the audit trail")
        let text = try context.parameters.required("offset")
        guard let offset = Int64(text), offset >= 0 else { throw APIError.badRequest("invalid_parameter", "offset must be an integer ≥ 0, not \(text.prefix(40))") }
        let log = self.log
        let body = try await query(Query(request)) { q -> JSONValue in
            guard offset <= q.last else { throw APIError.notFound("offset \(offset) is not in the log as of \(q.asOf)") }
            let chain = try Audit.chain(q, offset: offset, ids: try log.idLookup())
            return ["asOf": q.asOfJSON, "causes": .array(chain.causes.map(\.json)), "event": chain.event.json, "effects": .array(chain.effects.map(\.json))]
        }
        return JSONResponse.make(body)
    }

    func auditAnomalies(_ request: Request, _ context: LedgerRequestContext) async throws -> Response {
        _ = try context.require(.auditor, .admin, for: "read the audit trail")
        let body = try await query(Query(request)) { q in JSONValue.object(["asOf": q.asOfJSON, "anomalies": .array(try Audit.anomalies(q).map(\.json))]) }
        return JSONResponse.make(body)
    }

    func lineage(_ request: Request, _ context: LedgerRequestContext) async throws -> Response {
        _ = try context.require(.reader, .writer, .auditor, .admin, for: "read lineage")
        let model = try context.parameters.required("model")
        let version = try context.parameters.required("version")
        let body = try await query(Query(request)) { q -> JSONValue in
            let steps = try Lineage.of(q, model: model, version: version)
            guard !steps.isEmpty else { throw APIError.notFound("no version \(version) of model \(model) as of \(q.asOf)") }
            return ["asOf": q.asOfJSON, "lineage": .array(steps.map(\.json))]
        }
        return JSONResponse.make(body)
    }

    /// `GET /v1/decisions?processor&type&asOf&limit`: the processors' decisions (envelopes).
    func decisions(_ request: Request, _ context: LedgerRequestContext) async throws -> Response {
        _ = try context.require(.auditor, .admin, for: "read decisions")
        let q = Query(request)
        let processor = try q.name("processor")
        if let processor, !["scheduler", "drift", "slo", "rollout", "gate"].contains(processor) {
            throw APIError.badRequest("invalid_parameter", "processor is scheduler, drift, slo, rollout or gate, not \(processor.prefix(40))")
        }
        let type = try q.name("type")
        let limit = try q.limit(default: 1000, max: configuration.maxReadLimit)
        let asOf = try q.asOf()
        let log = self.log
        let rows = try await blocking { () -> [JSONValue] in
            var end = log.head
            switch asOf {
            case .head: break
            case .offset(let o): end = min(end, o + 1)
            case .time(let t): end = min(end, try log.lastOffset(atOrBefore: t) + 1)
            }
            return try Decisions.list(log, filter: Decisions.Filter(processor: processor, type: type), end: end, limit: limit).map(\.json)
        }
        return JSONResponse.make(["decisions": .array(rows)])
    }

    /// `GET /v1/explain/{offset}`: a decision's causal chain with its evidence resolved.
    func explain(_ request: Request, _ context: LedgerRequestContext) async throws -> Response {
        _ = try context.require(.auditor, .admin, for: "read decisions")
        let text = try context.parameters.required("offset")
        guard let offset = Int64(text), offset >= 0 else { throw APIError.badRequest("invalid_parameter", "offset must be an integer ≥ 0, not \(text.prefix(40))") }
        let log = self.log
        let chain = try await blocking { try CausalChain.explain(log, offset: offset) }
        return JSONResponse.make(chain.json)
    }
}
