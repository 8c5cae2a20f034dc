import LedgerCore

/// Where the sequencer looks up ids and stream versions, and records what it assigned: the
/// segment log's on-disk indexes, or a backend's in-memory tables.
protocol SequencerIndex {
    /// The offset of the event with this id, if it is in the log.
    func offset(ofID key: IndexKey) -> UInt64?
    /// The last version of this stream, if it has events.
    func version(ofStream key: IndexKey) -> UInt64?
    /// Records an event the sequencer placed.
    func record(id: IndexKey, offset: UInt64, stream: IndexKey, version: UInt64)
    /// Starts loading what looking up this id or stream will read (a hint).
    func prefetch(id key: IndexKey)
    func prefetch(stream key: IndexKey)
}

extension SequencerIndex {
    func prefetch(id key: IndexKey) {}
    func prefetch(stream key: IndexKey) {}
}

/// An event already in the log whose id a request uses again (an idempotent retry, or a clash).
struct OriginalEvent {
    var stream: String
    var type: String
    var version: Int64
    var data: [UInt8]

    init(_ view: RecordView) throws {
        let envelope = try view.envelope()
        self.init(stream: view.stream, type: view.type, version: view.version, data: try CanonicalJSON.encode(.object(envelope.data)))
    }

    init(stream: String, type: String, version: Int64, data: [UInt8]) {
        self.stream = stream
        self.type = type
        self.version = version
        self.data = data
    }
}

/// The head of the chain as the single writer advances it: the next offset, the last event's
/// hash and time, and the generator of the ids it assigns. Owned by one thread.
///
/// This is the whole of the append semantics (SEMANTICS.md, Append): idempotency by id, expected
/// versions against the state before the request, gap-free offsets and versions, non-decreasing
/// times, the hash chain — shared by every backend so that they cannot drift apart.
struct ChainSequencer {
    var next: Int64
    var lastHash: Hash256
    var lastTime: Int64
    var random: Xoshiro256
    let maxRequestBytes: Int

    init(next: Int64, lastHash: Hash256, lastTime: Int64, maxRequestBytes: Int) {
        self.next = next
        self.lastHash = lastHash
        self.lastTime = lastTime
        self.maxRequestBytes = maxRequestBytes
        var seed = SystemRandomNumberGenerator()
        random = Xoshiro256(seed: &seed)
    }

    /// How many events ahead (in a request of several) or requests ahead (``AppendPipeline``,
    /// from ``RequestKeys``) the index slots are prefetched: an event takes a microsecond or so to
    /// sequence, a cache miss a tenth of that, so a few ahead is enough.
    static let prefetchDistance = 4

    /// Checks and appends one atomic request to `builder`. Returns the result and the offset after
    /// which it is durable. `fetch` reads an event written by an earlier batch (retries).
    mutating func sequence<I: SequencerIndex>(
        _ events: [PreparedEvent], now: Int64, builder: inout BatchBuilder, index: I, fetch: (Int64) throws -> OriginalEvent
    ) -> (Result<[AppendResult], LedgerError>, Int64) {
        do {
            return try sequenceOrThrow(events, now: now, builder: &builder, index: index, fetch: fetch)
        } catch {
            return (.failure(LedgerError.wrap(error)), 0)
        }
    }

    private mutating func sequenceOrThrow<I: SequencerIndex>(
        _ events: [PreparedEvent], now: Int64, builder: inout BatchBuilder, index: I, fetch: (Int64) throws -> OriginalEvent
    ) throws -> (Result<[AppendResult], LedgerError>, Int64) {
        guard !events.isEmpty else { throw LedgerError(.invalidRequest, "an append request needs at least one event") }
        // The events are read in place (no copy of a PreparedEvent, no retain of its strings but
        // the ones a record needs): this loop runs once per event on the one sequencing thread.
        return try events.withUnsafeBufferPointer { ev in
            try sequence(ev, now: now, builder: &builder, index: index, fetch: fetch)
        }
    }

