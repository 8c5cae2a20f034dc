import Foundation
import Testing
@testable import LedgerCore
@testable import LedgerLog

/// `verify` at both depths: the default integrity check (tails against headers, hashes, links;
/// batches on every core) and the full one agree on a whole log and find the same first bad offset
/// in a log altered inside a batch whose CRC was made valid again.
@Suite struct VerifyTests {
    static let batches = 6
    static let perBatch = 40

    /// A log of 6 batches of 40 events (one request each), closed.
    func build() async throws -> TemporaryDirectory {
        let dir = TemporaryDirectory("ledger-verify")
        var options = testOptions()
        options.fsync = .never
        let log = try SegmentLog.open(directory: dir.path, options: options)
        for b in 0..<Self.batches {
            _ = try await log.append((0..<Self.perBatch).map { queued("b\(b)-\($0)") }, policy: user)
        }
        try await log.close()
        return dir
    }

    /// Rewrites batch `index` of the first segment: `edit` changes its payload (and may return a
    /// new last hash for the header); the batch is sealed again, so its CRC is valid.
    func rewrite(_ dir: TemporaryDirectory, batch index: Int, edit: (UnsafeMutableRawBufferPointer, [(offset: Int64, json: Range<Int>)]) -> Hash256?) throws {
        let path = dir.path + "/segments/" + Segment.name(0) + ".log"
        let fd = open(path, O_RDONLY)
        defer { close(fd) }
        let size = try FileIO.size(fd, path)
        let segment = Segment(directory: dir.path + "/segments", baseOffset: 0, fd: fd, writable: false, state: .init(size: size, nextOffset: 0, index: SegmentIndex()))
        var out: [UInt8] = []
        var position: Int64 = 0
        var n = 0
        while true {
            var raw: [UInt8] = []
            guard case .batch(let header) = try segment.readBatch(at: position, fileSize: size, into: &raw) else { break }
            if n == index {
                let payload = PayloadBuffer()
                try raw.withUnsafeBytes { try payload.fill(header: header, stored: UnsafeRawBufferPointer(rebasing: $0[BatchHeader.size..<header.totalSize])) }
                var records: [(Int64, Range<Int>)] = []
                var at = 0
                for offset in header.baseOffset..<header.nextOffset {
                    let (view, next) = try payload.parse(at: at, offset: offset)
                    let start = view.json.baseAddress! - UnsafeRawPointer(payload.base)
                    records.append((offset, start..<(start + view.json.count)))
                    at = next
                }
                let bytes = UnsafeMutableRawBufferPointer(start: payload.base, count: payload.length)
                let lastHash = edit(bytes, records) ?? header.lastHash
                var sealed: [UInt8] = []
                RecordBatch.seal(
                    payload: UnsafeRawBufferPointer(bytes), baseOffset: header.baseOffset, count: header.count, firstTime: header.firstTime,
                    lastTime: header.lastTime, lastHash: lastHash, into: &sealed)
                out += sealed
            } else {
                out += raw[0..<header.totalSize]
            }
            position += Int64(header.totalSize)
            n += 1
        }
        #expect(n == Self.batches)
        try Data(out).write(to: URL(fileURLWithPath: path))
    }

    func both(_ dir: TemporaryDirectory) throws -> (VerifyReport, VerifyReport) {
        (try Verifier.verify(directory: dir.path, depth: .integrity), try Verifier.verify(directory: dir.path, depth: .full))
    }

    /// Replaces the first occurrence of `old` in the record's JSON by `new` (same length).
    func replace(_ bytes: UnsafeMutableRawBufferPointer, _ range: Range<Int>, _ old: String, _ new: String) {
        let o = Array(old.utf8), w = Array(new.utf8)
        precondition(o.count == w.count)
        for i in range.lowerBound...(range.upperBound - o.count) where (0..<o.count).allSatisfy({ bytes[i + $0] == o[$0] }) {
            for k in 0..<w.count { bytes[i + k] = w[k] }
            return
        }
        Issue.record("\(old) not found in the record")
    }

    @Test func bothDepthsAgreeOnAWholeLog() async throws {
        let dir = try await build()
        let (fast, full) = try both(dir)
        #expect(fast.isClean && full.isClean, "\(fast.problem ?? "") \(full.problem ?? "")")
        #expect(fast.events == Int64(Self.batches * Self.perBatch) && fast.events == full.events && fast.batches == full.batches)
        #expect(fast.headHash == full.headHash && fast.headHash != .zero)
    }

    @Test func alteredDataIsFoundByItsHash() async throws {
        let dir = try await build()
        try rewrite(dir, batch: 2) { bytes, records in
            replace(bytes, records[7].json, "\"team\":\"vision\"", "\"team\":\"visiom\"")
            return nil
        }
        let (fast, full) = try both(dir)
        #expect(fast.badOffset == 87 && full.badOffset == 87)
        #expect(fast.problem?.contains("it was altered") == true, "\(fast.problem ?? "")")
        #expect(fast.badBatchOffset == 80 && fast.badSegment == 0)
    }

    @Test func aTailUnlikeItsRecordHeaderIsFound() async throws {
        let dir = try await build()
        try rewrite(dir, batch: 4) { bytes, records in
            replace(bytes, records[3].json, "\"version\":0}", "\"version\":1}")
            return nil
        }
        let (fast, full) = try both(dir)
        #expect(fast.badOffset == 163 && full.badOffset == 163)
        #expect(fast.problem?.contains("does not match its record header") == true, "\(fast.problem ?? "")")
    }

    /// An event altered and re-hashed (and the batch header with it): the next batch's first event
    /// no longer links to it — found between batches checked on different cores.
    @Test func aRehashedEventBreaksTheLinkToTheNextBatch() async throws {
        let dir = try await build()
        try rewrite(dir, batch: 1) { bytes, records in
            let last = records[records.count - 1].json
            replace(bytes, last, "\"team\":\"vision\"", "\"team\":\"visiom\"")
            // Recompute this event's hash over its bytes without the hash member, and store it.
            let json = UnsafeRawBufferPointer(rebasing: bytes[last])
            let marker = Array(",\"hash\":\"".utf8)
            var at = json.count - marker.count - 65
            while !(0..<marker.count).allSatisfy({ json[at + $0] == marker[$0] }) { at -= 1 }
            var state = SHA256State()
            state.update(UnsafeRawBufferPointer(rebasing: json[0..<at]))
            state.update(UnsafeRawBufferPointer(rebasing: json[(at + marker.count + 65)...]))
            let hash = state.finalize()
            let hex = Array(hash.description.utf8)
            for k in 0..<64 { bytes[last.lowerBound + at + marker.count + k] = hex[k] }
            return hash
        }
        let (fast, full) = try both(dir)
        #expect(fast.badOffset == 80 && full.badOffset == 80)
        #expect(fast.problem?.contains("the chain is broken") == true, "\(fast.problem ?? "")")
    }
}
