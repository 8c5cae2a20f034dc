public import Foundation
public import LedgerCore

/// Exact money arithmetic: rates are kept as the decimal text their JSON number reads as
/// (RFC 8785's shortest form: 2.4 is "2.4", not 2.39999…), costs as Foundation `Decimal`
/// (38 significant digits), rounded half-even to cents only when printed.
public enum Money {
    /// The decimal text of an hourly rate, as canonical JSON writes it.
    static func exactRate(_ value: JSONValue?) -> String? {
        guard case .number(let n)? = value, n.isFinite, n >= 0 else { return nil }
        return value!.description
    }

    public static func decimal(_ text: String) -> Decimal? { Decimal(string: text, locale: Locale(identifier: "en_US_POSIX")) }

    /// Rounded half-even to `scale` decimals.
    public static func rounded(_ value: Decimal, scale: Int = 2) -> Decimal {
        var v = value
        var out = Decimal()
        NSDecimalRound(&out, &v, scale, .bankers)
        return out
    }

    /// Text with exactly `scale` decimals (half-even).
    public static func text(_ value: Decimal, scale: Int = 2) -> String {
        let r = rounded(value, scale: scale)
        var s = NSDecimalNumber(decimal: r).stringValue
        if scale > 0 {
            if !s.contains(".") { s += "." }
            let decimals = s.count - 1 - s.distance(from: s.startIndex, to: s.firstIndex(of: ".")!)
            if decimals < scale { s += String(repeating: "0", count: scale - decimals) }
        }
        if s.hasPrefix("-") && r == 0 { s.removeFirst() }
        return s
    }

    /// A JSON number for a money amount rounded to cents.
    public static func json(_ value: Decimal, scale: Int = 2) -> JSONValue {
        .number(NSDecimalNumber(decimal: rounded(value, scale: scale)).doubleValue)
    }
}
