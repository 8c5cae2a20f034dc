#if canImport(Glibc)
import Glibc
#endif
public import LedgerCore

/// `ledger repair`: the operator's way out of a log whose acknowledged tail was lost or damaged
/// (a restored backup that is behind, a truncated or corrupted file). Only when asked, it cuts
/// the log back to its last whole, verified batch; moves every cut byte to `quarantine/`; lowers
/// `HEAD`; drops the derived state that went past the new head (the id and stream indexes, the
/// Merkle tree, processor snapshots and projections are all rebuilt from the log); and writes a
/// repair record in `repairs/` saying what was lost. `ledger verify` then reports the repair.
public enum Repair {
    /// What a repair would do.
    public struct Plan: Sendable {
        /// The verify finding that calls for it.
        public var problem: String
        /// The head the last writer acknowledged, and the head after the repair.
        public var acknowledgedHead: Int64
        public var newHead: Int64
        /// Where the cut starts (segment base offset, byte), nil when only `HEAD` is lowered.
        public var cutSegment: Int64?
        public var cutByte: Int64?
        /// Bytes that leave the segments (into `quarantine/`).
        public var cutBytes: Int64
        /// The chain's head hash after the repair.
        public var headHash: Hash256

        /// Events acknowledged once and gone after the repair.
        public var lostEvents: Int64 { max(0, acknowledgedHead - newHead) }
    }

    /// Looks at the log (verifying it whole); nil when there is nothing to repair.
    public static func plan(directory: String) throws -> Plan? {
        let report = try Verifier.verify(directory: directory)
        guard let problem = report.problem else { return nil }
        let set = try SegmentSet.openExternal(dataDirectory: directory)
        let acknowledged = set.durableHead
        var newHead = report.badBatchOffset ?? report.badOffset ?? acknowledged
        var cutBytes: Int64 = 0
        if let segment = report.badSegment, let byte = report.badByte {
            for s in set.all where s.baseOffset >= segment {
                let size = try FileIO.size(s.fd, s.logPath)
                cutBytes += s.baseOffset == segment ? size - byte : size
            }
        } else {
            newHead = report.badOffset ?? acknowledged
        }
        // The chain head at the new head: verify what stays.
        var headHash = Hash256.zero
        if newHead > 0 {
            let cursor = LogCursor(set: set, from: newHead - 1, end: newHead, filter: .all)
            headHash = try cursor.next()?.storedHash ?? .zero
        }
        return Plan(
            problem: problem, acknowledgedHead: max(acknowledged, newHead), newHead: newHead, cutSegment: report.badSegment, cutByte: report.badByte,
            cutBytes: cutBytes, headHash: headHash)
    }

    /// Carries out `plan` under the writer lock; returns the repair record (also written to
    /// `repairs/`). Throws `locked` while a writer holds the directory.
    @available(*, noasync, message: "rewrites files and fsyncs; call it from a thread of its own")
    public static func apply(_ plan: Plan, directory: String, now: Timestamp = .now()) throws -> JSONValue {
        let lock = try WriterLock.acquire(directory: directory, holder: "ledger repair")
        defer { lock.release() }
        let segments = directory + "/segments"
        var quarantined: [String] = []
        if let cutSegment = plan.cutSegment, let cutByte = plan.cutByte {
            let q = directory + "/quarantine"
            try FileIO.makeDirectory(q)
            let stamp = String(now.description.filter { $0.isNumber }.prefix(17))
            for name in try FileIO.list(segments).sorted() {
                guard let base = Segment.baseOffset(fromName: name), base >= cutSegment else { continue }
                let path = segments + "/" + name
                let fd = try FileIO.open(path, O_RDWR)
                defer { close(fd) }
                let size = try FileIO.size(fd, path)
                let from = base == cutSegment ? cutByte : 0
                if size > from {
                    let target = q + "/repair-\(stamp)-\(Segment.name(base))-from-\(from).bin"
                    try FileIO.copyRange(fd, path, from: from, to: size, into: target)
                    quarantined.append("quarantine/" + String(target.split(separator: "/").last!))
                }
                let stem = segments + "/" + Segment.name(base)
                FileIO.remove(stem + ".index")
                FileIO.remove(stem + ".timeindex")
                if base == cutSegment && (from > 0 || base == 0) {
                    try FileIO.truncate(fd, from, path)
                    try FileIO.fsync(fd, path)
                } else {
                    FileIO.remove(path)
                }
            }
            try FileIO.syncDirectory(segments)
            try FileIO.syncDirectory(q)
        }
        try FileIO.writeAtomically(HeadFile.path(directory), HeadFile.encode(plan.newHead), directory: directory)
        // Derived state that may reach past the new head: rebuilt from the log when next needed.
        var dropped: [String] = []
        func drop(_ relative: String) {
            let path = directory + "/" + relative
            if FileIO.exists(path) {
                removeTree(path)
                dropped.append(relative)
            }
        }
        if plan.lostEvents > 0 {
            drop("index")
            drop("merkle")
            drop("processors")
            for suffix in ["", "-wal", "-shm"] { drop("ledger.sqlite" + suffix) }
        }
        CorruptionMarker.clear(directory)
        let record: JSONValue = .object([
            "time": .string(now.description),
            "problem": .string(plan.problem),
            "acknowledgedHead": .number(Double(plan.acknowledgedHead)),
            "newHead": .number(Double(plan.newHead)),
            "lost": .object(["from": .number(Double(plan.newHead)), "to": .number(Double(plan.acknowledgedHead)), "events": .number(Double(plan.lostEvents))]),
            "cutBytes": .number(Double(plan.cutBytes)),
            "quarantine": .array(quarantined.map { .string($0) }),
            "rebuiltFromTheLog": .array(dropped.map { .string($0) }),
            "headHash": .string(plan.headHash.description),
        ])
        let repairs = directory + "/repairs"
        try FileIO.makeDirectory(repairs)
        let name = "repair-" + now.description.filter { $0.isNumber }.prefix(17) + ".json"
        try FileIO.writeAtomically(repairs + "/" + name, try CanonicalJSON.encode(record) + [0x0A], directory: repairs)
        return record
    }

    /// The repair records of a data directory, oldest first.
    public static func records(directory: String) -> [JSONValue] {
        let repairs = directory + "/repairs"
        guard let names = try? FileIO.list(repairs) else { return [] }
        return names.filter { $0.hasSuffix(".json") }.sorted().compactMap { try? JSONParser.parse(try FileIO.readFile(repairs + "/" + $0)) }
    }

    private static func removeTree(_ path: String) {
        var st = stat()
        guard lstat(path, &st) == 0 else { return }
        if (st.st_mode & S_IFMT) == S_IFDIR {
            for name in (try? FileIO.list(path)) ?? [] where name != "." && name != ".." { removeTree(path + "/" + name) }
            rmdir(path)
        } else {
            unlink(path)
        }
    }
}
