import Foundation
public import LedgerCore

/// Drift alerting (SEMANTICS.md, Drift): PSI of each `feature.histogram.observed` against the
/// version's `baseline` histogram of that feature, proportions floored at 1e-4; `warning` at
/// PSI ≥ 0.1, `high` at PSI ≥ 0.25; one alert per (deployment, version, feature, severity) until
/// PSI falls below 0.1 again. A `high` alert also opens the `warning` episode (PSI above 0.25 is
/// above 0.1), so an episode never alerts a lower severity after a higher one.
public final class DriftDetector: Processor {
    public let name = "drift"
    public let inputTypes: Set<String> = ["model.version.created", "feature.histogram.observed"]

    public static let warning = 0.1
    public static let high = 0.25
    public static let floor = 1e-4

    struct Baseline: Codable {
        var bins: [String]
        var counts: [Double]
        var event: EventID
    }

    struct State: Codable, Sendable {
        /// "model@version" → feature → baseline.
        var baselines: [String: [String: Baseline]] = [:]
        /// Open episodes: "deployment/version/feature/severity".
        @SortedOnEncode var open: Set<String> = []
    }

    var state = State()

    public init() {}

    public func capture() -> StateCapture { StateCapture(state: state) }
    public func restore(_ bytes: [UInt8]) throws { state = try JSONDecoder().decode(State.self, from: Data(bytes)) }

    /// Population stability index of `observed` against `baseline` counts (same bins).
    public static func psi(observed: [Double], baseline: [Double]) -> Double {
        let po = observed.reduce(0, +)
        let pb = baseline.reduce(0, +)
        guard po > 0, pb > 0, observed.count == baseline.count else { return 0 }
        var sum = 0.0
        for i in observed.indices {
            let p = max(observed[i] / po, floor)
            let q = max(baseline[i] / pb, floor)
            sum += (p - q) * log(p / q)
        }
        return sum
    }

    public func apply(_ event: Envelope) -> [Decision] {
        let d = event.data
        switch event.type {
        case "model.version.created":
            guard let model = d.string("model"), let version = d.string("version"), let baseline = d.object("baseline") else { return [] }
            var features: [String: Baseline] = [:]
            for member in baseline {
                guard let h = member.value.objectValue, let bins = h.array("bins")?.compactMap(\.stringValue),
                    let counts = h.array("counts")?.compactMap(\.doubleValue), bins.count == counts.count
                else { continue }
                features[member.key] = Baseline(bins: bins, counts: counts, event: event.id)
            }
            state.baselines[model + "@" + version] = features
            return []
        case "feature.histogram.observed":
            guard let deployment = d.string("deployment"), let model = d.string("model"), let version = d.string("version"),
                let feature = d.string("feature"), let bins = d.array("bins")?.compactMap(\.stringValue),
                let counts = d.array("counts")?.compactMap(\.doubleValue),
                let baseline = state.baselines[model + "@" + version]?[feature],
                baseline.bins == bins  // different bins: not comparable (the projection records the anomaly)
            else { return [] }
            let value = DriftDetector.psi(observed: counts, baseline: baseline.counts)
            let episode = deployment + "/" + version + "/" + feature + "/"
            if value < DriftDetector.warning {
                state.open.remove(episode + "warning")
                state.open.remove(episode + "high")
                return []
            }
            let severity = value >= DriftDetector.high ? "high" : "warning"
            guard !state.open.contains(episode + severity) else { return [] }
            state.open.insert(episode + "warning")
            if severity == "high" { state.open.insert(episode + "high") }
            var out = DecisionBuilder(processor: name, trigger: event)
            out.add(stream: "deployment-" + deployment, type: "drift.alerted",
                data: ["deployment": .string(deployment), "model": .string(model), "version": .string(version), "feature": .string(feature),
                       "method": "psi", "value": .number(rounded(value)),
                       "threshold": .number(severity == "high" ? DriftDetector.high : DriftDetector.warning), "severity": .string(severity),
                       "evidence": .ids([event.id, baseline.event])],
                correlation: event.correlationId)
            return out.decisions
        default:
            return []
        }
    }
}
