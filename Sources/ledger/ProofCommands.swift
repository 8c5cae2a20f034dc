import ArgumentParser
import Foundation
import LedgerCore
import LedgerLog
import LedgerProjections

/// The signing key, refused when it lives inside the data directory (whoever controls the
/// directory must not be able to sign a rewritten history).
func loadSigningKey(_ path: String, dataDirectory: String) throws -> SigningKey {
    let key = URL(fileURLWithPath: path).standardizedFileURL.resolvingSymlinksInPath().path
    let data = URL(fileURLWithPath: dataDirectory).standardizedFileURL.resolvingSymlinksInPath().path
    if key == data || key.hasPrefix(data + "/") {
        throw LedgerError(.usage, "the signing key \(path) is inside the data directory \(dataDirectory): keep it outside, where whoever can rewrite the log cannot read it")
    }
    guard let bytes = FileManager.default.contents(atPath: path) else { throw LedgerError(.usage, "cannot read the signing key \(path)") }
    return try SigningKey(parsing: String(decoding: bytes, as: UTF8.self))
}

/// A verifier key given as the key itself or as a file holding it.
func loadVerifierKey(_ text: String) throws -> VerifierKey {
    if let bytes = FileManager.default.contents(atPath: text) { return try VerifierKey(parsing: String(decoding: bytes, as: UTF8.self)) }
    return try VerifierKey(parsing: text)
}

struct CheckpointCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "checkpoint", abstract: "Signed Merkle checkpoints of the log (C2SP tlog-checkpoint, Ed25519).",
        subcommands: [Keygen.self, Create.self, List.self], defaultSubcommand: List.self)

    struct Keygen: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "keygen", abstract: "Write a new Ed25519 signing key to FILE (mode 0600) and print its verifier key.")
        @Option(help: "The key's name (printed in every signature line).") var name: String = "platform-ledger"
        @Option(help: ArgumentHelp("Where to write the signing key (outside any data directory).", valueName: "FILE")) var out: String

        func run() throws {
            guard !FileManager.default.fileExists(atPath: out) else { throw LedgerError(.usage, "\(out) exists: refusing to overwrite a key") }
            let key = try SigningKey.generate(name: name)
            guard FileManager.default.createFile(atPath: out, contents: Data((key.encoded + "\n").utf8), attributes: [.posixPermissions: 0o600]) else {
                throw LedgerError(.io, "cannot write \(out)")
            }
            Terminal.line(key.verifierKey.encoded)
        }
    }

    struct Create: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "create", abstract: "Sign every checkpoint due up to the log's head (every --every events and each UTC day close), and with --at-head one at the head.",
            discussion: "Each checkpoint carries the time and hash of its last event and the digests of the read models as of it (registry, SLO status, the chargeback of its last event's UTC day).")
        @OptionGroup var data: DataDirectory
        @Option(name: .customLong("signing-key"), help: ArgumentHelp("The signing key (outside the data directory).", valueName: "FILE")) var signingKey: String
        @Option(help: "A checkpoint at least every this many events.") var every: Int64 = 100_000
        @Flag(name: .customLong("at-head"), help: "Also a checkpoint of the whole log as it is now.") var atHead = false
        @Option(help: "The origin line (default: the one already used, else platform-ledger.local/<id of the first event>).") var origin: String?
        @Flag(name: .customLong("no-attest"), help: "Leave out the read models' digests.") var noAttest = false

        func run() throws {
            guard every > 0 else { throw ValidationError("--every must be positive") }
            let key = try loadSigningKey(signingKey, dataDirectory: data.resolved)
            let reader = try LogReader(directory: data.resolved)
            let tree = try MerkleStore(dataDirectory: data.resolved)
            var attest: ((Int64) throws -> [String])?
            if !noAttest {
                let store = try ProjectionStore(dataDirectory: data.resolved)
                do { try Projector(store: store, source: reader).catchUp() } catch let error as LedgerError where error.code == .locked {}
                attest = { size in try Attestation.lines(store: store, source: reader, size: size) }
            }
            let made = try Checkpoints(dataDirectory: data.resolved).createDue(
                reader, tree: tree, key: key, policy: Checkpoints.Policy(every: every), origin: origin, atHead: atHead, attest: attest)
            for c in made { Terminal.line("checkpoint \(c.size) root \(c.root) \(c.time?.description ?? "")") }
            Terminal.line("\(made.count) checkpoint(s) signed by \(key.name); tree of \(try tree.size) events")
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "list", abstract: "The stored checkpoints, and with --public-key whether each signature verifies.")
        @OptionGroup var data: DataDirectory
        @Option(name: .customLong("public-key"), help: ArgumentHelp("A verifier key, or a file holding one.", valueName: "KEY")) var publicKey: String?
        @Option(help: "table, json or note (the notes themselves, one after another).") var format: Format = .table
        enum Format: String, ExpressibleByArgument { case table, json, note }

        func run() throws {
            let key = try publicKey.map(loadVerifierKey)
            let all = try Checkpoints(dataDirectory: data.resolved).list()
            switch format {
            case .note:
                for c in all { Terminal.write(Array((c.note.text + "\n").utf8)) }
            case .json:
                Terminal.json(["checkpoints": .array(all.map { c in
                    var o: JSONObject = ["size": .number(Double(c.size)), "root": .string(c.note.checkpoint.root.description), "note": .string(c.note.text),
                                         "signers": .array(c.note.signatures.map { .string($0.name) })]
                    if let key { o["verified"] = .bool(c.note.isSigned(by: key)) }
                    return .object(o)
                })])
            case .table:
                var table = Table(["size", "time", "root", "signed by"] + (key == nil ? [] : ["verified"]), numeric: [0])
                for c in all {
                    table.add([String(c.size), c.note.checkpoint.time?.description ?? "-", c.note.checkpoint.root.description,
                               c.note.signatures.map(\.name).joined(separator: " ")] + (key.map { [c.note.isSigned(by: $0) ? "yes" : "NO"] } ?? []))
                }
                Terminal.line(table.render())
            }
        }
    }
}

