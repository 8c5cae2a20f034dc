import CLibCrypto

/// SHA-256 in bulk. The Merkle tree's leaf and node hashes (``leaf(_:)``, ``node(_:_:)``) call
/// the compression function on blocks whose padding is fixed; an instance hashes any message
/// with one OpenSSL digest context fetched once and reused (`ledger bench proofs` compares the
/// two). An instance is not for sharing between threads.
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

    /// `SHA-256(0x00 ‖ event hash)`, a Merkle leaf: one compression of a stack block whose
    /// padding is fixed (no context kept).
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

    /// `SHA-256(0x01 ‖ left ‖ right)`, a Merkle node: two compressions, the padding fixed.
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
}
