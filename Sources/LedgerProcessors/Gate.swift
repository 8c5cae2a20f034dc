import Foundation
public import LedgerCore

/// The governance gate (SEMANTICS.md, Gate; README, Governance): on every promotion —
/// `deployment.created`, `rollout.started`, `model.alias.set` — that a policy in force gates, it
/// evaluates that policy as of the promotion and appends one `gate.evaluated` per policy (in
/// policy-name order) with each rule's verdict and the ids of its evidence. It runs before the
/// rollout controller, which never advances a rollout its gate denied.
///
/// An alias move is evaluated against the state *before* the move (the champion it would replace
/// is the one to compare with); only a move that passed becomes the champion later candidates are
/// compared with.
public final class Gate: Processor {
    public let name = "gate"
    public let inputTypes: Set<String> = Gate.folds

    /// What the gate's fold reads: the governance state's inputs and the promotions it judges.
    static let folds: Set<String> = GovernanceState.inputTypes.union(["deployment.created", "rollout.started"])

    public internal(set) var state = GovernanceState()

    public init() {}

    public func capture() -> StateCapture { StateCapture(state: state) }
    public func restore(_ bytes: [UInt8]) throws { state = try JSONDecoder().decode(GovernanceState.self, from: Data(bytes)) }

    public func apply(_ event: Envelope) -> [Decision] {
        var out = DecisionBuilder(processor: name, trigger: event)
        Gate.fold(&state, event, &out)
        return out.decisions
    }

    /// One event through the gate: the verdicts on a promotion (into `out`), then the state
    /// folded. The rollout controller runs the same step on its own copy of the state, so that
    /// it knows the verdicts on a rollout at the rollout's own event — with the same derived ids —
    /// rather than whenever the verdicts happen to be read back.
    static func fold(_ state: inout GovernanceState, _ event: Envelope, _ out: inout DecisionBuilder) {
        var passed = true
        if let promotion = Promotion(event) {
            let correlation = event.type == "rollout.started" ? event.id.description : event.correlationId
            let stream: String
            switch promotion.kind {
            case .deployment(let d): stream = "deployment-" + d
            case .alias: stream = "model-" + promotion.model
            }
            for policy in state.policies(gating: promotion) {
                let outcome = state.evaluate(policy, promotion: promotion)
                passed = passed && outcome.passed
                out.add(stream: stream, type: "gate.evaluated", data: outcome.data, correlation: correlation)
            }
        }
        state.apply(event)
        if event.type == "model.alias.set" && passed { state.aliasMoved(event) }
    }
}
