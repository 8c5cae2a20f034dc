import CLibCrypto

/// SHA-256 for hashing in bulk on one thread: one OpenSSL digest context, fetched once and
/// reused for every message (about 130 ns for a 65-byte Merkle node on this machine, against
/// ~360 ns for a one-shot call that sets everything up again). Not for sharing between threads:
/// make one per thread or per task.
public final class BulkSHA256 {
    private let md: OpaquePointer
    private let context: OpaquePointer

    public init() {
        guard let md = EVP_MD_fetch(nil, "SHA256", nil), let context = EVP_MD_CTX_new() else {
            fatalError("OpenSSL's libcrypto has no SHA-256")
        }
        self.md = md
        self.context = context
    }

    deinit {
        EVP_MD_CTX_free(context)
        EVP_MD_free(md)
    }

    /// SHA-256 of `bytes`.
    public func hash(_ bytes: UnsafeRawBufferPointer) -> Hash256 {
        var out = (UInt64(0), UInt64(0), UInt64(0), UInt64(0))
        withUnsafeMutableBytes(of: &out) { o in
            var length: UInt32 = 0
            guard EVP_DigestInit_ex(context, md, nil) == 1, EVP_DigestUpdate(context, bytes.baseAddress, bytes.count) == 1,
                EVP_DigestFinal_ex(context, o.baseAddress!.assumingMemoryBound(to: UInt8.self), &length) == 1, length == 32
            else { fatalError("OpenSSL's SHA-256 failed") }
        }
        return withUnsafeBytes(of: &out) { Hash256(raw: $0) }
    }

    /// `SHA-256(0x00 ‖ event hash)`: a Merkle leaf (one compression, its padding fixed).
    public func leafHash(_ eventHash: Hash256) -> Hash256 { BulkSHA256.leaf(eventHash) }

    /// `SHA-256(0x01 ‖ left ‖ right)`: a Merkle node (two compressions, the padding fixed).
    public func nodeHash(_ left: Hash256, _ right: Hash256) -> Hash256 { BulkSHA256.node(left, right) }

    /// A Merkle leaf hash without an instance (no context is kept: the compression function is
    /// called on a stack block).
    public static func leaf(_ eventHash: Hash256) -> Hash256 {
        var input = eventHash.bigEndianBytes
        var out = Hash256.zero.bigEndianBytes
        withUnsafeBytes(of: &input) { i in
            withUnsafeMutableBytes(of: &out) { o in
                ledger_merkle_leaf(i.baseAddress!.assumingMemoryBound(to: UInt8.self), o.baseAddress!.assumingMemoryBound(to: UInt8.self))
            }
        }
        return withUnsafeBytes(of: &out) { Hash256(raw: $0) }
    }

    /// A Merkle node hash without an instance.
    public static func node(_ left: Hash256, _ right: Hash256) -> Hash256 {
        var l = left.bigEndianBytes
        var r = right.bigEndianBytes
        var out = Hash256.zero.bigEndianBytes
        withUnsafeBytes(of: &l) { lp in
            withUnsafeBytes(of: &r) { rp in
                withUnsafeMutableBytes(of: &out) { o in
                    ledger_merkle_node(
                        lp.baseAddress!.assumingMemoryBound(to: UInt8.self), rp.baseAddress!.assumingMemoryBound(to: UInt8.self),
                        o.baseAddress!.assumingMemoryBound(to: UInt8.self))
                }
            }
        }
        return withUnsafeBytes(of: &out) { Hash256(raw: $0) }
    }
}

extension Hash256 {
    /// The 32 digest bytes in order, as a value (words stored big-endian).
    @inline(__always)
    public var bigEndianBytes: (UInt64, UInt64, UInt64, UInt64) {
        (words.0.bigEndian, words.1.bigEndian, words.2.bigEndian, words.3.bigEndian)
    }

    /// Writes the 32 bytes (big-endian words) at `p`.
    @inline(__always)
    func store(into p: UnsafeMutableRawPointer) {
        p.storeBytes(of: words.0.bigEndian, toByteOffset: 0, as: UInt64.self)
        p.storeBytes(of: words.1.bigEndian, toByteOffset: 8, as: UInt64.self)
        p.storeBytes(of: words.2.bigEndian, toByteOffset: 16, as: UInt64.self)
        p.storeBytes(of: words.3.bigEndian, toByteOffset: 24, as: UInt64.self)
    }
}
