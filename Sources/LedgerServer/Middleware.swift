public import Hummingbird
import LedgerCore
import NIOCore
import Synchronization

/// The request context of the ledger's routes: Hummingbird's core context and the caller.
public struct LedgerRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// Set by ``AuthMiddleware`` (nil on the unauthenticated routes).
    public var principal: Principal?

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
    }

    public var maxUploadSize: Int { 16 << 20 }

    /// The caller, who must hold one of `roles`; 403 otherwise.
    func require(_ roles: Role..., for what: String) throws -> Principal {
        guard let principal else { throw APIError.unauthorized("a bearer token is required") }
        guard roles.contains(where: { principal.has($0) }) else {
            throw APIError.forbidden("\(principal.name) may not \(what) (needs one of the roles \(roles.map(\.rawValue).joined(separator: ", ")))")
        }
        return principal
    }
}

/// Turns every error into the API's error body and counts every answer by route and status.
struct ErrorAndMetricsMiddleware: RouterMiddleware {
    let metrics: ServerMetrics

    func handle(_ request: Request, context: LedgerRequestContext, next: (Request, LedgerRequestContext) async throws -> Response) async throws -> Response {
        let start = ContinuousClock.now
        var response: Response
        do {
            response = try await next(request, context)
        } catch let error as APIError {
            response = try error.response(from: request, context: context)
        } catch let error as LedgerError {
            response = try APIError(error).response(from: request, context: context)
        } catch let error as HTTPError where error.status == .notFound && RouteTable.methods(for: request.uri.path).map({ $0 != request.method.rawValue }) == true {
            let allowed = RouteTable.methods(for: request.uri.path)!
            response = try APIError(.methodNotAllowed, "method_not_allowed", "\(request.uri.path) takes \(allowed), not \(request.method)").response(from: request, context: context)
            response.headers[.allow] = allowed
        } catch let error as HTTPError {
            let code: String
            switch error.status.code {
            case 404: code = "not_found"
            case 405: code = "method_not_allowed"
            case 413: code = "body_too_large"
            default: code = error.status.code >= 500 ? "internal" : "invalid_request"
            }
            var api = APIError(error.status, code, error.body ?? "\(error.status.reasonPhrase)")
            if error.status == .contentTooLarge { api.message = "the request body is larger than the limit of \(context.maxUploadSize) bytes" }
            response = try api.response(from: request, context: context)
        } catch {
            context.logger.error("internal error: \(error)")
            response = try APIError(.internalServerError, "internal", "\(error)").response(from: request, context: context)
        }
        let elapsed = ContinuousClock.now - start
        let nanos = elapsed.components.seconds * 1_000_000_000 + elapsed.components.attoseconds / 1_000_000_000
        metrics.answered(route: context.endpointPath ?? "unmatched", status: response.status.code, nanoseconds: nanos)
        return response
    }
}

/// Sheds load: above the configured number of requests in flight, answers 503 with `Retry-After`
/// at once (cheaply, before reading the body), so that at twice its sustainable load the server
/// stays responsive. Subscriptions are long-lived and limited per principal instead.
struct LoadSheddingMiddleware: RouterMiddleware {
    let limit: Int
    let inFlight: InFlightCounter
    let metrics: ServerMetrics

    func handle(_ request: Request, context: LedgerRequestContext, next: (Request, LedgerRequestContext) async throws -> Response) async throws -> Response {
        if request.uri.path == "/v1/subscribe" || request.uri.path == "/healthz" || request.uri.path == "/readyz" || request.uri.path == "/metrics" {
            return try await next(request, context)
        }
        guard inFlight.enter(limit: limit) else {
            metrics.shed.increment()
            throw APIError(.serviceUnavailable, "overloaded", "the server has \(limit) requests in flight; retry shortly", retryAfter: 1)
        }
        defer { inFlight.leave() }
        return try await next(request, context)
    }
}

final class InFlightCounter: Sendable {
    private let count = Atomic<Int>(0)
    func enter(limit: Int) -> Bool {
        if count.add(1, ordering: .relaxed).newValue > limit {
            count.subtract(1, ordering: .relaxed)
            return false
        }
        return true
    }
    func leave() { count.subtract(1, ordering: .relaxed) }
    var value: Int { count.load(ordering: .relaxed) }
}

/// Resolves the bearer token into the request's ``LedgerRequestContext/principal``: 401 without
/// a token or with an unknown one. `/healthz`, `/readyz` and `/metrics` need none. Without a
/// tokens file every request is the local principal (the server then listens on loopback only).
struct AuthMiddleware: RouterMiddleware {
    let tokens: TokenStore?
    let open: Principal

    func handle(_ request: Request, context: LedgerRequestContext, next: (Request, LedgerRequestContext) async throws -> Response) async throws -> Response {
        let path = request.uri.path
        if path == "/healthz" || path == "/readyz" || path == "/metrics" { return try await next(request, context) }
        var context = context
        guard let tokens else {
            context.principal = open
            return try await next(request, context)
        }
        guard let header = request.headers[.authorization] else {
            throw APIError.unauthorized("this server requires a bearer token (Authorization: Bearer TOKEN)")
        }
        let parts = header.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else {
            throw APIError.unauthorized("the Authorization header must be \"Bearer TOKEN\"")
        }
        guard let principal = tokens.principal(token: String(parts[1]).trimmingSpaces) else {
            throw APIError.unauthorized("the bearer token is not known (or was removed from the tokens file)")
        }
        context.principal = principal
        return try await next(request, context)
    }
}

extension String {
    var trimmingSpaces: String {
        var s = Substring(self)
        while s.first == " " { s = s.dropFirst() }
        while s.last == " " { s = s.dropLast() }
        return String(s)
    }
}
