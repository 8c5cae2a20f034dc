import Histogram

/// The benchmarks' latency percentiles, all computed one way: an HDR histogram
/// (hdrhistogram-swift) of nanoseconds with three significant digits, auto-resizing.
struct Latencies {
    private var histogram = Histogram<UInt64>(numberOfSignificantValueDigits: .three)

    init() {}

    /// From durations in seconds.
    init<S: Sequence>(seconds: S) where S.Element == Double {
        for s in seconds { record(seconds: s) }
    }

    mutating func record(seconds: Double) {
        _ = histogram.record(UInt64(max(0, seconds) * 1e9))
    }

    var count: Int { Int(histogram.totalCount) }
    var isEmpty: Bool { histogram.totalCount == 0 }

    /// The value at quantile `q` (0…1; 1 is the largest recorded), in seconds; 0 when empty.
    func seconds(at q: Double) -> Double {
        guard !isEmpty else { return 0 }
        return Double(q >= 1 ? histogram.maxRecorded : histogram.valueAtPercentile(q * 100)) / 1e9
    }

    /// `p50 1.23 ms`-style text of one quantile: milliseconds with `digits` decimals ("-" when empty).
    func ms(_ q: Double, digits: Int = 2) -> String { isEmpty ? "-" : Format.fixed(seconds(at: q) * 1000, digits) }

    /// Microseconds, no decimals.
    func us(_ q: Double) -> String { isEmpty ? "-" : Format.fixed(seconds(at: q) * 1e6, 0) }
}
