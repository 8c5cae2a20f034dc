import Foundation
import Testing
import LedgerCore

@Suite struct CLITests {
    @Test func appendReportsEachRejectedLineAndWritesTheRest() throws {
        let dir = TemporaryDirectory()
        let input = [
            queuedLine("j1"),
            requestLine(stream: "job-j1", type: "job.started", data: ["job": "j1"], expectedVersion: 0),
            "{not json",
            requestLine(stream: "job-j2", type: "job.started", data: ["jbo": "j2"]),
            "",
            "[" + queuedLine("j3") + "," + requestLine(stream: "job-j3", type: "job.started", data: ["job": "j3"], expectedVersion: 7) + "]",
            requestLine(stream: "job-j9", type: "gpu.allocated", data: ["job": "j9", "node": "n", "gpuType": "a100", "gpus": 1, "team": "t"]),
            queuedLine("j4"),
        ].joined(separator: "\n") + "\n"
        let run = try ledger(["append", "--data-dir", dir.path], input: input)
        #expect(run.status == 2)
        let acks = run.lines.map { try! JSONParser.parse(Array($0.utf8)) }
        #expect(acks.map { $0["offset"]?.intValue } == [0, 1, 2])
        #expect(acks.map { $0["stream"]?.stringValue } == ["job-j1", "job-j1", "job-j4"])
        let errors = run.stderr.split(separator: "\n").map(String.init)
        #expect(errors.count == 4)
        #expect(errors[0].hasPrefix("error: invalid_json: line 3: "))
        #expect(errors[1].hasPrefix("error: schema_violation: line 4: "))
        #expect(errors[1].contains("/data"))
        #expect(errors[2].hasPrefix("error: wrong_expected_version: line 6, event 1: stream job-j3 does not exist, expected 7"))
        #expect(errors[3].hasPrefix("error: forbidden_type: line 7: "))
        #expect(errors[3].contains("user:"))
        let read = try ledger(["read", "--data-dir", dir.path])
        #expect(read.lines.count == 3)
        #expect(try ledger(["read", "--data-dir", dir.path, "--from", "1", "--to", "1"]).lines.count == 1)
        #expect(try ledger(["read", "--data-dir", dir.path, "--stream", "job-j1"]).lines.count == 2)
        #expect(try ledger(["read", "--data-dir", dir.path, "--type", "job.queued"]).lines.count == 2)
    }

