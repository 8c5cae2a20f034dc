import CLibCrypto

/// An event id: a UUID, written lowercase (`8-4-4-4-12` hex digits).
///
/// Held as two 64-bit words so it is cheap to hash, compare and store in indexes.
public struct EventID: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// The first 8 bytes, big-endian.
    public var high: UInt64
    /// The last 8 bytes, big-endian.
    public var low: UInt64

    public init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    /// The 16 bytes of the UUID, in order.
    public init(bytes: some Collection<UInt8>) {
        precondition(bytes.count == 16, "a UUID is 16 bytes")
        var h: UInt64 = 0
        var l: UInt64 = 0
        for (i, b) in bytes.enumerated() {
            if i < 8 { h = h << 8 | UInt64(b) } else { l = l << 8 | UInt64(b) }
        }
        high = h
        low = l
    }

    public var bytes: [UInt8] {
        (0..<16).map { i in UInt8(truncatingIfNeeded: (i < 8 ? high >> (56 - 8 * i) : low >> (56 - 8 * (i - 8)))) }
    }

    public static func < (a: EventID, b: EventID) -> Bool { (a.high, a.low) < (b.high, b.low) }

    /// Parses the lowercase text form; nil for anything else (uppercase included: the contract
    /// stores ids lowercase so that equal ids are equal strings).
    public init?(_ text: String) {
        var text = text
        guard let id = text.withUTF8({ EventID.parse($0) }) else { return nil }
        self = id
    }

    static func parse(_ b: UnsafeBufferPointer<UInt8>) -> EventID? {
        guard b.count == 36, b[8] == 0x2D, b[13] == 0x2D, b[18] == 0x2D, b[23] == 0x2D else { return nil }
        // Straight-line over the five groups; an invalid digit sets a bit in `bad` instead of a
        // branch per character (ids are parsed once per request line).
        var high: UInt64 = 0
        var low: UInt64 = 0
        var bad: UInt64 = 0
        @inline(__always) func take(_ range: Range<Int>, into word: inout UInt64) {
            for i in range {
                let v = nibble(b[i])
                bad |= v & 0xF0
                word = word << 4 | (v & 0x0F)
            }
        }
        take(0..<8, into: &high)
        take(9..<13, into: &high)
        take(14..<18, into: &high)
        take(19..<23, into: &low)
        take(24..<36, into: &low)
        return bad == 0 ? EventID(high: high, low: low) : nil
    }

    /// A lowercase hex digit's value, or 0xFF.
    @inline(__always) @usableFromInline static func nibble(_ c: UInt8) -> UInt64 {
        let d = c &- 0x30
        if d < 10 { return UInt64(d) }
        let h = c &- 0x61
        if h < 6 { return UInt64(h) + 10 }
        return 0xFF
    }

    public var description: String {
        var out: [UInt8] = []
        out.reserveCapacity(36)
        append(to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// Appends the 36 bytes of the text form to `writer`.
    @inline(__always)
    public func append(to writer: ByteWriter) {
        writer.write(maximum: 36) { p in
            write(into: p)
            return 36
        }
    }

    /// Appends the 36 bytes of the text form to `out`.
    public func append(to out: inout [UInt8]) {
        let start = out.count
        out.append(contentsOf: repeatElement(0, count: 36))
        out.withUnsafeMutableBufferPointer { buffer in write(into: buffer.baseAddress! + start) }
    }

    /// Writes the 36 bytes of the text form at `p`: the one encoder of the text form.
    @inline(__always)
    public func write(into p: UnsafeMutablePointer<UInt8>) {
        let digits = hexDigits.utf8Start
        var j = 0
        for i in 0..<32 {
            if i == 8 || i == 12 || i == 16 || i == 20 {
                p[j] = 0x2D
                j += 1
            }
            let word = i < 16 ? high : low
            p[j] = digits[Int((word >> UInt64(60 - 4 * (i % 16))) & 0xF)]
            j += 1
        }
    }

    /// A random (version 4) UUID.
    public static func random() -> EventID {
        var rng = SystemRandomNumberGenerator()
        return random(using: &rng)
    }

    /// A version 4 UUID from `generator` (seeded generators make simulations reproducible).
    public static func random(using generator: inout some RandomNumberGenerator) -> EventID {
        let h = generator.next() as UInt64
        let l = generator.next() as UInt64
        return EventID(high: (h & ~0xF000) | 0x4000, low: (l & 0x3FFF_FFFF_FFFF_FFFF) | 0x8000_0000_0000_0000)
    }

    /// A name-based (version 5, SHA-1) UUID of `name` in `namespace` (RFC 9562 section 5.5).
    public static func nameBased(namespace: EventID, name: String) -> EventID {
        var name = name
        return name.withUTF8 { nameBytes in
            nameBased(namespace: namespace, name: UnsafeRawBufferPointer(nameBytes))
        }
    }

    /// UUIDv5 over namespace bytes + `name` (one SHA-1 through libcrypto, no allocation for
    /// names up to 240 bytes).
    public static func nameBased(namespace: EventID, name: UnsafeRawBufferPointer) -> EventID {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 16 + name.count + 20) { buffer in
            let base = buffer.baseAddress!
            var high = namespace.high.bigEndian
            var low = namespace.low.bigEndian
            withUnsafeBytes(of: &high) { base.update(from: $0.bindMemory(to: UInt8.self).baseAddress!, count: 8) }
            withUnsafeBytes(of: &low) { (base + 8).update(from: $0.bindMemory(to: UInt8.self).baseAddress!, count: 8) }
            if let n = name.baseAddress, name.count > 0 { (base + 16).update(from: n.assumingMemoryBound(to: UInt8.self), count: name.count) }
            let digest = base + 16 + name.count
            ledger_sha1(base, 16 + name.count, digest)
            var id = EventID(bytes: UnsafeBufferPointer(start: digest, count: 16))
            id.high = (id.high & ~0xF000) | 0x5000
            id.low = (id.low & 0x3FFF_FFFF_FFFF_FFFF) | 0x8000_0000_0000_0000
            return id
        }
    }
}

extension EventID: Codable {
    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let id = EventID(text) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "not a UUID: \(text)"))
        }
        self = id
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(description)
    }
}
