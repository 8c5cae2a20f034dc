import Hummingbird
import LedgerCore
import LedgerLog
import NIOCore

extension LedgerAPI {
    /// `POST /v1/append` `{"events":[request, …]}`: one atomic request, through the same single
    /// writer and group commit as the CLI; answered only once durable. Each event's `actor` is
    /// the token's principal.
    func append(_ request: Request, _ context: LedgerRequestContext) async throws -> Response {
        let principal = try context.require(.writer, .admin, for: "append events")
        let items = try await eventsArray(request, context)
        var requests: [AppendRequest] = []
        requests.reserveCapacity(items.count)
        for (i, item) in items.enumerated() {
            var r: AppendRequest
            do { r = try AppendRequest(json: item) } catch {
                throw APIError(error.at(index: i).prefixingPath("/events/\(i)"))
            }
            guard principal.has(.admin) || principal.mayTouch(stream: r.stream) else {
                var e = APIError.forbidden("\(principal.name) may not append to stream \(r.stream) (allowed prefixes: \((principal.streamPrefixes ?? []).joined(separator: ", ")))")
                e.index = i
                throw e
            }
            r.time = nil
            r.actor = nil
            requests.append(r)
        }
        let policy = AppendPolicy(actor: principal.name, mode: .client, maxDataBytes: configuration.maxDataBytes)
        let results = await log.append(requests: [requests], policy: policy)
        switch results[0] {
        case .success(let acks): return JSONResponse.make(["results": .array(acks.map(\.json))])
        case .failure(let e): throw APIError(e.pathUnderEvents())
        }
    }

    /// `POST /v1/import` `{"events":[record, …]}` (admin): envelopes that carry their own id, time
    /// and actor (`Schemas/import-record.v1.json`), appended atomically on the admin path —
    /// decision types allowed, times must not decrease, no processors run for them here (the
    /// server's processors fold them like any event).
    func importRecords(_ request: Request, _ context: LedgerRequestContext) async throws -> Response {
        let principal = try context.require(.admin, for: "import events")
        let items = try await eventsArray(request, context)
        var requests: [AppendRequest] = []
        for (i, item) in items.enumerated() {
            do { requests.append(try AppendRequest.importRecord(json: item).request) } catch {
                throw APIError(error.at(index: i).prefixingPath("/events/\(i)"))
            }
        }
        let policy = AppendPolicy(actor: principal.name, mode: .admin, maxDataBytes: configuration.maxDataBytes)
        switch await log.append(requests: [requests], policy: policy)[0] {
        case .success(let acks): return JSONResponse.make(["results": .array(acks.map(\.json))])
        case .failure(let e): throw APIError(e.pathUnderEvents())
        }
    }

    /// The body's `events` array, within the limits (413 beyond them).
    private func eventsArray(_ request: Request, _ context: LedgerRequestContext) async throws -> [JSONValue] {
        if let type = request.headers[.contentType], !type.lowercased().hasPrefix("application/json") {
            throw APIError(.unsupportedMediaType, "unsupported_media_type", "the body must be application/json, not \(type.prefix(60))")
        }
        if let length = request.headers[.contentLength].flatMap(Int.init), length > configuration.maxBodyBytes {
            throw APIError(.contentTooLarge, "body_too_large", "the request body is \(length) bytes, larger than the limit of \(configuration.maxBodyBytes)")
        }
        let body = request.body
        let buffer: ByteBuffer
        do {
            buffer = try await body.collect(upTo: configuration.maxBodyBytes)
        } catch let error as HTTPError where error.status == .contentTooLarge {
            throw APIError(.contentTooLarge, "body_too_large", "the request body is larger than the limit of \(configuration.maxBodyBytes) bytes")
        }
        let value: JSONValue
        do {
            value = try buffer.withUnsafeReadableBytes { try JSONParser.parse($0) }
        } catch let error as LedgerError {
            throw APIError(.badRequest, "invalid_json", "the body is not JSON: \(error.message)")
        }
        guard case .object(let o) = value, let events = o["events"]?.arrayValue else {
            throw APIError(.badRequest, "invalid_request", "the body must be {\"events\": [ … ]}")
        }
        if let extra = o.keys.first(where: { $0 != "events" }) {
            var e = APIError(.badRequest, "invalid_request", "unknown member \"\(extra.prefix(60))\" of the body (it takes only \"events\")")
            e.path = "/" + extra
            throw e
        }
        guard !events.isEmpty else { throw APIError(.badRequest, "invalid_request", "\"events\" is empty: nothing to append") }
        guard events.count <= configuration.maxEventsPerRequest else {
            throw APIError(.contentTooLarge, "too_many_events", "\(events.count) events in one request; the limit is \(configuration.maxEventsPerRequest)")
        }
        return events
    }
}

extension LedgerError {
    /// The error with its JSON pointer relative to the request body.
    func prefixingPath(_ prefix: String) -> LedgerError {
        var copy = self
        if let path { copy.path = prefix + path }
        return copy
    }

    /// A pipeline error's pointer (relative to the event) placed under the body's `events`.
    /// Errors about one event name it by index even in a one-event request.
    func pathUnderEvents() -> LedgerError {
        var copy = self
        switch code {
        case .batchTooLarge, .writerFailed, .closed, .io, .internal, .corrupt, .locked: return self
        default: copy.index = index ?? 0
        }
        if let path { copy.path = "/events/\(copy.index ?? 0)" + path }
        return copy
    }
}
