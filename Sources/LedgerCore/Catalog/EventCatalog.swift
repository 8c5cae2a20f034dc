#if canImport(Glibc)
import Glibc
#endif

/// One event type of the catalog, as its schema file in `Schemas/events/` defines it.
public struct EventType: Sendable {
    /// e.g. `job.queued`.
    public let name: String
    public let schemaVersion: Int
    /// The schema of `data`.
    public let schema: JSONSchema
    /// The stream an event of this type must be appended to is `<streamCategory>-<data[streamKey]>`
    /// (for a type with several ``streamRules``, the first rule's).
    public let streamCategory: String
    public let streamKey: String
    /// `x-ledger.stream`: one template (`job-{job}`) or a list tried in order, whose fields may be
    /// nested (`["deployment-{subject.deployment}", "model-{subject.model}"]`): the stream is the
    /// first template whose field is present.
    public let streamRules: [StreamRule]
    /// Decision types may only be appended by a processor, an admin import or a replay.
    public let isDecision: Bool
    /// Path of the schema under `Schemas/`.
    public let schemaPath: String

    /// One stream template: `<category>-<data at path>`.
    public struct StreamRule: Sendable {
        public let category: String
        /// The field, as a path through nested objects (`["subject", "deployment"]`).
        public let path: [String]

        func key(in data: JSONObject) -> String? {
            var object = data
            for name in path.dropLast() {
                guard let next = object[name]?.objectValue else { return nil }
                object = next
            }
            return object[path.last!]?.stringValue
        }

        /// `deployment-<data.subject.deployment>`.
        public var description: String { "\(category)-<data.\(path.joined(separator: "."))>" }
    }

    /// `job-<data.job>`, or the alternatives in order for a type with several rules.
    public var streamDescription: String { streamRules.map(\.description).joined(separator: ", else ") }

    /// The stream `data` belongs to, or nil when the key field is absent or not a string.
    public func stream(for data: JSONObject) -> String? {
        for rule in streamRules {
            if let key = rule.key(in: data) { return rule.category + "-" + key }
        }
        return nil
    }

    /// Whether `stream` is the stream of `data` (for the usual single top-level key, without
    /// building that string).
    public func isStream(_ stream: String, of data: JSONObject) -> Bool {
        guard streamRules.count == 1, streamRules[0].path.count == 1 else { return self.stream(for: data) == stream }
        guard case .string(let value)? = data[streamKey] else { return false }
        let categoryCount = streamCategory.utf8.count
        var stream = stream
        var key = value
        var category = streamCategory
        return stream.withUTF8 { s in
            guard s.count == categoryCount + 1 + key.utf8.count, s[categoryCount] == 0x2D else { return false }
            let categoryMatches = category.withUTF8 { c in memcmp(s.baseAddress!, c.baseAddress!, categoryCount) == 0 }
            return categoryMatches && key.withUTF8 { k in k.count == 0 || memcmp(s.baseAddress! + categoryCount + 1, k.baseAddress!, k.count) == 0 }
        }
    }
}

/// The event catalog: every type and version with a schema file in `Schemas/events/`, plus the
/// envelope and request schemas. Adding a type means adding a schema file: nothing here lists types.
public final class EventCatalog: Sendable {
    public let registry: SchemaRegistry
    /// name → versions (index = schemaVersion − 1; nil where a version has no schema).
    private let types: [String: [EventType?]]
    /// Schema of a stored envelope (`Schemas/envelope.v1.json`).
    public let envelopeSchema: JSONSchema
    /// Schema of one append request (`Schemas/append-request.v1.json`).
    public let appendRequestSchema: JSONSchema
    /// Schema of one `ledger import` line (`Schemas/import-record.v1.json`).
    public let importRecordSchema: JSONSchema

    /// The catalog compiled from the `Schemas/` files embedded at build time.
    public static let standard: EventCatalog = {
        do {
            return try EventCatalog(files: EmbeddedSchemas.files.filter { $0.path.hasSuffix(".json") && !$0.path.hasPrefix("compliance/") })
        } catch {
            fatalError("the embedded Schemas/ do not load: \(error)")
        }
    }()

