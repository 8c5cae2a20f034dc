import LedgerCore
import LedgerLog

/// How an event sits in a Kafka record (README, "Kafka mode"):
///
/// - key: the stream; value: the canonical JSON envelope exactly as hashed (`hash` included);
///   timestamp: the event's time;
/// - headers, CloudEvents Kafka protocol binding, binary mode: `ce_specversion` `1.0`, `ce_id`,
///   `ce_type`, `ce_source`, `ce_subject` (the stream), `ce_time`, `content-type`
///   `application/json`, and the ledger's extensions `ce_ledgeroffset`, `ce_ledgerversion`,
///   `ce_ledgerhash`, `ce_ledgerprevhash`, `ce_ledgerschemaversion`, `ce_actor`, and
///   `ce_causationid` / `ce_correlationid` when the event has them;
/// - `ledger_position`: 80 lowercase hex digits — offset, id (32 digits), time (ms), version, the
///   writer's epoch, 16 digits each otherwise — what the ledger's readers use instead of parsing
///   the text headers (every header is UTF-8, so generic CloudEvents consumers read them all).
///
/// A writer that starts appends a **fence** record (key `ledger-fence`, header `ledger_fence`: its
/// epoch, 16 hex digits, one more than any epoch in the topic; value a small JSON object).
/// Readers skip fences and any event record whose epoch is below the highest epoch they have seen:
/// the records a fenced writer might still get into the topic on a broker that does not enforce
/// producer epochs. Kafka itself fences by the transactional id's epoch; this makes the rule
/// visible in the log and holds on librdkafka's mock cluster too.
enum KafkaRecord {
    static let positionHeader = "ledger_position"
    static let fenceHeader = "ledger_fence"

    enum Kind {
        case event(RecordView, epoch: UInt64)
        case fence(epoch: UInt64)
    }

    struct Extras {
        var actor: String
        var schemaVersion: Int
        var causationId: EventID?
        var correlationId: String?
        var prevHash: Hash256
    }

    /// The record's headers (see above), written into `buffer`.
    static func writeHeaders(_ view: RecordView, hash: Hash256, extras: Extras, epoch: UInt64, source: UnsafeRawBufferPointer, into b: RDKafkaHeaderBuffer) {
        b.reset()
        b.add("ce_specversion") { $0.append("1.0") }
        b.add("ce_id") { view.id.append(to: $0) }
        b.add("ce_type", view.typeBytes)
        b.add("ce_source", source)
        b.add("ce_subject", view.streamBytes)
        b.add("ce_time") { view.time.append(to: $0) }
        b.add("content-type") { $0.append("application/json") }
        b.add("ce_ledgeroffset") { $0.appendDecimal(view.offset) }
        b.add("ce_ledgerversion") { $0.appendDecimal(view.version) }
        b.add("ce_ledgerhash") { hash.appendHex(to: $0) }
        b.add("ce_ledgerprevhash") { extras.prevHash.appendHex(to: $0) }
        b.add("ce_ledgerschemaversion") { $0.appendDecimal(Int64(extras.schemaVersion)) }
        b.add("ce_actor") { $0.append(utf8: extras.actor) }
        if let c = extras.causationId { b.add("ce_causationid") { c.append(to: $0) } }
        if let c = extras.correlationId { b.add("ce_correlationid") { $0.append(utf8: c) } }
        b.add("ledger_position") { w in
            for v in [UInt64(bitPattern: view.offset), view.id.high, view.id.low, UInt64(bitPattern: view.time.milliseconds), UInt64(bitPattern: view.version), epoch] {
                hex16(v, to: w)
            }
        }
    }

    /// The fence's headers: a CloudEvent of type `dev.platform-ledger.fence` (consumers that
    /// want events only filter it out by `ce_type`), and the epoch.
    static func fence(epoch: UInt64, time: Timestamp, source: String) -> [(String, [UInt8])] {
        var g = SystemRandomNumberGenerator()
        return [
            ("ce_specversion", Array("1.0".utf8)), ("ce_id", Array(EventID.random(using: &g).description.utf8)),
            ("ce_type", Array(fenceType.utf8)), ("ce_source", Array(source.utf8)), ("ce_time", Array(time.description.utf8)),
            ("content-type", Array("application/json".utf8)),
            (fenceHeader, { var b: [UInt8] = []; hex16(epoch, into: &b); return b }()),
        ]
    }

    static let fenceType = "dev.platform-ledger.fence"

    /// What a polled message is, or why it is not one of the ledger's.
    static func classify(_ message: RDKafkaMessage) -> Result<Kind, LedgerError> {
        if let f = message.header(fenceHeader), f.count == 16, let epoch = parseHex16(f, at: 0) {
            return .success(.fence(epoch: epoch))
        }
        let bad = LedgerError(.corrupt, "kafka offset \(message.offset) is not a ledger record (no valid \(positionHeader) or ce_type header)")
        guard let p = message.header(positionHeader), p.count == 96, let type = message.header("ce_type") else { return .failure(bad) }
        var v: [UInt64] = []
        v.reserveCapacity(6)
        for i in 0..<6 {
            guard let x = parseHex16(p, at: i * 16) else { return .failure(bad) }
            v.append(x)
        }
        let view = RecordView(
            offset: Int64(bitPattern: v[0]), id: EventID(high: v[1], low: v[2]), time: Timestamp(milliseconds: Int64(bitPattern: v[3])),
            version: Int64(bitPattern: v[4]), stream: message.key, type: type, envelope: message.value)
        return .success(.event(view, epoch: v[5]))
    }
}

/// The reader's side of fencing: the highest writer epoch seen so far.
struct EpochFilter {
    private(set) var epoch: UInt64 = 0

    /// The event to use, or nil for a fence or a fenced writer's record.
    mutating func admit(_ kind: KafkaRecord.Kind) -> RecordView? {
        switch kind {
        case .fence(let e):
            epoch = max(epoch, e)
            return nil
        case .event(let view, let e):
            guard e >= epoch else { return nil }
            epoch = e
            return view
        }
    }
}

/// 16 lowercase hex digits of `v`.
func hex16(_ v: UInt64, into out: inout [UInt8]) {
    let digits = Array("0123456789abcdef".utf8)
    for shift in stride(from: 60, through: 0, by: -4) { out.append(digits[Int((v >> UInt64(shift)) & 0xF)]) }
}

func hex16(_ v: UInt64, to w: ByteWriter) {
    for shift in stride(from: 60, through: 0, by: -4) {
        let d = UInt8((v >> UInt64(shift)) & 0xF)
        w.append(d < 10 ? d + 48 : d + 87)
    }
}

/// The value of 16 hex digits at `at`, or nil.
func parseHex16(_ bytes: UnsafeRawBufferPointer, at: Int) -> UInt64? {
    guard at + 16 <= bytes.count else { return nil }
    var v: UInt64 = 0
    for i in at..<(at + 16) {
        let c = bytes[i]
        let d: UInt8
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): d = c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): d = c - UInt8(ascii: "a") + 10
        default: return nil
        }
        v = v << 4 | UInt64(d)
    }
    return v
}
