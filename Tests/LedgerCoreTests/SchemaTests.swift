import Foundation
import Testing
import LedgerCore

@Suite struct SchemaTests {
    let catalog = EventCatalog.standard

    func examples() throws -> [String: JSONObject] {
        let value = try JSONParser.parse(Array(try Data(contentsOf: fixture("schema-examples.json"))))
        var out: [String: JSONObject] = [:]
        for member in value.objectValue!.members { out[member.key] = member.value.objectValue! }
        return out
    }

    @Test func everySchemaFileIsACatalogTypeWithAnExample() throws {
        let files = try FileManager.default.contentsOfDirectory(atPath: repositoryRoot.appending(path: "Schemas/events").path)
        #expect(files.count == catalog.allTypes.count)
        // 38 types; quota.set, access.granted and access.revoked have two versions (Schemas/evolution.md).
        #expect(catalog.allTypes.count == 41)
        #expect(Set(catalog.allTypes.map(\.name)).count == 38)
        let examples = try examples()
        for type in catalog.allTypes {
            #expect(files.contains("\(type.name).v\(type.schemaVersion).json"))
            let example = try #require(examples[type.name], "no example for \(type.name)")
            #expect(type.schema.validate(.object(example)) == nil, "\(type.name)")
        }
    }

    @Test func decisionTypesAreExactlyTheDocumentedOnes() {
        let decisions = Set(catalog.allTypes.filter(\.isDecision).map(\.name))
        #expect(decisions == [
            "job.admitted", "job.rejected", "gpu.allocated", "job.preempted", "gpu.released", "rollout.step.advanced",
            "slo.burn.alerted", "slo.burn.resolved", "drift.alerted", "gate.evaluated",
        ])
    }

    @Test func streamsFollowTheKeyField() throws {
        let examples = try examples()
        #expect(catalog.type("job.queued")?.stream(for: examples["job.queued"]!) == "job-job-000123")
        #expect(catalog.type("price.set")?.stream(for: examples["price.set"]!) == "pricing-a100")
        #expect(catalog.type("access.granted")?.stream(for: examples["access.granted"]!) == "principal-user:alice")
        for type in catalog.allTypes {
            let stream = try #require(type.stream(for: examples[type.name]!))
            #expect(StreamName.isValid(stream), "\(stream)")
        }
    }

    @Test func aGateVerdictGoesToTheDeploymentOrElseTheModel() throws {
        let type = try #require(catalog.type("gate.evaluated"))
        var data = try examples()["gate.evaluated"]!
        #expect(type.stream(for: data) == "deployment-fraud-prod")
        #expect(type.isStream("deployment-fraud-prod", of: data))
        #expect(!type.isStream("model-fraud-detector", of: data))
        data["subject"] = ["model": "fraud-detector", "version": "7", "alias": "champion"]
        #expect(type.stream(for: data) == "model-fraud-detector")
        #expect(type.isStream("model-fraud-detector", of: data))
        #expect(type.streamDescription == "deployment-<data.subject.deployment>, else model-<data.subject.model>")
    }

    @Test func aMalformedPolicyIsRefusedWithThePointerOfTheFault() throws {
        let schema = try #require(catalog.type("policy.set")?.schema)
        let good = try examples()["policy.set"]!
        #expect(schema.validate(.object(good)) == nil)
        func rules(_ edit: (inout JSONObject) -> Void) -> JSONObject {
            var d = good
            var r = d["rules"]!.objectValue!
            edit(&r)
            d["rules"] = .object(r)
            return d
        }
        let cases: [(JSONObject, String, String)] = [
            (rules { $0["quorum"] = ["minApprovers": 2] }, "/rules/quorum", "additionalProperties"),
            (rules { $0["evaluation"] = ["metrics": [["metric": "auc", "op": ">=", "threshold": "0.9"]]] }, "/rules/evaluation/metrics/0/threshold", "type"),
            (rules { $0["evaluation"] = ["metrics": [["metric": "auc", "op": "=>", "threshold": 0.9]]] }, "/rules/evaluation/metrics/0/op", "enum"),
            (rules { $0["evaluation"] = ["metrics": [["metric": "auc", "threshold": 0.9]]] }, "/rules/evaluation/metrics/0", "required"),
            (rules { $0["approval"] = ["minApprovers": 0] }, "/rules/approval/minApprovers", "minimum"),
            (rules { $0["classification"] = ["classifications": ["secret"], "role": "privacy"] }, "/rules/classification/classifications/0", "enum"),
            (rules { $0["classification"] = ["classifications": ["pii"]] }, "/rules/classification", "required"),
            (rules { $0 = [:] }, "/rules", "minProperties"),
        ]
        for (data, pointer, keyword) in cases {
            let v = try #require(schema.validate(.object(data)), "\(data)")
            #expect(v.pointer == pointer, "\(v)")
            #expect(v.keyword == keyword, "\(v)")
        }
        var scoped = good
        scoped["scope"] = ["deployments": ["fraud prod"]]
        #expect(schema.validate(.object(scoped))?.pointer == "/scope/deployments/0")
    }

    @Test func violationsNameTheirPointer() throws {
        let schema = try #require(catalog.type("rollout.started")?.schema)
        var data = try examples()["rollout.started"]!
        data["steps"] = [["weight": 10, "minRequests": 1000], ["weight": 500, "minRequests": 5]]
        let violation = try #require(schema.validate(.object(data)))
        #expect(violation.pointer == "/steps/1/weight")
        #expect(violation.keyword == "maximum")
        data = try examples()["rollout.started"]!
        data["stepz"] = []
        #expect(schema.validate(.object(data))?.pointer == "/stepz")
        #expect(schema.validate(.object(data))?.keyword == "additionalProperties")
    }

    @Test func ledgerModeAlsoRefusesDatesThatDoNotExist() throws {
        let schema = try #require(catalog.type("price.set")?.schema)
        var data = try examples()["price.set"]!
        data["effectiveFrom"] = "2026-02-30T00:00:00.000Z"
        #expect(schema.validate(.object(data), mode: .schemaOnly) == nil)
        #expect(schema.validate(.object(data), mode: .ledger)?.keyword == "x-ledger-time")
    }

    @Test func unsupportedKeywordsAreRefusedAtLoad() {
        let files = [("events/x.v1.json", #"{"$id":"https://e.x/events/x.v1.json","type":"object","patternProperties":{"a":true}}"#)]
        #expect(throws: LedgerError.self) { try SchemaRegistry(files: files.map { (path: $0.0, contents: $0.1) }) }
    }

    /// The same fixtures, good and bad, validated here and by Python's jsonschema: the verdicts
    /// must agree on every one. Bad fixtures are mutations of each type's example.
    @Test func agreesWithPythonJsonschema() throws {
        let examples = try examples()
        var fixtures: [(schema: String, instance: JSONValue, mustFail: Bool)] = []
        for type in catalog.allTypes {
            let path = "events/\(type.name).v\(type.schemaVersion).json"
            let full = examples[type.name]!
            let document = catalog.registry.document(path: path)!.json
            let required = Set(document["required"]!.arrayValue!.compactMap(\.stringValue))
            fixtures.append((path, .object(full), false))
            var minimal = full
            for key in full.keys where !required.contains(key) { minimal[key] = nil }
            fixtures.append((path, .object(minimal), false))
            for key in required {
                var m = full
                m[key] = nil
                fixtures.append((path, .object(m), true))
            }
            var extra = full
            extra["unexpectedField"] = 1
            fixtures.append((path, .object(extra), true))
            fixtures.append((path, .array([.object(full)]), true))
            for member in full.members {
                for replacement in mutations(of: member.value) {
                    var m = full
                    m[member.key] = replacement
                    fixtures.append((path, .object(m), false))
                }
            }
        }
        // The envelope and request schemas.
        let request: JSONValue = ["stream": "job-j1", "type": "job.started", "data": ["job": "j1"]]
        fixtures.append(("append-request.v1.json", request, false))
        for (key, value) in [("expectedVersion", JSONValue("no_stream")), ("expectedVersion", 3), ("expectedVersion", "maybe"),
            ("expectedVersion", -1), ("stream", "Job-j1"), ("stream", "job"), ("stream", "job-"), ("id", "not-a-uuid"),
            ("type", "JobQueued"), ("data", []), ("offset", 3)]
        {
            var o = request.objectValue!
            o[key] = value
            fixtures.append(("append-request.v1.json", .object(o), false))
        }

        let lines = try fixtures.map { f -> String in
            let line: JSONValue = ["schema": .string(f.schema), "instance": f.instance]
            return String(decoding: try CanonicalJSON.encode(line), as: UTF8.self)
        }
        let file = FileManager.default.temporaryDirectory.appending(path: "ledger-schema-fixtures-\(getpid()).ndjson")
        try (lines.joined(separator: "\n") + "\n").write(to: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: file) }
        let result = try python([
            fixture("validate_fixtures.py").path, repositoryRoot.appending(path: "Schemas").path, file.path,
        ])
        try #require(result.status == 0, "python3 jsonschema failed: \(result.stderr)")
        let verdicts = result.stdout.split(separator: "\n").map { $0 == "1" }
        try #require(verdicts.count == fixtures.count)
        var valid = 0
        for (fixture, pythonSaysValid) in zip(fixtures, verdicts) {
            let schema = catalog.registry.schema(id: catalog.registry.document(path: fixture.schema)!.id)!
            let violation = schema.validate(fixture.instance, mode: .schemaOnly)
            #expect((violation == nil) == pythonSaysValid, "\(fixture.schema): \(fixture.instance) — ours: \(violation.map(\.description) ?? "valid")")
            if fixture.mustFail { #expect(violation != nil, "\(fixture.schema): \(fixture.instance)") }
            if pythonSaysValid { valid += 1 }
        }
        // Both verdicts occur plenty: the fixtures exercise the schemas both ways.
        #expect(valid > 100)
        #expect(fixtures.count - valid > 500)
    }

    /// The request parser's fast path accepts exactly what `append-request.v1.json` accepts.
    @Test func requestFastPathAgreesWithTheSchema() throws {
        let full: JSONValue = [
            "stream": "job-j1", "type": "job.started", "data": ["job": "j1"], "id": "0b6f0c51-3c1e-4e0f-9a4d-2f7f2b0c9e11",
            "expectedVersion": 3, "causationId": "7d2a1c9e-8b3f-4a6d-b1e2-5c4d3e2f1a00", "correlationId": "run:42", "schemaVersion": 1,
        ]
        var variants: [JSONValue] = [full]
        for member in full.objectValue!.members {
            var dropped = full.objectValue!
            dropped[member.key] = nil
            variants.append(.object(dropped))
            for m in mutations(of: member.value) + ["any", "no_stream", "exists", "maybe", 0, -1, 1.5, 1001, "a.b", "a.b.c.d.e.f", "A.b", "a..b", "a.", "a_b.c_1"] {
                var copy = full.objectValue!
                copy[member.key] = m
                variants.append(.object(copy))
            }
        }
        var accepted = 0
        for v in variants {
            let schemaSays = catalog.appendRequestSchema.validate(v) == nil
            let parserSays = (try? AppendRequest(json: v)) != nil
            #expect(schemaSays == parserSays, "\(v)")
            if parserSays { accepted += 1 }
        }
        #expect(accepted > 20 && accepted < variants.count - 50)
    }

    func mutations(of value: JSONValue) -> [JSONValue] {
        switch value {
        case .string(let s):
            return [42, .null, "", "has space", .string(s + "\n"), .string(String(repeating: "x", count: 129)),
                .string(s.uppercased()), .string(s + "é"), "2026-02-30T00:00:00.000Z", "12", .string(s + "Z")]
        case .number(let n):
            return ["1", .number(-1), .number(0), .number(n + 0.5), .number(1e300), .number(-n), .number(9007199254740992), true]
        case .bool: return ["true", 1, .null]
        case .array(let a):
            var variants: [JSONValue] = [[:], [], "x", .array(a + [42]), .array(a + a)]
            if let first = a.first { variants += mutations(of: first).map { .array([$0]) } }
            return variants
        case .object(let o):
            var variants: [JSONValue] = [[], "x", [:]]
            for member in o.members {
                for m in mutations(of: member.value).prefix(4) {
                    var copy = o
                    copy[member.key] = m
                    variants.append(.object(copy))
                }
                var dropped = o
                dropped[member.key] = nil
                variants.append(.object(dropped))
            }
            var extra = o
            extra["zz"] = 1
            variants.append(.object(extra))
            return variants
        case .null: return [0]
        }
    }
}
