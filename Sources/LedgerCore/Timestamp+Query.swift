/// A time given to a *query* (`--from`, `--to`, `--as-of`, `--since`, `--until`, HTTP `asOf`):
/// RFC 3339 as people write it, or a date. Stored event times keep their one strict form
/// (`Timestamp(_:)`); this is only for reading what people type.
public struct QueryTime: Sendable, Equatable {
    /// The instant (for a date, its first millisecond, 00:00:00.000Z).
    public var instant: Timestamp
    /// Whether only a date was given (`2026-11-02`): the whole UTC day is meant.
    public var isDate: Bool

    /// The first millisecond after the given day or instant: where an inclusive `--to DATE` ends.
    public var endOfDay: Timestamp { Timestamp(milliseconds: instant.milliseconds + Timestamp.millisecondsPerDay) }

    public init(instant: Timestamp, isDate: Bool) {
        self.instant = instant
        self.isDate = isDate
    }

    /// Parses `2026-11-02`, or RFC 3339 date-times: `2026-11-02T00:00:00Z`,
    /// `2026-11-02t10:15:30.5z`, fractional seconds of any length (kept to the millisecond,
    /// truncated), and numeric offsets (`+01:00`, `-05:30`); a space may stand for `T`. Dates that
    /// do not exist on the calendar are refused.
    public init?(_ text: String) {
        let b = Array(text.utf8)
        func digits(_ from: Int, _ count: Int) -> Int? {
            guard from + count <= b.count else { return nil }
            var v = 0
            for i in from..<(from + count) {
                let d = Int(b[i]) - 48
                guard d >= 0 && d <= 9 else { return nil }
                v = v * 10 + d
            }
            return v
        }
        guard b.count >= 10, b[4] == 0x2D, b[7] == 0x2D, let year = digits(0, 4), let month = digits(5, 2), let day = digits(8, 2),
            (1...12).contains(month), day >= 1, day <= Timestamp.daysIn(month: month, year: year)
        else { return nil }
        let days = Int64(Timestamp.daysFromCivil(year: year, month: month, day: day))
        if b.count == 10 {
            self.init(instant: Timestamp(milliseconds: days * Timestamp.millisecondsPerDay), isDate: true)
            return
        }
        guard b.count >= 20, b[10] == 0x54 || b[10] == 0x74 || b[10] == 0x20, b[13] == 0x3A, b[16] == 0x3A,
            let hour = digits(11, 2), let minute = digits(14, 2), let second = digits(17, 2), hour < 24, minute < 60, second < 60
        else { return nil }
        var i = 19
        var millis = 0
        if b[i] == 0x2E {
            i += 1
            let start = i
            while i < b.count, b[i] >= 0x30, b[i] <= 0x39 {
                if i - start < 3 { millis = millis * 10 + Int(b[i] - 0x30) }
                i += 1
            }
            guard i > start else { return nil }
            for _ in 0..<max(0, 3 - (i - start)) { millis *= 10 }
        }
        guard i < b.count else { return nil }
        var offsetMinutes = 0
        if b[i] == 0x5A || b[i] == 0x7A {
            i += 1
        } else if b[i] == 0x2B || b[i] == 0x2D {
            guard i + 6 == b.count, b[i + 3] == 0x3A, let h = digits(i + 1, 2), let m = digits(i + 4, 2), h < 24, m < 60 else { return nil }
            offsetMinutes = (h * 60 + m) * (b[i] == 0x2D ? -1 : 1)
            i += 6
        } else {
            return nil
        }
        guard i == b.count else { return nil }
        let ms = ((days * 24 + Int64(hour)) * 60 + Int64(minute) - Int64(offsetMinutes)) * 60_000 + Int64(second) * 1000 + Int64(millis)
        self.init(instant: Timestamp(milliseconds: ms), isDate: false)
    }

    /// What the CLI and the API say when a query time does not parse.
    public static func explain(_ text: String, option: String) -> String {
        "\(option) takes a date (2026-11-23) or an RFC 3339 time (2026-11-23T00:00:00Z, 2026-11-23T10:15:30.250+01:00), not \"\(text.prefix(64))\""
    }
}
