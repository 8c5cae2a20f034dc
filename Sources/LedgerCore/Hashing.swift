import CLibCrypto
public import Crypto

let hexDigits: StaticString = "0123456789abcdef"

/// Lowercase hex of any bytes (key hashes, token digests): the one hex encoder beside
/// ``Hash256/appendHex(to:)``, which it shares its digits with.
public func hexString(_ bytes: some Sequence<UInt8>) -> String {
    var out: [UInt8] = []
    out.reserveCapacity(bytes.underestimatedCount * 2)
    let digits = hexDigits.utf8Start
    for b in bytes {
        out.append(digits[Int(b >> 4)])
        out.append(digits[Int(b & 0x0F)])
    }
    return String(decoding: out, as: UTF8.self)
}

/// A SHA-256 digest, printed as 64 lowercase hex digits.
public struct Hash256: Sendable, Hashable, CustomStringConvertible {
    /// The 32 bytes as four big-endian words.
    public var words: (UInt64, UInt64, UInt64, UInt64)

    public init(words: (UInt64, UInt64, UInt64, UInt64)) { self.words = words }

    /// 64 zeros: the `prevHash` of the event at offset 0.
    public static let zero = Hash256(words: (0, 0, 0, 0))

    public init(bytes: some Collection<UInt8>) {
        precondition(bytes.count == 32, "a SHA-256 digest is 32 bytes")
        var w: [UInt64] = [0, 0, 0, 0]
        for (i, b) in bytes.enumerated() { w[i / 8] = w[i / 8] << 8 | UInt64(b) }
        words = (w[0], w[1], w[2], w[3])
    }

    public init(_ digest: SHA256.Digest) {
        self = digest.withUnsafeBytes { Hash256(raw: $0) }
    }

    /// From 32 raw bytes (big-endian words).
    @inline(__always)
    public init(raw: UnsafeRawBufferPointer) {
        let p = raw.baseAddress!
        words = (
            UInt64(bigEndian: p.loadUnaligned(as: UInt64.self)), UInt64(bigEndian: p.loadUnaligned(fromByteOffset: 8, as: UInt64.self)),
            UInt64(bigEndian: p.loadUnaligned(fromByteOffset: 16, as: UInt64.self)), UInt64(bigEndian: p.loadUnaligned(fromByteOffset: 24, as: UInt64.self))
        )
    }

    /// SHA-256 of `bytes` (OpenSSL's libcrypto: no context allocated per call).
    public static func of(_ bytes: UnsafeRawBufferPointer) -> Hash256 {
        var state = SHA256State()
        state.update(bytes)
        return state.finalize()
    }

    /// SHA-256 of `first` followed by `second`.
    public static func of(_ first: UnsafeRawBufferPointer, _ second: UnsafeRawBufferPointer) -> Hash256 {
        var state = SHA256State()
        state.update(first)
        state.update(second)
        return state.finalize()
    }

    /// SHA-256 of the UTF-8 bytes of `text`.
    public static func of(utf8 text: String) -> Hash256 {
        var text = text
        return text.withUTF8 { of(UnsafeRawBufferPointer($0)) }
    }

    /// SHA-256 of `bytes`.
    public static func of(_ bytes: [UInt8]) -> Hash256 {
        bytes.withUnsafeBytes { of($0) }
    }

    public var bytes: [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(32)
        func emit(_ w: UInt64) {
            for s in stride(from: 56, through: 0, by: -8) { out.append(UInt8(truncatingIfNeeded: w >> UInt64(s))) }
        }
        emit(words.0)
        emit(words.1)
        emit(words.2)
        emit(words.3)
        return out
    }

    /// Parses 64 lowercase hex digits.
    public init?(hex: String) {
        var hex = hex
        guard let value = hex.withUTF8({ Hash256(hexBytes: UnsafeRawBufferPointer($0)) }) else { return nil }
        self = value
    }

    /// Parses 64 lowercase hex digits from raw bytes (a stored envelope's `hash`, read in place).
    public init?(hexBytes b: UnsafeRawBufferPointer) {
        guard b.count == 64 else { return nil }
        // Straight-line, no allocation: verify reads two of these per event.
        var bad: UInt64 = 0
        @inline(__always) func word(_ at: Int) -> UInt64 {
            var w: UInt64 = 0
            for i in at..<(at + 16) {
                let v = EventID.nibble(b[i])
                bad |= v & 0xF0
                w = w << 4 | (v & 0x0F)
            }
            return w
        }
        let words = (word(0), word(16), word(32), word(48))
        guard bad == 0 else { return nil }
        self.init(words: words)
    }

    public var description: String {
        var out: [UInt8] = []
        out.reserveCapacity(64)
        appendHex(to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// Appends the 64 hex digits to `writer`.
    @inline(__always)
    public func appendHex(to writer: ByteWriter) {
        writer.write(maximum: 64) { p in
            let digits = hexDigits.utf8Start
            @inline(__always) func emit(_ w: UInt64, _ at: Int) {
                var s: UInt64 = 64
                var i = at
                while s > 0 {
                    s -= 4
                    p[i] = digits[Int((w >> s) & 0xF)]
                    i += 1
                }
            }
            emit(words.0, 0)
            emit(words.1, 16)
            emit(words.2, 32)
            emit(words.3, 48)
            return 64
        }
    }

    /// Appends the 64 hex digits to `out`.
    public func appendHex(to out: inout [UInt8]) {
        let start = out.count
        out.append(contentsOf: repeatElement(0, count: 64))
        out.withUnsafeMutableBufferPointer { buffer in
            let p = buffer.baseAddress! + start
            let digits = hexDigits.utf8Start
            @inline(__always) func emit(_ w: UInt64, _ at: Int) {
                var s: UInt64 = 64
                var i = at
                while s > 0 {
                    s -= 4
                    p[i] = digits[Int((w >> s) & 0xF)]
                    i += 1
                }
            }
            emit(words.0, 0)
            emit(words.1, 16)
            emit(words.2, 32)
            emit(words.3, 48)
        }
    }

    public static func == (a: Hash256, b: Hash256) -> Bool { a.words == b.words }
    public func hash(into hasher: inout Hasher) {
        hasher.combine(words.0)
        hasher.combine(words.1)
        hasher.combine(words.2)
        hasher.combine(words.3)
    }
}

/// A SHA-256 in progress: OpenSSL's plain state struct, so that a copy resumes the hash from
/// here (what ``EnvelopeHead`` keeps) without allocating.
public struct SHA256State: @unchecked Sendable {
    // @unchecked: a C struct of integers and bytes, copied by value.
    private var context = SHA256_CTX()

    public init() { ledger_sha256_init(&context) }

    public mutating func update(_ bytes: UnsafeRawBufferPointer) {
        ledger_sha256_update(&context, bytes.baseAddress, bytes.count)
    }

    /// The digest (the state is consumed; copy it first to go on).
    public mutating func finalize() -> Hash256 {
        withUnsafeTemporaryAllocation(byteCount: 32, alignment: 8) { out in
            ledger_sha256_final(&context, out.baseAddress!.assumingMemoryBound(to: UInt8.self))
            return Hash256(raw: UnsafeRawBufferPointer(out))
        }
    }
}
