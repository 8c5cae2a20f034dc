/// A growable byte buffer written through a raw pointer: the hot serialisation paths (canonical
/// JSON, envelopes, record batches) append here without the per-byte checks of `Array.append`.
///
/// - Important: not thread-safe; one writer per thread. Reuse one (``reset()``) rather than
///   making one per event.
public final class ByteWriter {
    // Unchecked exclusivity: a ByteWriter is used by one thread at a time and never re-entered;
    // dynamic access checks on these fields were a tenth of the append path's instructions.
    @exclusivity(unchecked) public private(set) var base: UnsafeMutablePointer<UInt8>
    @exclusivity(unchecked) public private(set) var count = 0
    @exclusivity(unchecked) public private(set) var capacity: Int

    public init(capacity: Int = 4096) {
        self.capacity = max(64, capacity)
        base = .allocate(capacity: self.capacity)
    }

    deinit { base.deallocate() }

    @inline(__always) public func reset() { count = 0 }

    /// Makes room for `n` more bytes.
    @inline(__always) public func reserve(_ n: Int) {
        if count + n > capacity { grow(count + n) }
    }

    private func grow(_ needed: Int) {
        var newCapacity = capacity * 2
        while newCapacity < needed { newCapacity *= 2 }
        let bigger = UnsafeMutablePointer<UInt8>.allocate(capacity: newCapacity)
        bigger.update(from: base, count: count)
        base.deallocate()
        base = bigger
        capacity = newCapacity
    }

    @inline(__always) public func append(_ byte: UInt8) {
        reserve(1)
        base[count] = byte
        count += 1
    }

    @inline(__always) public func append(_ bytes: UnsafeRawBufferPointer) {
        guard bytes.count > 0 else { return }
        reserve(bytes.count)
        UnsafeMutableRawPointer(base + count).copyMemory(from: bytes.baseAddress!, byteCount: bytes.count)
        count += bytes.count
    }

    @inline(__always) public func append(_ literal: StaticString) {
        append(UnsafeRawBufferPointer(start: literal.utf8Start, count: literal.utf8CodeUnitCount))
    }

    public func append(_ bytes: [UInt8]) { bytes.withUnsafeBytes { append($0) } }
    public func append(_ bytes: ArraySlice<UInt8>) { bytes.withUnsafeBytes { append($0) } }

    /// Appends the UTF-8 of `string` as is (no escaping).
    @inline(__always) public func append(utf8 string: String) {
        var string = string
        string.withUTF8 { append(UnsafeRawBufferPointer($0)) }
    }

    /// Appends `value` little-endian. The concrete forms below are what other modules call: a
    /// generic one is not specialised across modules, and its witness-table calls were 4 % of
    /// the sequencing thread.
    @inline(__always) public func appendLE(_ value: UInt16) { appendFixed(value) }
    @inline(__always) public func appendLE(_ value: UInt32) { appendFixed(value) }
    @inline(__always) public func appendLE(_ value: UInt64) { appendFixed(value) }
    @inline(__always) public func appendLE(_ value: Int64) { appendFixed(value) }

    @inline(__always) func appendFixed<T: FixedWidthInteger>(_ value: T) {
        reserve(MemoryLayout<T>.size)
        UnsafeMutableRawPointer(base + count).storeBytes(of: value.littleEndian, as: T.self)
        count += MemoryLayout<T>.size
    }

    /// Appends `value` little-endian (any width; within this module it is specialised).
    @inline(__always) public func appendLE<T: FixedWidthInteger>(_ value: T) { appendFixed(value) }

    /// Overwrites 4 bytes at `position` with `value` little-endian.
    @inline(__always) public func patchLE(_ value: UInt32, at position: Int) {
        UnsafeMutableRawPointer(base + position).storeBytes(of: value.littleEndian, as: UInt32.self)
    }

    /// Gives `body` room for `maximum` bytes at the end; it returns how many it wrote.
    @inline(__always) public func write(maximum: Int, _ body: (UnsafeMutablePointer<UInt8>) -> Int) {
        reserve(maximum)
        count += body(base + count)
    }

    /// Drops the bytes after `newCount`.
    @inline(__always) public func truncate(to newCount: Int) {
        precondition(newCount <= count)
        count = newCount
    }

    public var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: count) }

    /// A copy of the bytes from `start`.
    public func array(from start: Int = 0) -> [UInt8] {
        Array(UnsafeBufferPointer(start: base + start, count: count - start))
    }

    /// Appends an integer in decimal.
    @inline(__always) public func appendDecimal(_ value: Int64) {
        write(maximum: 20) { p in ByteWriter.writeDecimal(value, into: p) }
    }

    /// Writes `value` in decimal at `p` (at most 20 bytes); returns how many bytes: the one
    /// decimal writer.
    @inline(__always) public static func writeDecimal(_ value: Int64, into p: UnsafeMutablePointer<UInt8>) -> Int {
        var magnitude = value.magnitude
        var i = 0
        if value < 0 {
            p[0] = UInt8(ascii: "-")
            i = 1
        }
        if magnitude < 10 {
            p[i] = 48 + UInt8(magnitude)
            return i + 1
        }
        var digits = 0
        var m = magnitude
        while m > 0 {
            digits += 1
            m /= 10
        }
        var j = i + digits - 1
        while magnitude > 0 {
            p[j] = 48 + UInt8(magnitude % 10)
            magnitude /= 10
            j -= 1
        }
        return i + digits
    }

    /// Appends a JSON string literal, escaped as RFC 8785 prescribes.
    @inline(__always) public func appendJSONString(_ string: String) {
        var string = string
        string.withUTF8 { appendJSONString(utf8: $0) }
    }

    public func appendJSONString(utf8 bytes: UnsafeBufferPointer<UInt8>) {
        reserve(bytes.count + 2)
        base[count] = 0x22
        count += 1
        var runStart = 0
        var i = 0
        let n = bytes.count
        while i < n {
            let b = bytes[i]
            if b >= 0x20 && b != 0x22 && b != 0x5C {
                i += 1
                continue
            }
            if runStart < i { append(UnsafeRawBufferPointer(UnsafeBufferPointer(rebasing: bytes[runStart..<i]))) }
            runStart = i + 1
            switch b {
            case 0x22: append("\\\"")
            case 0x5C: append("\\\\")
            case 0x08: append("\\b")
            case 0x09: append("\\t")
            case 0x0A: append("\\n")
            case 0x0C: append("\\f")
            case 0x0D: append("\\r")
            default:
                let digits = hexDigits.utf8Start
                append("\\u00")
                append(digits[Int(b >> 4)])
                append(digits[Int(b & 0xF)])
            }
            i += 1
        }
        if runStart < n { append(UnsafeRawBufferPointer(UnsafeBufferPointer(rebasing: bytes[runStart..<n]))) }
        append(0x22)
    }
}
