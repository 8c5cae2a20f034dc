import CLZ4

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), as iSCSI, ext4 and Kafka record batches
/// use it: the CPU's CRC32 instruction where it has one (SSE 4.2, through the `CLZ4` shim),
/// slicing-by-8 tables otherwise.
///
/// Check value: CRC-32C of the ASCII bytes "123456789" is 0xE3069283.
public enum CRC32C {
    static let tables: [[UInt32]] = {
        var tables = [[UInt32]](repeating: [UInt32](repeating: 0, count: 256), count: 8)
        for i in 0..<256 {
            var crc = UInt32(i)
            for _ in 0..<8 { crc = crc & 1 != 0 ? (crc >> 1) ^ 0x82F6_3B78 : crc >> 1 }
            tables[0][i] = crc
        }
        for i in 0..<256 {
            for t in 1..<8 { tables[t][i] = (tables[t - 1][i] >> 8) ^ tables[0][Int(tables[t - 1][i] & 0xFF)] }
        }
        return tables
    }()

    /// A flat copy of the tables for the hot loop (8 × 256 entries).
    static let flat: [UInt32] = tables.flatMap { $0 }

    /// Whether the CPU's CRC32 instruction is used.
    public static let hardware = ledger_crc32c_hardware() != 0

    /// The CRC-32C of `bytes`, continuing from `crc` (the value returned for the bytes before).
    @inline(__always)
    public static func checksum(_ bytes: UnsafeRawBufferPointer, continuing crc: UInt32 = 0) -> UInt32 {
        guard hardware, let base = bytes.baseAddress else { return software(bytes, continuing: crc) }
        return ledger_crc32c(crc, base.assumingMemoryBound(to: UInt8.self), bytes.count)
    }

    /// The same with the tables (CPUs without the instruction; the tests compare the two).
    public static func software(_ bytes: UnsafeRawBufferPointer, continuing crc: UInt32 = 0) -> UInt32 {
        flat.withUnsafeBufferPointer { t -> UInt32 in
            var c = ~crc
            guard var p = bytes.baseAddress else { return crc }
            var n = bytes.count
            while n > 0 && Int(bitPattern: p) & 7 != 0 {
                c = t[Int((c ^ UInt32(p.load(as: UInt8.self))) & 0xFF)] ^ (c >> 8)
                p += 1
                n -= 1
            }
            while n >= 8 {
                let word = UInt64(littleEndian: p.load(as: UInt64.self))
                let lo = UInt32(truncatingIfNeeded: word) ^ c
                let hi = UInt32(truncatingIfNeeded: word >> 32)
                c = t[7 * 256 + Int(lo & 0xFF)] ^ t[6 * 256 + Int((lo >> 8) & 0xFF)]
                    ^ t[5 * 256 + Int((lo >> 16) & 0xFF)] ^ t[4 * 256 + Int(lo >> 24)]
                    ^ t[3 * 256 + Int(hi & 0xFF)] ^ t[2 * 256 + Int((hi >> 8) & 0xFF)]
                    ^ t[1 * 256 + Int((hi >> 16) & 0xFF)] ^ t[Int(hi >> 24)]
                p += 8
                n -= 8
            }
            while n > 0 {
                c = t[Int((c ^ UInt32(p.load(as: UInt8.self))) & 0xFF)] ^ (c >> 8)
                p += 1
                n -= 1
            }
            return ~c
        }
    }

    public static func checksum(_ bytes: [UInt8]) -> UInt32 {
        bytes.withUnsafeBytes { checksum($0) }
    }
}
