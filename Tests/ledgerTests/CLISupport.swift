import Foundation
@_exported import LedgerTestSupport
import LedgerCore

func requestLine(stream: String, type: String, data: JSONValue, id: EventID? = nil, expectedVersion: JSONValue? = nil) -> String {
    var o: JSONObject = ["stream": .string(stream), "type": .string(type), "data": data]
    if let id { o["id"] = .string(id.description) }
    if let expectedVersion { o["expectedVersion"] = expectedVersion }
    return String(decoding: try! CanonicalJSON.encode(.object(o)), as: UTF8.self)
}

func queuedLine(_ job: String, id: EventID? = nil) -> String {
    requestLine(stream: "job-\(job)", type: "job.queued", data: ["job": .string(job), "team": "vision", "gpuType": "a100", "gpus": 2, "priority": 1], id: id)
}
