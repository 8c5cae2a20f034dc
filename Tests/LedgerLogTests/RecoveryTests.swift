import Foundation
import Testing
import LedgerCore
@testable import LedgerLog

@Suite struct RecoveryTests {
    /// Batch boundaries (byte positions) of a segment file, with each batch's next offset.
    func batches(of path: String) throws -> [(start: Int64, end: Int64, next: Int64)] {
        let bytes = try Array(Data(contentsOf: URL(fileURLWithPath: path)))
        var out: [(Int64, Int64, Int64)] = []
        var position = 0
        while position + BatchHeader.size <= bytes.count {
            let header = try bytes.withUnsafeBytes { try BatchHeader.decode(UnsafeRawBufferPointer(rebasing: $0[position..<position + BatchHeader.size])) }
            out.append((Int64(position), Int64(position + header.totalSize), header.nextOffset))
            position += header.totalSize
        }
        return out
    }

    func copy(_ from: String, _ to: String) throws {
        try? FileManager.default.removeItem(atPath: to)
        try FileManager.default.copyItem(atPath: from, toPath: to)
    }

    /// Cutting the log at every byte inside its last two batches (a torn write of unknown length)
    /// recovers exactly the whole batches before the cut, keeps the cut bytes in quarantine/, and
    /// accepts appends again with an intact chain.
    @Test func truncationAtEveryByteOfTheLastTwoBatches() async throws {
        let source = TemporaryDirectory()
        let log = try SegmentLog.open(directory: source.path, options: testOptions())
        for i in 0..<6 { _ = try await log.append([queued("j\(i)"), started("j\(i)")], policy: user) }
        try await log.close()
        let segment = source.path + "/segments/" + Segment.name(0) + ".log"
        let all = try batches(of: segment)
        #expect(all.count == 6)
        let lastTwo = all.suffix(2)
        let work = TemporaryDirectory()
        var cuts = 0
        for cut in lastTwo.first!.start..<lastTwo.last!.end {
            let dir = work.path + "/d"
            try copy(source.path, dir)
            // The writer crashed before acknowledging the torn batch: HEAD does not cover it.
            try FileManager.default.removeItem(atPath: dir + "/HEAD")
            let fd = open(dir + "/segments/" + Segment.name(0) + ".log", O_WRONLY)
            ftruncate(fd, off_t(cut))
            close(fd)
            let whole = all.filter { $0.end <= cut }
            let expectedHead = whole.last?.next ?? 0
            let reopened = try SegmentLog.open(directory: dir, options: testOptions())
            #expect(reopened.head == expectedHead, "cut at \(cut)")
            #expect(reopened.recoveredBytes == cut - (whole.last?.end ?? 0))
            let events = try readAll(reopened.cursor())
            #expect(events.count == Int(expectedHead))
            let result = try await reopened.append([started("after")], policy: user)
            #expect(result[0].offset == expectedHead)
            let envelopes = try readAll(reopened.cursor()).map { try $0.envelope() }
            for (i, e) in envelopes.enumerated() {
                #expect(try e.computeHash() == e.hash)
                if i > 0 { #expect(e.prevHash == envelopes[i - 1].hash) }
            }
            try await reopened.close()
            let quarantined = try FileManager.default.contentsOfDirectory(atPath: dir + "/quarantine")
            #expect(quarantined.count == (cut > (whole.last?.end ?? 0) ? 1 : 0), "cut at \(cut)")
            cuts += 1
        }
        #expect(cuts > 400)
    }

    /// A damaged batch that the writer had acknowledged (below HEAD) is corruption, not a torn write.
    @Test func damageBelowTheAcknowledgedHeadIsRefused() async throws {
        let dir = TemporaryDirectory()
        let log = try SegmentLog.open(directory: dir.path, options: testOptions())
        for i in 0..<3 { _ = try await log.append([queued("j\(i)")], policy: user) }
        try await log.close()
        let path = dir.path + "/segments/" + Segment.name(0) + ".log"
        let before = try snapshot(dir.path)
        var bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        bytes[bytes.count - 10] ^= 0x40
        try bytes.write(to: URL(fileURLWithPath: path))
        #expect {
            _ = try SegmentLog.open(directory: dir.path, options: testOptions())
        } throws: { ($0 as? LedgerError)?.code == .corrupt }
        // Nothing was cut: the damaged bytes are all still there for an operator to look at.
        #expect(try snapshot(dir.path)[ "/segments/" + Segment.name(0) + ".log"]?.count == before["/segments/" + Segment.name(0) + ".log"]?.count)
    }

