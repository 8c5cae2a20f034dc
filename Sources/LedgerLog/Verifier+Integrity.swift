#if canImport(Glibc)
import Glibc
#endif
import Dispatch
public import LedgerCore

/// How much `verify` re-checks.
public enum VerifyDepth: Sendable {
    /// Tamper evidence (the default of `ledger verify`): every batch's CRC-32C and framing; every
    /// record's envelope tail (id, offset, prevHash, schemaVersion, stream, time, type, version)
    /// byte for byte against its binary header and the event before; every event's `hash` as the
    /// SHA-256 of its stored bytes without it; the chain. Each event's hash depends only on its
    /// own bytes, so batches are checked on every core and the links after, in order.
    case integrity
    /// Everything `integrity` checks, and each envelope parsed: RFC 8785 canonical form, the
    /// envelope schema, each event's data against its type's schema and stream rule.
    case full
}

extension Verifier {
    /// One batch read from its segment, to be checked on any core.
    struct PendingBatch {
        var header: BatchHeader
        var raw: [UInt8]
        var segment: Segment
        var position: Int64

        /// The records' bytes, decompressed; or the outcome of a payload that cannot be.
        func payload() -> (PayloadBuffer?, BatchOutcome) {
            let payload = PayloadBuffer()
            var out = BatchOutcome()
            do {
                try raw.withUnsafeBytes { r in
                    try payload.fill(header: header, stored: UnsafeRawBufferPointer(rebasing: r[BatchHeader.size..<header.totalSize]))
                }
                return (payload, out)
            } catch {
                out.problem = (header.baseOffset, (error as? RecordDefect)?.message ?? "\(error)")
                out.framing = true
                return (nil, out)
            }
        }
    }

    /// What checking a batch on its own found: the links it needs from the batch before, and its
    /// first problem (offset, text) if any.
    struct BatchOutcome {
        var firstPrevHash = Hash256.zero
        var lastHash = Hash256.zero
        var firstTime = Int64.min
        var lastTime = Int64.min
        var problem: (offset: Int64, text: String)?
        /// The payload could not be decompressed (the problem is told with the batch's place).
        var framing = false
        /// The Merkle leaf hash of each record (when asked for: computed where the hash is).
        var leaves: [Hash256] = []
    }

    /// Checks a batch's records without the batch before it: each record's tail against its
    /// header, the links inside the batch, each hash, and the batch header's summary.
    static func integrity(of batch: PendingBatch, leaves: Bool) -> BatchOutcome {
        var out = BatchOutcome()
        let header = batch.header
        if leaves { out.leaves.reserveCapacity(Int(header.nextOffset - header.baseOffset)) }
        let (decompressed, failed) = batch.payload()
        guard let payload = decompressed else { return failed }
        let tail = ByteWriter(capacity: 512)
        var position = 0
        var previous: Hash256? = nil
        var previousTime = Int64.min
        for offset in header.baseOffset..<header.nextOffset {
            let view: RecordView
            do {
                (view, position) = try payload.parse(at: position, offset: offset)
            } catch let defect as RecordDefect {
                out.problem = (offset, defect.message)
                return out
            } catch {
                out.problem = (offset, "\(error)")
                return out
            }
            switch record(view, previousHash: previous, tail: tail) {
            case .failure(let problem):
                out.problem = (offset, "offset \(offset): \(problem.text)")
                return out
            case .success(let (prev, hash)):
                if previous == nil {
                    out.firstPrevHash = prev
                    out.firstTime = view.time.milliseconds
                } else if view.time.milliseconds < previousTime {
                    out.problem = (offset, "offset \(offset): time \(view.time) is before the time of the event before")
                    return out
                }
                previous = hash
                previousTime = view.time.milliseconds
                if leaves { out.leaves.append(BulkSHA256.leaf(hash)) }
            }
        }
        if position != payload.length {
            out.problem = (header.baseOffset, "batch at offset \(header.baseOffset) holds bytes after its last record")
            return out
        }
        out.lastHash = previous ?? .zero
        out.lastTime = previousTime
        if header.lastHash != out.lastHash || header.firstTime != out.firstTime || header.lastTime != out.lastTime {
            out.problem = (header.baseOffset, "the header of the batch at offset \(header.baseOffset) does not match its records")
        }
        return out
    }

