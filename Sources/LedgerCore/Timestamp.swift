/// A UTC instant with millisecond precision, written exactly as `2026-11-30T12:00:00.000Z`.
///
/// The ledger's only notion of time: envelope `time` and every time inside `data`. Conversions
/// are pure arithmetic on the proleptic Gregorian calendar (no time zones, no leap seconds).
public struct Timestamp: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// Milliseconds since 1970-01-01T00:00:00.000Z.
    public var milliseconds: Int64

    public init(milliseconds: Int64) { self.milliseconds = milliseconds }

    public static func < (a: Timestamp, b: Timestamp) -> Bool { a.milliseconds < b.milliseconds }

    public static let millisecondsPerDay: Int64 = 86_400_000

    /// Parses the exact form `YYYY-MM-DDTHH:MM:SS.mmmZ`, refusing dates that do not exist.
    public init?(_ text: String) {
        var text = text
        guard let value = text.withUTF8({ Timestamp.parse($0) }) else { return nil }
        self = value
    }

    /// ``init(_:)`` from UTF-8 bytes.
    public static func parse(_ b: UnsafeBufferPointer<UInt8>) -> Timestamp? {
        guard b.count == 24, b[4] == 0x2D, b[7] == 0x2D, b[10] == 0x54, b[13] == 0x3A, b[16] == 0x3A,
            b[19] == 0x2E, b[23] == 0x5A
        else { return nil }
        func number(_ from: Int, _ count: Int) -> Int? {
            var v = 0
            for i in from..<(from + count) {
                let d = Int(b[i]) - 48
                guard d >= 0 && d <= 9 else { return nil }
                v = v * 10 + d
            }
            return v
        }
        guard let year = number(0, 4), let month = number(5, 2), let day = number(8, 2),
            let hour = number(11, 2), let minute = number(14, 2), let second = number(17, 2),
            let milli = number(20, 3),
            (1...12).contains(month), day >= 1, day <= Timestamp.daysIn(month: month, year: year),
            hour < 24, minute < 60, second < 60
        else { return nil }
        let days = Timestamp.daysFromCivil(year: year, month: month, day: day)
        let ms = ((Int64(days) * 24 + Int64(hour)) * 60 + Int64(minute)) * 60_000 + Int64(second) * 1000 + Int64(milli)
        return Timestamp(milliseconds: ms)
    }

    /// `YYYY-MM-DDTHH:MM:SS.mmmZ`.
    public var description: String {
        var bytes = [UInt8](repeating: 0, count: 24)
        write(into: &bytes, at: 0)
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Appends the 24 bytes of the text form to `writer`.
    @inline(__always)
    public func append(to writer: ByteWriter) {
        writer.write(maximum: 24) { p in
            write(into: p)
            return 24
        }
    }

    /// Appends the 24 bytes of the text form to `out`.
    public func append(to out: inout [UInt8]) {
        let start = out.count
        out.append(contentsOf: repeatElement(0, count: 24))
        write(into: &out, at: start)
    }

    func write(into out: inout [UInt8], at start: Int) {
        out.withUnsafeMutableBufferPointer { write(into: $0.baseAddress! + start) }
    }

    func write(into p: UnsafeMutablePointer<UInt8>) {
        var days = milliseconds / Timestamp.millisecondsPerDay
        var ms = milliseconds % Timestamp.millisecondsPerDay
        if ms < 0 {
            ms += Timestamp.millisecondsPerDay
            days -= 1
        }
        let (year, month, day) = Timestamp.civilFromDays(Int(days))
        func put(_ value: Int, _ at: Int, _ count: Int) {
            var v = value
            var i = at + count - 1
            while i >= at {
                p[i] = UInt8(48 + v % 10)
                v /= 10
                i -= 1
            }
        }
        put(year, 0, 4)
        p[4] = 0x2D
        put(month, 5, 2)
        p[7] = 0x2D
        put(day, 8, 2)
        p[10] = 0x54
        put(Int(ms / 3_600_000), 11, 2)
        p[13] = 0x3A
        put(Int(ms / 60_000 % 60), 14, 2)
        p[16] = 0x3A
        put(Int(ms / 1000 % 60), 17, 2)
        p[19] = 0x2E
        put(Int(ms % 1000), 20, 3)
        p[23] = 0x5A
    }

    /// The start of the UTC day holding this instant.
    public var startOfDay: Timestamp {
        var days = milliseconds / Timestamp.millisecondsPerDay
        if milliseconds % Timestamp.millisecondsPerDay < 0 { days -= 1 }
        return Timestamp(milliseconds: days * Timestamp.millisecondsPerDay)
    }

    public func adding(milliseconds delta: Int64) -> Timestamp { Timestamp(milliseconds: milliseconds + delta) }

    static func isLeap(_ year: Int) -> Bool { (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 }

    static func daysIn(month: Int, year: Int) -> Int {
        switch month {
        case 2: return isLeap(year) ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }

    /// Days since 1970-01-01 of a civil date (H. Hinnant's algorithm).
    static func daysFromCivil(year: Int, month: Int, day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let mp = (month + 9) % 12
        let doy = (153 * mp + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    static func civilFromDays(_ days: Int) -> (Int, Int, Int) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let day = doy - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        return (yoe + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }
}
