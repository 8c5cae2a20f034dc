/// The schema documents of `Schemas/`, compiled, with `$ref` resolved across documents by `$id`.
public final class SchemaRegistry: @unchecked Sendable {
    // @unchecked: mutated only inside `init` while compiling; read-only afterwards.

    /// A loaded document: its path under `Schemas/`, its `$id` and its JSON.
    public struct Document: Sendable {
        public var path: String
        public var id: String
        public var json: JSONValue
    }

    public private(set) var documents: [Document] = []
    private var byID: [String: Int] = [:]
    private var compiled: [String: JSONSchema] = [:]
    private var pendingRefs: [(JSONSchema, String)] = []

    /// Loads `files` (path relative to `Schemas/`, contents). Every document must carry an absolute
    /// `$id`; every `$ref` must resolve; only supported keywords may appear.
    public init(files: [(path: String, contents: String)]) throws(LedgerError) {
        for file in files {
            let json: JSONValue
            do {
                json = try JSONParser.parse(Array(file.contents.utf8))
            } catch {
                throw LedgerError(.internal, "Schemas/\(file.path) is not valid JSON: \(error.message)")
            }
            guard let id = json["$id"]?.stringValue, id.contains("://") else {
                throw LedgerError(.internal, "Schemas/\(file.path) has no absolute $id")
            }
            guard byID[id] == nil else { throw LedgerError(.internal, "Schemas/\(file.path) repeats the $id \(id)") }
            byID[id] = documents.count
            documents.append(Document(path: file.path, id: id, json: json))
        }
        for document in documents { _ = try schema(uri: document.id, pointer: "") }
        while let (node, target) = pendingRefs.popLast() {
            let (uri, pointer) = Self.split(target)
            node.ref = try schema(uri: uri, pointer: pointer)
        }
        for node in compiled.values { node.link() }
    }

    /// The compiled root schema of the document with this `$id`.
    public func schema(id: String) -> JSONSchema? { compiled[id + "#"] }

    /// The document at `path` under `Schemas/`.
    public func document(path: String) -> Document? { documents.first { $0.path == path } }

    private func schema(uri: String, pointer: String) throws(LedgerError) -> JSONSchema {
        let key = uri + "#" + pointer
        if let node = compiled[key] { return node }
        guard let index = byID[uri] else { throw LedgerError(.internal, "$ref to unknown schema \(uri)") }
        let document = documents[index]
        guard let value = Self.resolve(pointer: pointer, in: document.json) else {
            throw LedgerError(.internal, "$ref to \(key): no such location in Schemas/\(document.path)")
        }
        return try compile(value, base: uri, pointer: pointer, path: document.path)
    }