    /// One record: its stored JSON is `head ,"hash":"<64 hex>" tail`; the tail must be exactly what
    /// the binary header gives (with the stored prevHash and schemaVersion), the prevHash the hash
    /// before (when known), and the hash the SHA-256 of head + tail. Returns (prevHash, hash).
    static func record(_ view: RecordView, previousHash: Hash256?, tail: ByteWriter) -> Result<(Hash256, Hash256), Problem> {
        let json = view.json
        let markerLength = 9  // ,"hash":"
        guard let found = view.hashMemberStart, json[found + markerLength + 64] == 0x22,
            let stored = Hash256(hexBytes: UnsafeRawBufferPointer(rebasing: json[(found + markerLength)..<(found + markerLength + 64)]))
        else { return .failure(Problem(text: "the stored envelope has no hash member where the ledger writes it")) }
        let tailStart = found + markerLength + 65
        let storedTail = UnsafeRawBufferPointer(rebasing: json[tailStart...])
        // prevHash and schemaVersion as stored; everything else of the tail from the header.
        let prevAt = 7 + 36 + 11 + RecordView.decimalDigits(view.offset) + 13
        guard storedTail.count > prevAt + 64 + 18,
            let prev = Hash256(hexBytes: UnsafeRawBufferPointer(rebasing: storedTail[prevAt..<(prevAt + 64)]))
        else { return .failure(Problem(text: "the envelope does not match its record header")) }
        var schemaVersion: Int64 = 0
        var j = prevAt + 64 + 18
        while j < storedTail.count, storedTail[j] >= 0x30 && storedTail[j] <= 0x39, j < prevAt + 64 + 18 + 4 {
            schemaVersion = schemaVersion * 10 + Int64(storedTail[j] - 0x30)
            j += 1
        }
        tail.reset()
        EnvelopeFields.writeTail(
            id: view.id, offset: view.offset, prevHash: prev, schemaVersion: Int(schemaVersion), stream: view.streamBytes.assumingMemoryBound(to: UInt8.self),
            time: view.time, type: view.typeBytes.assumingMemoryBound(to: UInt8.self), version: view.version, into: tail)
        guard schemaVersion >= 1, tail.count == storedTail.count, memcmp(tail.base, storedTail.baseAddress!, tail.count) == 0 else {
            return .failure(Problem(text: "the envelope does not match its record header"))
        }
        if let previousHash, prev != previousHash {
            return .failure(Problem(text: "prevHash \(prev) is not the hash of the event before (\(previousHash)): the chain is broken"))
        }
        var state = SHA256State()
        state.update(UnsafeRawBufferPointer(rebasing: json[0..<found]))
        state.update(storedTail)
        let computed = state.finalize()
        guard computed == stored else {
            return .failure(Problem(text: "hash \(stored) is not the SHA-256 of the envelope (\(computed)): it was altered"))
        }
        return .success((prev, computed))
    }


    /// Checks `batches` (consecutive, in order) on every core.
    static func integrity(of batches: [PendingBatch], leaves: Bool) -> [BatchOutcome] {
        let slots = UnsafeMutableBufferPointer<BatchOutcome>.allocate(capacity: batches.count)
        slots.initialize(repeating: BatchOutcome())
        defer { slots.deallocate() }
        let out = UncheckedOutcomes(slots)
        DispatchQueue.concurrentPerform(iterations: batches.count) { i in
            out.slots[i] = integrity(of: batches[i], leaves: leaves)  // each index written by one iteration only
        }
        return Array(slots)
    }
}

/// The outcome slots of one `concurrentPerform`: each iteration writes only its own index.
private struct UncheckedOutcomes: @unchecked Sendable {
    let slots: UnsafeMutableBufferPointer<Verifier.BatchOutcome>
    init(_ slots: UnsafeMutableBufferPointer<Verifier.BatchOutcome>) { self.slots = slots }
}
