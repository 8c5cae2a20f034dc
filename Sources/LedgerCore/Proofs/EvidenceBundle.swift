/// An offline evidence bundle (`ledger evidence export`; `Schemas/proofs.md`): events of a range
/// with their inclusion proofs against a signed checkpoint, and optionally the consistency proof
/// from an earlier checkpoint. ``verify(_:key:trusted:)`` checks everything a bundle claims; each
/// failure says what and where.
public enum EvidenceBundle {
    public struct Result: Sendable {
        public var first: Int64
        public var last: Int64
        public var events: Int
        public var size: Int64
        public var consistentWith: Int64?
        /// The checkpoint's `projection …` lines.
        public var attestations: [String]
    }

    public static func verify(_ bytes: [UInt8], key: VerifierKey, trusted: Checkpoint.Note?) throws -> Result {
        func fail(_ why: String) -> LedgerError { LedgerError(.corrupt, "evidence: " + why) }
        let json: JSONValue
        do { json = try JSONParser.parse(bytes) } catch { throw fail("the bundle is not JSON") }
        guard json["format"]?.stringValue == "platform-ledger-evidence/1" else { throw fail("format is not platform-ledger-evidence/1") }
        guard let noteText = json["checkpoint"]?.stringValue else { throw fail("no checkpoint") }
        let note = try Checkpoint.parse(note: noteText)
        let checkpoint = note.checkpoint
        guard note.isSigned(by: key) else { throw fail("the checkpoint of size \(checkpoint.size) is not signed by \(key.name): a different key, or an altered note") }
        guard let first = json["range"]?["first"]?.intValue.map(Int64.init), let last = json["range"]?["last"]?.intValue.map(Int64.init),
            first >= 0, first <= last
        else { throw fail("range.first and range.last are missing or out of order") }
        guard last < checkpoint.size else { throw fail("the range ends at offset \(last), beyond the checkpoint's \(checkpoint.size) events") }
        guard let events = json["events"]?.arrayValue else { throw fail("no events") }
        guard Int64(events.count) == last - first + 1 else { throw fail("\(events.count) events for offsets \(first)–\(last): events are missing or added") }
        var previous: Hash256?
        for (i, item) in events.enumerated() {
            let offset = first + Int64(i)
            guard item["offset"]?.intValue.map(Int64.init) == offset else { throw fail("event \(i) is not at offset \(offset): events were removed or reordered") }
            guard let text = item["event"]?.stringValue, let proof = item["inclusion"]?.arrayValue?.map({ $0.stringValue.flatMap(Hash256.init(hex:)) }),
                !proof.contains(where: { $0 == nil })
            else { throw fail("event at offset \(offset): its event text or inclusion proof is malformed") }
            let envelope: Envelope
            do { envelope = try Envelope(json: try JSONParser.parse(Array(text.utf8))) } catch { throw fail("event at offset \(offset) is not an envelope") }
            guard envelope.offset == offset else { throw fail("event at offset \(offset) says it is at offset \(envelope.offset): reordered") }
            guard try envelope.computeHash() == envelope.hash else { throw fail("event at offset \(offset): its hash is not the SHA-256 of its content: the event was altered") }
            if let previous, envelope.prevHash != previous {
                throw fail("event at offset \(offset): prevHash is not the hash of the event at offset \(offset - 1): the chain is broken")
            }
            guard Merkle.verifyInclusion(index: offset, size: checkpoint.size, leafHash: Merkle.leafHash(envelope.hash), proof: proof.map { $0! }, root: checkpoint.root) else {
                throw fail("event at offset \(offset): its inclusion proof does not lead to the checkpoint's root: a forged proof or an altered event")
            }
            if offset == checkpoint.size - 1, let head = checkpoint.extensionValue("head"), head != envelope.hash.description {
                throw fail("the checkpoint's head \(head) is not the hash of its last event")
            }
            previous = envelope.hash
        }
        var consistentWith: Int64?
        if let trusted {
            let t = trusted.checkpoint
            guard trusted.isSigned(by: key) else { throw fail("the trusted checkpoint of size \(t.size) is not signed by \(key.name)") }
            guard t.origin == checkpoint.origin else { throw fail("the trusted checkpoint is of \(t.origin), not \(checkpoint.origin)") }
            guard t.size <= checkpoint.size else { throw fail("the trusted checkpoint has \(t.size) events, more than the bundle's \(checkpoint.size): the log was truncated") }
            if t.size == checkpoint.size {
                guard t.root == checkpoint.root else { throw fail("two checkpoints of \(t.size) events with different roots: the history was rewritten") }
            } else {
                guard let c = json["consistency"], c["first"]?.intValue.map(Int64.init) == t.size,
                    let proof = c["proof"]?.arrayValue?.compactMap({ $0.stringValue.flatMap(Hash256.init(hex:)) })
                else { throw fail("the bundle has no consistency proof from the trusted checkpoint's \(t.size) events (export it with --trusted-size \(t.size))") }
                guard Merkle.verifyConsistency(first: t.size, second: checkpoint.size, firstRoot: t.root, secondRoot: checkpoint.root, proof: proof) else {
                    throw fail("the checkpoint of \(checkpoint.size) events does not extend the trusted one of \(t.size): the history was rewritten")
                }
            }
            consistentWith = t.size
        }
        return Result(first: first, last: last, events: events.count, size: checkpoint.size, consistentWith: consistentWith,
            attestations: checkpoint.extensions.filter { $0.hasPrefix("projection ") })
    }
}
