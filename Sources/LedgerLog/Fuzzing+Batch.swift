public import LedgerCore

/// The record-batch decoder's fuzz target (see ``Fuzzing`` in LedgerCore).
public enum LogFuzzing {
    /// The first byte chooses the form of the rest: 0 a payload stored plain, 1 a payload stored as
    /// LZ4 (its uncompressed length in the next 4 bytes), 2 a whole stored batch (its CRC set right,
    /// so that the header and payload are what is tried). The batch is decoded, decompressed, its
    /// records parsed and each checked as `verify` does: any input is read or refused, never a trap,
    /// never a read outside the payload.
    public static func batch(_ input: UnsafeRawBufferPointer) {
        guard input.count >= 1 else { return }
        let body = UnsafeRawBufferPointer(rebasing: input[1...])
        var raw: [UInt8]
        switch input[0] % 3 {
        case 0, 1:
            let lz4 = input[0] % 3 == 1
            var stored = Array(body)
            var uncompressed = stored.count
            if lz4 {
                guard stored.count >= 4 else { return }
                uncompressed = Int(stored[0]) | Int(stored[1]) << 8 | Int(stored[2] & 0x0F) << 16  // < 1 MiB
                stored.removeFirst(4)
            }
            let header = BatchHeader(
                codec: lz4 ? .lz4 : .none, payloadLength: stored.count, crc: 0, baseOffset: 0, count: max(1, min(64, uncompressed / 60)),
                uncompressedLength: uncompressed, firstTime: 0, lastTime: 0, lastHash: .zero)
            raw = [UInt8](repeating: 0, count: BatchHeader.size) + stored
            raw.withUnsafeMutableBytes { header.encode(into: $0.baseAddress!) }
        default:
            raw = Array(body)
        }
        // The batch as its header bounds it, with its CRC set right.
        guard let shape = try? raw.withUnsafeBytes({ try BatchHeader.decode($0) }), shape.totalSize <= raw.count else { return }
        raw.removeLast(raw.count - shape.totalSize)
        raw.withUnsafeMutableBytes { b in b.baseAddress!.putLE(BatchHeader.computeCRC(UnsafeRawBufferPointer(b)), at: 12) }
        guard let header = try? raw.withUnsafeBytes({ try BatchHeader.decode($0) }) else { preconditionFailure("batch: a header stopped decoding when its CRC was set") }
        guard raw.withUnsafeBytes({ BatchHeader.computeCRC($0) }) == header.crc else { preconditionFailure("batch: the CRC set on the batch does not check") }
        let payload = PayloadBuffer()
        guard (try? raw.withUnsafeBytes({ r in try payload.fill(header: header, stored: UnsafeRawBufferPointer(rebasing: r[BatchHeader.size..<header.totalSize])) })) != nil
        else { return }
        let tail = ByteWriter(capacity: 512)
        var position = 0
        var previous: Hash256? = nil
        for offset in header.baseOffset..<header.nextOffset {
            guard let (view, next) = try? payload.parse(at: position, offset: offset) else { return }
            guard next > position, next <= payload.length else { preconditionFailure("batch: a record parsed outside the payload") }
            position = next
            _ = view.stream
            _ = view.type
            switch Verifier.record(view, previousHash: previous, tail: tail) {
            case .success(let (_, hash)): previous = hash
            case .failure: return
            }
        }
    }
}
