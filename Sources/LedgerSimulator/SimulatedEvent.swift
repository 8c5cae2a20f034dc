public import LedgerCore

/// One event of the simulated platform: when it happens, who does it, what it is.
public struct SimulatedEvent: Sendable {
    public var time: Timestamp
    public var actor: String
    public var request: AppendRequest
    /// A `model.version.created` whose lineage (the training job and its datasets) is filled in
    /// when it is played, from the jobs that had really completed by then.
    var lineageModel: String? = nil
    /// For such a version: trained on PII on purpose, without the privacy approval (the demo's
    /// held rollout).
    var privacyHold = false
    /// For such a version, approved: when the privacy officer reviews it, should its lineage turn
    /// out to include a PII dataset.
    var privacyReviewAt: Int64? = nil

    public init(time: Timestamp, actor: String, stream: String, type: String, data: JSONObject, correlationId: String? = nil, causationId: EventID? = nil) {
        self.time = time
        self.actor = actor
        request = AppendRequest(
            stream: stream, type: type, data: data, causationId: causationId, correlationId: correlationId,
            time: time, actor: actor)
    }

    /// The line of `ledger import --preserve-time` for this event (with its id, when one is set).
    public func importLine(id: EventID) -> JSONValue {
        var o: JSONObject = [
            "id": .string(id.description), "stream": .string(request.stream), "type": .string(request.type),
            "time": .string(time.description), "actor": .string(actor), "data": .object(request.data),
        ]
        if let c = request.correlationId { o["correlationId"] = .string(c) }
        if let c = request.causationId { o["causationId"] = .string(c.description) }
        if request.schemaVersion != 1 { o["schemaVersion"] = .number(Double(request.schemaVersion)) }
        return .object(o)
    }
}

/// SplitMix64: small, fast and seedable; the whole simulation is a function of its seed. The
/// package's one seeded generator: the tests' `SeededGenerator` is this one started at its seed.
public struct SeededRandom: RandomNumberGenerator, Sendable {
    public private(set) var state: UInt64
    public init(seed: UInt64) { state = seed ^ 0x5DEE_CE66_D1CE_4E5B }
    /// Started at `state` as it is (the simulator's `init(seed:)` mixes its seed in first).
    public init(state: UInt64) { self.state = state }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    public mutating func unit() -> Double { Double(next() >> 11) / Double(1 << 53) }
    public mutating func chance(_ p: Double) -> Bool { unit() < p }
    public mutating func int(_ range: ClosedRange<Int>) -> Int { range.lowerBound + Int(next() % UInt64(range.count)) }
    public mutating func pick<T>(_ items: [T]) -> T { items[Int(next() % UInt64(items.count))] }

    /// Exponential with the given mean.
    public mutating func exponential(mean: Double) -> Double { -mean * log(1 - unit()) }

    /// Standard normal (Box–Muller).
    public mutating func normal() -> Double {
        let u1 = max(unit(), 1e-12)
        let u2 = unit()
        return (-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2)
    }

    /// Poisson draw (Knuth for small means, normal approximation above 50).
    public mutating func poisson(_ mean: Double) -> Int {
        if mean <= 0 { return 0 }
        if mean > 50 { return max(0, Int((mean + normal() * mean.squareRoot()).rounded())) }
        let limit = exp(-mean)
        var k = 0
        var p = 1.0
        repeat {
            k += 1
            p *= unit()
        } while p > limit
        return k - 1
    }

    /// Weighted choice.
    public mutating func weighted<T>(_ choices: [(T, Double)]) -> T {
        let total = choices.reduce(0) { $0 + $1.1 }
        var x = unit() * total
        for (value, weight) in choices {
            x -= weight
            if x < 0 { return value }
        }
        return choices[choices.count - 1].0
    }
}

#if canImport(Glibc)
import Glibc
#endif
