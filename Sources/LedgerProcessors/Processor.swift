import Foundation
public import LedgerCore

/// One output event of a processor, before the runner gives it its envelope.
public struct Decision: Sendable, Equatable {
    public var id: EventID
    public var stream: String
    public var type: String
    public var data: JSONObject
    /// The event that caused it (the trigger).
    public var causationId: EventID
    /// The workflow it belongs to: the job's `job.queued` id, the rollout's `rollout.started` id.
    public var correlationId: String?
    /// The trigger's time: the envelope time is max(this, the log head's time).
    public var notBefore: Timestamp
}

/// A deterministic fold over the log whose output is events (SEMANTICS.md, processor runner).
///
/// `apply` sees every event of the log in order, except the processor's own decisions that it
/// made itself (the runner recognises them by id and skips them: their effect is already in the
/// state). It must depend on nothing but the events it is given: no clock, no randomness, no
/// iteration over unordered collections.
public protocol Processor: AnyObject {
    /// `scheduler`, `drift`, `slo`, `rollout`: the actor is `processor:<name>`.
    var name: String { get }
    /// The event types `apply` wants; the runner parses nothing else for it.
    var inputTypes: Set<String> { get }
    func apply(_ event: Envelope) -> [Decision]
    /// The whole state as it is now, to be encoded later on another thread (a snapshot): taking
    /// it is cheap (the state is a value, copied on write), so the fold does not wait for the
    /// encoding of a large state.
    func capture() -> StateCapture
    func restore(_ bytes: [UInt8]) throws
}

/// A processor's state taken at one moment, encoded when ``encode()`` is called.
public struct StateCapture: Sendable {
    let encoder: @Sendable () throws -> [UInt8]
    /// A state of `value` as it is now.
    public init<State: Encodable & Sendable>(state value: State) { encoder = { try encodeState(value) } }
    public func encode() throws -> [UInt8] { try encoder() }
}

extension Processor {
    /// The whole state encoded now, for a snapshot.
    public func snapshot() throws -> [UInt8] { try capture().encode() }
}

/// Builds a processor's decisions for one trigger, numbering them for their ids.
public struct DecisionBuilder {
    public let processor: String
    /// The trigger's id and time: all a decision takes from it (built for every event a
    /// processor reads, so it keeps no copy of the envelope).
    public let triggerID: EventID
    public let triggerTime: Timestamp
    public private(set) var decisions: [Decision] = []

    public init(processor: String, trigger: Envelope) {
        self.processor = processor
        triggerID = trigger.id
        triggerTime = trigger.time
    }

    /// Adds one output; returns its id (UUIDv5 of `<processor>/<trigger id>/<index>`).
    @discardableResult
    public mutating func add(stream: String, type: String, data: JSONObject, correlation: String?) -> EventID {
        let id = DecisionID.derive(processor: processor, trigger: triggerID, index: decisions.count)
        decisions.append(
            Decision(id: id, stream: stream, type: type, data: data, causationId: triggerID, correlationId: correlation, notBefore: triggerTime))
        return id
    }
}

/// The ids of processor outputs (`Schemas/processor-ids.md`).
public enum DecisionID {
    /// The namespace of processor output ids, published in `Schemas/processor-ids.md`.
    public static let namespace = EventID("3d0c6f4e-8a51-5b7e-9f0a-6c1d2e3f4a5b")!

    /// UUIDv5 over `<processor>/<trigger id>/<output index>` in ``namespace``.
    public static func derive(processor: String, trigger: EventID, index: Int) -> EventID {
        // The name written into a stack buffer: this runs for every decision.
        var processor = processor
        return processor.withUTF8 { p in
            withUnsafeTemporaryAllocation(of: UInt8.self, capacity: p.count + 1 + 36 + 1 + 20) { buffer in
                let base = buffer.baseAddress!
                var n = 0
                if let source = p.baseAddress { base.update(from: source, count: p.count) }
                n += p.count
                base[n] = UInt8(ascii: "/")
                trigger.write(into: base + n + 1)
                n += 37
                base[n] = UInt8(ascii: "/")
                n += 1
                n += ByteWriter.writeDecimal(Int64(index), into: base + n)
                return EventID.nameBased(namespace: namespace, name: UnsafeRawBufferPointer(start: base, count: n))
            }
        }
    }
}

// MARK: snapshots

/// A processor's state as snapshot bytes: sorted keys and sorted sets, so that the same state
/// always gives the same bytes (a restarted server and a fresh fold can be compared byte for byte).
func encodeState<T: Encodable>(_ value: T) throws -> [UInt8] {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    return Array(try encoder.encode(value))
}

/// A set encoded as a sorted array (a `Set` encodes in hash order, which changes between runs).
@propertyWrapper
struct SortedOnEncode<Element: Hashable & Comparable & Codable & Sendable>: Codable, Sendable {
    var wrappedValue: Set<Element>

    init(wrappedValue: Set<Element>) { self.wrappedValue = wrappedValue }

    init(from decoder: any Decoder) throws { wrappedValue = Set(try [Element](from: decoder)) }

    func encode(to encoder: any Encoder) throws { try wrappedValue.sorted().encode(to: encoder) }
}

// MARK: reading payloads

extension JSONObject {
    func string(_ key: String) -> String? { self[key]?.stringValue }
    func int(_ key: String) -> Int? { self[key]?.intValue }
    func double(_ key: String) -> Double? { self[key]?.doubleValue }
    func bool(_ key: String) -> Bool? { self[key]?.boolValue }
    func object(_ key: String) -> JSONObject? { self[key]?.objectValue }
    func array(_ key: String) -> [JSONValue]? { self[key]?.arrayValue }
}

extension JSONValue {
    static func ids(_ ids: [EventID]) -> JSONValue { .array(ids.map { .string($0.description) }) }
}

/// A number rounded to `places` decimals, so that decisions carry readable values (and the same
/// bytes on every platform: the rounding is part of the decision).
func rounded(_ value: Double, _ places: Int = 4) -> Double {
    var scale = 1.0
    for _ in 0..<places { scale *= 10 }
    return (value * scale).rounded() / scale
}