    private mutating func sequence<I: SequencerIndex>(
        _ ev: UnsafeBufferPointer<PreparedEvent>, now: Int64, builder: inout BatchBuilder, index: I, fetch: (Int64) throws -> OriginalEvent
    ) throws -> (Result<[AppendResult], LedgerError>, Int64) {
        let n = ev.count
        let base = ev.baseAddress!
        var bytes = 0
        for i in 0..<n { bytes += base[i].head.dataCount }
        guard bytes <= maxRequestBytes else {
            throw LedgerError(.batchTooLarge, "the request's events hold \(bytes) bytes of data; the limit for one atomic request is \(maxRequestBytes) bytes")
        }
        // Idempotency first: a retry of a request that landed returns where it landed.
        var hits: [(Int, Int64)] = []
        if n == 1 {
            if let id = base[0].id, let offset = index.offset(ofID: IndexKey(id: id)) { hits.append((0, Int64(offset))) }
        } else {
            // The events of one request lie side by side: the index slots of the id four ahead are
            // prefetched while this one is looked up (ids are random: each lookup was a miss).
            var seen = KeyTable(capacity: n)
            for i in 0..<n {
                if i + Self.prefetchDistance < n, let ahead = base[i + Self.prefetchDistance].id { index.prefetch(id: IndexKey(id: ahead)) }
                guard let id = base[i].id else { continue }
                let key = IndexKey(id: id)
                guard seen.lookup(key) == nil else { throw LedgerError(.duplicateID, "id \(id) appears twice in the request", index: i) }
                seen.set(key, UInt64(i))
                if let offset = index.offset(ofID: key) { hits.append((i, Int64(offset))) }
            }
        }
        if !hits.isEmpty {
            let results = try replayedResults(Array(ev), hits: hits) { offset in
                offset >= builder.baseOffset ? try builder.withRecord(at: offset) { try OriginalEvent($0) } : try fetch(offset)
            }
            return (.success(results), hits.map(\.1).max()! + 1)
        }
        // Expected versions, against the streams' state before the request. A one-event request
        // (most of them) needs no table; in a larger one, versions are stored + 1 so that a stream
        // without events (-1) fits the table.
        var versions = n > 1 ? KeyTable(capacity: n) : nil
        var single: Int64 = 0
        for i in 0..<n {
            if n > 1 && i + Self.prefetchDistance < n {
                let ahead = base[i + Self.prefetchDistance].streamKey
                index.prefetch(stream: IndexKey(hi: ahead.0, lo: ahead.1))
            }
            let key = IndexKey(hi: base[i].streamKey.0, lo: base[i].streamKey.1)
            let current: Int64
            if let v = versions?.lookup(key) { current = Int64(v) - 1 } else {
                current = index.version(ofStream: key).map { Int64($0) } ?? -1
                if n > 1 { versions!.set(key, UInt64(current + 1)) } else { single = current + 1 }
            }
            let ok: Bool
            switch base[i].expectedVersion {
            case .any: ok = true
            case .noStream: ok = current < 0
            case .exists: ok = current >= 0
            case .exactly(let v): ok = current == v
            }
            if !ok {
                let state = current < 0 ? "does not exist" : "is at version \(current)"
                var error = LedgerError(.wrongExpectedVersion, "stream \(base[i].stream) \(state), expected \(base[i].expectedVersion)", index: n > 1 ? i : nil)
                error.currentVersion = current < 0 ? nil : current
                throw error
            }
        }
        // Assign and write; undone as a whole if a later event of the request fails.
        let mark = builder.mark()
        let saved = (next, lastHash, lastTime)
        var results: [AppendResult] = []
        results.reserveCapacity(n)
        do {
            for i in 0..<n {
                let e = base + i
                let key = IndexKey(hi: e.pointee.streamKey.0, lo: e.pointee.streamKey.1)
                let version: Int64
                if n > 1 {
                    version = Int64(versions!.lookup(key)!)
                    versions!.set(key, UInt64(version + 1))
                } else {
                    version = single
                }
                let time: Int64
                if let own = e.pointee.time {
                    guard own.milliseconds >= lastTime else {
                        throw LedgerError(.timeOrder, "event time \(own) is before the time of the log head \(Timestamp(milliseconds: lastTime)): times must not decrease", index: n > 1 ? i : nil)
                    }
                    time = own.milliseconds
                } else if let floor = e.pointee.notBefore {
                    time = max(floor.milliseconds, lastTime)
                } else {
                    time = max(now, lastTime)
                }
                let id = e.pointee.id ?? EventID.random(using: &random)
                let hash = builder.append(e, id: id, offset: next, prevHash: lastHash, time: Timestamp(milliseconds: time), version: version)
                if let recorded = e.pointee.recorded {
                    try Self.check(recorded, offset: next, version: version, prevHash: lastHash, hash: hash, index: i)
                }
                results.append(AppendResult(offset: next, stream: e.pointee.stream, version: version, id: id))
                next += 1
                lastHash = hash
                lastTime = time
            }
        } catch {
            builder.rollback(to: mark)
            (next, lastHash, lastTime) = saved
            throw error
        }
        for i in 0..<n {
            let r = results[i]
            index.record(
                id: IndexKey(id: r.id), offset: UInt64(r.offset), stream: IndexKey(hi: base[i].streamKey.0, lo: base[i].streamKey.1),
                version: UInt64(r.version))
        }
        return (.success(results), next)
    }

