/// A JSON value as the ledger sees it: I-JSON (RFC 7493), numbers as IEEE-754 doubles, objects
/// with unique keys. This is the value that RFC 8785 canonicalises and that schemas validate.
public enum JSONValue: Sendable, Equatable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object(JSONObject)
}

/// A JSON object, its members kept in RFC 8785 order (by the UTF-16 code units of their names)
/// with unique names.
///
/// JSON objects are unordered, so keeping them in canonical order changes nothing a reader can
/// see; it makes canonical output a plain walk, lookups a binary search, and duplicate names
/// impossible. The order is established once, where an object is built.
public struct JSONObject: Sendable, Equatable, RandomAccessCollection, ExpressibleByDictionaryLiteral {
    public struct Member: Sendable, Equatable {
        public var key: String
        public var value: JSONValue
        public init(key: String, value: JSONValue) {
            self.key = key
            self.value = value
        }
    }

    /// The members, in canonical order.
    public private(set) var members: [Member]

    public init() { members = [] }

    /// Builds an object from members in any order; a repeated name keeps its last value.
    public init(members: [Member]) {
        self.members = members
        JSONObject.canonicalise(&self.members)
    }

    /// Builds an object from members already in canonical order with unique names (the parser).
    init(sortedMembers: [Member]) { members = sortedMembers }

    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        self.init(members: elements.map { Member(key: $0.0, value: $0.1) })
    }

    /// Sorts by canonical order (insertion sort: objects are small and often nearly sorted) and
    /// drops earlier duplicates.
    static func canonicalise(_ members: inout [Member]) {
        var i = 1
        while i < members.count {
            if !CanonicalJSON.precedes(members[i - 1].key, members[i].key) {
                let member = members[i]
                var j = i
                while j > 0 && CanonicalJSON.precedes(member.key, members[j - 1].key) {
                    members[j] = members[j - 1]
                    j -= 1
                }
                if j > 0 && members[j - 1].key == member.key {
                    // Same name twice: the later one wins.
                    members[j - 1] = member
                    members.remove(at: j)
                    continue
                }
                members[j] = member
            }
            i += 1
        }
    }

    public var startIndex: Int { members.startIndex }
    public var endIndex: Int { members.endIndex }
    public subscript(position: Int) -> Member { members[position] }

    /// Position of `key`, or where it would be inserted.
    private func search(_ key: String) -> (Int, Bool) {
        if members.count <= 8 {
            for i in members.indices {
                if members[i].key == key { return (i, true) }
                if CanonicalJSON.precedes(key, members[i].key) { return (i, false) }
            }
            return (members.count, false)
        }
        var lo = 0
        var hi = members.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if members[mid].key == key { return (mid, true) }
            if CanonicalJSON.precedes(members[mid].key, key) { lo = mid + 1 } else { hi = mid }
        }
        return (lo, false)
    }

    /// The value of `key`, or nil. Setting nil removes the member.
    public subscript(key: String) -> JSONValue? {
        get {
            // Lookups in the small objects events carry: equality alone, no ordering.
            if members.count <= 8 {
                for i in members.indices where members[i].key == key { return members[i].value }
                return Optional<JSONValue>.none
            }
            let (i, found) = search(key)
            guard found else { return Optional<JSONValue>.none }
            return members[i].value
        }
        set {
            let (i, found) = search(key)
            if found {
                if let newValue { members[i].value = newValue } else { members.remove(at: i) }
            } else if let newValue {
                members.insert(Member(key: key, value: newValue), at: i)
            }
        }
    }

    public var keys: [String] { members.map(\.key) }

    /// JSON equality: the same names with equal values.
    public static func == (lhs: JSONObject, rhs: JSONObject) -> Bool { lhs.members == rhs.members }
}

extension JSONValue {
    public var stringValue: String? { if case .string(let s) = self { return s } else { return nil } }
    public var doubleValue: Double? { if case .number(let n) = self { return n } else { return nil } }
    public var boolValue: Bool? { if case .bool(let b) = self { return b } else { return nil } }
    public var arrayValue: [JSONValue]? { if case .array(let a) = self { return a } else { return nil } }
    public var objectValue: JSONObject? { if case .object(let o) = self { return o } else { return nil } }
    public var isNull: Bool { if case .null = self { return true } else { return false } }

    /// The number as an integer, when it is one exactly (within ±2^53).
    public var intValue: Int? {
        guard case .number(let n) = self, n == n.rounded(.towardZero), abs(n) <= 9_007_199_254_740_991 else {
            return nil
        }
        return Int(n)
    }

    /// Member `key` of an object; nil for anything else.
    public subscript(key: String) -> JSONValue? {
        if case .object(let o) = self { return o[key] }
        return nil
    }

    /// The JSON type name used in messages and by JSON Schema's `type` keyword.
    public var typeName: String {
        switch self {
        case .null: return "null"
        case .bool: return "boolean"
        case .number(let n): return n == n.rounded(.towardZero) && n.isFinite ? "integer" : "number"
        case .string: return "string"
        case .array: return "array"
        case .object: return "object"
        }
    }
}

extension JSONValue: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByFloatLiteral,
    ExpressibleByBooleanLiteral, ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral, ExpressibleByNilLiteral
{
    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int) { self = .number(Double(value)) }
    public init(floatLiteral value: Double) { self = .number(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(arrayLiteral elements: JSONValue...) { self = .array(elements) }
    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        self = .object(JSONObject(members: elements.map { JSONObject.Member(key: $0.0, value: $0.1) }))
    }
    public init(nilLiteral: ()) { self = .null }

    public init(_ value: Int) { self = .number(Double(value)) }
    public init(_ value: Double) { self = .number(value) }
    public init(_ value: String) { self = .string(value) }
    public init(_ value: Bool) { self = .bool(value) }
}

extension JSONValue: CustomStringConvertible {
    /// The RFC 8785 canonical text of the value (`<non-finite number>` if it holds one).
    public var description: String {
        guard let bytes = try? CanonicalJSON.encode(self) else { return "<non-finite number>" }
        return String(decoding: bytes, as: UTF8.self)
    }
}