    @Test func appendAcknowledgesBeforeTheEndOfItsInput() throws {
        let dir = TemporaryDirectory()
        let process = Process()
        process.executableURL = URL(fileURLWithPath: ledgerBinary)
        process.arguments = ["append", "--data-dir", dir.path]
        let stdin = Pipe()
        let stdout = Pipe()
        process.standardInput = stdin
        process.standardOutput = stdout
        process.standardError = FileHandle.nullDevice
        try process.run()
        let reader = stdout.fileHandleForReading
        for i in 0..<3 {
            stdin.fileHandleForWriting.write(Data((queuedLine("live\(i)") + "\n").utf8))
            // The ack arrives while stdin is still open.
            var line = Data()
            while !line.contains(0x0A) {
                let chunk = reader.availableData
                if chunk.isEmpty { break }
                line.append(chunk)
            }
            let ack = try JSONParser.parse(Array(line.prefix { $0 != 0x0A }))
            #expect(ack["offset"]?.intValue == i)
        }
        try stdin.fileHandleForWriting.close()
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)
    }

    @Test func secondWriterIsRefusedWithTheHolderNamed() throws {
        let dir = TemporaryDirectory()
        let holder = Process()
        holder.executableURL = URL(fileURLWithPath: ledgerBinary)
        holder.arguments = ["append", "--data-dir", dir.path]
        let stdin = Pipe()
        let stdout = Pipe()
        holder.standardInput = stdin
        holder.standardOutput = stdout
        try holder.run()
        stdin.fileHandleForWriting.write(Data((queuedLine("held") + "\n").utf8))
        _ = stdout.fileHandleForReading.availableData  // the first ack: the lock is held
        let second = try ledger(["append", "--data-dir", dir.path], input: queuedLine("other") + "\n")
        #expect(second.status == 4)
        #expect(second.stderr.hasPrefix("error: locked: "))
        #expect(second.stderr.contains("pid \(holder.processIdentifier)"))
        // Readers are welcome alongside the writer.
        let read = try ledger(["read", "--data-dir", dir.path])
        #expect(read.status == 0 && read.lines.count == 1)
        holder.terminate()
        holder.waitUntilExit()
        // A killed writer leaves no stale lock.
        let third = try ledger(["append", "--data-dir", dir.path], input: queuedLine("after") + "\n")
        #expect(third.status == 0)
    }

    @Test func verifyReportsCorruptionWithExitCode3() throws {
        let dir = TemporaryDirectory()
        _ = try ledger(["append", "--data-dir", dir.path], input: (0..<20).map { queuedLine("v\($0)") }.joined(separator: "\n"))
        let ok = try ledger(["verify", "--data-dir", dir.path])
        #expect(ok.status == 0)
        #expect(ok.stdout.contains("verify: ok"))
        let segment = dir.path + "/segments/00000000000000000000.log"
        var bytes = try Data(contentsOf: URL(fileURLWithPath: segment))
        bytes[100] ^= 0x20
        try bytes.write(to: URL(fileURLWithPath: segment))
        let bad = try ledger(["verify", "--data-dir", dir.path])
        #expect(bad.status == 3)
        #expect(bad.stderr.hasPrefix("error: corrupt: first bad offset 0: "))
        let append = try ledger(["append", "--data-dir", dir.path], input: queuedLine("x") + "\n")
        #expect(append.status == 3)
        #expect(append.stderr.contains("corrupt"))
    }

    /// An export verifies with a short script written only from Schemas/hashing.md, and imports
    /// into an empty directory as the same ledger, hash for hash.
    @Test func exportVerifiesIndependentlyAndImportsIdentically() throws {
        let dir = TemporaryDirectory()
        var lines: [String] = []
        for i in 0..<40 {
            lines.append(queuedLine("e\(i)"))
            lines.append(requestLine(stream: "pricing-gpu\(i)", type: "price.set", data: ["gpuType": .string("gpu\(i)"), "hourlyRate": .number(Double(i) * 0.37 + 1e-7), "effectiveFrom": "2026-11-30T00:00:00.000Z"]))
            lines.append(requestLine(stream: "model-m\(i)", type: "model.version.evaluated", data: ["model": .string("m\(i)"), "version": "1", "passed": true, "metrics": ["auc": .number(1.0 / Double(i + 3)), "big": 1e21, "tiny": .number(Double.leastNonzeroMagnitude), "neg": -0.0, "exp": 1.5e-9]]))
            lines.append(requestLine(stream: "model-n\(i)", type: "model.registered", data: ["model": .string("n\(i)"), "team": "risk", "description": "naïve € 😀 \u{1} \"quoted\" back\\slash / tab\t"]))
        }
        _ = try ledger(["append", "--data-dir", dir.path], input: lines.joined(separator: "\n"))
        let export = try ledger(["read", "--data-dir", dir.path])
        #expect(export.lines.count == 160)
        let file = dir.path + "/export.ndjson"
        try export.stdout.write(toFile: file, atomically: true, encoding: .utf8)
        let script = repositoryRoot.appending(path: "Tests/ledgerTests/Fixtures/verify_export.py").path
        let checked = try python([script, file])
        #expect(checked.status == 0, "\(checked.stdout)\(checked.stderr)")
        let head = try ledger(["verify", "--data-dir", dir.path]).stdout.split(separator: "\n").first { $0.hasPrefix("head hash: ") }!.replacing("head hash: ", with: "")
        #expect(checked.stdout == "ok 160 events, head \(head)\n")

        // Tampering is caught, at the right offset: altered data, a removed line, swapped lines.
        var altered = export.lines
        altered[5] = altered[5].replacing("\"time\":\"2", with: "\"time\":\"1")
        var removed = export.lines
        removed.remove(at: 7)
        var swapped = export.lines
        swapped.swapAt(10, 11)
        for (name, tampered, offset) in [("altered", altered, 5), ("removed", removed, 7), ("swapped", swapped, 10)] {
            let path = dir.path + "/\(name).ndjson"
            try (tampered.joined(separator: "\n") + "\n").write(toFile: path, atomically: true, encoding: .utf8)
            let result = try python([script, path])
            #expect(result.status == 1, "\(name)")
            #expect(result.stdout.contains("offset \(offset)") || result.stdout.contains("offset \(offset + 1)"), "\(name): \(result.stdout)")
        }

        // Import into an empty directory: the same offsets, versions and hashes.
        let copy = dir.path + "/copy"
        let imported = try ledger(["import", "--preserve-time", file, "--data-dir", copy])
        #expect(imported.status == 0, "\(imported.stderr)")
        #expect(try ledger(["read", "--data-dir", copy]).stdout == export.stdout)
        // An export whose hash was altered fails at that line and leaves nothing behind.
        let forged = dir.path + "/forged.ndjson"
        var forgedLines = export.lines
        forgedLines[3] = forgedLines[3].replacing("\"hash\":\"", with: "\"hash\":\"0")
        forgedLines[3] = forgedLines[3].replacing(#/("hash":"[0-9a-f]{64})[0-9a-f]/#) { $0.output.1 }
        try (forgedLines.joined(separator: "\n") + "\n").write(toFile: forged, atomically: true, encoding: .utf8)
        let target = dir.path + "/forged-copy"
        let failed = try ledger(["import", "--preserve-time", forged, "--data-dir", target])
        #expect(failed.status == 2)
        #expect(failed.stderr.contains("import_mismatch: line 4"))
        #expect(!FileManager.default.fileExists(atPath: target))
        // Bad input anywhere in the file: nothing is imported at all.
        let broken = dir.path + "/broken.ndjson"
        try ((export.lines.prefix(10) + ["{\"id\":1}"]).joined(separator: "\n") + "\n").write(toFile: broken, atomically: true, encoding: .utf8)
        let rejected = try ledger(["import", "--preserve-time", broken, "--data-dir", dir.path + "/broken-copy"])
        #expect(rejected.status == 2)
        #expect(rejected.stderr.contains("line 11"))
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/broken-copy"))
    }
}
