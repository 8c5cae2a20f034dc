#if canImport(Glibc)
import Glibc
#endif
public import LedgerCore

/// What `ledger verify` found.
public struct VerifyReport: Sendable {
    public var segments = 0
    public var batches = 0
    public var events: Int64 = 0
    public var bytes: Int64 = 0
    /// `hash` of the last event checked (the head of the chain).
    public var headHash = Hash256.zero
    /// The first offset that failed, and why; nil when everything checked out.
    public var badOffset: Int64?
    public var problem: String?
    /// Where the first bad batch starts: its segment's base offset and byte (what `ledger repair`
    /// cuts from); nil when the log is whole up to a head it does not reach.
    public var badSegment: Int64?
    public var badByte: Int64?
    /// The first offset of that batch: the head a repair cuts back to.
    public var badBatchOffset: Int64?
    public var isClean: Bool { problem == nil }
    /// The Merkle root of the log's first n events, for each n asked for (`merkleRootsAt`) that
    /// the check reached: the tree computed from the events themselves, nothing stored trusted.
    public var merkleRoots: [Int64: Hash256] = [:]

    /// `{"ok","events","batches","segments","bytes","headHash","badOffset"?,"problem"?}`.
    public var json: JSONValue {
        var o: JSONObject = [
            "ok": .bool(isClean), "events": .number(Double(events)), "batches": .number(Double(batches)),
            "segments": .number(Double(segments)), "bytes": .number(Double(bytes)), "headHash": .string(headHash.description),
        ]
        if let badOffset { o["badOffset"] = .number(Double(badOffset)) }
        if let problem { o["problem"] = .string(problem) }
        return .object(o)
    }
}

