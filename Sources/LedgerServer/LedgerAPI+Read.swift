import Hummingbird
import LedgerCore
import LedgerLog
import NIOCore

extension LedgerAPI {
    /// The filter of a read or a subscription, checked against the caller's stream prefixes: a
    /// caller limited to prefixes must filter by a stream or category within them.
    func readFilter(_ q: Query, _ principal: Principal) throws -> EventFilter {
        let stream = try q.name("stream")
        let category = try q.name("category")
        let type = try q.name("type")
        if let stream, !StreamName.isValid(stream) {
            throw APIError.badRequest("invalid_stream", "stream \"\(stream.prefix(60))\" is not of the form category-id")
        }
        if let type, EventCatalog.standard.type(type) == nil {
            throw APIError.badRequest("unknown_type", "unknown event type \"\(type.prefix(60))\"")
        }
        if principal.streamPrefixes != nil && !principal.hasAny(.auditor, .admin) {
            let within = (stream.map(principal.mayTouch(stream:)) ?? false) || (category.map(principal.mayTouch(category:)) ?? false)
            guard within else {
                throw APIError.forbidden("\(principal.name) may read only streams starting with \((principal.streamPrefixes ?? []).joined(separator: ", ")): filter by such a stream or category")
            }
        }
        return EventFilter(stream: stream, category: category, type: type)
    }

    /// `GET /v1/events?from&limit&stream&category&type`: envelopes exactly as hashed, in log order.
    func events(_ request: Request, _ context: LedgerRequestContext) async throws -> Response {
        let principal = try context.require(.reader, .writer, .auditor, .admin, for: "read events")
        let q = Query(request)
        let filter = try readFilter(q, principal)
        let from = try q.offset("from") ?? 0
        let limit = try q.limit(default: 1000, max: configuration.maxReadLimit)
        let log = self.log
        let page = try await blocking { () -> ([UInt8], Int64, Int64) in
            let head = log.head
            let cursor = log.cursor(from: from, end: head, filter: filter)
            var out = Array(#"{"events":["#.utf8)
            var count = 0
            var next = max(from, 0)
            while count < limit, let view = try cursor.next() {
                if count > 0 { out.append(UInt8(ascii: ",")) }
                out.append(contentsOf: view.json)
                count += 1
                next = view.offset + 1
            }
            if count < limit { next = max(next, head) }
            return (out, head, next)
        }
        var bytes = page.0
        bytes += Array("],\"head\":\(page.1),\"next\":\(page.2)}".utf8)
        return JSONResponse.raw(bytes)
    }

    /// `GET /v1/streams/{stream}?from&limit`: one stream's events from stream version `from`.
    func stream(_ request: Request, _ context: LedgerRequestContext) async throws -> Response {
        let principal = try context.require(.reader, .writer, .auditor, .admin, for: "read streams")
        let stream = try context.parameters.required("stream")
        guard StreamName.isValid(stream) else {
            throw APIError.badRequest("invalid_stream", "stream \"\(stream.prefix(60))\" is not of the form category-id")
        }
        guard principal.hasAny(.auditor, .admin) || principal.mayTouch(stream: stream) else {
            throw APIError.forbidden("\(principal.name) may not read stream \(stream)")
        }
        let q = Query(request)
        let from = try q.offset("from") ?? 0
        let limit = try q.limit(default: 1000, max: configuration.maxReadLimit)
        let log = self.log
        let (body, found) = try await blocking { () -> ([UInt8], Bool) in
            let cursor = log.cursor(from: 0, end: log.head, filter: EventFilter(stream: stream))
            var out = Array(#"{"events":["#.utf8)
            var count = 0
            var next = from
            var found = false
            while count < limit, let view = try cursor.next() {
                found = true
                guard view.version >= from else { continue }
                if count > 0 { out.append(UInt8(ascii: ",")) }
                out.append(contentsOf: view.json)
                count += 1
                next = view.version + 1
            }
            out += Array("],\"next\":\(next),\"stream\":".utf8)
            out += (try? CanonicalJSON.encode(.string(stream))) ?? []
            out.append(UInt8(ascii: "}"))
            return (out, found)
        }
        guard found else { throw APIError.notFound("stream \(stream) has no events") }
        return JSONResponse.raw(body)
    }

    /// `GET /v1/verify`: every CRC, envelope, schema and the hash chain (auditor, admin).
    func verify(_ request: Request, _ context: LedgerRequestContext) async throws -> Response {
        _ = try context.require(.auditor, .admin, for: "verify the log")
        guard let directory = dataDirectory else { throw APIError.notFound("this ledger's backend has no segment files to verify") }
        let report = try await blocking { try Verifier.verify(directory: directory) }
        return JSONResponse.make(report.json)
    }
}
