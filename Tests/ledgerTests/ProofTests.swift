import Foundation
import Testing
import LedgerCore

/// Checkpoints, proofs and evidence bundles through the CLI, each checked by `ledger evidence
/// verify` and by `Fixtures/verify_bundle.py` (written only from Schemas/proofs.md); and the
/// tampering an auditor must catch: truncation after a checkpoint, a history rewritten and signed
/// with another key, a reordered pair, a flipped event, a forged inclusion proof.
@Suite(.serialized) struct ProofTests {
    let dir = TemporaryDirectory("ledger-proofs")
    var data: String { dir.path + "/d" }
    var key: String { dir.path + "/key.priv" }
    var pub: String { dir.path + "/key.pub" }

    /// The events of a scenario, without what the log adds (to import into another log).
    func clientLines(_ export: String, edit: (Int, inout JSONObject) -> Void = { _, _ in }) throws -> String {
        var out: [String] = []
        for (i, line) in export.split(separator: "\n").enumerated() {
            var o = try JSONParser.parse(Array(line.utf8)).objectValue!
            for k in ["offset", "version", "prevHash", "hash"] { o[k] = nil }
            edit(i, &o)
            out.append(String(decoding: try CanonicalJSON.encode(.object(o)), as: UTF8.self))
        }
        return out.joined(separator: "\n") + "\n"
    }

    func setUp() throws -> String {
        let events = repositoryRoot.appending(path: "Replay/slo-bad-hour/events.ndjson").path
        try #require(try ledger(["import", "--preserve-time", "--data-dir", data, events]).status == 0)
        let keygen = try ledger(["checkpoint", "keygen", "--name", "audit-test", "--out", key])
        try #require(keygen.status == 0, "\(keygen.stderr)")
        try keygen.stdout.write(toFile: pub, atomically: true, encoding: .utf8)
        let create = try ledger(["checkpoint", "create", "--data-dir", data, "--signing-key", key, "--every", "100", "--at-head"])
        try #require(create.status == 0, "\(create.stderr)")
        return try ledger(["read", "--data-dir", data]).stdout
    }

    func bundle(_ args: [String], _ name: String) throws -> String {
        let file = dir.path + "/" + name
        let run = try ledger(["evidence", "export", "--data-dir", data] + args + [file])
        try #require(run.status == 0, "\(run.stderr)")
        return file
    }

    func bothVerify(_ file: String, trusted: String? = nil) throws -> (swift: Run, python: Run) {
        let swift = try ledger(["evidence", "verify", file, "--public-key", pub] + (trusted.map { ["--trusted-checkpoint", $0] } ?? []))
        let py = try python([repositoryRoot.appending(path: "Tests/ledgerTests/Fixtures/verify_bundle.py").path, file, pub] + (trusted.map { [$0] } ?? []))
        return (swift, py)
    }