/// Re-checks a whole data directory without trusting anything in it: every batch's CRC-32C and
/// framing, every record's canonical JSON against its binary header, each event's schema, and the
/// whole hash chain (`Schemas/hashing.md`). Runs alongside a writer (it reads up to the durable head).
public enum Verifier {
    /// `merkleRootsAt`: tree sizes whose roots to compute on the way (the leaves are hashed with
    /// the events, on every core; the tree is folded in order) — checkpoints and the stored tree
    /// are then checked without reading the log again.
    public static func verify(
        directory: String, depth: VerifyDepth = .full, merkleRootsAt sizes: Set<Int64> = [], progress: ((Int64) -> Void)? = nil
    ) throws -> VerifyReport {
        let set = try SegmentSet.openExternal(dataDirectory: directory)
        let head = set.durableHead
        var report = VerifyReport()
        let wantLeaves = sizes.contains { $0 > 0 && $0 <= head }
        var frontier = MerkleFrontier()
        if sizes.contains(0) { report.merkleRoots[0] = Merkle.emptyRoot }
        var expected: Int64 = 0
        var previousHash = Hash256.zero
        var previousTime: Int64 = Int64.min
        let catalog = EventCatalog.standard

        func bad(_ offset: Int64, _ message: String, at place: (segment: Segment, position: Int64, batchOffset: Int64)?) -> VerifyReport {
            var r = report
            r.badOffset = offset
            r.problem = message
            if let place {
                r.badSegment = place.segment.baseOffset
                r.badByte = place.position
                r.badBatchOffset = place.batchOffset
            }
            CorruptionMarker.write(directory, message: message, offset: offset, segment: place.map { Segment.name($0.segment.baseOffset) + ".log" })
            return r
        }

        // Batches are read in order and checked in groups: on every core (integrity: each event's
        // hash depends only on its own bytes), or one after the other (full); the links between
        // batches are checked here, in order.
        var pending: [PendingBatch] = []
        var pendingBytes = 0
        func drain() -> VerifyReport? {
            defer {
                pending.removeAll(keepingCapacity: true)
                pendingBytes = 0
            }
            let outcomes: [BatchOutcome]
            switch depth {
            case .integrity: outcomes = integrity(of: pending, leaves: wantLeaves)
            case .full:
                var list: [BatchOutcome] = []
                var hash = previousHash
                var time = previousTime
                for batch in pending {
                    let o = fullCheck(of: batch, previousHash: hash, previousTime: time, catalog: catalog, leaves: wantLeaves)
                    list.append(o)
                    if o.problem != nil { break }
                    (hash, time) = (o.lastHash, o.lastTime)
                }
                outcomes = list
            }
            for (batch, o) in zip(pending, outcomes) {
                let name = Segment.name(batch.segment.baseOffset) + ".log"
                let place = (batch.segment, batch.position, batch.header.baseOffset)
                if let problem = o.problem {
                    let text = o.framing ? "segment \(name) at byte \(batch.position): \(problem.text)" : problem.text
                    return bad(problem.offset, text, at: place)
                }
                if o.firstPrevHash != previousHash {
                    return bad(batch.header.baseOffset, "offset \(batch.header.baseOffset): prevHash \(o.firstPrevHash) is not the hash of the event before (\(previousHash)): the chain is broken", at: place)
                }
                if o.firstTime < previousTime {
                    return bad(batch.header.baseOffset, "offset \(batch.header.baseOffset): time \(Timestamp(milliseconds: o.firstTime)) is before the time of the event before", at: place)
                }
                previousHash = o.lastHash
                previousTime = o.lastTime
                for leaf in o.leaves {
                    frontier.append(leafHash: leaf)
                    if sizes.contains(frontier.size) { report.merkleRoots[frontier.size] = frontier.root }
                }
                report.events += batch.header.nextOffset - batch.header.baseOffset
                report.batches += 1
                report.bytes += Int64(batch.header.totalSize)
                progress?(batch.header.nextOffset)
            }
            return nil
        }

        for segment in set.all {
            if segment.baseOffset >= head && segment.baseOffset > 0 { break }
            report.segments += 1
            let name = Segment.name(segment.baseOffset) + ".log"
            guard segment.baseOffset == expected else {
                if let failed = drain() { return failed }
                return bad(expected, "segment \(name) starts at offset \(segment.baseOffset), expected \(expected)", at: (segment, 0, expected))
            }
            let size = try FileIO.size(segment.fd, segment.logPath)
            var position: Int64 = 0
            while expected < head {
                var raw: [UInt8] = []
                let read = try segment.readBatch(at: position, fileSize: size, into: &raw)
                guard case .batch(let header) = read else {
                    if case .end = read { break }
                    let why: String
                    switch read {
                    case .damaged(let reason, _): why = reason
                    case .truncated(let n): why = "the file ends \(n) bytes into a batch"
                    default: why = "unreadable"
                    }
                    if let failed = drain() { return failed }
                    return bad(expected, "segment \(name) at byte \(position) (offset \(expected)): \(why)", at: (segment, position, expected))
                }
                guard header.baseOffset == expected else {
                    if let failed = drain() { return failed }
                    return bad(expected, "segment \(name) at byte \(position): batch starts at offset \(header.baseOffset), expected \(expected)", at: (segment, position, expected))
                }
                pending.append(PendingBatch(header: header, raw: raw, segment: segment, position: position))
                pendingBytes += header.uncompressedLength
                if pendingBytes >= 32 << 20 || pending.count >= 64, let failed = drain() { return failed }
                position += Int64(header.totalSize)
                expected = header.nextOffset
            }
        }
        if let failed = drain() { return failed }
        guard expected == head else {
            return bad(expected, "the log ends at offset \(expected), but its writer acknowledged up to \(head)", at: nil)
        }
        report.headHash = previousHash
        CorruptionMarker.clear(directory)
        return report
    }

    /// A batch checked record by record with the full checks (``check(_:previousHash:previousTime:catalog:)``).
    static func fullCheck(of batch: PendingBatch, previousHash: Hash256, previousTime: Int64, catalog: EventCatalog, leaves: Bool) -> BatchOutcome {
        var out = BatchOutcome()
        let header = batch.header
        let (decompressed, failed) = batch.payload()
        guard let payload = decompressed else { return failed }
        out.firstPrevHash = previousHash
        var hash = previousHash
        var time = previousTime
        var recordPosition = 0
        var firstTime: Int64? = nil
        for offset in header.baseOffset..<header.nextOffset {
            let view: RecordView
            do {
                (view, recordPosition) = try payload.parse(at: recordPosition, offset: offset)
            } catch {
                out.problem = (offset, (error as? RecordDefect)?.message ?? "\(error)")
                return out
            }
            switch check(view, previousHash: hash, previousTime: time, catalog: catalog) {
            case .failure(let problem):
                out.problem = (offset, "offset \(offset): \(problem.text)")
                return out
            case .success(let h):
                hash = h
                if leaves { out.leaves.append(BulkSHA256.leaf(h)) }
            }
            firstTime = firstTime ?? view.time.milliseconds
            time = view.time.milliseconds
        }
        if recordPosition != payload.length {
            out.problem = (header.baseOffset, "batch at offset \(header.baseOffset) holds bytes after its last record")
            return out
        }
        out.firstTime = firstTime ?? previousTime
        out.lastHash = hash
        out.lastTime = time
        if header.lastHash != hash || header.firstTime != firstTime || header.lastTime != time {
            out.problem = (header.baseOffset, "the header of the batch at offset \(header.baseOffset) does not match its records")
        }
        return out
    }

