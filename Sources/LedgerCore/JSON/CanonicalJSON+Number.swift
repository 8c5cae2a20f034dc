extension CanonicalJSON {
    /// Appends `value` as ECMAScript's `Number.prototype.toString` prints it (RFC 8785 section 3.2.2.3).
    ///
    /// ECMAScript prints the shortest decimal that reads back as the same double. Swift's
    /// `description` computes exactly those digits (its SwiftDtoa is a shortest round-trip
    /// algorithm); only the layout differs (`1e-07`, `1e+20`, `100.0`), so the digits and the
    /// decimal exponent are taken from it and laid out by ECMAScript's rules.
    public static func writeNumber(_ value: Double, into writer: ByteWriter) throws(LedgerError) {
        guard value.isFinite else {
            throw LedgerError(.invalidJSON, "\(value) is not a JSON number (RFC 8785 forbids NaN and infinities)")
        }
        writeFiniteNumber(value, into: writer)
    }

    @inline(__always)
    static func writeFiniteNumber(_ value: Double, into writer: ByteWriter) {
        if value != 0 && value == value.rounded(.towardZero) && abs(value) < 9_007_199_254_740_992 {
            writer.appendDecimal(Int64(value))
            return
        }
        var out: [UInt8] = []
        try? writeNumber(value, into: &out)
        writer.append(out)
    }

    public static func writeNumber(_ value: Double, into out: inout [UInt8]) throws(LedgerError) {
        guard value.isFinite else {
            throw LedgerError(.invalidJSON, "\(value) is not a JSON number (RFC 8785 forbids NaN and infinities)")
        }
        if value == 0 {
            out.append(UInt8(ascii: "0"))  // also -0
            return
        }
        // Integers below 2^53 are exact and print as themselves.
        if value == value.rounded(.towardZero) && abs(value) < 9_007_199_254_740_992 {
            appendInteger(Int64(value), to: &out)
            return
        }
        var digits: [UInt8] = []
        var exponent = 0  // value = 0.d1d2...dk × 10^exponent
        shortestDigits(of: abs(value), digits: &digits, exponent: &exponent)
        if value < 0 { out.append(UInt8(ascii: "-")) }
        let k = digits.count
        let n = exponent
        if k <= n && n <= 21 {
            out.append(contentsOf: digits)
            for _ in 0..<(n - k) { out.append(UInt8(ascii: "0")) }
        } else if 0 < n && n <= 21 {
            out.append(contentsOf: digits[0..<n])
            out.append(UInt8(ascii: "."))
            out.append(contentsOf: digits[n...])
        } else if -6 < n && n <= 0 {
            out.append(contentsOf: [UInt8(ascii: "0"), UInt8(ascii: ".")])
            for _ in 0..<(-n) { out.append(UInt8(ascii: "0")) }
            out.append(contentsOf: digits)
        } else {
            out.append(digits[0])
            if k > 1 {
                out.append(UInt8(ascii: "."))
                out.append(contentsOf: digits[1...])
            }
            out.append(UInt8(ascii: "e"))
            let e = n - 1
            out.append(e < 0 ? UInt8(ascii: "-") : UInt8(ascii: "+"))
            appendInteger(Int64(abs(e)), to: &out)
        }
    }

    /// The shortest round-trip decimal digits of a positive finite `value` (no leading or
    /// trailing zeros) and the exponent `n` with value = 0.digits × 10^n.
    public static func shortestDigits(of value: Double, digits: inout [UInt8], exponent: inout Int) {
        var text = value.description  // e.g. "123.456", "1e-07", "1.2345e+20", "5e-324"
        text.withUTF8 { bytes in
            var mantissaEnd = bytes.count
            var e10 = 0
            if let e = bytes.firstIndex(where: { $0 == UInt8(ascii: "e") || $0 == UInt8(ascii: "E") }) {
                mantissaEnd = e
                var i = e + 1
                var negative = false
                if bytes[i] == UInt8(ascii: "-") { negative = true; i += 1 } else if bytes[i] == UInt8(ascii: "+") { i += 1 }
                while i < bytes.count {
                    e10 = e10 * 10 + Int(bytes[i] - UInt8(ascii: "0"))
                    i += 1
                }
                if negative { e10 = -e10 }
            }
            var integerDigits = 0
            var seenPoint = false
            for i in 0..<mantissaEnd {
                let b = bytes[i]
                if b == UInt8(ascii: ".") {
                    seenPoint = true
                    continue
                }
                digits.append(b)
                if !seenPoint { integerDigits += 1 }
            }
            // Normalise: drop leading zeros (each moves the point) and trailing zeros.
            var leading = 0
            while leading < digits.count - 1 && digits[leading] == UInt8(ascii: "0") { leading += 1 }
            digits.removeFirst(leading)
            integerDigits -= leading
            while digits.count > 1 && digits.last == UInt8(ascii: "0") { digits.removeLast() }
            exponent = integerDigits + e10
        }
    }

    static func appendInteger(_ value: Int64, to out: inout [UInt8]) {
        if value < 0 { out.append(UInt8(ascii: "-")) }
        var magnitude = value.magnitude
        if magnitude < 10 {
            out.append(UInt8(ascii: "0") + UInt8(magnitude))
            return
        }
        var buffer: (UInt64, UInt64, UInt64) = (0, 0, 0)  // 24 bytes, enough for 20 digits
        let count = withUnsafeMutableBytes(of: &buffer) { raw -> Int in
            var i = raw.count
            while magnitude > 0 {
                i -= 1
                raw[i] = UInt8(ascii: "0") + UInt8(magnitude % 10)
                magnitude /= 10
            }
            out.append(contentsOf: raw[i...])
            return raw.count - i
        }
        _ = count
    }
}
