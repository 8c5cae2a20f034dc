public import LedgerCore
public import LedgerLog

/// Digests of the read models as of a checkpoint (`Schemas/proofs.md`, Attested projections):
/// SHA-256 of the RFC 8785 canonical JSON of what `ledger … --format json --as-of <size − 1>`
/// prints, for the registry, the SLO status and the chargeback of the UTC day of the tree's last
/// event. Signed as extension lines of the checkpoint, they bind those answers to the log: an
/// auditor reruns the commands and compares.
public enum Attestation {
    /// `projection <name> sha256:<hex>` lines for the tree of the first `size` events.
    public static func lines(store: ProjectionStore, source: any LogSource, size: Int64) throws -> [String] {
        guard size > 0 else { return [] }
        let q = try QueryContext(store: store, source: source, asOf: .offset(size - 1))
        var out: [String] = []
        func add(_ name: String, _ value: JSONValue) throws {
            out.append("projection \(name) sha256:" + Hash256.of(try CanonicalJSON.encode(value)).description)
        }
        try add("registry", ["asOf": q.asOfJSON, "models": .array(try Registry.models(q).map(\.json))])
        try add("slo", ["asOf": q.asOfJSON, "slos": .array(try SLOStatus.all(q).map(\.json))])
        let day = Timestamp(milliseconds: (q.time / 86_400_000) * 86_400_000)
        let report = try Chargeback.report(q, Chargeback.Options(from: day, to: day.adding(milliseconds: 86_400_000)))
        try add("chargeback/" + String(day.description.prefix(10)), report.json)
        return out
    }
}