    @Test func checkpointsProofsAndBundlesVerifyInBothVerifiers() throws {
        let export = try setUp()
        let head = export.split(separator: "\n").count
        let list = try ledger(["checkpoint", "list", "--data-dir", data, "--public-key", pub, "--format", "json"])
        let checkpoints = try JSONParser.parse(Array(list.stdout.utf8))["checkpoints"]!.arrayValue!
        let sizes = checkpoints.map { $0["size"]!.intValue! }
        #expect(sizes.contains(100) && sizes.contains(200) && sizes.last == head)
        #expect(checkpoints.allSatisfy { $0["verified"] == true })
        // The read models' digests are those of what the commands print as of the checkpoint.
        let note = checkpoints.first { $0["size"] == 200 }!["note"]!.stringValue!
        for (name, args) in [("registry", ["registry", "models"]), ("slo", ["slo"])] {
            let printed = try ledger(args + ["--format", "json", "--as-of", "199", "--data-dir", data]).stdout
            let digest = Hash256.of(Array(printed.utf8.dropLast())).description
            #expect(note.contains("\nprojection \(name) sha256:\(digest)\n"), "\(name): \(note)")
        }
        let day = try #require(note.split(separator: "\n").first { $0.hasPrefix("projection chargeback/") })
        let date = String(day.dropFirst("projection chargeback/".count).prefix(10))
        let charge = try ledger(["chargeback", "--from", date, "--to", date, "--format", "json", "--as-of", "199", "--data-dir", data]).stdout
        #expect(day.hasSuffix("sha256:" + Hash256.of(Array(charge.utf8.dropLast())).description), "\(day)")
        let verify = try ledger(["verify", "--data-dir", data, "--public-key", pub])
        #expect(verify.status == 0 && verify.stdout.contains("checkpoints: \(sizes.count) match the log's Merkle tree, each signed by audit-test"), "\(verify.stdout)\(verify.stderr)")
        // Proofs through the CLI, checked against the reference verifier.
        let inclusion = try JSONParser.parse(Array(try ledger(["prove", "inclusion", "37", "--tree-size", "200", "--data-dir", data]).stdout.utf8))
        #expect(inclusion["proof"]!.arrayValue!.count == 8)  // ⌈log2 200⌉
        let consistency = try ledger(["prove", "consistency", "100", "200", "--data-dir", data])
        #expect(consistency.status == 0)
        #expect(try ledger(["prove", "inclusion", "300", "--tree-size", "200", "--data-dir", data]).stderr.contains("offset 300 is not in a tree of 200 events"))
        // A bundle of offsets 120–180 against the checkpoint of 200, extending the auditor's checkpoint of 100.
        let file = try bundle(["--offsets", "--from", "120", "--to", "180", "--trusted-size", "100"], "b.json")
        let trusted = dir.path + "/trusted.note"
        try checkpoints.first { $0["size"] == 100 }!["note"]!.stringValue!.write(toFile: trusted, atomically: true, encoding: .utf8)
        let (s, p) = try bothVerify(file, trusted: trusted)
        #expect(s.status == 0 && s.stdout.contains("61 events (offsets 120–180) included in the checkpoint of 200 events"), "\(s.stdout)\(s.stderr)")
        #expect(s.stdout.contains("it extends the trusted checkpoint of 100 events"))
        #expect(p.status == 0 && p.stdout.contains("ok 61 events 120-180 in checkpoint 200"), "\(p.stdout)\(p.stderr)")
    }

    @Test func tamperingIsCaughtWithWhatAndWhere() throws {
        _ = try setUp()
        let file = try bundle(["--offsets", "--from", "120", "--to", "180"], "b.json")
        let original = try JSONParser.parse(Array(try String(contentsOfFile: file, encoding: .utf8).utf8)).objectValue!
        func tampered(_ name: String, _ edit: (inout [JSONValue]) -> Void) throws -> String {
            var o = original
            var events = o["events"]!.arrayValue!
            edit(&events)
            o["events"] = .array(events)
            let path = dir.path + "/" + name
            try String(decoding: try CanonicalJSON.encode(.object(o)), as: UTF8.self).write(toFile: path, atomically: true, encoding: .utf8)
            return path
        }
        let cases: [(String, (inout [JSONValue]) -> Void, String, String)] = [
            ("reordered.json", { $0.swapAt(10, 11) }, "is not at offset 130: events were removed or reordered", "event 10 is not at offset 130"),
            ("flipped.json", { e in
                var item = e[5].objectValue!
                item["event"] = .string(item["event"]!.stringValue!.replacingOccurrences(of: "\"requests\":", with: "\"requests\":1"))
                e[5] = .object(item)
            }, "event at offset 125: its hash is not the SHA-256 of its content: the event was altered", "offset 125: the hash is not the SHA-256 of the event: altered"),
            ("forged.json", { e in
                var item = e[3].objectValue!
                var proof = item["inclusion"]!.arrayValue!
                proof[0] = .string(String(repeating: "ab", count: 32))
                item["inclusion"] = .array(proof)
                e[3] = .object(item)
            }, "event at offset 123: its inclusion proof does not lead to the checkpoint's root", "offset 123: the inclusion proof does not reach the checkpoint root"),
        ]
        for (name, edit, swiftMessage, pythonMessage) in cases {
            let (s, p) = try bothVerify(try tampered(name, edit))
            #expect(s.status == 3 && s.stderr.contains(swiftMessage), "\(name): \(s.stderr)")
            #expect(p.status == 1 && p.stdout.contains(pythonMessage), "\(name): \(p.stdout)")
        }
    }

