import CLZ4
import LedgerCore

extension RecordBatch {
    /// Builds a stored batch (header and payload) from an uncompressed payload: LZ4 block
    /// compression when it saves space, then the CRC-32C over everything.
    static func seal(
        payload: UnsafeRawBufferPointer, baseOffset: Int64, count: Int, firstTime: Int64, lastTime: Int64, lastHash: Hash256,
        into out: inout [UInt8]
    ) {
        out.removeAll(keepingCapacity: true)
        let bound = Int(LZ4_compressBound(Int32(payload.count)))
        out.reserveCapacity(BatchHeader.size + max(bound, payload.count))
        out.append(contentsOf: repeatElement(0, count: BatchHeader.size + bound))
        // Acceleration 4: on ledger JSON ~30% faster than the default for ~1.5% of the ratio
        // (measured with `lz4 -b --fast=N` on a `ledger read` export: 2.967 → 2.920).
        let compressed = payload.count == 0 ? 0 : out.withUnsafeMutableBytes { dst -> Int32 in
            LZ4_compress_fast(
                payload.baseAddress!.assumingMemoryBound(to: CChar.self),
                (dst.baseAddress! + BatchHeader.size).assumingMemoryBound(to: CChar.self),
                Int32(payload.count), Int32(bound), 4)
        }
        var codec = BatchHeader.Codec.lz4
        var stored = Int(compressed)
        if compressed <= 0 || Int(compressed) >= payload.count {
            codec = .none
            stored = payload.count
            out.removeLast(out.count - BatchHeader.size)
            out.append(contentsOf: payload)
        } else {
            out.removeLast(out.count - BatchHeader.size - stored)
        }
        let header = BatchHeader(
            codec: codec, payloadLength: stored, crc: 0, baseOffset: baseOffset, count: count,
            uncompressedLength: payload.count, firstTime: firstTime, lastTime: lastTime, lastHash: lastHash)
        out.withUnsafeMutableBytes { b in
            header.encode(into: b.baseAddress!)
            let crc = BatchHeader.computeCRC(UnsafeRawBufferPointer(b))
            b.baseAddress!.putLE(crc, at: 12)
        }
    }

    /// Writes the uncompressed payload of a stored batch whose CRC has been checked into `out`
    /// (at least `header.uncompressedLength` bytes); returns its length.
    static func decompress(header: BatchHeader, stored: UnsafeRawBufferPointer, into out: UnsafeMutableRawBufferPointer) throws -> Int {
        precondition(out.count >= header.uncompressedLength)
        switch header.codec {
        case .none:
            guard stored.count == header.uncompressedLength else {
                throw RecordDefect("uncompressed payload of \(stored.count) bytes, header says \(header.uncompressedLength)")
            }
            if stored.count > 0 { out.baseAddress!.copyMemory(from: stored.baseAddress!, byteCount: stored.count) }
            return stored.count
        case .lz4:
            let n = LZ4_decompress_safe(
                stored.baseAddress!.assumingMemoryBound(to: CChar.self),
                out.baseAddress!.assumingMemoryBound(to: CChar.self), Int32(stored.count), Int32(header.uncompressedLength))
            guard Int(n) == header.uncompressedLength else {
                throw RecordDefect("LZ4 payload does not decompress to the \(header.uncompressedLength) bytes its header gives")
            }
            return Int(n)
        }
    }
}
