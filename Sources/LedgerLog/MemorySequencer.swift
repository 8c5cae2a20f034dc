public import LedgerCore

/// The single writer's sequencing for a backend that keeps its records elsewhere (Kafka): the
/// same ``ChainSequencer`` as the segment log's, over in-memory tables of ids and stream versions
/// that the backend rebuilds from a snapshot plus the log's tail. Owned by one thread.
///
/// Memory: 24 bytes per slot, about 48 bytes per event in the id table at its fill factor; a
/// backend that grows past what fits keeps the segment log's on-disk indexes instead.
public final class MemorySequencer {
    /// Ids and stream versions in memory (also the stage benchmark's index).
    final class Tables: SequencerIndex {
        var ids = KeyTable(capacity: 1 << 12)
        var streams = KeyTable(capacity: 1 << 10)
        func offset(ofID key: IndexKey) -> UInt64? { ids.lookup(key) }
        func version(ofStream key: IndexKey) -> UInt64? { streams.lookup(key) }
        func record(id: IndexKey, offset: UInt64, stream: IndexKey, version: UInt64) {
            ids.set(id, offset)
            streams.set(stream, version)
        }
    }

    private var chain: ChainSequencer
    private let tables = Tables()
    private let tail = ByteWriter(capacity: 512)

    /// A sequencer at the start of an empty log.
    public init(maxRequestBytes: Int = LogOptions().maxRequestBytes) {
        chain = ChainSequencer(next: 0, lastHash: .zero, lastTime: Int64.min, maxRequestBytes: maxRequestBytes)
    }

    /// The offset the next event gets.
    public var next: Int64 { chain.next }
    /// `hash` of the last event (zero for an empty log).
    public var lastHash: Hash256 { chain.lastHash }
    public var lastTime: Int64 { chain.lastTime }

    /// Folds an event that is already in the log, in offset order (start-up). Throws if it does
    /// not continue the chain: its offset is not the next, its `prevHash` is not the last hash,
    /// or its time goes back.
    public func observe(_ view: RecordView) throws {
        guard view.offset == chain.next else {
            throw LedgerError(.corrupt, "the log skips from offset \(chain.next) to \(view.offset)")
        }
        guard let hash = view.storedHash else { throw LedgerError(.corrupt, "the event at offset \(view.offset) has no readable hash") }
        guard view.time.milliseconds >= chain.lastTime || chain.next == 0 else {
            throw LedgerError(.corrupt, "the event at offset \(view.offset) goes back in time")
        }
        tables.record(id: IndexKey(id: view.id), offset: UInt64(view.offset), stream: IndexKey(streamKey(view.stream)), version: UInt64(view.version))
        chain.next = view.offset + 1
        chain.lastHash = hash
        chain.lastTime = view.time.milliseconds
    }

    /// Sequences independent atomic requests into one batch of records. Failed requests carry
    /// their error; `fetch` reads an event of an earlier batch (an idempotent retry of it).
    public func sequence(
        _ requests: [Result<[PreparedEvent], LedgerError>], now: Timestamp, fetch: (Int64) throws -> StoredEvent?
    ) -> SequencedBatch {
        var builder = BatchBuilder(baseOffset: chain.next, payload: ByteWriter(capacity: 64 << 10), tail: tail)
        let now = max(now.milliseconds, chain.lastTime)
        var results: [Result<[AppendResult], LedgerError>] = []
        results.reserveCapacity(requests.count)
        for request in requests {
            switch request {
            case .failure(let e):
                results.append(.failure(e))
            case .success(let events):
                let (result, _) = chain.sequence(events, now: now, builder: &builder, index: tables) { offset in
                    guard let stored = try fetch(offset) else {
                        throw LedgerError(.internal, "the id index points at offset \(offset), which cannot be read")
                    }
                    return try OriginalEvent(stream: stored.stream, type: stored.type, version: stored.version, data: Self.canonicalData(stored))
                }
                results.append(result)
            }
        }
        return SequencedBatch(results: results, builder: builder)
    }

    private static func canonicalData(_ stored: StoredEvent) throws -> [UInt8] {
        try CanonicalJSON.encode(.object(try stored.envelope().data))
    }

