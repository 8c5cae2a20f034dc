/// A compiled JSON Schema (draft 2020-12) node.
///
/// Compiled once from the documents in `Schemas/` and immutable afterwards. The keywords below are
/// the ones the contract uses and this validator implements; a schema that uses any other
/// assertion or applicator keyword is refused when loaded (see ``SchemaRegistry``), so the
/// contract can never depend on a keyword that would silently be ignored here.
public final class JSONSchema: @unchecked Sendable {
    // @unchecked: every stored property is written during compilation only (including the
    // resolution of `$ref`, before the registry hands the node out) and never after.

    /// Keywords that carry no assertion: they are accepted and ignored.
    static let annotationKeywords: Set<String> = [
        "$schema", "$id", "$comment", "$defs", "title", "description", "examples", "default",
        "deprecated", "readOnly", "writeOnly", "x-ledger", "x-ledger-time",
    ]
    /// Keywords this validator implements.
    static let assertionKeywords: Set<String> = [
        "$ref", "type", "enum", "const", "properties", "required", "additionalProperties",
        "propertyNames", "minProperties", "maxProperties", "items", "minItems", "maxItems",
        "uniqueItems", "minLength", "maxLength", "pattern", "minimum", "maximum",
        "exclusiveMinimum", "exclusiveMaximum", "multipleOf", "allOf", "anyOf", "oneOf", "not",
    ]

    struct TypeSet: OptionSet {
        let rawValue: UInt8
        static let null = TypeSet(rawValue: 1)
        static let boolean = TypeSet(rawValue: 2)
        static let integer = TypeSet(rawValue: 4)
        static let number = TypeSet(rawValue: 8)
        static let string = TypeSet(rawValue: 16)
        static let array = TypeSet(rawValue: 32)
        static let object = TypeSet(rawValue: 64)

        static func named(_ name: String) -> TypeSet? {
            switch name {
            case "null": return .null
            case "boolean": return .boolean
            case "integer": return .integer
            case "number": return .number
            case "string": return .string
            case "array": return .array
            case "object": return .object
            default: return nil
            }
        }

        var names: String {
            let all: [(TypeSet, String)] = [
                (.null, "null"), (.boolean, "boolean"), (.integer, "integer"), (.number, "number"),
                (.string, "string"), (.array, "array"), (.object, "object"),
            ]
            return all.filter { contains($0.0) }.map(\.1).joined(separator: " or ")
        }
    }

    /// The location of this node: document URI and JSON pointer (for messages).
    public internal(set) var location: String
    /// `true`/`false` boolean schemas.
    var boolean: Bool?
    var types: TypeSet?
    var ref: JSONSchema?
    var refTarget: String?
    var enumValues: [JSONValue]?
    var constValue: JSONValue?
    var properties: [String: JSONSchema] = [:]
    var required: [String] = []
    /// `properties` as a list scanned in order (objects in events have few members, and comparing
    /// short strings beats hashing them), each with its bit in `requiredMask` when required.
    var propertyList: [(name: String, schema: JSONSchema, requiredBit: UInt64)] = []
    var requiredMask: UInt64 = 0
    /// `propertyList` for the tape's validator, which compares bytes: the names one after the
    /// other in `propertyNameBytes` (name *j* ends at `propertyNameEnds[j]`), with no array or
    /// reference to retain per name compared.
    var propertyNameBytes: [UInt8] = []
    var propertyNameEnds: [Int] = []
    /// Whether `requiredMask` alone proves every required member present.
    var requiredFastPath = false
    var additionalProperties: JSONSchema?
    var propertyNames: JSONSchema?
    var minProperties: Int?
    var maxProperties: Int?
    var items: JSONSchema?
    var minItems: Int?
    var maxItems: Int?
    var uniqueItems = false
    var minLength: Int?
    var maxLength: Int?
    var pattern: Pattern?
    var minimum: Double?
    var maximum: Double?
    var exclusiveMinimum: Double?
    var exclusiveMaximum: Double?
    var multipleOf: Double?
    var allOf: [JSONSchema] = []
    var anyOf: [JSONSchema] = []
    var oneOf: [JSONSchema] = []
    var not: JSONSchema?
    /// `x-ledger-time`: the string must also be a real calendar instant (not a schema rule: see
    /// ``ValidationMode``).
    var isTime = false

    init(location: String) { self.location = location }

    /// A node that only refers to another (`{"$ref": …}` plus annotations).
    var isPureReference: Bool {
        ref != nil && boolean == nil && types == nil && enumValues == nil && constValue == nil && properties.isEmpty
            && required.isEmpty && additionalProperties == nil && propertyNames == nil && minProperties == nil
            && maxProperties == nil && items == nil && minItems == nil && maxItems == nil && !uniqueItems
            && minLength == nil && maxLength == nil && pattern == nil && minimum == nil && maximum == nil
            && exclusiveMinimum == nil && exclusiveMaximum == nil && multipleOf == nil && allOf.isEmpty
            && anyOf.isEmpty && oneOf.isEmpty && not == nil && !isTime
    }

    /// Follows pure references to the node that does the checking.
    var target: JSONSchema {
        var node = self
        var hops = 0
        while node.isPureReference, let next = node.ref, hops < 64 {
            node = next
            hops += 1
        }
        return node
    }

    /// After `$ref`s are resolved: points sub-schemas past pure references and builds the
    /// property list (called once per node by the registry).
    func link() {
        let unique = Array(Set(required))
        requiredFastPath = unique.count <= 64 && unique.allSatisfy { properties[$0] != nil }
        propertyList = properties.keys.sorted().map { name in
            let bit = requiredFastPath ? (unique.firstIndex(of: name).map { UInt64(1) << UInt64($0) } ?? 0) : 0
            return (name, properties[name]!.target, bit)
        }
        for property in propertyList {
            propertyNameBytes += Array(property.name.utf8)
            propertyNameEnds.append(propertyNameBytes.count)
        }
        if requiredFastPath {
            requiredMask = unique.count == 64 ? ~0 : (UInt64(1) << UInt64(unique.count)) - 1
        }
        additionalProperties = additionalProperties?.target
        propertyNames = propertyNames?.target
        items = items?.target
        ref = ref?.target
    }
}

/// What ``JSONSchema/validate(_:mode:)`` checks.
public enum ValidationMode: Sendable {
    /// JSON Schema 2020-12 only: the verdict any conforming validator gives.
    case schemaOnly
    /// The schema plus the ledger's rules that JSON Schema cannot state (times must exist on the
    /// calendar: `2026-02-30T00:00:00.000Z` matches the pattern but is refused).
    case ledger
}

/// Why an instance failed: where (JSON pointer into the instance) and which rule.
public struct SchemaViolation: Sendable, Equatable, CustomStringConvertible {
    public var pointer: String
    public var message: String
    public var keyword: String
    public var description: String { "\(pointer.isEmpty ? "/" : pointer): \(message)" }
}
