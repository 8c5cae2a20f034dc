import Foundation
import Testing
import LedgerCore
@testable import LedgerLog

@Suite struct RecordBatchTests {
    /// The CPU's CRC32 instruction and the tables agree on random buffers of every alignment and
    /// length up to 300 bytes, whole and continued.
    @Test func hardwareAndTableCRCsAgree() {
        var rng = SeededGenerator(defaultSeed: 0x82F6_3B78)
        let buffer = (0..<4096).map { _ in UInt8.random(in: 0...255, using: &rng) }
        buffer.withUnsafeBytes { all in
            for _ in 0..<5_000 {
                let start = Int.random(in: 0..<64, using: &rng)
                let count = Int.random(in: 0...300, using: &rng)
                let slice = UnsafeRawBufferPointer(rebasing: all[start..<(start + count)])
                let seed = UInt32.random(in: 0...UInt32.max, using: &rng)
                #expect(CRC32C.checksum(slice, continuing: seed) == CRC32C.software(slice, continuing: seed), "\(rng.note)")
            }
        }
        #expect(Array("123456789".utf8).withUnsafeBytes { CRC32C.software($0) } == 0xE306_9283)
        print("CRC-32C: the CPU's instruction is \(CRC32C.hardware ? "used" : "not available; the tables are")")
    }

    @Test func crc32cCheckValue() {
        #expect(CRC32C.checksum(Array("123456789".utf8)) == 0xE306_9283)
        #expect(CRC32C.checksum([]) == 0)
        // Continuing over two halves equals one pass, at every split.
        let bytes = (0..<300).map { UInt8(truncatingIfNeeded: $0 &* 37) }
        let whole = CRC32C.checksum(bytes)
        for split in 0...bytes.count {
            let first = CRC32C.checksum(Array(bytes[0..<split]))
            let both = bytes[split...].withUnsafeBytes { CRC32C.checksum($0, continuing: first) }
            #expect(both == whole)
        }
    }

    /// Property: random records sealed into a batch read back exactly, with either codec.
    @Test func roundTripsRandomBatches() throws {
        var rng = SeededGenerator(seed: 11)
        let dir = TemporaryDirectory()
        for round in 0..<200 {
            let count = Int(rng.next() % 40) + 1
            var builder = BatchBuilder(baseOffset: Int64(rng.next() % 1_000_000), capacity: 1024)
            var expected: [(EventID, Int64, Int64, String, String, [UInt8])] = []
            var previous = Hash256.zero
            var time = Int64(1_700_000_000_000 + Int64(rng.next() % 1_000_000))
            for i in 0..<count {
                time += Int64(rng.next() % 5000)
                let id = EventID.random(using: &rng)
                let stream = "job-" + String(rng.next() % 1000)
                let type = ["job.queued", "job.started", "model.alias.set"][Int(rng.next() % 3)]
                // Random data: sometimes compressible, sometimes not.
                var data = JSONObject()
                for k in 0..<Int(rng.next() % 6) {
                    let noise = (0..<Int(rng.next() % 80)).map { _ in Character(Unicode.Scalar(UInt8(33 + rng.next() % 90))) }
                    data["k\(k)"] = rng.next() % 2 == 0 ? .string(String(noise)) : .number(Double(rng.next() % 100_000))
                }
                let fields = EnvelopeFields(
                    actor: "user:t", causationId: nil, correlationId: nil, id: id, offset: builder.baseOffset + Int64(i),
                    prevHash: previous, schemaVersion: 1, stream: stream, time: Timestamp(milliseconds: time), type: type,
                    version: Int64(rng.next() % 50))
                let dataBytes = try CanonicalJSON.encode(.object(data))
                previous = builder.append(fields, data: dataBytes)
                var json: [UInt8] = []
                fields.writeHead(data: dataBytes, into: &json)
                EnvelopeFields.writeHash(previous, into: &json)
                fields.writeTail(into: &json)
                expected.append((id, time, fields.version, stream, type, json))
            }
            var sealed: [UInt8] = []
            RecordBatch.seal(
                payload: builder.payload.bytes, baseOffset: builder.baseOffset, count: builder.count, firstTime: builder.firstTime,
                lastTime: builder.lastTime, lastHash: builder.lastHash, into: &sealed)
            let path = dir.path + "/\(round).log"
            try Data(sealed).write(to: URL(fileURLWithPath: path))
            let fd = open(path, O_RDONLY)
            let segment = Segment(directory: dir.path, baseOffset: 0, fd: fd, writable: false, state: .init(size: Int64(sealed.count), nextOffset: 0, index: SegmentIndex()))
            var raw: [UInt8] = []
            guard case .batch(let header) = try segment.readBatch(at: 0, fileSize: Int64(sealed.count), into: &raw) else {
                Issue.record("round \(round): batch did not read back")
                continue
            }
            #expect(header.count == count)
            #expect(header.baseOffset == builder.baseOffset)
            #expect(header.lastHash == previous)
            #expect(header.firstTime == expected.first!.1 && header.lastTime == expected.last!.1)
            let payload = PayloadBuffer()
            try raw.withUnsafeBytes { try payload.fill(header: header, stored: UnsafeRawBufferPointer(rebasing: $0[BatchHeader.size..<header.totalSize])) }
            var position = 0
            for i in 0..<count {
                let (view, next) = try payload.parse(at: position, offset: header.baseOffset + Int64(i))
                let e = expected[i]
                #expect(view.id == e.0 && view.time.milliseconds == e.1 && view.version == e.2)
                #expect(view.stream == e.3 && view.type == e.4)
                #expect(Array(view.json) == e.5)
                position = next
            }
            #expect(position == payload.length)
            // Any single flipped bit is caught by the CRC.
            let flip = Int(rng.next() % UInt64(sealed.count))
            if flip < 12 || flip >= 16 {
                var damaged = sealed
                damaged[flip] ^= UInt8(1 << (rng.next() % 8))
                try Data(damaged).write(to: URL(fileURLWithPath: path))
                let result = try segment.readBatch(at: 0, fileSize: Int64(damaged.count), into: &raw)
                if case .batch = result { Issue.record("round \(round): flipped byte \(flip) went unnoticed") }
            }
        }
    }
}
