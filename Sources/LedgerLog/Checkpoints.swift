#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
public import LedgerCore

/// Signed checkpoints of a log (`<data-dir>/checkpoints/<tree size>.note`, `Schemas/proofs.md`):
/// C2SP tlog-checkpoint notes signed with an Ed25519 key kept outside the data directory. One is
/// due every ``Checkpoints/Policy/every`` events and at every UTC day close (the tree of every
/// event before the first event of a new UTC day), as the log's own times say — so the same log
/// is always checkpointed at the same sizes.
public struct Checkpoints {
    public let directory: String

    public struct Policy: Sendable {
        /// A checkpoint at least every this many events.
        public var every: Int64 = 100_000
        /// And at each UTC day close.
        public var dayClose = true
        public init(every: Int64 = 100_000, dayClose: Bool = true) {
            self.every = every
            self.dayClose = dayClose
        }
    }

    public static func directory(dataDirectory: String) -> String { dataDirectory + "/checkpoints" }

    public init(dataDirectory: String) {
        directory = Checkpoints.directory(dataDirectory: dataDirectory)
    }

    /// Every stored checkpoint note, by tree size.
    public func list() throws -> [(size: Int64, note: Checkpoint.Note)] {
        guard FileIO.exists(directory) else { return [] }
        var out: [(Int64, Checkpoint.Note)] = []
        for name in try FileIO.list(directory) where name.hasSuffix(".note") {
            let text = String(decoding: try FileIO.readFile(directory + "/" + name), as: UTF8.self)
            let note: Checkpoint.Note
            do { note = try Checkpoint.parse(note: text) } catch let error as LedgerError {
                throw LedgerError(.corrupt, "\(directory)/\(name): \(error.message)")
            }
            guard name == Checkpoints.fileName(note.checkpoint.size) else {
                throw LedgerError(.corrupt, "\(directory)/\(name) holds the checkpoint of size \(note.checkpoint.size)")
            }
            out.append((note.checkpoint.size, note))
        }
        return out.sorted { $0.0 < $1.0 }
    }

    /// The size of the latest stored checkpoint (0 if none), from the file names alone: the
    /// server asks every few seconds, and `ledger verify` checks the notes themselves.
    public func lastSize() throws -> Int64 {
        guard FileIO.exists(directory) else { return 0 }
        return try FileIO.list(directory).compactMap { $0.hasSuffix(".note") ? Int64($0.dropLast(5)) : nil }.max() ?? 0
    }

    static func fileName(_ size: Int64) -> String {
        let digits = String(size)
        return String(repeating: "0", count: max(0, 20 - digits.count)) + digits + ".note"
    }

