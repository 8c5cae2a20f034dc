/// Reading old versions of an event type as the newest (`Schemas/evolution.md`).
///
/// Stored events are never rewritten: what was appended is what is hashed, verified and exported.
/// Readers that act on `data` — the processors, the projections — see an older version converted
/// to the newest one by the upcasters below, in code, one step at a time (v1 → v2 → …). An
/// upcaster only adds what the newer version knows and fills it with what the older one meant;
/// it never drops or reinterprets a field (that would be a new type).
public enum Upcasting {
    /// One step: data of `type` at `from` as version `from + 1`.
    struct Step: Sendable {
        var type: String
        var from: Int
        var convert: @Sendable (JSONObject) -> JSONObject
    }

    static let steps: [Step] = [
        // quota.set v2 adds queueingStrategy (default BestEffortFIFO for v2 events that leave it
        // out). Every v1 quota was served StrictFIFO: that is what a v1 event means.
        Step(type: "quota.set", from: 1) { data in
            var d = data
            d["queueingStrategy"] = .string("StrictFIFO")
            return d
        },
        // access.granted and access.revoked v2 widen `role` from the server's five roles to any
        // name (governance roles such as model-approver): every v1 event is a valid v2 event.
        Step(type: "access.granted", from: 1) { $0 },
        Step(type: "access.revoked", from: 1) { $0 },
    ]

    /// The newest version the ledger reads `type` as.
    public static func latest(_ type: String) -> Int {
        var version = 1
        while steps.contains(where: { $0.type == type && $0.from == version }) { version += 1 }
        return version
    }

    /// `data` of `type` at `schemaVersion`, as the newest version (unchanged when it is already).
    public static func upcast(type: String, schemaVersion: Int, data: JSONObject) -> (schemaVersion: Int, data: JSONObject) {
        var version = schemaVersion
        var d = data
        while let step = steps.first(where: { $0.type == type && $0.from == version }) {
            d = step.convert(d)
            version += 1
        }
        return (version, d)
    }

    /// Whether any upcaster applies to `type`.
    public static func hasUpcasters(_ type: String) -> Bool { steps.contains { $0.type == type } }
}

extension Envelope {
    /// The envelope as its type's newest version reads (data and `schemaVersion` upcast). The
    /// `hash` is still the stored event's: it is a reading of that event, not a new one.
    public func upcast() -> Envelope {
        guard Upcasting.hasUpcasters(type) else { return self }
        var e = self
        (e.schemaVersion, e.data) = Upcasting.upcast(type: type, schemaVersion: schemaVersion, data: data)
        return e
    }
}
