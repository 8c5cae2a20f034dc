public import Hummingbird
public import LedgerCore
import NIOCore

/// An error as the HTTP API returns it (INTERFACES.md):
/// `{"error":{"code","message","index"?,"path"?,"currentVersion"?}}` with the status of its code.
public struct APIError: HTTPResponseError, Sendable {
    public var status: HTTPResponse.Status
    public var code: String
    public var message: String
    public var index: Int?
    public var path: String?
    public var currentVersion: Int64??
    /// Seconds, for 429 and 503.
    public var retryAfter: Int?

    public init(_ status: HTTPResponse.Status, _ code: String, _ message: String, retryAfter: Int? = nil) {
        self.status = status
        self.code = code
        self.message = message
        self.retryAfter = retryAfter
    }

    /// The HTTP form of a ledger error.
    public init(_ error: LedgerError) {
        self.init(APIError.status(of: error.code), error.code.rawValue, error.message)
        index = error.index
        path = error.path
        if error.code == .wrongExpectedVersion { currentVersion = .some(error.currentVersion) }
        if status == .serviceUnavailable { retryAfter = 5 }
    }

    /// 400 for input the API cannot take, 403 for a type the caller may not append, 404, 409 for
    /// conflicts with the log's state, 413 for size, 503 when the log cannot take appends.
    public static func status(of code: LedgerError.Code) -> HTTPResponse.Status {
        switch code {
        case .invalidJSON, .invalidRequest, .unknownType, .schemaViolation, .invalidStream, .streamMismatch, .timeOrder, .usage:
            return .badRequest
        case .forbiddenType: return .forbidden
        case .eventTooLarge, .batchTooLarge: return .contentTooLarge
        case .wrongExpectedVersion, .duplicateID, .importMismatch: return .conflict
        case .notFound: return .notFound
        case .writerFailed, .closed, .locked, .corrupt: return .serviceUnavailable
        default: return .internalServerError
        }
    }

    public var json: JSONValue {
        var e: JSONObject = ["code": .string(code), "message": .string(message)]
        if let index { e["index"] = .number(Double(index)) }
        if let path { e["path"] = .string(path) }
        if let currentVersion { e["currentVersion"] = currentVersion.map { .number(Double($0)) } ?? .null }
        return ["error": .object(e)]
    }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        var response = JSONResponse.make(json, status: status)
        if let retryAfter { response.headers[.retryAfter] = String(retryAfter) }
        if status == .unauthorized { response.headers[.wwwAuthenticate] = "Bearer" }
        return response
    }

    static func unauthorized(_ message: String) -> APIError { APIError(.unauthorized, "unauthorized", message) }
    static func forbidden(_ message: String) -> APIError { APIError(.forbidden, "forbidden", message) }
    static func badRequest(_ code: String = "invalid_request", _ message: String) -> APIError { APIError(.badRequest, code, message) }
    static func notFound(_ message: String) -> APIError { APIError(.notFound, "not_found", message) }
}

/// JSON bodies, canonical (RFC 8785) like everything the ledger prints.
enum JSONResponse {
    static func make(_ value: JSONValue, status: HTTPResponse.Status = .ok) -> Response {
        let bytes = (try? CanonicalJSON.encode(value)) ?? Array(#"{"error":{"code":"internal","message":"unencodable"}}"#.utf8)
        return raw(bytes, status: status)
    }

    static func raw(_ bytes: [UInt8], status: HTTPResponse.Status = .ok, contentType: String = "application/json") -> Response {
        var buffer = ByteBuffer()
        buffer.reserveCapacity(bytes.count + 1)
        buffer.writeBytes(bytes)
        if contentType == "application/json" { buffer.writeInteger(UInt8(ascii: "\n")) }
        return Response(status: status, headers: [.contentType: contentType], body: .init(byteBuffer: buffer))
    }
}
