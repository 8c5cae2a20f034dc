import Foundation
public import LedgerCore

/// Multi-window, multi-burn-rate SLO alerting (SEMANTICS.md, SLO status and alerts).
///
/// On each `serving.window.observed` it evaluates every SLO of the window's deployment: *now* is
/// the latest `windowEnd` seen for the deployment, a window W covers observations with
/// `windowEnd` in (now − W, now], and a pair alerts when both its windows burn faster than its
/// threshold (a window without requests never does). `slo.burn.alerted` when a pair starts
/// exceeding, `slo.burn.resolved` when an observation shows it stopped; never twice for one open
/// alert.
public final class SLOBurn: Processor {
    public let name = "slo"
    public let inputTypes: Set<String> = ["slo.defined", "serving.window.observed"]

    public struct Pair: Sendable {
        public var severity: String
        public var long: String
        public var longMs: Int64
        public var short: String
        public var shortMs: Int64
        public var threshold: Double
    }

    /// The table of SEMANTICS.md, in its order.
    public static let pairs: [Pair] = [
        Pair(severity: "page", long: "1h", longMs: 3_600_000, short: "5m", shortMs: 300_000, threshold: 14.4),
        Pair(severity: "page", long: "6h", longMs: 21_600_000, short: "30m", shortMs: 1_800_000, threshold: 6),
        Pair(severity: "ticket", long: "3d", longMs: 259_200_000, short: "6h", shortMs: 21_600_000, threshold: 1),
    ]
    static let longest: Int64 = 259_200_000

    struct SLO: Codable {
        var deployment: String
        var objective: Double
        var sli: String
    }

    struct Sums: Codable {
        var requests = 0.0
        var errors = 0.0
        var slow = 0.0
    }

    struct Observation: Codable {
        var end: Int64
        var requests: Double
        var errors: Double
        var slow: Double
        var id: EventID
    }

    /// One deployment's observations in `windowEnd` order, with prefix sums.
    ///
    /// In a snapshot the observations are one base64 string of packed little-endian fields (and
    /// the prefix sums are recomputed on restore): three days of windows of every deployment
    /// encoded field by field cost the encoder hundreds of megabytes for a moment.
    struct Series: Codable {
        enum CodingKeys: String, CodingKey { case now, packed }

        init() {}