    private func compile(_ value: JSONValue, base: String, pointer: String, path: String) throws(LedgerError) -> JSONSchema {
        let key = base + "#" + pointer
        if let node = compiled[key] { return node }
        let node = JSONSchema(location: key)
        compiled[key] = node
        func fail(_ message: String) -> LedgerError {
            LedgerError(.internal, "Schemas/\(path) at \(pointer.isEmpty ? "/" : pointer): \(message)")
        }
        if case .bool(let b) = value {
            node.boolean = b
            return node
        }
        guard case .object(let object) = value else { throw fail("a schema must be an object or a boolean") }
        func sub(_ keyword: String, _ v: JSONValue) throws(LedgerError) -> JSONSchema {
            try compile(v, base: base, pointer: pointer + "/" + escapePointer(keyword), path: path)
        }
        func integer(_ keyword: String, _ v: JSONValue) throws(LedgerError) -> Int {
            guard let n = v.intValue, n >= 0 else { throw fail("\(keyword) must be a non-negative integer") }
            return n
        }
        func number(_ keyword: String, _ v: JSONValue) throws(LedgerError) -> Double {
            guard let n = v.doubleValue else { throw fail("\(keyword) must be a number") }
            return n
        }
        func list(_ keyword: String, _ v: JSONValue) throws(LedgerError) -> [JSONSchema] {
            guard let elements = v.arrayValue, !elements.isEmpty else { throw fail("\(keyword) must be a non-empty array") }
            var out: [JSONSchema] = []
            for (i, e) in elements.enumerated() {
                out.append(try compile(e, base: base, pointer: pointer + "/\(keyword)/\(i)", path: path))
            }
            return out
        }
        for member in object.members {
            let k = member.key
            let v = member.value
            if JSONSchema.annotationKeywords.contains(k) {
                if k == "x-ledger-time" { node.isTime = v.boolValue ?? false }
                continue
            }
            guard JSONSchema.assertionKeywords.contains(k) else {
                throw fail("keyword \"\(k)\" is not supported by the ledger's validator")
            }
            switch k {
            case "$ref":
                guard let target = v.stringValue else { throw fail("$ref must be a string") }
                let absolute = Self.resolveReference(target, against: base)
                node.refTarget = absolute
                pendingRefs.append((node, absolute))
            case "type":
                var set = JSONSchema.TypeSet()
                let names = v.arrayValue ?? [v]
                for name in names {
                    guard let s = name.stringValue, let t = JSONSchema.TypeSet.named(s) else {
                        throw fail("unknown type \(name)")
                    }
                    set.insert(t)
                }
                node.types = set
            case "enum":
                guard let values = v.arrayValue, !values.isEmpty else { throw fail("enum must be a non-empty array") }
                node.enumValues = values
            case "const": node.constValue = v
            case "properties":
                guard let props = v.objectValue else { throw fail("properties must be an object") }
                for p in props.members {
                    node.properties[p.key] = try compile(
                        p.value, base: base, pointer: pointer + "/properties/" + escapePointer(p.key), path: path)
                }
            case "required":
                guard let names = v.arrayValue?.compactMap(\.stringValue), names.count == v.arrayValue?.count else {
                    throw fail("required must be an array of strings")
                }
                node.required = names
            case "additionalProperties": node.additionalProperties = try sub(k, v)
            case "propertyNames": node.propertyNames = try sub(k, v)
            case "minProperties": node.minProperties = try integer(k, v)
            case "maxProperties": node.maxProperties = try integer(k, v)
            case "items": node.items = try sub(k, v)
            case "minItems": node.minItems = try integer(k, v)
            case "maxItems": node.maxItems = try integer(k, v)
            case "uniqueItems": node.uniqueItems = v.boolValue ?? false
            case "minLength": node.minLength = try integer(k, v)
            case "maxLength": node.maxLength = try integer(k, v)
            case "pattern":
                guard let source = v.stringValue else { throw fail("pattern must be a string") }
                do {
                    node.pattern = try Pattern(source)
                } catch {
                    throw fail(error.message)
                }
            case "minimum": node.minimum = try number(k, v)
            case "maximum": node.maximum = try number(k, v)
            case "exclusiveMinimum": node.exclusiveMinimum = try number(k, v)
            case "exclusiveMaximum": node.exclusiveMaximum = try number(k, v)
            case "multipleOf":
                let m = try number(k, v)
                guard m > 0 else { throw fail("multipleOf must be positive") }
                node.multipleOf = m
            case "allOf": node.allOf = try list(k, v)
            case "anyOf": node.anyOf = try list(k, v)
            case "oneOf": node.oneOf = try list(k, v)
            case "not": node.not = try sub(k, v)
            default: throw fail("keyword \"\(k)\" is not implemented")
            }
        }
        return node
    }

    static func split(_ uri: String) -> (String, String) {
        guard let hash = uri.firstIndex(of: "#") else { return (uri, "") }
        return (String(uri[..<hash]), String(uri[uri.index(after: hash)...]))
    }

    /// RFC 3986 reference resolution, for the relative-path and fragment references schemas use.
    static func resolveReference(_ reference: String, against base: String) -> String {
        if reference.contains("://") { return reference }
        let (basePath, _) = split(base)
        if reference.hasPrefix("#") { return basePath + reference }
        let (relative, fragment) = split(reference)
        guard let schemeEnd = basePath.firstRange(of: "://") else { return reference }
        let authorityStart = schemeEnd.upperBound
        let pathStart = basePath[authorityStart...].firstIndex(of: "/") ?? basePath.endIndex
        let prefix = String(basePath[..<pathStart])
        var segments = basePath[pathStart...].split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        segments.removeLast()  // the base document's own name
        if relative.hasPrefix("/") { segments = [""] }
        for part in relative.split(separator: "/", omittingEmptySubsequences: false) {
            switch part {
            case ".": continue
            case "..": if segments.count > 1 { segments.removeLast() }
            default: segments.append(String(part))
            }
        }
        return prefix + segments.joined(separator: "/") + (fragment.isEmpty ? "" : "#" + fragment)
    }

    /// The value at a JSON pointer (RFC 6901).
    static func resolve(pointer: String, in value: JSONValue) -> JSONValue? {
        guard !pointer.isEmpty else { return value }
        guard pointer.hasPrefix("/") else { return nil }
        var current = value
        for raw in pointer.dropFirst().split(separator: "/", omittingEmptySubsequences: false) {
            let token = String(raw).replacing("~1", with: "/").replacing("~0", with: "~")
            switch current {
            case .object(let o):
                guard let next = o[token] else { return nil }
                current = next
            case .array(let a):
                guard let i = Int(token), a.indices.contains(i) else { return nil }
                current = a[i]
            default:
                return nil
            }
        }
        return current
    }
}

