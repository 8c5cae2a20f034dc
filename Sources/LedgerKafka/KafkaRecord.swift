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
/// - `ledger_position`: 48 bytes, big-endian — offset, id (16), time (ms), version, the writer's
///   epoch — what the ledger's readers use instead of parsing text headers.
///
/// A writer that starts appends a **fence** record (key `ledger-fence`, header `ledger_fence`: its
/// epoch, 8 bytes big-endian, one more than any epoch in the topic; value a small JSON object).
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

    static func headers(_ view: RecordView, hash: Hash256, extras: Extras, epoch: UInt64, source: String) -> [(String, [UInt8])] {
        var position: [UInt8] = []
        position.reserveCapacity(48)
        func be<T: FixedWidthInteger>(_ v: T) { withUnsafeBytes(of: v.bigEndian) { position.append(contentsOf: $0) } }
        be(view.offset)
        be(view.id.high)
        be(view.id.low)
        be(view.time.milliseconds)
        be(view.version)
        be(epoch)
        var h: [(String, [UInt8])] = [
            ("ce_specversion", Array("1.0".utf8)),
            ("ce_id", Array(view.id.description.utf8)),
            ("ce_type", Array(view.typeBytes)),
            ("ce_source", Array(source.utf8)),
            ("ce_subject", Array(view.streamBytes)),
            ("ce_time", Array(view.time.description.utf8)),
            ("content-type", Array("application/json".utf8)),
            ("ce_ledgeroffset", Array(String(view.offset).utf8)),
            ("ce_ledgerversion", Array(String(view.version).utf8)),
            ("ce_ledgerhash", Array(hash.description.utf8)),
            ("ce_ledgerprevhash", Array(extras.prevHash.description.utf8)),
            ("ce_ledgerschemaversion", Array(String(extras.schemaVersion).utf8)),
            ("ce_actor", Array(extras.actor.utf8)),
        ]
        if let c = extras.causationId { h.append(("ce_causationid", Array(c.description.utf8))) }
        if let c = extras.correlationId { h.append(("ce_correlationid", Array(c.utf8))) }
        h.append((positionHeader, position))
        return h
    }

    static func fence(epoch: UInt64) -> [(String, [UInt8])] {
        [(fenceHeader, withUnsafeBytes(of: epoch.bigEndian) { Array($0) })]
    }

    /// What a polled message is, or why it is not one of the ledger's.
    static func classify(_ message: RDKafkaMessage) -> Result<Kind, LedgerError> {
        if let f = message.header(fenceHeader), f.count == 8 {
            return .success(.fence(epoch: UInt64(bigEndian: f.loadUnaligned(as: UInt64.self))))
        }
        guard let p = message.header(positionHeader), p.count == 48, let type = message.header("ce_type") else {
            return .failure(LedgerError(.corrupt, "kafka offset \(message.offset) is not a ledger record (no \(positionHeader) or ce_type header)"))
        }
        func be(_ at: Int) -> UInt64 { UInt64(bigEndian: p.loadUnaligned(fromByteOffset: at, as: UInt64.self)) }
        let view = RecordView(
            offset: Int64(bitPattern: be(0)), id: EventID(high: be(8), low: be(16)), time: Timestamp(milliseconds: Int64(bitPattern: be(24))),
            version: Int64(bitPattern: be(32)), stream: message.key, type: type, envelope: message.value)
        return .success(.event(view, epoch: be(40)))
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
