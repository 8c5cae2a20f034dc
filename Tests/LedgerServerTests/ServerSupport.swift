import Foundation
@_exported import LedgerTestSupport
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import LedgerCore
import LedgerEngine
import LedgerLog
@testable import LedgerServer
import NIOCore

/// Tokens the tests use: name → (token, entry of the tokens file).
enum TestTokens {
    static let all: [(name: String, token: String, principal: String, roles: [String], prefixes: [String]?)] = [
        ("reader", "tok-reader", "svc:reader", ["reader"], ["job-"]),
        ("writer", "tok-writer", "svc:writer", ["writer"], ["job-"]),
        ("writerForeign", "tok-writer-foreign", "svc:models", ["writer"], ["model-"]),
        ("finops", "tok-finops", "user:fin", ["finops"], nil),
        ("auditor", "tok-auditor", "user:carol", ["auditor"], nil),
        ("admin", "tok-admin", "user:root", ["admin"], nil),
        ("processor", "tok-processor", "processor:external", ["writer"], nil),
    ]

    static func token(_ name: String) -> String { all.first { $0.name == name }!.token }

    /// Writes a tokens file holding `names` (default: all).
    static func file(in dir: String, names: [String]? = nil) throws -> String {
        let path = dir + "/tokens.json"
        var entries: [JSONValue] = []
        for t in all where names?.contains(t.name) ?? true {
            var o: JSONObject = ["sha256": .string(TokenStore.digest(of: t.token)), "principal": .string(t.principal), "roles": .array(t.roles.map { .string($0) })]
            if let p = t.prefixes { o["streamPrefixes"] = .array(p.map { .string($0) }) }
            entries.append(.object(o))
        }
        try Data(try CanonicalJSON.encode(["tokens": .array(entries)])).write(to: URL(fileURLWithPath: path))
        return path
    }
}

/// An engine over a scratch data directory with the API on it.
final class ServerFixture: @unchecked Sendable {
    let dir = TemporaryDirectory()
    let engine: LedgerEngine
    let api: LedgerAPI
    let tokens: TokenStore?
    let factory = LedgerMetricsFactory()

    init(tokens useTokens: Bool = true, configure: (inout ServerConfiguration) -> Void = { _ in }) async throws {
        var options = EngineOptions()
        options.log.fsync = .never
        options.metrics = EngineMetrics(factory: factory)
        engine = try await LedgerEngine.open(directory: dir.path + "/data", options: options)
        tokens = useTokens ? try TokenStore(path: try TestTokens.file(in: dir.path)) : nil
        var configuration = ServerConfiguration()
        configuration.port = 0
        configuration.tokensPath = tokens?.path
        configuration.heartbeatSeconds = 0.2
        configure(&configuration)
        api = LedgerAPI(
            log: engine.log, store: engine.store, configuration: configuration, tokens: tokens,
            metrics: ServerMetrics(factory: factory), dataDirectory: dir.path + "/data")
    }

    func close() async throws { try await engine.close() }

    /// Appends client events as the admin path would (chosen actor), for seeding.
    func seed(_ type: String, _ data: JSONValue, time: String? = nil) async throws {
        let object = data.objectValue!
        let stream = EventCatalog.standard.type(type)!.stream(for: object)!
        var request = AppendRequest(stream: stream, type: type, data: object)
        request.time = time.flatMap(Timestamp.init) ?? Timestamp("2026-11-23T00:00:00.000Z")!
        request.actor = "user:seed"
        request.id = EventID.random()
        _ = try await engine.append([request], policy: AppendPolicy(actor: "user:seed", mode: .admin))
    }
}

extension TestClientProtocol {
    /// A request with an optional bearer token and JSON body.
    func call(_ method: HTTPRequest.Method, _ uri: String, token: String? = nil, json: String? = nil, headers extra: HTTPFields = [:]) async throws -> TestResponse {
        var headers = extra
        if let token { headers[.authorization] = "Bearer " + token }
        if json != nil && headers[.contentType] == nil { headers[.contentType] = "application/json" }
        return try await executeRequest(uri: uri, method: method, headers: headers, body: json.map { ByteBuffer(string: $0) })
    }
}

extension TestResponse {
    var text: String { String(buffer: body) }
    var json: JSONValue { (try? JSONParser.parse(Array(buffer: body))) ?? .null }
    var errorCode: String? { json["error"]?["code"]?.stringValue }
}

func queued(_ job: String, team: String = "vision", gpus: Int = 2) -> String {
    #"{"stream":"job-\#(job)","type":"job.queued","data":{"job":"\#(job)","team":"\#(team)","gpuType":"a100","gpus":\#(gpus),"priority":1}}"#
}

func body(_ events: String...) -> String { #"{"events":["# + events.joined(separator: ",") + "]}" }

extension JSONValue {
    subscript(_ i: Int) -> JSONValue? {
        guard let a = arrayValue, i >= 0, i < a.count else { return nil }
        return a[i]
    }
}
