public import Crypto
import Foundation

/// A signed tree head in the C2SP `tlog-checkpoint` format, signed as a C2SP `signed-note` with
/// Ed25519 (`Schemas/proofs.md`):
///
/// ```
/// <origin>
/// <tree size>
/// <root hash, base64>
/// time <time of the last event in the tree, RFC 3339>
/// head <hash of the last event, hex>
/// [projection <name> sha256:<hex> …]
///
/// — <key name> <base64(key hash ‖ signature)>
/// ```
public struct Checkpoint: Sendable, Equatable {
    public var origin: String
    public var size: Int64
    public var root: Hash256
    /// Extension lines after the root (`time …`, `head …`, `projection …`).
    public var extensions: [String]

    public init(origin: String, size: Int64, root: Hash256, extensions: [String]) {
        self.origin = origin
        self.size = size
        self.root = root
        self.extensions = extensions
    }

    /// The signed text: every line with its newline.
    public var body: String {
        ([origin, String(size), Data(root.bytes).base64EncodedString()] + extensions).map { $0 + "\n" }.joined()
    }

    /// The value of the extension line `key …`.
    public func extensionValue(_ key: String) -> String? {
        extensions.first { $0.hasPrefix(key + " ") }.map { String($0.dropFirst(key.count + 1)) }
    }

    /// `time` — the time of the tree's last event.
    public var time: Timestamp? { extensionValue("time").flatMap(Timestamp.init) }

    /// The note: the body, a blank line, the signature line.
    public func signed(by key: SigningKey) throws -> String {
        let body = self.body
        let signature = try key.privateKey.signature(for: Array(body.utf8))
        return body + "\n" + "— \(key.name) " + Data(key.keyHash + Array(signature)).base64EncodedString() + "\n"
    }

    /// A note's checkpoint and its signature lines, checked for form only.
    public struct Note: Sendable, Equatable {
        public var checkpoint: Checkpoint
        public var text: String
        /// (key name, key hash, signature) of each signature line.
        public var signatures: [Signature]

        public struct Signature: Sendable, Equatable {
            public var name: String
            public var keyHash: [UInt8]
            public var signature: [UInt8]
        }

        /// Whether a signature by `key` verifies over the body.
        public func isSigned(by key: VerifierKey) -> Bool {
            let body = checkpoint.body
            guard text.hasPrefix(body + "\n") else { return false }
            return signatures.contains { s in
                s.name == key.name && s.keyHash == key.keyHash && key.publicKey.isValidSignature(s.signature, for: Array(body.utf8))
            }
        }
    }

    /// Parses a signed note holding a checkpoint; throws what is malformed.
    public static func parse(note text: String) throws -> Note {
        func fail(_ why: String) -> LedgerError { LedgerError(.corrupt, "checkpoint: \(why)") }
        guard let split = text.range(of: "\n\n") else { throw fail("no blank line between the body and the signatures") }
        let bodyText = String(text[..<split.lowerBound]) + "\n"
        let lines = bodyText.split(separator: "\n", omittingEmptySubsequences: false).dropLast().map(String.init)
        guard lines.count >= 3 else { throw fail("the body needs an origin, a tree size and a root hash") }
        guard !lines[0].isEmpty else { throw fail("the origin is empty") }
        guard let size = Int64(lines[1]), size >= 0, String(size) == lines[1] else { throw fail("the tree size \(lines[1]) is not a decimal number") }
        guard let rootBytes = Data(base64Encoded: lines[2]), rootBytes.count == 32 else { throw fail("the root hash is not 32 bytes of base64") }
        let checkpoint = Checkpoint(origin: lines[0], size: size, root: Hash256(bytes: Array(rootBytes)), extensions: Array(lines[3...]))
        guard checkpoint.body == bodyText else { throw fail("the body is not in canonical form") }
        var signatures: [Note.Signature] = []
        let rest = text[split.upperBound...]
        for line in rest.split(separator: "\n") {
            guard line.hasPrefix("— ") else { throw fail("a signature line must begin with an em dash and a space: \(line.prefix(40))") }
            let parts = line.dropFirst(2).split(separator: " ")
            guard parts.count == 2, let blob = Data(base64Encoded: String(parts[1])), blob.count == 4 + 64 else {
                throw fail("a signature line must be `— <name> <base64 of key hash and signature>`")
            }
            signatures.append(Note.Signature(name: String(parts[0]), keyHash: Array(blob.prefix(4)), signature: Array(blob.dropFirst(4))))
        }
        guard !signatures.isEmpty else { throw fail("no signature") }
        guard text.hasSuffix("\n") else { throw fail("the note must end with a newline") }
        return Note(checkpoint: checkpoint, text: text, signatures: signatures)
    }
}