    /// Re-checks a log read through its cursor (a backend without segment files, e.g. Kafka):
    /// every record's canonical JSON against what the backend says of it, each event's schema,
    /// gap-free offsets and the whole hash chain, up to the head as it was when the check began.
    public static func verify(source: some LogSource, progress: ((Int64) -> Void)? = nil) throws -> VerifyReport {
        let head = source.head
        var report = VerifyReport()
        var previousHash = Hash256.zero
        var previousTime = Int64.min
        let catalog = EventCatalog.standard
        let cursor = source.cursor(from: 0, end: head, filter: .all)
        var expected: Int64 = 0
        while let view = try cursor.next() {
            guard view.offset == expected else {
                report.badOffset = expected
                report.problem = "the log skips from offset \(expected) to \(view.offset)"
                return report
            }
            switch check(view, previousHash: previousHash, previousTime: previousTime, catalog: catalog) {
            case .failure(let problem):
                report.badOffset = view.offset
                report.problem = "offset \(view.offset): \(problem.text)"
                return report
            case .success(let hash):
                previousHash = hash
            }
            previousTime = view.time.milliseconds
            report.events += 1
            report.bytes += Int64(view.json.count)
            expected += 1
            if expected % 65536 == 0 { progress?(expected) }
        }
        guard expected == head else {
            report.badOffset = expected
            report.problem = "the log ends at offset \(expected), but its head is \(head)"
            return report
        }
        report.headHash = previousHash
        return report
    }

    /// Checks one record of a log read elsewhere (another backend) against the event before it:
    /// its `hash` if every check passes, else a description of the first problem.
    public static func checkRecord(_ view: RecordView, previousHash: Hash256, previousTime: Int64) -> Result<Hash256, LedgerError> {
        check(view, previousHash: previousHash, previousTime: previousTime, catalog: .standard).mapError {
            LedgerError(.corrupt, "offset \(view.offset): \($0.text)")
        }
    }

    struct Problem: Error {
        var text: String
    }

    /// The record's `hash` if every check passes, else the first problem.
    static func check(_ view: RecordView, previousHash: Hash256, previousTime: Int64, catalog: EventCatalog) -> Result<Hash256, Problem> {
        var hash = Hash256.zero
        if let text = problem(view, previousHash: previousHash, previousTime: previousTime, catalog: catalog, hash: &hash) {
            return .failure(Problem(text: text))
        }
        return .success(hash)
    }

    static func problem(_ view: RecordView, previousHash: Hash256, previousTime: Int64, catalog: EventCatalog, hash: inout Hash256) -> String? {
        let value: JSONValue
        do {
            value = try JSONParser.parse(view.json)
        } catch {
            return "the stored envelope is not JSON: \(error.message)"
        }
        guard let canonical = try? CanonicalJSON.encode(value), canonical.elementsEqual(view.json) else {
            return "the stored envelope is not in RFC 8785 canonical form"
        }
        if let violation = catalog.envelopeSchema.validate(value) { return "envelope: \(violation)" }
        let envelope: Envelope
        do {
            envelope = try Envelope(json: value)
        } catch {
            return "envelope: \(error.message)"
        }
        if envelope.offset != view.offset || envelope.id != view.id || envelope.version != view.version
            || envelope.stream != view.stream || envelope.type != view.type || envelope.time != view.time
        {
            return "the envelope does not match its record header"
        }
        if envelope.prevHash != previousHash {
            return "prevHash \(envelope.prevHash) is not the hash of the event before (\(previousHash)): the chain is broken"
        }
        if envelope.time.milliseconds < previousTime { return "time \(envelope.time) is before the time of the event before" }
        guard let computed = try? envelope.computeHash() else { return "the envelope cannot be hashed" }
        if computed != envelope.hash { return "hash \(envelope.hash) is not the SHA-256 of the envelope (\(computed)): it was altered" }
        hash = computed
        guard let type = catalog.type(envelope.type, schemaVersion: envelope.schemaVersion) else {
            return "unknown type \(envelope.type) v\(envelope.schemaVersion)"
        }
        if let violation = type.schema.validate(.object(envelope.data)) { return "data: \(violation)" }
        if envelope.stream != type.stream(for: envelope.data) { return "stream is not \(type.streamDescription)" }
        return nil
    }
}

