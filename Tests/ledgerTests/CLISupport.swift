import Foundation
import LedgerCore

let repositoryRoot: URL = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

/// The `ledger` executable built alongside the tests.
let ledgerBinary: String = {
    var dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    for _ in 0..<4 {
        let candidate = dir.appending(path: "ledger").path
        if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        dir = dir.deletingLastPathComponent()
    }
    for config in ["debug", "release"] {
        let candidate = repositoryRoot.appending(path: ".build/\(config)/ledger").path
        if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
    }
    fatalError("cannot find the ledger executable next to \(CommandLine.arguments[0])")
}()

struct Run {
    var status: Int32
    var stdout: String
    var stderr: String
    var lines: [String] { stdout.split(separator: "\n").map(String.init) }
}

/// Runs `ledger` with `arguments`, feeding `input` on stdin.
@discardableResult
func ledger(_ arguments: [String], input: String = "", environment: [String: String] = [:]) throws -> Run {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: ledgerBinary)
    process.arguments = arguments
    var env = ProcessInfo.processInfo.environment
    for (k, v) in environment { env[k] = v }
    process.environment = env
    let stdin = Pipe()
    let stdout = Pipe()
    let stderr = Pipe()
    process.standardInput = stdin
    process.standardOutput = stdout
    process.standardError = stderr
    try process.run()
    let writer = Thread {
        stdin.fileHandleForWriting.write(Data(input.utf8))
        try? stdin.fileHandleForWriting.close()
    }
    writer.start()
    let group = DispatchGroup()
    nonisolated(unsafe) var out = Data()
    nonisolated(unsafe) var err = Data()
    group.enter()
    DispatchQueue.global().async {
        out = stdout.fileHandleForReading.readDataToEndOfFile()
        group.leave()
    }
    err = stderr.fileHandleForReading.readDataToEndOfFile()
    group.wait()
    process.waitUntilExit()
    return Run(status: process.terminationStatus, stdout: String(decoding: out, as: UTF8.self), stderr: String(decoding: err, as: UTF8.self))
}

func python(_ arguments: [String]) throws -> Run {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["python3"] + arguments
    let stdout = Pipe()
    let stderr = Pipe()
    process.standardOutput = stdout
    process.standardError = stderr
    try process.run()
    let out = stdout.fileHandleForReading.readDataToEndOfFile()
    let err = stderr.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return Run(status: process.terminationStatus, stdout: String(decoding: out, as: UTF8.self), stderr: String(decoding: err, as: UTF8.self))
}

final class TemporaryDirectory: @unchecked Sendable {
    let path: String
    init(_ name: String = "ledger-cli") {
        path = FileManager.default.temporaryDirectory.appending(path: "\(name)-\(getpid())-\(UUID().uuidString.prefix(8))").path
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }
}

func requestLine(stream: String, type: String, data: JSONValue, id: EventID? = nil, expectedVersion: JSONValue? = nil) -> String {
    var o: JSONObject = ["stream": .string(stream), "type": .string(type), "data": data]
    if let id { o["id"] = .string(id.description) }
    if let expectedVersion { o["expectedVersion"] = expectedVersion }
    return String(decoding: try! CanonicalJSON.encode(.object(o)), as: UTF8.self)
}

func queuedLine(_ job: String, id: EventID? = nil) -> String {
    requestLine(stream: "job-\(job)", type: "job.queued", data: ["job": .string(job), "team": "vision", "gpuType": "a100", "gpus": 2, "priority": 1], id: id)
}