    /// The origin line of this log's checkpoints: the one already used, else `proposed`.
    public func origin(proposed: String) throws -> String {
        let path = directory + "/ORIGIN"
        if FileIO.exists(path) {
            return String(decoding: try FileIO.readFile(path), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        }
        return proposed
    }

    /// The default origin: the ledger's first event id names it.
    public static func defaultOrigin(_ source: any LogSource) throws -> String {
        guard let first = try source.event(at: 0) else { throw LedgerError(.usage, "the log is empty: nothing to checkpoint") }
        return "platform-ledger.local/" + first.id.description
    }

    /// The sizes at which checkpoints are due in the log's first `head` events, after `after`.
    public static func dueSizes(_ source: any LogSource, policy: Policy, after: Int64, head: Int64) throws -> [Int64] {
        var sizes: [Int64] = []
        var next = (after / policy.every + 1) * policy.every
        if policy.dayClose && head > max(after, 1) {
            let start = max(after, 1) - 1
            let cursor = source.cursor(from: start, end: head, filter: .all)
            var previousDay: Int64?
            while let view = try cursor.next() {
                let day = view.time.milliseconds >= 0 ? view.time.milliseconds / 86_400_000 : (view.time.milliseconds - 86_399_999) / 86_400_000
                if let p = previousDay, day != p, view.offset > after { sizes.append(view.offset) }
                previousDay = day
            }
        }
        while next <= head {
            sizes.append(next)
            next += policy.every
        }
        return Array(Set(sizes)).sorted()
    }

    /// The checkpoint of the first `size` events (the tree caught up to at least there).
    public static func make(_ source: any LogSource, tree: MerkleStore, origin: String, size: Int64, extensions: [String] = []) throws -> Checkpoint {
        guard size > 0 else { throw LedgerError(.usage, "a checkpoint covers at least one event") }
        try tree.catchUp(source, to: size)
        guard let last = try source.event(at: size - 1) else { throw LedgerError(.notFound, "the log has no event at offset \(size - 1)") }
        let envelope = try last.envelope()
        return Checkpoint(origin: origin, size: size, root: try tree.root(size: size),
            extensions: ["time " + envelope.time.description, "head " + envelope.hash.description] + extensions)
    }

    /// Writes a signed note, durably; refuses to replace a different one of the same size.
    @available(*, noasync, message: "fsyncs: call it from a thread of its own")
    public func store(_ note: String, origin: String) throws {
        let parsed = try Checkpoint.parse(note: note)
        try FileIO.makeDirectory(directory)
        let originPath = directory + "/ORIGIN"
        if !FileIO.exists(originPath) { try FileIO.writeAtomically(originPath, Array((origin + "\n").utf8), directory: directory) }
        let path = directory + "/" + Checkpoints.fileName(parsed.checkpoint.size)
        if FileIO.exists(path) {
            let existing = try Checkpoint.parse(note: String(decoding: try FileIO.readFile(path), as: UTF8.self))
            guard existing.checkpoint == parsed.checkpoint else {
                throw LedgerError(.corrupt, "a different checkpoint of size \(parsed.checkpoint.size) is already stored in \(path): the log changed under it")
            }
            return
        }
        try FileIO.writeAtomically(path, Array(note.utf8), directory: directory)
    }

    /// Creates, signs and stores every checkpoint due up to the log's head (and, with `atHead`,
    /// one at the head itself), or up to `upTo`. `attest` adds extension lines for a size
    /// (projection digests).
    /// Returns the notes written.
    @available(*, noasync, message: "fsyncs: call it from a thread of its own")
    @discardableResult
    public func createDue(_ source: any LogSource, tree: MerkleStore, key: SigningKey, policy: Policy, origin proposed: String? = nil,
                          atHead: Bool = false, upTo limit: Int64? = nil, attest: ((Int64) throws -> [String])? = nil) throws -> [Checkpoint] {
        let head = min(source.head, limit ?? .max)
        guard head > 0 else { return [] }
        let origin = try self.origin(proposed: try proposed ?? Checkpoints.defaultOrigin(source))
        let last = try lastSize()
        var sizes = try Checkpoints.dueSizes(source, policy: policy, after: last, head: head)
        if atHead && head > last && sizes.last != head { sizes.append(head) }
        var made: [Checkpoint] = []
        for size in sizes {
            let checkpoint = try Checkpoints.make(source, tree: tree, origin: origin, size: size, extensions: try attest?(size) ?? [])
            try store(try checkpoint.signed(by: key), origin: origin)
            made.append(checkpoint)
        }
        return made
    }

    /// Checks every stored checkpoint against the log (streaming the tree from its events, no
    /// stored tree trusted) and, with `key`, its signature. Returns the problems, each naming
    /// the checkpoint.
    public static func verify(_ source: any LogSource, checkpoints: [(size: Int64, note: Checkpoint.Note)], key: VerifierKey?,
                              tree: MerkleStore?) throws -> [String] {
        // The tree's size first: it only ever holds durable events, so it cannot pass the head
        // read after it while a writer goes on.
        let stored = try tree.map { (store: $0, size: try $0.size) }
        let head = source.head
        let wanted = Set(checkpoints.map(\.size) + (stored.map { [$0.size] } ?? [])).filter { $0 <= head }
        var roots: [Int64: Hash256] = [:]
        if wanted.contains(0) { roots[0] = Merkle.emptyRoot }
        var frontier = MerkleFrontier()
        let last = wanted.max() ?? 0
        let cursor = source.cursor(from: 0, end: last, filter: .all)
        while frontier.size < last, let view = try cursor.next() {
            guard let hash = view.storedHash else { throw LedgerError(.corrupt, "the event at offset \(view.offset) has no readable hash") }
            frontier.append(leafHash: Merkle.leafHash(hash))
            if wanted.contains(frontier.size) { roots[frontier.size] = frontier.root }
        }
        return try verify(head: head, roots: roots, checkpoints: checkpoints, key: key, tree: stored)
    }

    /// Checks every stored checkpoint and the stored tree against the roots of the log's own
    /// tree (`roots`: size → root, computed from the events, e.g. by ``Verifier`` on its way);
    /// with `key`, each checkpoint's signature. `tree`: the stored tree and its size, read before
    /// `head` was. Returns the problems, each naming the checkpoint.
    public static func verify(head: Int64, roots: [Int64: Hash256], checkpoints: [(size: Int64, note: Checkpoint.Note)], key: VerifierKey?,
                              tree: (store: MerkleStore, size: Int64)?) throws -> [String] {
        var problems: [String] = []
        var origin: String?
        for c in checkpoints {
            let cp = c.note.checkpoint
            guard c.size <= head, let root = roots[c.size] else {
                problems.append("checkpoint \(c.size) is beyond the log's head \(head): the log was truncated after it was signed")
                continue
            }
            if let key, !c.note.isSigned(by: key) { problems.append("checkpoint \(cp.size): not signed by \(key.name) (a different key, or an altered note)") }
            if let o = origin, o != cp.origin { problems.append("checkpoint \(cp.size): origin \(cp.origin) is not \(o)") }
            origin = origin ?? cp.origin
            if root != cp.root {
                problems.append("checkpoint \(cp.size): its root \(cp.root) is not the root of the log's first \(cp.size) events (\(root)): the history it signed was rewritten")
            }
        }
        if let (store, storedSize) = tree {
            if storedSize > head {
                problems.append("the stored Merkle tree has \(storedSize) leaves, beyond the log's head \(head)")
            } else if let root = roots[storedSize], try store.root(size: storedSize) != root {
                problems.append("the stored Merkle tree (\(storedSize) leaves) does not match the log: rebuild it (delete \(store.directory))")
            }
        }
        return problems
    }
}