    private static func check(_ recorded: RecordedPosition, offset: Int64, version: Int64, prevHash: Hash256, hash: Hash256, index i: Int) throws {
        func mismatch(_ what: String, _ theirs: String, _ ours: String) -> LedgerError {
            LedgerError(.importMismatch, "at offset \(offset): the export's \(what) is \(theirs), the ledger computes \(ours)", index: i)
        }
        if recorded.offset != offset { throw mismatch("offset", "\(recorded.offset)", "\(offset)") }
        if recorded.version != version { throw mismatch("version", "\(recorded.version)", "\(version)") }
        if recorded.prevHash != prevHash { throw mismatch("prevHash", "\(recorded.prevHash)", "\(prevHash)") }
        if recorded.hash != hash { throw mismatch("hash", "\(recorded.hash)", "\(hash)") }
    }

    /// Results for a request whose ids all exist already: the originals, if every event is the
    /// same (stream, type, data); otherwise `duplicate_id`.
    private func replayedResults(_ events: [PreparedEvent], hits: [(Int, Int64)], original fetch: (Int64) throws -> OriginalEvent) throws -> [AppendResult] {
        guard hits.count == events.count else {
            let (i, offset) = hits[0]
            throw LedgerError(
                .duplicateID,
                "id \(events[i].id!) is already in the log at offset \(offset), but other events of this request are new: a retry must resend the request unchanged",
                index: i)
        }
        var results: [AppendResult] = []
        for (i, offset) in hits {
            let e = events[i]
            let original = try fetch(offset)
            let same = original.data.elementsEqual(e.canonicalData)
            if original.stream != e.stream || original.type != e.type || !same {
                var differs: [String] = []
                if original.stream != e.stream { differs.append("stream \(original.stream)") }
                if original.type != e.type { differs.append("type \(original.type)") }
                if !same { differs.append("different data") }
                throw LedgerError(
                    .duplicateID,
                    "id \(e.id!) is already used at offset \(offset) by another event (\(differs.joined(separator: ", "))); choose a new id",
                    index: events.count > 1 ? i : nil)
            }
            results.append(AppendResult(offset: offset, stream: original.stream, version: original.version, id: e.id!))
        }
        return results
    }
}

extension IndexStore: SequencerIndex {
    @inline(__always) func prefetch(id key: IndexKey) { ids.prefetch(key) }
    @inline(__always) func prefetch(stream key: IndexKey) { streams.prefetch(key) }
    @inline(__always) func offset(ofID key: IndexKey) -> UInt64? { ids.lookup(key) }
    @inline(__always) func version(ofStream key: IndexKey) -> UInt64? { streams.lookup(key) }
    @inline(__always) func record(id: IndexKey, offset: UInt64, stream: IndexKey, version: UInt64) {
        ids.insert(id, offset)
        streams.insert(stream, version)
    }
}