        init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            now = try c.decode(Int64.self, forKey: .now)
            guard let bytes = Data(base64Encoded: try c.decode(String.self, forKey: .packed)), bytes.count % 48 == 0 else {
                throw DecodingError.dataCorruptedError(forKey: .packed, in: c, debugDescription: "observations are not whole 48-byte records")
            }
            observations.reserveCapacity(bytes.count / 48)
            bytes.withUnsafeBytes { raw in
                for i in stride(from: 0, to: raw.count, by: 48) {
                    func u64(_ at: Int) -> UInt64 { UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: i + at, as: UInt64.self)) }
                    observations.append(Observation(
                        end: Int64(bitPattern: u64(0)), requests: Double(bitPattern: u64(8)), errors: Double(bitPattern: u64(16)),
                        slow: Double(bitPattern: u64(24)), id: EventID(high: u64(32), low: u64(40))))
                }
            }
            prefix = [Sums()]
            prefix.reserveCapacity(observations.count + 1)
            for o in observations {
                var s = prefix[prefix.count - 1]
                s.requests += o.requests
                s.errors += o.errors
                s.slow += o.slow
                prefix.append(s)
            }
        }

        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(now, forKey: .now)
            var bytes = Data(capacity: observations.count * 48)
            func put(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
            for o in observations {
                put(UInt64(bitPattern: o.end))
                put(o.requests.bitPattern)
                put(o.errors.bitPattern)
                put(o.slow.bitPattern)
                put(o.id.high)
                put(o.id.low)
            }
            try c.encode(bytes.base64EncodedString(), forKey: .packed)
        }

        var observations: [Observation] = []
        /// `prefix[i]` = sums of `observations[0..<i]`.
        var prefix: [Sums] = [Sums()]
        var now: Int64 = Int64.min

        mutating func add(_ o: Observation) {
            now = max(now, o.end)
            var i = observations.count
            while i > 0 && observations[i - 1].end > o.end { i -= 1 }
            observations.insert(o, at: i)
            prefix.removeSubrange((i + 1)...)
            for j in i..<observations.count {
                var s = prefix[j]
                s.requests += observations[j].requests
                s.errors += observations[j].errors
                s.slow += observations[j].slow
                prefix.append(s)
            }
            // Forget what no window can reach any more (in bulk, so the cost stays flat).
            if observations.count > 64, observations[observations.count / 2].end <= now - SLOBurn.longest {
                let keep = firstIndex(after: now - SLOBurn.longest)
                let base = prefix[keep]
                observations.removeFirst(keep)
                prefix = prefix[keep...].map { Sums(requests: $0.requests - base.requests, errors: $0.errors - base.errors, slow: $0.slow - base.slow) }
            }
        }

        /// First index whose `end` is greater than `time`.
        func firstIndex(after time: Int64) -> Int {
            var lo = 0
            var hi = observations.count
            while lo < hi {
                let mid = (lo + hi) / 2
                if observations[mid].end > time { hi = mid } else { lo = mid + 1 }
            }
            return lo
        }

        func sums(_ window: Int64) -> Sums {
            let lo = firstIndex(after: now - window)
            let a = prefix[observations.count]
            let b = prefix[lo]
            return Sums(requests: a.requests - b.requests, errors: a.errors - b.errors, slow: a.slow - b.slow)
        }
    }

    struct State: Codable, Sendable {
        var slos: [String: SLO] = [:]
        /// deployment → its SLOs, sorted.
        var byDeployment: [String: [String]] = [:]
        var series: [String: Series] = [:]
        /// Open alerts: "slo/severity/long/short".
        @SortedOnEncode var open: Set<String> = []
    }

    var state = State()

    /// SLO → its open-alert keys, one per pair (derived, never in a snapshot).
    private var keyCache: [String: [String]] = [:]
    private func alertKeys(_ slo: String) -> [String] {
        if let keys = keyCache[slo] { return keys }
        let keys = SLOBurn.pairs.map { "\(slo)/\($0.severity)/\($0.long)/\($0.short)" }
        keyCache[slo] = keys
        return keys
    }

    public init() {}

    public func capture() -> StateCapture { StateCapture(state: state) }
    public func restore(_ bytes: [UInt8]) throws { state = try JSONDecoder().decode(State.self, from: Data(bytes)) }

    /// Burn rate of `sums` for an SLO: (bad/total) / (1 − objective); nil without requests.
    static func burn(_ s: Sums, _ slo: SLO) -> Double? {
        guard s.requests > 0 else { return nil }
        let bad = slo.sli == "latency" ? s.slow : s.errors
        return (bad / s.requests) / (1 - slo.objective)
    }

    public func apply(_ event: Envelope) -> [Decision] {
        let d = event.data
        switch event.type {
        case "slo.defined":
            guard let slo = d.string("slo"), let deployment = d.string("deployment"), let objective = d.double("objective") else { return [] }
            if let old = state.slos[slo], old.deployment != deployment { state.byDeployment[old.deployment]?.removeAll { $0 == slo } }
            state.slos[slo] = SLO(deployment: deployment, objective: objective, sli: d.string("sli") ?? "availability")
            var list = state.byDeployment[deployment] ?? []
            if !list.contains(slo) {
                list.append(slo)
                list.sort()
            }
            state.byDeployment[deployment] = list
            return []
        case "serving.window.observed":
            guard let deployment = d.string("deployment"), let endText = d.string("windowEnd"), let end = Timestamp(endText),
                let requests = d.double("requests")
            else { return [] }
            // Added in place: a copy taken out of the dictionary would copy the whole series
            // (copy on write) for every observation.
            state.series[deployment, default: Series()].add(
                Observation(end: end.milliseconds, requests: requests, errors: d.double("errors") ?? 0, slow: d.double("slowRequests") ?? 0, id: event.id))
            guard let slos = state.byDeployment[deployment], !slos.isEmpty, let series = state.series[deployment] else { return [] }
            var out = DecisionBuilder(processor: name, trigger: event)
            for sloName in slos {
                guard let slo = state.slos[sloName] else { continue }
                let keys = alertKeys(sloName)
                for (pair, key) in zip(SLOBurn.pairs, keys) {
                    let long = SLOBurn.burn(series.sums(pair.longMs), slo)
                    let short = SLOBurn.burn(series.sums(pair.shortMs), slo)
                    let exceeding = (long ?? 0) > pair.threshold && (short ?? 0) > pair.threshold && long != nil && short != nil
                    let isOpen = state.open.contains(key)
                    if exceeding && !isOpen {
                        state.open.insert(key)
                        let from = series.firstIndex(after: series.now - pair.shortMs)
                        let evidence = series.observations[from...].suffix(1024).map(\.id)
                        out.add(stream: "slo-" + sloName, type: "slo.burn.alerted",
                            data: ["slo": .string(sloName), "deployment": .string(deployment), "severity": .string(pair.severity),
                                   "longWindow": .string(pair.long), "shortWindow": .string(pair.short), "burnRateLong": .number(rounded(long!)),
                                   "burnRateShort": .number(rounded(short!)), "threshold": .number(pair.threshold), "evidence": .ids(evidence)],
                            correlation: nil)
                    } else if !exceeding && isOpen {
                        state.open.remove(key)
                        out.add(stream: "slo-" + sloName, type: "slo.burn.resolved",
                            data: ["slo": .string(sloName), "deployment": .string(deployment), "severity": .string(pair.severity),
                                   "longWindow": .string(pair.long), "shortWindow": .string(pair.short)],
                            correlation: nil)
                    }
                }
            }
            return out.decisions
        default:
            return []
        }
    }
}
