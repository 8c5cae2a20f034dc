import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import LedgerCore
import LedgerEngine
import LedgerLog
@testable import LedgerServer
import NIOCore
import Testing

@Suite struct AppendAndReadTests {
    @Test func appendIsDurableAndAttributedToThePrincipal() async throws {
        let f = try await ServerFixture()
        let app = try buildApplication(f.api)
        try await app.test(.router) { client in
            let r = try await client.call(.post, "/v1/append", token: TestTokens.token("writer"), json: body(queued("j1"), queued("j2")))
            #expect(r.status == .ok)
            let results = try #require(r.json["results"]?.arrayValue)
            #expect(results.count == 2)
            #expect(results[0]["offset"]?.intValue == 0 && results[1]["offset"]?.intValue == 1)
            #expect(results[0]["stream"]?.stringValue == "job-j1" && results[0]["version"]?.intValue == 0)
        }
        // The events are in the log, with the token's principal as actor.
        let e = try #require(try f.engine.log.event(at: 1)).envelope()
        #expect(e.actor == "svc:writer")
        #expect(e.stream == "job-j2")
        try await f.close()
    }

    @Test func rejectionsNameTheFaultAndWriteNothing() async throws {
        let f = try await ServerFixture()
        let app = try buildApplication(f.api)
        let writer = TestTokens.token("writer")
        try await app.test(.router) { client in
            // A schema violation in the second event: its index and JSON pointer; nothing written.
            let bad = #"{"stream":"job-j2","type":"job.queued","data":{"job":"j2","team":"vision","gpuType":"a100","gpus":"two","priority":1}}"#
            var r = try await client.call(.post, "/v1/append", token: writer, json: body(queued("j1"), bad))
            #expect(r.status == .badRequest)
            #expect(r.errorCode == "schema_violation")
            #expect(r.json["error"]?["index"]?.intValue == 1)
            #expect(r.json["error"]?["path"]?.stringValue == "/events/1/data/gpus")
            #expect(f.engine.head == 0)

            r = try await client.call(.post, "/v1/append", token: writer, json: "{not json")
            #expect(r.status == .badRequest && r.errorCode == "invalid_json")
            r = try await client.call(.post, "/v1/append", token: writer, json: #"{"events":[]}"#)
            #expect(r.status == .badRequest && r.errorCode == "invalid_request")
            r = try await client.call(.post, "/v1/append", token: writer, json: #"{"events":[],"extra":1}"#)
            #expect(r.status == .badRequest && r.json["error"]?["path"]?.stringValue == "/extra")
            r = try await client.call(.post, "/v1/append", token: writer, json: body(#"{"stream":"job-j1","type":"job.nope","data":{}}"#))
            #expect(r.status == .badRequest && r.errorCode == "unknown_type")
            // The stream is fixed by the type.
            r = try await client.call(.post, "/v1/append", token: writer, json: body(#"{"stream":"job-other","type":"job.started","data":{"job":"j1"}}"#))
            #expect(r.status == .badRequest && r.errorCode == "stream_mismatch")
            r = try await client.call(.post, "/v1/append", token: writer, json: body(queued("j1")), headers: [.contentType: "text/plain"])
            #expect(r.status == .unsupportedMediaType)
            // A decision type from a client: forbidden.
            r = try await client.call(
                .post, "/v1/append", token: writer,
                json: body(#"{"stream":"job-j1","type":"job.admitted","data":{"job":"j1","node":"n1","gpus":1,"waitedSeconds":0,"borrowed":false,"clusterQueueShare":0}}"#))
            #expect(r.status == .forbidden && r.errorCode == "forbidden_type")
            #expect(f.engine.head == 0)
            // …but a processor may append one.
            r = try await client.call(
                .post, "/v1/append", token: TestTokens.token("processor"),
                json: body(#"{"stream":"job-j1","type":"job.admitted","data":{"job":"j1","node":"n1","gpus":1,"waitedSeconds":0,"borrowed":false,"clusterQueueShare":0}}"#))
            #expect(r.status == .ok)
        }
        try await f.close()
    }

    @Test func expectedVersionAndIdempotency() async throws {
        let f = try await ServerFixture()
        let app = try buildApplication(f.api)
        let writer = TestTokens.token("writer")
        let id = EventID.random().description
        let withID = #"{"id":"\#(id)","stream":"job-j1","type":"job.queued","data":{"job":"j1","team":"vision","gpuType":"a100","gpus":2,"priority":1},"expectedVersion":"no_stream"}"#
        try await app.test(.router) { client in
            var r = try await client.call(.post, "/v1/append", token: writer, json: body(withID))
            #expect(r.status == .ok)
            // Retried: the original position, nothing written (checked before the expected version).
            r = try await client.call(.post, "/v1/append", token: writer, json: body(withID))
            #expect(r.status == .ok && r.json["results"]?[0]?["offset"]?.intValue == 0)
            #expect(f.engine.head == 1)
            // The same id with other data: duplicate_id.
            let other = withID.replacingOccurrences(of: #""gpus":2"#, with: #""gpus":4"#)
            r = try await client.call(.post, "/v1/append", token: writer, json: body(other))
            #expect(r.status == .conflict && r.errorCode == "duplicate_id")
            // A wrong expected version carries the stream's current version.
            r = try await client.call(.post, "/v1/append", token: writer, json: body(#"{"stream":"job-j1","type":"job.started","data":{"job":"j1"},"expectedVersion":7}"#))
            #expect(r.status == .conflict && r.errorCode == "wrong_expected_version")
            #expect(r.json["error"]?["currentVersion"]?.intValue == 0)
            r = try await client.call(.post, "/v1/append", token: writer, json: body(#"{"stream":"job-new","type":"job.started","data":{"job":"new"},"expectedVersion":"exists"}"#))
            #expect(r.status == .conflict && r.json["error"]?["currentVersion"]?.isNull == true)
            #expect(f.engine.head == 1)
        }
        try await f.close()
    }

    @Test func limitsAnswer413WithoutWriting() async throws {
        let f = try await ServerFixture { c in
            c.maxBodyBytes = 4096
            c.maxEventsPerRequest = 3
            c.maxDataBytes = 300
        }
        let app = try buildApplication(f.api)
        let writer = TestTokens.token("writer")
        try await app.test(.router) { client in
            var r = try await client.call(.post, "/v1/append", token: writer, json: body(queued("a"), queued("b"), queued("c"), queued("d")))
            #expect(r.status == .contentTooLarge && r.errorCode == "too_many_events")
            let big = String(repeating: "x", count: 5000)
            r = try await client.call(.post, "/v1/append", token: writer, json: #"{"events":[{"stream":"job-a","type":"job.cancelled","data":{"job":"a","reason":"\#(big)"}}]}"#)
            #expect(r.status == .contentTooLarge && r.errorCode == "body_too_large")
            let over = String(repeating: "y", count: 400)
            r = try await client.call(.post, "/v1/append", token: writer, json: #"{"events":[{"stream":"job-a","type":"job.cancelled","data":{"job":"a","reason":"\#(over)"}}]}"#)
            #expect(r.status == .contentTooLarge && r.errorCode == "event_too_large")
            #expect(f.engine.head == 0)
        }
        try await f.close()
    }

    @Test func readsPageThroughTheLogAndStreams() async throws {
        let f = try await ServerFixture()
        let app = try buildApplication(f.api)
        try await app.test(.router) { client in
            for i in 0..<5 {
                let r = try await client.call(.post, "/v1/append", token: TestTokens.token("writer"), json: body(queued("j\(i)"), #"{"stream":"job-j\#(i)","type":"job.started","data":{"job":"j\#(i)"}}"#))
                #expect(r.status == .ok)
            }
            let auditor = TestTokens.token("auditor")
            var r = try await client.call(.get, "/v1/events?from=3&limit=4", token: auditor)
            #expect(r.status == .ok)
            let events = try #require(r.json["events"]?.arrayValue)
            #expect(events.map { $0["offset"]?.intValue } == [3, 4, 5, 6])
            #expect(r.json["next"]?.intValue == 7 && r.json["head"]?.intValue == 10)
            // The envelopes are exactly as hashed: recomputing the hash gives the stored one.
            for e in events {
                let envelope = try Envelope(json: e)
                #expect(try envelope.computeHash() == envelope.hash)
            }
            r = try await client.call(.get, "/v1/events?type=job.started", token: auditor)
            #expect(try #require(r.json["events"]?.arrayValue).count == 5)
            r = try await client.call(.get, "/v1/streams/job-j2", token: TestTokens.token("reader"))
            #expect(r.status == .ok)
            #expect(try #require(r.json["events"]?.arrayValue).map { $0["version"]?.intValue } == [0, 1])
            r = try await client.call(.get, "/v1/streams/job-j2?from=1", token: TestTokens.token("reader"))
            #expect(try #require(r.json["events"]?.arrayValue).map { $0["type"]?.stringValue } == ["job.started"])
            r = try await client.call(.get, "/v1/streams/job-none", token: auditor)
            #expect(r.status == .notFound)
            r = try await client.call(.get, "/v1/events?from=-1", token: auditor)
            #expect(r.status == .badRequest)
            r = try await client.call(.get, "/v1/events?limit=0", token: auditor)
            #expect(r.status == .badRequest)
            r = try await client.call(.get, "/v1/events?stream=NotAStream", token: auditor)
            #expect(r.status == .badRequest && r.errorCode == "invalid_stream")
        }
        try await f.close()
    }

    @Test func healthReadinessAndMetrics() async throws {
        let f = try await ServerFixture()
        let app = try buildApplication(f.api)
        try await app.test(.router) { client in
            var r = try await client.call(.get, "/healthz")
            #expect(r.status == .ok && r.json["status"]?.stringValue == "ok")
            _ = try await client.call(.post, "/v1/append", token: TestTokens.token("writer"), json: body(queued("j1")))
            // The projections are behind by 1 event: within the default bound, so ready.
            r = try await client.call(.get, "/readyz")
            #expect(r.status == .ok)
            #expect(r.json["checks"]?["projectionLag"]?.intValue == 1)
            r = try await client.call(.get, "/metrics")
            #expect(r.status == .ok)
            #expect(r.headers[.contentType]?.hasPrefix("text/plain") == true)
            #expect(r.text.contains(#"ledger_http_requests_total{route="/v1/append",status="200"} 1"#))
            #expect(r.text.contains("# HELP ledger_http_requests_total"))
        }
        try await f.close()
    }

    @Test func readinessFailsWhenTheProjectionsLagBeyondTheBound() async throws {
        let f = try await ServerFixture { $0.readyLagBound = 2 }
        let app = try buildApplication(f.api)
        try await app.test(.router) { client in
            _ = try await client.call(.post, "/v1/append", token: TestTokens.token("writer"), json: body(queued("a"), queued("b"), queued("c")))
            var r = try await client.call(.get, "/readyz")
            #expect(r.status == .serviceUnavailable)
            #expect(r.headers[.retryAfter] != nil)
            try await f.engine.project()
            r = try await client.call(.get, "/readyz")
            #expect(r.status == .ok)
        }
        try await f.close()
    }

    @Test func queryTimesAcceptRFC3339AndDates() async throws {
        let f = try await ServerFixture()
        try await f.seed("node.registered", ["node": "n1", "gpuType": "a100", "gpuCount": 8], time: "2026-11-23T00:00:00.000Z")
        try await f.seed("price.set", ["gpuType": "a100", "hourlyRate": 2, "effectiveFrom": "2026-11-23T00:00:00.000Z"], time: "2026-11-23T00:00:00.000Z")
        try await f.seed("job.cancelled", ["job": "x"], time: "2026-11-25T00:00:00.000Z")
        try await f.engine.project()
        let app = try buildApplication(f.api)
        try await app.test(.router) { client in
            let finops = TestTokens.token("finops")
            // A date given to `to` includes the day: 2 days of idle 8 GPUs at $2 = $768.
            var r = try await client.call(.get, "/v1/chargeback?from=2026-11-23&to=2026-11-24", token: finops)
            #expect(r.status == .ok)
            #expect(r.json["totals"]?[0]?["total"]?.doubleValue == 768)
            // The same end as an RFC 3339 time with an offset (exclusive): 2026-11-25T01:00+01:00 = midnight UTC.
            r = try await client.call(.get, "/v1/chargeback?from=2026-11-23T00:00:00Z&to=2026-11-25T01:00:00.000000%2B01:00", token: finops)
            #expect(r.json["totals"]?[0]?["total"]?.doubleValue == 768)
            r = try await client.call(.get, "/v1/chargeback?from=2026-11-23&to=2026-11-24&format=csv", token: finops)
            #expect(r.headers[.contentType]?.hasPrefix("text/csv") == true)
            #expect(r.text.hasPrefix("team,gpuType"))
            r = try await client.call(.get, "/v1/chargeback?from=2026-11-23&to=2026-02-30", token: finops)
            #expect(r.status == .badRequest && r.errorCode == "invalid_parameter")
            r = try await client.call(.get, "/v1/registry/models?asOf=2026-11-23", token: finops)
            #expect(r.status == .ok && r.json["asOf"]?["offset"]?.intValue == 1)
        }
        try await f.close()
    }
}

@Suite struct SheddingTests {
    /// Above the limit of requests in flight, requests are answered 503 with Retry-After at once,
    /// and health, readiness and metrics still answer.
    @Test func overloadIsShedWithRetryAfter() async throws {
        let f = try await ServerFixture { $0.maxConcurrentRequests = 2 }
        let app = try buildApplication(f.api)
        try await app.test(.router) { client in
            // Two requests in flight (held here), a third is refused.
            #expect(f.api.inFlight.enter(limit: 2))
            #expect(f.api.inFlight.enter(limit: 2))
            let r = try await client.call(.post, "/v1/append", token: TestTokens.token("writer"), json: body(queued("x")))
            #expect(r.status == .serviceUnavailable)
            #expect(r.errorCode == "overloaded")
            #expect(r.headers[.retryAfter] == "1")
            #expect(try await client.call(.get, "/healthz").status == .ok)
            #expect(try await client.call(.get, "/readyz").status == .ok)
            let metrics = try await client.call(.get, "/metrics")
            #expect(metrics.text.contains("ledger_http_shed_total 1"))
            f.api.inFlight.leave()
            // One slot free again: served.
            #expect(try await client.call(.post, "/v1/append", token: TestTokens.token("writer"), json: body(queued("x"))).status == .ok)
            f.api.inFlight.leave()
            #expect(f.api.inFlight.value == 0)
            #expect(f.engine.head == 1)
        }
        try await f.close()
    }
}
