import AsyncHTTPClient
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import LedgerCore
import LedgerEngine
import LedgerLog
@testable import LedgerServer
import NIOCore
import NIOHTTP1
import Testing

/// One Server-Sent Events message as a client sees it.
struct SSEMessage: Sendable {
    var id: Int64?
    var event: String?
    var data: String = ""
    var comment: String?

    var json: JSONValue { (try? JSONParser.parse(Array(data.utf8))) ?? .null }
}

/// Splits an SSE byte stream into messages (blank-line separated blocks).
struct SSEParser {
    private var pending = ""

    mutating func feed(_ text: String) -> [SSEMessage] {
        pending += text
        var out: [SSEMessage] = []
        while let range = pending.range(of: "\n\n") {
            let block = pending[..<range.lowerBound]
            pending.removeSubrange(..<range.upperBound)
            var m = SSEMessage()
            var any = false
            for line in block.split(separator: "\n", omittingEmptySubsequences: false) {
                if line.hasPrefix(":") {
                    m.comment = String(line.dropFirst()).trimmingCharacters(in: .whitespaces)
                    any = true
                } else if line.hasPrefix("id: ") {
                    m.id = Int64(line.dropFirst(4))
                    any = true
                } else if line.hasPrefix("event: ") {
                    m.event = String(line.dropFirst(7))
                    any = true
                } else if line.hasPrefix("data: ") {
                    m.data += String(line.dropFirst(6))
                    any = true
                }
            }
            if any { out.append(m) }
        }
        return out
    }
}

/// Opens a subscription on a live server and hands each message to `handle` until it returns
/// false (then the connection is closed). Returns the HTTP status.
@discardableResult
func subscribe(port: Int, query: String, token: String?, lastEventID: Int64? = nil, timeout: Double = 30, handle: (SSEMessage) -> Bool) async throws -> Int {
    var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)/v1/subscribe\(query)")
    if let token { request.headers.add(name: "Authorization", value: "Bearer " + token) }
    if let lastEventID { request.headers.add(name: "Last-Event-ID", value: String(lastEventID)) }
    let response = try await HTTPClient.shared.execute(request, timeout: .milliseconds(Int64(timeout * 1000)))
    guard response.status == .ok else { return Int(response.status.code) }
    var parser = SSEParser()
    reading: for try await buffer in response.body {
        for message in parser.feed(String(buffer: buffer)) {
            if !handle(message) { break reading }
        }
    }
    return 200
}