    /// A flipped byte inside a sealed segment: verify names its offset, and the log then refuses writers.
    @Test func flippedByteInASealedSegment() async throws {
        let dir = TemporaryDirectory()
        var options = testOptions()
        options.segmentBytes = 2048
        let log = try SegmentLog.open(directory: dir.path, options: options)
        for i in 0..<40 { _ = try await log.append([queued("j\(i)"), started("j\(i)")], policy: user) }
        try await log.close()
        let segments = try FileManager.default.contentsOfDirectory(atPath: dir.path + "/segments").filter { $0.hasSuffix(".log") }.sorted()
        #expect(segments.count >= 3)
        let victim = dir.path + "/segments/" + segments[1]
        let layout = try batches(of: victim)
        let target = layout[layout.count / 2]
        var bytes = try Data(contentsOf: URL(fileURLWithPath: victim))
        bytes[Int(target.start) + BatchHeader.size + 7] ^= 0x01
        try bytes.write(to: URL(fileURLWithPath: victim))
        let base = Segment.baseOffset(fromName: segments[1])!
        let firstOffsetOfBatch = layout.firstIndex { $0.start == target.start } == 0 ? base : layout[layout.firstIndex { $0.start == target.start }! - 1].next

        let report = try Verifier.verify(directory: dir.path)
        #expect(!report.isClean)
        #expect(report.badOffset == firstOffsetOfBatch)
        #expect(report.problem?.contains(segments[1]) == true)
        #expect(report.problem?.contains("CRC-32C") == true)
        #expect {
            _ = try SegmentLog.open(directory: dir.path, options: testOptions())
        } throws: { error in
            guard let e = error as? LedgerError else { return false }
            return e.code == .corrupt && e.message.contains(segments[1])
        }
        // Readers still read up to the damage, and report it there.
        let reader = try LogReader(directory: dir.path)
        let cursor = reader.cursor()
        var read = 0
        #expect(throws: LedgerError.self) { while try cursor.next() != nil { read += 1 } }
        #expect(Int64(read) == firstOffsetOfBatch)
        // Repaired (the byte restored), verify passes again and clears the mark; writers are welcome.
        bytes[Int(target.start) + BatchHeader.size + 7] ^= 0x01
        try bytes.write(to: URL(fileURLWithPath: victim))
        #expect(try Verifier.verify(directory: dir.path).isClean)
        let again = try SegmentLog.open(directory: dir.path, options: testOptions())
        #expect(again.head == 80)
        try await again.close()
    }

    @Test func missingAndDamagedIndexesAreRebuilt() async throws {
        let dir = TemporaryDirectory()
        var options = testOptions()
        options.segmentBytes = 4096
        options.indexFlushThreshold = 16
        let log = try SegmentLog.open(directory: dir.path, options: options)
        for i in 0..<60 { _ = try await log.append([queued("j\(i)"), started("j\(i)")], policy: user) }
        try await log.close()
        let files = try FileManager.default.contentsOfDirectory(atPath: dir.path + "/segments")
        // Remove one offset index, garble one time index, and delete the id/stream index entirely.
        let indexes = files.filter { $0.hasSuffix(".index") }.sorted()
        try FileManager.default.removeItem(atPath: dir.path + "/segments/" + indexes[0])
        let timeIndex = dir.path + "/segments/" + files.filter { $0.hasSuffix(".timeindex") }.sorted()[1]
        try Data(repeating: 0xFF, count: 24).write(to: URL(fileURLWithPath: timeIndex))
        try FileManager.default.removeItem(atPath: dir.path + "/index")
        let reopened = try SegmentLog.open(directory: dir.path, options: options)
        #expect(reopened.head == 120)
        #expect(FileManager.default.fileExists(atPath: dir.path + "/segments/" + indexes[0]))
        // Seeks work from every offset, and the id index still knows every id.
        let all = try readAll(reopened.cursor())
        for start in stride(from: 0, to: 120, by: 7) {
            #expect(try readAll(reopened.cursor(from: Int64(start))).first?.offset == Int64(start))
        }
        let firstID = all[0].id
        let again = try await reopened.append([AppendRequest(stream: "job-j0", type: "job.queued", data: try all[0].envelope().data, id: firstID)], policy: user)
        #expect(again[0].offset == 0)
        #expect(reopened.head == 120)
        try await reopened.close()
    }
}
