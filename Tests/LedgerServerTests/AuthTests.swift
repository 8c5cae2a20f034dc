import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import LedgerCore
import LedgerEngine
@testable import LedgerServer
import Testing

/// Every endpoint × every kind of caller: 401, 403 or 200 exactly where due (INTERFACES.md, Auth).
@Suite struct AuthTests {
    /// Callers: no token, an unknown token, and the test tokens.
    static let callers = ["none", "wrong", "reader", "writer", "writerForeign", "finops", "auditor", "admin"]

    struct Case {
        var method: HTTPRequest.Method
        var uri: String
        var json: String?
        /// The callers answered 200; every other known caller gets 403; none and wrong get 401.
        var allowed: Set<String>
        var open = false
    }

    static var cases: [Case] {
        let all: Set<String> = ["reader", "writer", "writerForeign", "finops", "auditor", "admin"]
        let readers: Set<String> = ["reader", "writer", "auditor", "admin"]  // job- prefixes and unlimited
        return [
            Case(method: .post, uri: "/v1/append", json: body(queued("x")), allowed: ["writer", "admin"]),
            Case(method: .post, uri: "/v1/import",
                 json: body(#"{"id":"\#(EventID.random())","stream":"job-imp","type":"job.queued","time":"2030-01-01T00:00:00.000Z","actor":"user:old","data":{"job":"imp","team":"vision","gpuType":"a100","gpus":1,"priority":0}}"#),
                 allowed: ["admin"]),
            Case(method: .get, uri: "/v1/events?stream=job-j1", allowed: readers),
            Case(method: .get, uri: "/v1/events?category=job", allowed: readers),
            Case(method: .get, uri: "/v1/events", allowed: ["auditor", "admin"]),
            Case(method: .get, uri: "/v1/events?stream=model-m1", allowed: ["writerForeign", "auditor", "admin"]),
            Case(method: .get, uri: "/v1/streams/job-j1", allowed: readers),
            Case(method: .get, uri: "/v1/streams/model-m1", allowed: ["writerForeign", "auditor", "admin"]),
            Case(method: .get, uri: "/v1/registry/models", allowed: all),
            Case(method: .get, uri: "/v1/registry/models/m1", allowed: all),
            Case(method: .get, uri: "/v1/registry/deployments", allowed: all),
            Case(method: .get, uri: "/v1/chargeback?from=2026-11-23&to=2026-11-23", allowed: ["finops", "auditor", "admin"]),
            Case(method: .get, uri: "/v1/slo", allowed: ["reader", "writer", "writerForeign", "auditor", "admin"]),
            Case(method: .get, uri: "/v1/lineage/m1/1", allowed: ["reader", "writer", "writerForeign", "auditor", "admin"]),
            Case(method: .get, uri: "/v1/audit/events?type=job.queued", allowed: ["auditor", "admin"]),
            Case(method: .get, uri: "/v1/audit/chain/0", allowed: ["auditor", "admin"]),
            Case(method: .get, uri: "/v1/audit/anomalies", allowed: ["auditor", "admin"]),
            Case(method: .get, uri: "/v1/decisions", allowed: ["auditor", "admin"]),
            Case(method: .get, uri: "/v1/explain/0", allowed: ["auditor", "admin"]),
            Case(method: .get, uri: "/v1/verify", allowed: ["auditor", "admin"]),
            Case(method: .get, uri: "/healthz", allowed: all, open: true),
            Case(method: .get, uri: "/readyz", allowed: all, open: true),
            Case(method: .get, uri: "/metrics", allowed: all, open: true),
        ]
    }

    @Test func everyEndpointAgainstEveryCaller() async throws {
        let f = try await ServerFixture()
        try await f.seed("job.queued", ["job": "j1", "team": "vision", "gpuType": "a100", "gpus": 1, "priority": 0])
        try await f.seed("model.registered", ["model": "m1", "team": "vision"])
        try await f.seed("model.version.created", ["model": "m1", "version": "1", "source": "s3://m/1", "digest": .string("sha256:" + String(repeating: "a", count: 64))])
        try await f.engine.project()
        let app = try buildApplication(f.api)
        try await app.test(.router) { client in
            for c in Self.cases {
                for caller in Self.callers {
                    let token: String? = caller == "none" ? nil : caller == "wrong" ? "not-a-known-token" : TestTokens.token(caller)
                    let r = try await client.call(c.method, c.uri, token: token, json: c.json)
                    let expected: HTTPResponse.Status
                    if c.open {
                        expected = .ok
                    } else if caller == "none" || caller == "wrong" {
                        expected = .unauthorized
                    } else {
                        expected = c.allowed.contains(caller) ? .ok : .forbidden
                    }
                    #expect(r.status == expected, "\(c.method) \(c.uri) as \(caller): \(r.status.code) \(r.text.prefix(200))")
                    if r.status == .unauthorized { #expect(r.headers[.wwwAuthenticate] == "Bearer", "\(c.uri)") }
                }
            }
        }
        try await f.close()
    }

    /// A token removed from the file stops working once the file is reloaded (SIGHUP in `ledger
    /// serve`); a file that does not parse leaves the tokens in force.
    @Test func reloadingTheTokensFile() async throws {
        let f = try await ServerFixture()
        let app = try buildApplication(f.api)
        let store = try #require(f.tokens)
        try await app.test(.router) { client in
            #expect(try await client.call(.get, "/v1/verify", token: TestTokens.token("auditor")).status == .ok)
            _ = try TestTokens.file(in: f.dir.path, names: ["admin"])
            #expect(try store.reload() == 1)
            #expect(try await client.call(.get, "/v1/verify", token: TestTokens.token("auditor")).status == .unauthorized)
            #expect(try await client.call(.get, "/v1/verify", token: TestTokens.token("admin")).status == .ok)
            try Data("{broken".utf8).write(to: URL(fileURLWithPath: store.path))
            #expect(throws: LedgerError.self) { try store.reload() }
            #expect(try await client.call(.get, "/v1/verify", token: TestTokens.token("admin")).status == .ok)
        }
        try await f.close()
    }

    @Test func badTokensFilesAreRefusedWithTheReason() throws {
        let dir = TemporaryDirectory("tokens")
        func refuse(_ text: String, _ mentions: String) {
            let path = dir.path + "/t.json"
            try? Data(text.utf8).write(to: URL(fileURLWithPath: path))
            do {
                _ = try TokenStore(path: path)
                Issue.record("accepted: \(text)")
            } catch let e as LedgerError {
                #expect(e.message.contains(mentions), "\(e.message)")
            } catch { Issue.record("\(error)") }
        }
        let digest = TokenStore.digest(of: "x")
        refuse("[]", "expected {\"tokens\"")
        refuse(#"{"tokens":[{"sha256":"abc","principal":"svc:a","roles":["reader"]}]}"#, "sha256")
        refuse(#"{"tokens":[{"sha256":"\#(digest)","principal":"svc:a","roles":["boss"]}]}"#, "unknown role")
        refuse(#"{"tokens":[{"sha256":"\#(digest)","principal":"svc:a","roles":[]}]}"#, "roles")
        refuse(#"{"tokens":[{"sha256":"\#(digest)","principal":"bad principal","roles":["reader"]}]}"#, "principal")
        refuse(#"{"tokens":[{"sha256":"\#(digest)","principal":"svc:a","roles":["reader"],"prefix":["job-"]}]}"#, "unknown member")
        refuse(#"{"tokens":[{"sha256":"\#(digest)","principal":"svc:a","roles":["reader"]},{"sha256":"\#(digest)","principal":"svc:b","roles":["reader"]}]}"#, "twice")
        #expect(TokenStore.digest(of: "test") == "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08")
    }
}