struct ProveCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "prove", abstract: "RFC 9162 inclusion and consistency proofs over the log's Merkle tree.",
        subcommands: [Inclusion.self, Consistency.self])

    struct Inclusion: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "inclusion", abstract: "The audit path of the event at OFFSET in the tree of N events.")
        @OptionGroup var data: DataDirectory
        @Argument(help: "The event's offset.") var offset: Int64
        @Option(name: .customLong("tree-size"), help: "The tree size N (default: the log's head).") var treeSize: Int64?

        func run() throws {
            let reader = try LogReader(directory: data.resolved)
            let size = treeSize ?? reader.head
            guard size <= reader.head else { throw LedgerError(.notFound, "the log has \(reader.head) events, not \(size)") }
            guard offset >= 0, offset < size else { throw LedgerError(.usage, "offset \(offset) is not in a tree of \(size) events") }
            let tree = try MerkleStore(dataDirectory: data.resolved)
            try tree.catchUp(reader, to: size)
            let proof = try tree.inclusionProof(index: offset, size: size)
            let root = try tree.root(size: size)
            let leaf = try tree.leaf(offset)
            guard Merkle.verifyInclusion(index: offset, size: size, leafHash: leaf, proof: proof, root: root) else {
                throw LedgerError(.corrupt, "the stored tree gives a proof that does not verify: run `ledger verify`")
            }
            let event = try reader.event(at: offset)!.envelope()
            Terminal.json(["offset": .number(Double(offset)), "treeSize": .number(Double(size)), "eventHash": .string(event.hash.description),
                           "leafHash": .string(leaf.description), "root": .string(root.description), "proof": .array(proof.map { .string($0.description) })])
        }
    }

    struct Consistency: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "consistency", abstract: "The proof that the tree of N events extends the tree of M events.")
        @OptionGroup var data: DataDirectory
        @Argument(help: "The earlier tree size M.") var first: Int64
        @Argument(help: "The later tree size N (default: the log's head).") var second: Int64?

        func run() throws {
            let reader = try LogReader(directory: data.resolved)
            let n = second ?? reader.head
            guard n <= reader.head else { throw LedgerError(.notFound, "the log has \(reader.head) events, not \(n)") }
            guard first > 0, first <= n else { throw LedgerError(.usage, "a consistency proof needs 0 < M ≤ N, not M \(first), N \(n)") }
            let tree = try MerkleStore(dataDirectory: data.resolved)
            try tree.catchUp(reader, to: n)
            let proof = try tree.consistencyProof(first: first, second: n)
            let r1 = try tree.root(size: first)
            let r2 = try tree.root(size: n)
            guard Merkle.verifyConsistency(first: first, second: n, firstRoot: r1, secondRoot: r2, proof: proof) else {
                throw LedgerError(.corrupt, "the stored tree gives a proof that does not verify: run `ledger verify`")
            }
            Terminal.json(["first": .number(Double(first)), "second": .number(Double(n)), "firstRoot": .string(r1.description),
                           "secondRoot": .string(r2.description), "proof": .array(proof.map { .string($0.description) })])
        }
    }
}