/// The first four bytes of SHA-256(name ‖ 0x0A ‖ 0x01 ‖ public key): C2SP signed-note's key id for Ed25519.
func noteKeyHash(name: String, publicKey: [UInt8]) -> [UInt8] {
    Array(Hash256.of(Array(name.utf8) + [0x0A, 0x01] + publicKey).bytes.prefix(4))
}

func validKeyName(_ name: String) -> Bool {
    !name.isEmpty && !name.contains("+") && !name.unicodeScalars.contains { $0.properties.isWhitespace || $0.value < 0x21 }
}

/// An Ed25519 signing key in the note format `PRIVATE+KEY+<name>+<key hash hex>+<base64(0x01 ‖ seed)>`.
public struct SigningKey: Sendable {
    public let name: String
    public let privateKey: Curve25519.Signing.PrivateKey
    public var keyHash: [UInt8] { noteKeyHash(name: name, publicKey: Array(privateKey.publicKey.rawRepresentation)) }
    public var verifierKey: VerifierKey { VerifierKey(name: name, publicKey: privateKey.publicKey) }

    public init(name: String, privateKey: Curve25519.Signing.PrivateKey) {
        self.name = name
        self.privateKey = privateKey
    }

    /// A new random key.
    public static func generate(name: String) throws -> SigningKey {
        guard validKeyName(name) else { throw LedgerError(.usage, "a key name is printable, without spaces or +: \(name)") }
        return SigningKey(name: name, privateKey: Curve25519.Signing.PrivateKey())
    }

    public init(parsing text: String) throws {
        // The base64 may hold + too: the fields before it are split off, the rest is the key.
        let parts = text.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: "+", maxSplits: 4, omittingEmptySubsequences: false).map(String.init)
        guard parts.count == 5, parts[0] == "PRIVATE", parts[1] == "KEY", validKeyName(parts[2]),
            let blob = Data(base64Encoded: parts[4]), blob.count == 33, blob.first == 0x01,
            let key = try? Curve25519.Signing.PrivateKey(rawRepresentation: blob.dropFirst())
        else { throw LedgerError(.usage, "not a signing key (PRIVATE+KEY+<name>+<hash>+<base64>, as `ledger checkpoint keygen` writes)") }
        self.init(name: parts[2], privateKey: key)
        guard parts[3] == hex(keyHash) else { throw LedgerError(.usage, "the signing key's hash \(parts[3]) does not match its name and key") }
    }

    public var encoded: String { "PRIVATE+KEY+\(name)+\(hex(keyHash))+" + Data([0x01] + Array(privateKey.rawRepresentation)).base64EncodedString() }
}

/// An Ed25519 verifier key in the note format `<name>+<key hash hex>+<base64(0x01 ‖ public key)>`.
public struct VerifierKey: Sendable {
    public let name: String
    public let publicKey: Curve25519.Signing.PublicKey
    public var keyHash: [UInt8] { noteKeyHash(name: name, publicKey: Array(publicKey.rawRepresentation)) }

    public init(name: String, publicKey: Curve25519.Signing.PublicKey) {
        self.name = name
        self.publicKey = publicKey
    }

    public init(parsing text: String) throws {
        let parts = text.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: "+", maxSplits: 2, omittingEmptySubsequences: false).map(String.init)
        guard parts.count == 3, validKeyName(parts[0]), let blob = Data(base64Encoded: parts[2]), blob.count == 33, blob.first == 0x01,
            let key = try? Curve25519.Signing.PublicKey(rawRepresentation: blob.dropFirst())
        else { throw LedgerError(.usage, "not a verifier key (<name>+<hash>+<base64>, as `ledger checkpoint keygen` prints)") }
        self.init(name: parts[0], publicKey: key)
        guard parts[1] == hex(keyHash) else { throw LedgerError(.usage, "the verifier key's hash \(parts[1]) does not match its name and key") }
    }

    public var encoded: String { "\(name)+\(hex(keyHash))+" + Data([0x01] + Array(publicKey.rawRepresentation)).base64EncodedString() }
}

func hex(_ bytes: [UInt8]) -> String { hexString(bytes) }
