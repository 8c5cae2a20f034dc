public import LedgerCore

/// Event id → offset for readers (audit chains, `ledger explain`): the writer's on-disk id index
/// opened read-only (its runs, per the manifest), plus the events after the manifest's
/// `indexedThrough` replayed into memory. Refreshed on demand as the log grows.
public final class SegmentIDLookup: IDLookup {
    let set: SegmentSet
    private var runs: [IndexRun] = []
    private var recent = KeyTable(capacity: 1024)
    private var replayedTo: Int64 = 0

    init(set: SegmentSet) throws {
        self.set = set
        try reload()
    }

    private func reload() throws {
        let directory = set.dataDirectory + "/index"
        runs = []
        replayedTo = 0
        recent = KeyTable(capacity: 1024)
        if let bytes = try? FileIO.readFile(directory + "/" + IndexStore.manifestName),
            let manifest = try? JSONParser.parse(bytes), let through = manifest["indexedThrough"]?.intValue,
            let names = manifest["ids"]?.arrayValue?.compactMap(\.stringValue), Int64(through) <= set.durableHead
        {
            var loaded: [IndexRun] = []
            do {
                for name in names { loaded.append(try IndexRun(path: directory + "/" + name, name: name)) }
                runs = loaded
                replayedTo = Int64(through)
            } catch {
                runs = []  // a run vanished under us (compaction): replay everything instead
            }
        }
    }

    /// The offset of the event with this id, if it is in the log.
    public func offset(of id: EventID) throws -> Int64? {
        let key = IndexKey(id: id)
        if let v = recent.lookup(key) { return Int64(v) }
        for run in runs {
            if let v = run.lookup(key) { return Int64(v) }
        }
        // Catch up with what was appended since, then look again.
        try set.refresh()
        let head = set.durableHead
        guard replayedTo < head else { return nil }
        let cursor = LogCursor(set: set, from: replayedTo, end: head, filter: .all)
        while let view = try cursor.next() { recent.set(IndexKey(id: view.id), UInt64(view.offset)) }
        replayedTo = head
        return recent.lookup(key).map { Int64($0) }
    }
}

extension LogReader {
    /// An id → offset lookup over this log.
    public func idLookup() throws -> any IDLookup { try SegmentIDLookup(set: segmentSet) }
}

extension SegmentLog {
    /// An id → offset lookup over this log (the writer's on-disk runs, read-only).
    public func idLookup() throws -> any IDLookup { try SegmentIDLookup(set: segmentSet) }
}