struct EvidenceCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "evidence", abstract: "Offline evidence bundles: events with inclusion proofs against a signed checkpoint.",
        subcommands: [Export.self, Verify.self])

    struct Export: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "export", abstract: "Write the events of a period with their inclusion proofs, the signed checkpoint that covers them, and the consistency proof from an earlier checkpoint.",
            discussion: "The checkpoint is the earliest stored one that covers the period's last event (create them with `ledger checkpoint create`). Check the file with `ledger evidence verify` or any verifier written from Schemas/proofs.md.")
        @OptionGroup var data: DataDirectory
        @Option(help: "Start (inclusive): a date, an RFC 3339 time, or an offset with --offsets.") var from: String
        @Option(help: "End: a date includes that whole UTC day; an RFC 3339 time is exclusive; an offset with --offsets is inclusive.") var to: String
        @Flag(help: "--from and --to are offsets.") var offsets = false
        @Option(name: .customLong("trusted-size"), help: "The size of an earlier checkpoint the auditor holds: include the consistency proof from it.") var trustedSize: Int64?
        @Argument(help: "The bundle file to write.") var file: String

        func run() throws {
            let reader = try LogReader(directory: data.resolved)
            let first: Int64
            let last: Int64
            if offsets {
                guard let a = Int64(from), let b = Int64(to), a >= 0, a <= b else { throw ValidationError("--offsets needs 0 ≤ --from ≤ --to") }
                (first, last) = (a, b)
            } else {
                let end = try ChargebackCommand.time(to, option: "--to")
                let start = try ChargebackCommand.time(from, option: "--from").instant
                let stop = end.isDate ? end.endOfDay : end.instant
                first = try reader.firstOffset(atOrAfter: start)
                last = try reader.firstOffset(atOrAfter: stop) - 1
            }
            guard first <= last, last < reader.head else { throw LedgerError(.notFound, "no events in that period (offsets \(first)–\(last), head \(reader.head))") }
            let checkpoints = try Checkpoints(dataDirectory: data.resolved).list()
            guard let checkpoint = checkpoints.first(where: { $0.size > last }) else {
                throw LedgerError(.notFound, "no stored checkpoint covers offset \(last) (latest: \(checkpoints.last.map { String($0.size) } ?? "none")); run `ledger checkpoint create --at-head`")
            }
            let size = checkpoint.size
            let tree = try MerkleStore(dataDirectory: data.resolved)
            try tree.catchUp(reader, to: size)
            guard try tree.root(size: size) == checkpoint.note.checkpoint.root else {
                throw LedgerError(.corrupt, "the log's tree of \(size) events does not match its signed checkpoint: run `ledger verify`")
            }
            var events: [JSONValue] = []
            let cursor = reader.cursor(from: first, end: last + 1, filter: .all)
            while let view = try cursor.next() {
                let proof = try tree.inclusionProof(index: view.offset, size: size)
                events.append(["offset": .number(Double(view.offset)), "event": .string(String(decoding: view.json, as: UTF8.self)),
                               "inclusion": .array(proof.map { .string($0.description) })])
            }
            var bundle: JSONObject = [
                "format": "platform-ledger-evidence/1", "checkpoint": .string(checkpoint.note.text),
                "range": ["first": .number(Double(first)), "last": .number(Double(last))], "events": .array(events),
            ]
            if let m = trustedSize {
                guard m > 0, m <= size else { throw ValidationError("--trusted-size must be between 1 and the checkpoint's size \(size)") }
                bundle["consistency"] = ["first": .number(Double(m)), "firstRoot": .string(try tree.root(size: m).description),
                                         "proof": .array(try tree.consistencyProof(first: m, second: size).map { .string($0.description) })]
            }
            let bytes = try CanonicalJSON.encode(.object(bundle)) + [0x0A]
            guard FileManager.default.createFile(atPath: file, contents: Data(bytes)) else { throw LedgerError(.io, "cannot write \(file)") }
            Terminal.line("evidence: \(events.count) events (offsets \(first)–\(last)) against the checkpoint of \(size) events signed by \(checkpoint.note.signatures.map(\.name).joined(separator: ", ")) → \(file)")
        }
    }

    struct Verify: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "verify", abstract: "Check an evidence bundle offline: the checkpoint's signature, every event's hash, chain link and inclusion proof, and the consistency with a checkpoint you trust.")
        @Argument(help: "The bundle.") var file: String
        @Option(name: .customLong("public-key"), help: ArgumentHelp("The verifier key (or a file holding it).", valueName: "KEY")) var publicKey: String
        @Option(name: .customLong("trusted-checkpoint"), help: ArgumentHelp("An earlier checkpoint note you hold: the bundle must prove it extends it.", valueName: "FILE"))
        var trustedCheckpoint: String?

        func run() throws {
            let key = try loadVerifierKey(publicKey)
            guard let bytes = FileManager.default.contents(atPath: file) else { throw LedgerError(.usage, "cannot read \(file)") }
            var trusted: Checkpoint.Note?
            if let path = trustedCheckpoint {
                guard let t = FileManager.default.contents(atPath: path) else { throw LedgerError(.usage, "cannot read \(path)") }
                trusted = try Checkpoint.parse(note: String(decoding: t, as: UTF8.self))
            }
            let result = try EvidenceBundle.verify(Array(bytes), key: key, trusted: trusted)
            Terminal.line("evidence ok: \(result.events) events (offsets \(result.first)–\(result.last)) included in the checkpoint of \(result.size) events signed by \(key.name)"
                + (result.consistentWith.map { "; it extends the trusted checkpoint of \($0) events" } ?? ""))
            for line in result.attestations { Terminal.line("  attested: \(line)") }
        }
    }
}