    /// Loads a catalog from schema files (path relative to `Schemas/`, contents).
    public init(files: [(path: String, contents: String)]) throws(LedgerError) {
        let registry = try SchemaRegistry(files: files)
        self.registry = registry
        var types: [String: [EventType?]] = [:]
        for document in registry.documents where document.path.hasPrefix("events/") {
            func fail(_ message: String) -> LedgerError { LedgerError(.internal, "Schemas/\(document.path): \(message)") }
            guard let meta = document.json["x-ledger"]?.objectValue,
                let name = meta["type"]?.stringValue,
                let version = meta["schemaVersion"]?.intValue,
                let templates = meta["stream"].flatMap({ $0.arrayValue?.compactMap(\.stringValue) ?? $0.stringValue.map { [$0] } }),
                !templates.isEmpty,
                let decision = meta["decision"]?.boolValue
            else { throw fail("x-ledger must give type, schemaVersion, stream and decision") }
            guard document.path == "events/\(name).v\(version).json" else {
                throw fail("the file name must be events/\(name).v\(version).json")
            }
            var rules: [EventType.StreamRule] = []
            for template in templates {
                guard let dash = template.firstIndex(of: "-"), template.hasSuffix("}"),
                    template[template.index(after: dash)...].hasPrefix("{")
                else { throw fail("x-ledger.stream must be of the form category-{field} (or a list of them)") }
                let field = template[template.index(dash, offsetBy: 2)..<template.index(before: template.endIndex)]
                let path = field.split(separator: ".").map(String.init)
                guard !path.isEmpty else { throw fail("x-ledger.stream \(template) names no field") }
                rules.append(EventType.StreamRule(category: String(template[..<dash]), path: path))
            }
            // The last alternative must always apply: its top-level field is required.
            let required = document.json["required"]?.arrayValue?.compactMap(\.stringValue) ?? []
            guard required.contains(rules.last!.path[0]) else { throw fail("the stream key \(rules.last!.path[0]) must be a required field") }
            guard let schema = registry.schema(id: document.id) else { throw fail("not compiled") }
            guard (1...1000).contains(version) else { throw fail("schemaVersion must be between 1 and 1000") }
            var list = types[name] ?? []
            while list.count < version { list.append(nil) }
            list[version - 1] = EventType(
                name: name, schemaVersion: version, schema: schema, streamCategory: rules[0].category, streamKey: rules[0].path.joined(separator: "."),
                streamRules: rules, isDecision: decision, schemaPath: document.path)
            types[name] = list
        }
        self.types = types
        func root(_ path: String) throws(LedgerError) -> JSONSchema {
            guard let document = registry.document(path: path), let schema = registry.schema(id: document.id) else {
                throw LedgerError(.internal, "Schemas/\(path) is missing")
            }
            return schema
        }
        envelopeSchema = try root("envelope.v1.json")
        appendRequestSchema = try root("append-request.v1.json")
        importRecordSchema = try root("import-record.v1.json")
    }

    /// The type `name` at `schemaVersion`, if the catalog has it.
    public func type(_ name: String, schemaVersion: Int = 1) -> EventType? {
        guard let list = types[name], schemaVersion >= 1, schemaVersion <= list.count else { return nil }
        return list[schemaVersion - 1]
    }

    /// Whether any version of `name` exists.
    public func knows(_ name: String) -> Bool { types[name] != nil }

    /// Every type and version, sorted by name then version.
    public var allTypes: [EventType] {
        types.values.flatMap { $0.compactMap { $0 } }.sorted { ($0.name, $0.schemaVersion) < ($1.name, $1.schemaVersion) }
    }

    /// The schema files themselves (path under `Schemas/`, contents), as embedded.
    public static var embeddedFiles: [(path: String, contents: String)] { EmbeddedSchemas.files }
}