    @Test func aRewrittenHistoryAndATruncatedLogAreCaught() throws {
        let export = try setUp()
        let checkpoints = dir.path + "/d/checkpoints"
        // Rewritten: the same events with one changed, in a log of their own signed by another key.
        let rewritten = dir.path + "/rewritten"
        let lines = try clientLines(export) { i, o in
            if i == 50, var d = o["data"]?.objectValue, d["requests"] != nil {
                d["requests"] = 1
                o["data"] = .object(d)
            } else if i == 50 {
                o["actor"] = "user:mallory"
            }
        }
        try lines.write(toFile: dir.path + "/rewritten.ndjson", atomically: true, encoding: .utf8)
        try #require(try ledger(["import", "--preserve-time", "--data-dir", rewritten, dir.path + "/rewritten.ndjson"]).status == 0)
        let otherKey = dir.path + "/other.priv"
        try #require(try ledger(["checkpoint", "keygen", "--name", "audit-test", "--out", otherKey]).status == 0)
        try #require(try ledger(["checkpoint", "create", "--data-dir", rewritten, "--signing-key", otherKey, "--every", "100", "--at-head"]).status == 0)
        let forged = dir.path + "/forged.json"
        try #require(try ledger(["evidence", "export", "--data-dir", rewritten, "--offsets", "--from", "40", "--to", "60", forged]).status == 0)
        let (s, p) = try bothVerify(forged)
        #expect(s.status == 3 && s.stderr.contains("is not signed by audit-test"), "\(s.stderr)")
        #expect(p.status == 1 && p.stdout.contains("is not signed by audit-test"), "\(p.stdout)")
        // The rewritten log against the genuine checkpoints: every one from offset 51 on differs.
        try FileManager.default.removeItem(atPath: rewritten + "/checkpoints")
        try FileManager.default.copyItem(atPath: checkpoints, toPath: rewritten + "/checkpoints")
        try? FileManager.default.removeItem(atPath: rewritten + "/merkle")
        let verify = try ledger(["verify", "--data-dir", rewritten, "--public-key", pub])
        #expect(verify.status == 3 && verify.stderr.contains("checkpoint 100: its root") && verify.stderr.contains("the history it signed was rewritten"), "\(verify.stderr)")
        // Truncated: the first 150 events only, with the genuine checkpoints.
        let truncated = dir.path + "/truncated"
        let first150 = try clientLines(export).split(separator: "\n").prefix(150).joined(separator: "\n") + "\n"
        try first150.write(toFile: dir.path + "/first150.ndjson", atomically: true, encoding: .utf8)
        try #require(try ledger(["import", "--preserve-time", "--data-dir", truncated, dir.path + "/first150.ndjson"]).status == 0)
        try FileManager.default.copyItem(atPath: checkpoints, toPath: truncated + "/checkpoints")
        let t = try ledger(["verify", "--data-dir", truncated, "--public-key", pub])
        #expect(t.status == 3 && t.stderr.contains("checkpoint 200 is beyond the log's head 150: the log was truncated after it was signed"), "\(t.stderr)")
    }

    @Test func theSigningKeyMustLiveOutsideTheDataDirectory() throws {
        _ = try setUp()
        let inside = data + "/key.priv"
        try FileManager.default.copyItem(atPath: key, toPath: inside)
        let run = try ledger(["checkpoint", "create", "--data-dir", data, "--signing-key", inside])
        #expect(run.status != 0 && run.stderr.contains("is inside the data directory"), "\(run.stderr)")
    }
}
