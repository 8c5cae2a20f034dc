import Foundation
import Testing
@testable import LedgerCore

@Suite struct UpcastingTests {
    static let v1: [JSONObject] = [
        ["team": "vision", "gpuType": "a100", "nominal": 8],
        ["team": "nlp", "gpuType": "h100", "nominal": 16, "borrowingLimit": 8, "cohort": "research", "weight": 2],
    ]

    @Test func aV1QuotaReadsAsStrictFIFOAndIsAValidV2() throws {
        let catalog = EventCatalog.standard
        let v2 = try #require(catalog.type("quota.set", schemaVersion: 2))
        #expect(Upcasting.latest("quota.set") == 2)
        for data in Self.v1 {
            #expect(catalog.type("quota.set", schemaVersion: 1)!.schema.validate(.object(data)) == nil)
            let (version, upcast) = Upcasting.upcast(type: "quota.set", schemaVersion: 1, data: data)
            #expect(version == 2)
            #expect(upcast["queueingStrategy"] == .string("StrictFIFO"))
            // Everything v1 had is unchanged.
            for member in data.members { #expect(upcast[member.key] == member.value) }
            #expect(upcast.count == data.count + 1)
            #expect(v2.schema.validate(.object(upcast)) == nil, "\(upcast)")
        }
    }

    @Test func newerEventsAndOtherTypesAreLeftAlone() {
        let v2: JSONObject = ["team": "vision", "gpuType": "a100", "nominal": 8]
        let (version, data) = Upcasting.upcast(type: "quota.set", schemaVersion: 2, data: v2)
        #expect(version == 2 && data == v2)  // absent in v2: BestEffortFIFO, applied by the reader, not written
        let job: JSONObject = ["job": "j", "team": "t", "gpuType": "a100", "gpus": 1, "priority": 0]
        #expect(Upcasting.upcast(type: "job.queued", schemaVersion: 1, data: job).data == job)
        #expect(Upcasting.latest("job.queued") == 1)
    }

    @Test func anUpcastEnvelopeKeepsTheStoredHash() throws {
        var e = Envelope(
            offset: 0, id: .random(), stream: "team-vision", version: 0, type: "quota.set", time: Timestamp("2026-11-23T00:00:00.000Z")!,
            actor: "user:alice", data: Self.v1[0], prevHash: .zero)
        e.hash = try e.computeHash()
        let upcast = e.upcast()
        #expect(upcast.schemaVersion == 2)
        #expect(upcast.data["queueingStrategy"] == .string("StrictFIFO"))
        #expect(upcast.hash == e.hash)
        // The stored form is what the hash covers; the upcast form is only a reading of it.
        #expect(try e.computeHash() == e.hash)
        #expect(try upcast.computeHash() != e.hash)
    }

    @Test func v2IsAppendableAndRefusesAnUnknownStrategy() throws {
        let v2 = try #require(EventCatalog.standard.type("quota.set", schemaVersion: 2))
        #expect(v2.schema.validate(["team": "t", "gpuType": "a100", "nominal": 1, "queueingStrategy": "BestEffortFIFO"]) == nil)
        let bad = v2.schema.validate(["team": "t", "gpuType": "a100", "nominal": 1, "queueingStrategy": "Fair"])
        #expect(bad?.pointer == "/queueingStrategy")
        // v1 does not know the field.
        #expect(EventCatalog.standard.type("quota.set", schemaVersion: 1)!.schema.validate(["team": "t", "gpuType": "a100", "nominal": 1, "queueingStrategy": "StrictFIFO"]) != nil)
    }

    @Test func accessV1ReadsAsV2UnchangedAndV2TakesGovernanceRoles() throws {
        let catalog = EventCatalog.standard
        for type in ["access.granted", "access.revoked"] {
            #expect(Upcasting.latest(type) == 2)
            let v1 = try #require(catalog.type(type, schemaVersion: 1))
            let v2 = try #require(catalog.type(type, schemaVersion: 2))
            for role in ["writer", "reader", "auditor", "finops", "admin"] {
                let data: JSONObject = ["principal": "user:alice", "role": .string(role)]
                #expect(v1.schema.validate(.object(data)) == nil)
                let (version, upcast) = Upcasting.upcast(type: type, schemaVersion: 1, data: data)
                #expect(version == 2 && upcast == data)
                #expect(v2.schema.validate(.object(upcast)) == nil)
            }
            // A governance role: v2 only.
            let approver: JSONObject = ["principal": "user:carol", "role": "model-approver"]
            #expect(v1.schema.validate(.object(approver))?.pointer == "/role")
            #expect(v2.schema.validate(.object(approver)) == nil)
            #expect(v2.schema.validate(["principal": "user:carol", "role": "bad role"])?.pointer == "/role")
        }
    }
}