@Suite(.serialized) struct SubscriptionTests {
    @Test func catchUpThenLiveAsCloudEvents() async throws {
        let f = try await ServerFixture()
        let app = try buildApplication(f.api, services: [f.api.hub])
        try await app.test(.live) { client in
            let writer = TestTokens.token("writer")
            _ = try await client.call(.post, "/v1/append", token: writer, json: body(queued("a"), queued("b"), queued("c")))
            let port = try #require(client.port)
            var received: [SSEMessage] = []
            let appender = Task {
                // Live events, appended once the catch-up is under way.
                try await Task.sleep(for: .milliseconds(200))
                _ = try await client.call(.post, "/v1/append", token: writer, json: body(queued("d"), #"{"stream":"job-d","type":"job.started","data":{"job":"d"}}"#))
            }
            let status = try await subscribe(port: port, query: "?from=0&category=job", token: TestTokens.token("reader")) { m in
                if m.id != nil { received.append(m) }
                return received.count < 5
            }
            try await appender.value
            #expect(status == 200)
            #expect(received.map(\.id) == [0, 1, 2, 3, 4])
            #expect(received.map(\.event) == ["job.queued", "job.queued", "job.queued", "job.queued", "job.started"])
            // Each data line is a CloudEvent whose extensions recompute the stored hash.
            for m in received {
                let ce = m.json
                #expect(ce["specversion"]?.stringValue == "1.0")
                #expect(ce["ledgeroffset"]?.intValue == Int(m.id!))
                #expect(ce["type"]?.stringValue == m.event)
                let envelope = Envelope(
                    offset: Int64(ce["ledgeroffset"]!.intValue!), id: EventID(ce["id"]!.stringValue!)!, stream: ce["subject"]!.stringValue!,
                    version: Int64(ce["ledgerversion"]!.intValue!), type: ce["type"]!.stringValue!, schemaVersion: ce["ledgerschemaversion"]!.intValue!,
                    time: Timestamp(ce["time"]!.stringValue!)!, actor: ce["actor"]!.stringValue!, data: ce["data"]!.objectValue!,
                    prevHash: Hash256(hex: ce["ledgerprevhash"]!.stringValue!)!)
                #expect(try envelope.computeHash().description == ce["ledgerhash"]?.stringValue)
            }
        }
        try await f.close()
    }

    @Test func resumesAfterLastEventIDAndFilters() async throws {
        let f = try await ServerFixture()
        let app = try buildApplication(f.api, services: [f.api.hub])
        try await app.test(.live) { client in
            for i in 0..<4 {
                _ = try await client.call(.post, "/v1/append", token: TestTokens.token("admin"), json: body(queued("j\(i)"), #"{"stream":"model-m\#(i)","type":"model.registered","data":{"model":"m\#(i)","team":"t"}}"#))
            }
            let port = try #require(client.port)
            var ids: [Int64] = []
            try await subscribe(port: port, query: "?type=job.queued", token: TestTokens.token("auditor"), lastEventID: 2) { m in
                if let id = m.id { ids.append(id) }
                return ids.count < 2
            }
            #expect(ids == [4, 6])
            // A reader limited to job- may not subscribe to everything, nor to another category.
            #expect(try await subscribe(port: port, query: "?from=0", token: TestTokens.token("reader")) { _ in false } == 403)
            #expect(try await subscribe(port: port, query: "?category=model", token: TestTokens.token("reader")) { _ in false } == 403)
            #expect(try await subscribe(port: port, query: "?from=0", token: nil) { _ in false } == 401)
        }
        try await f.close()
    }

    @Test func aSubscriberFarBehindIsToldItLagsAndStillGetsEverything() async throws {
        let f = try await ServerFixture { $0.lagBound = 5; $0.subscriptionChunk = 4 }
        let app = try buildApplication(f.api, services: [f.api.hub])
        try await app.test(.live) { client in
            var events: [String] = []
            for i in 0..<30 { events.append(queued("j\(i)")) }
            _ = try await client.call(.post, "/v1/append", token: TestTokens.token("writer"), json: #"{"events":["# + events.joined(separator: ",") + "]}")
            var lagging: [SSEMessage] = []
            var ids: [Int64] = []
            try await subscribe(port: try #require(client.port), query: "?from=0", token: TestTokens.token("auditor")) { m in
                if m.event == "lagging" { lagging.append(m) }
                if let id = m.id { ids.append(id) }
                return ids.count < 30
            }
            #expect(lagging.count == 1)
            #expect(lagging.first?.json["behind"]?.intValue == 30)
            #expect(ids == Array(0..<30))
        }
        try await f.close()
    }

    @Test func idleSubscriptionsGetHeartbeatsAndLimitsHold() async throws {
        let f = try await ServerFixture { $0.heartbeatSeconds = 0.1; $0.maxSubscriptionsPerPrincipal = 1 }
        let app = try buildApplication(f.api, services: [f.api.hub])
        try await app.test(.live) { client in
            let port = try #require(client.port)
            let first = Task { () -> Int in
                var comments = 0
                try await subscribe(port: port, query: "", token: TestTokens.token("auditor")) { m in
                    if m.comment == "heartbeat" { comments += 1 }
                    return comments < 3
                }
                return comments
            }
            // Once the first is open, the same principal's second subscription is refused.
            var open = false
            for _ in 0..<2000 where !open {
                try await Task.sleep(for: .milliseconds(5))
                open = f.api.subscriptions.withLock { $0["user:carol"] ?? 0 } == 1
            }
            #expect(open)
            var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)/v1/subscribe")
            request.headers.add(name: "Authorization", value: "Bearer " + TestTokens.token("auditor"))
            let second = try await HTTPClient.shared.execute(request, timeout: .seconds(5))
            #expect(second.status.code == 429)
            #expect(second.headers.first(name: "Retry-After") != nil)
            #expect(try await first.value == 3)
            // Closed: the slot is free again.
            var freed = false
            for _ in 0..<2000 where !freed {
                try await Task.sleep(for: .milliseconds(5))
                freed = f.api.subscriptions.withLock { $0["user:carol"] } == nil
            }
            #expect(freed)
        }
        try await f.close()
    }

    @Test func shutdownEndsSubscriptionsCleanly() async throws {
        let f = try await ServerFixture()
        let app = try buildApplication(f.api, services: [f.api.hub])
        try await app.test(.live) { client in
            let port = try #require(client.port)
            let closer = Task {
                try await Task.sleep(for: .milliseconds(300))
                f.api.hub.close()
            }
            var messages = 0
            // The stream ends by itself (the handler returns true to keep reading until the end;
            // a stream that did not end would fail the subscription's own timeout).
            try await subscribe(port: port, query: "", token: TestTokens.token("auditor")) { _ in
                messages += 1
                return true
            }
            try await closer.value
            // A new subscription is refused while the server shuts down.
            #expect(try await subscribe(port: port, query: "", token: TestTokens.token("auditor")) { _ in false } == 503)
        }
        try await f.close()
    }

    /// A subscriber that disconnects at random and resumes with Last-Event-ID receives every
    /// event exactly once, in order, across 1,000 reconnects while appends go on.
    @Test func thousandReconnectsMissNothing() async throws {
        let f = try await ServerFixture()
        let app = try buildApplication(f.api, services: [f.api.hub])
        let seed = SeededGenerator(defaultSeed: 20261202)
        let seedNote = seed.note
        try await app.test(.live) { client in
            var rng = seed
            let port = try #require(client.port)
            let total = 3000
            let appender = Task {
                var sizes = SeededGenerator(seed: seed.seed &+ 1)
                var n = 0
                while n < total {
                    let k = min(total - n, Int.random(in: 1...5, using: &sizes))
                    let events = (0..<k).map { queued("r\(n + $0)") }
                    let r = try await client.call(.post, "/v1/append", token: TestTokens.token("writer"), json: #"{"events":["# + events.joined(separator: ",") + "]}")
                    guard r.status == .ok else { throw APIError(.internalServerError, "test", "append failed: \(r.text)") }
                    n += k
                    if n % 50 == 0 { try await Task.sleep(for: .milliseconds(1)) }
                }
            }
            var received: [Int64] = []
            var last: Int64? = nil
            var reconnects = 0
            while received.count < total {
                let take = Int.random(in: 1...4, using: &rng)
                var got = 0
                try await subscribe(port: port, query: last == nil ? "?from=0" : "", token: TestTokens.token("auditor"), lastEventID: last) { m in
                    guard let id = m.id else { return true }
                    received.append(id)
                    last = id
                    got += 1
                    return got < take && received.count < total
                }
                reconnects += 1
            }
            try await appender.value
            #expect(reconnects >= 1000, "\(seedNote)")
            #expect(received == (0..<Int64(total)).map { $0 }, "\(seedNote): events missed, repeated or out of order")
        }
        try await f.close()
    }
}