    // MARK: snapshots

    /// The tables and the chain's head as bytes: `LKSEQ1`, next, lastTime, lastHash, the id and
    /// stream tables as (hi, lo, value) triples, a CRC-32C of everything before it.
    public func snapshot() -> [UInt8] {
        let w = ByteWriter(capacity: 64 + 24 * (tables.ids.count + tables.streams.count))
        w.append("LKSEQ1")
        w.appendLE(chain.next)
        w.appendLE(chain.lastTime)
        w.append(chain.lastHash.bytes)
        for table in [tables.ids, tables.streams] {
            let entries = table.sortedEntries()
            w.appendLE(UInt64(entries.count))
            for (key, value) in entries {
                w.appendLE(key.hi)
                w.appendLE(key.lo)
                w.appendLE(value)
            }
        }
        var bytes = Array(w.bytes)
        let crc = CRC32C.checksum(bytes)
        withUnsafeBytes(of: crc.littleEndian) { bytes.append(contentsOf: $0) }
        return bytes
    }

    /// A sequencer restored from ``snapshot()``; throws if the bytes are damaged.
    public convenience init(snapshot bytes: [UInt8], maxRequestBytes: Int = LogOptions().maxRequestBytes) throws {
        self.init(maxRequestBytes: maxRequestBytes)
        let bad = LedgerError(.corrupt, "the writer's snapshot is damaged")
        guard bytes.count >= 6 + 8 + 8 + 32 + 16 + 4, Array(bytes[0..<6]) == Array("LKSEQ1".utf8) else { throw bad }
        let body = bytes.count - 4
        let crc = bytes.withUnsafeBytes { $0.baseAddress!.le(body, as: UInt32.self) }
        guard CRC32C.checksum(Array(bytes[0..<body])) == crc else { throw bad }
        try bytes.withUnsafeBytes { p in
            var at = 6
            func u64() throws -> UInt64 {
                guard at + 8 <= body else { throw bad }
                defer { at += 8 }
                return p.baseAddress!.le(at, as: UInt64.self)
            }
            chain.next = Int64(bitPattern: try u64())
            chain.lastTime = Int64(bitPattern: try u64())
            guard at + 32 <= body else { throw bad }
            chain.lastHash = Hash256(bytes: p[at..<(at + 32)])
            at += 32
            for kind in 0..<2 {
                let count = try u64()
                guard count <= UInt64(body - at) / 24 else { throw bad }
                for _ in 0..<count {
                    let key = IndexKey(hi: try u64(), lo: try u64())
                    let value = try u64()
                    if kind == 0 { tables.ids.set(key, value) } else { tables.streams.set(key, value) }
                }
            }
            guard at == body else { throw bad }
        }
    }
}

/// Records the ``MemorySequencer`` placed in one go, with each request's result.
public struct SequencedBatch {
    public let results: [Result<[AppendResult], LedgerError>]
    let builder: BatchBuilder

    init(results: [Result<[AppendResult], LedgerError>], builder: BatchBuilder) {
        self.results = results
        self.builder = builder
    }

    /// The first offset placed, and how many events.
    public var baseOffset: Int64 { builder.baseOffset }
    public var count: Int { builder.count }
    public var nextOffset: Int64 { builder.nextOffset }

    /// The record at `offset` (in `baseOffset..<nextOffset`).
    public func withRecord<R>(at offset: Int64, _ body: (RecordView) throws -> R) throws -> R {
        try builder.withRecord(at: offset, body)
    }
}

extension RecordView {
    /// A view over a record held elsewhere (another backend's message): `json` must be the
    /// canonical envelope with `hash`, and the other fields must agree with it (``Verifier``
    /// checks that they do).
    public init(
        offset: Int64, id: EventID, time: Timestamp, version: Int64, stream: UnsafeRawBufferPointer, type: UnsafeRawBufferPointer,
        envelope json: UnsafeRawBufferPointer
    ) {
        self.init(offset: offset, id: id, time: time, version: version, streamBytes: stream, typeBytes: type, json: json)
    }
}

extension IndexKey {
    init(_ key: (UInt64, UInt64)) { self.init(hi: key.0, lo: key.1) }
}
