extension JSONSchema {
    /// Validates `value`; nil when valid, else the first violation found.
    public func validate(_ value: JSONValue, mode: ValidationMode = .ledger) -> SchemaViolation? {
        guard let failure = check(value, mode) else { return nil }
        return SchemaViolation(
            pointer: failure.reversedPath.reversed().map { "/" + escapePointer($0) }.joined(),
            message: failure.message, keyword: failure.keyword)
    }

    /// A violation on its way up: the path is collected in reverse while unwinding, so a valid
    /// instance costs no path bookkeeping at all.
    struct Failure {
        var reversedPath: [String]
        var message: String
        var keyword: String

        func under(_ component: String) -> Failure {
            var copy = self
            copy.reversedPath.append(component)
            return copy
        }
    }

    func check(_ value: JSONValue, _ mode: ValidationMode) -> Failure? {
        if let boolean {
            return boolean ? nil : Failure(reversedPath: [], message: "no value is allowed here", keyword: "false")
        }
        if let ref, let failure = ref.check(value, mode) { return failure }
        if let types, !Self.matches(types, value) {
            return fail("must be \(types.names), not \(value.typeName)", "type")
        }
        if let enumValues, !enumValues.contains(where: { Self.jsonEqual($0, value) }) {
            let list = enumValues.map(\.description).joined(separator: ", ")
            return fail("must be one of \(list), not \(Self.short(value))", "enum")
        }
        if let constValue, !Self.jsonEqual(constValue, value) {
            return fail("must be \(constValue), not \(Self.short(value))", "const")
        }
        switch value {
        case .string(let s):
            if let failure = checkString(s, mode) { return failure }
        case .number(let n):
            if let failure = checkNumber(n) { return failure }
        case .object(let object):
            if let failure = checkObject(object, mode) { return failure }
        case .array(let elements):
            if let failure = checkArray(elements, mode) { return failure }
        case .null, .bool:
            break
        }
        for schema in allOf {
            if let failure = schema.check(value, mode) { return failure }
        }
        if !anyOf.isEmpty && !anyOf.contains(where: { $0.check(value, mode) == nil }) {
            return fail("does not match any of the allowed forms", "anyOf")
        }
        if !oneOf.isEmpty {
            let matching = oneOf.filter { $0.check(value, mode) == nil }.count
            if matching != 1 {
                return fail(matching == 0 ? "does not match any of the allowed forms" : "matches more than one of the exclusive forms", "oneOf")
            }
        }
        if let not, not.check(value, mode) == nil {
            return fail("matches a form that is not allowed", "not")
        }
        return nil
    }

    @inline(__always)
    func fail(_ message: String, _ keyword: String) -> Failure {
        Failure(reversedPath: [], message: message, keyword: keyword)
    }

    func checkString(_ s: String, _ mode: ValidationMode) -> Failure? {
        if minLength != nil || maxLength != nil {
            let length = s.unicodeScalars.count
            if let minLength, length < minLength {
                return fail("must be at least \(minLength) characters long, was \(length)", "minLength")
            }
            if let maxLength, length > maxLength {
                return fail("must be at most \(maxLength) characters long, was \(length)", "maxLength")
            }
        }
        if let pattern, !pattern.matches(s) {
            return fail("\(Self.short(.string(s))) does not match the pattern \(pattern.source)", "pattern")
        }
        if isTime && mode == .ledger && Timestamp(s) == nil {
            return fail("\(Self.short(.string(s))) is not a UTC instant of the form 2026-11-30T12:00:00.000Z on the calendar", "x-ledger-time")
        }
        return nil
    }

    func checkNumber(_ n: Double) -> Failure? {
        if let minimum, n < minimum { return fail("must be ≥ \(Self.num(minimum)), was \(Self.num(n))", "minimum") }
        if let maximum, n > maximum { return fail("must be ≤ \(Self.num(maximum)), was \(Self.num(n))", "maximum") }
        if let exclusiveMinimum, n <= exclusiveMinimum {
            return fail("must be > \(Self.num(exclusiveMinimum)), was \(Self.num(n))", "exclusiveMinimum")
        }
        if let exclusiveMaximum, n >= exclusiveMaximum {
            return fail("must be < \(Self.num(exclusiveMaximum)), was \(Self.num(n))", "exclusiveMaximum")
        }
        if let multipleOf {
            let q = n / multipleOf
            if !q.isFinite || q != q.rounded(.towardZero) {
                return fail("must be a multiple of \(Self.num(multipleOf)), was \(Self.num(n))", "multipleOf")
            }
        }
        return nil
    }

    func checkObject(_ object: JSONObject, _ mode: ValidationMode) -> Failure? {
        if let minProperties, object.count < minProperties {
            return fail("must have at least \(minProperties) members, has \(object.count)", "minProperties")
        }
        if let maxProperties, object.count > maxProperties {
            return fail("must have at most \(maxProperties) members, has \(object.count)", "maxProperties")
        }
        var found: UInt64 = 0
        for member in object.members {
            if let propertyNames, let failure = propertyNames.check(.string(member.key), mode) {
                return Failure(
                    reversedPath: [member.key],
                    message: "member name \(Self.short(.string(member.key))) is not allowed: \(failure.message)",
                    keyword: "propertyNames")
            }
            var schema: JSONSchema? = nil
            for property in propertyList where property.name == member.key {
                schema = property.schema
                found |= property.requiredBit
                break
            }
            if let schema {
                if let failure = schema.check(member.value, mode) { return failure.under(member.key) }
            } else if let additionalProperties {
                if additionalProperties.boolean == false {
                    return Failure(
                        reversedPath: [member.key], message: "member \"\(member.key)\" is not allowed here",
                        keyword: "additionalProperties")
                }
                if let failure = additionalProperties.check(member.value, mode) { return failure.under(member.key) }
            }
        }
        if !requiredFastPath || found != requiredMask {
            for name in required where object[name] == nil {
                return fail("required member \"\(name)\" is missing", "required")
            }
        }
        return nil
    }

    func checkArray(_ elements: [JSONValue], _ mode: ValidationMode) -> Failure? {
        if let minItems, elements.count < minItems {
            return fail("must have at least \(minItems) items, has \(elements.count)", "minItems")
        }
        if let maxItems, elements.count > maxItems {
            return fail("must have at most \(maxItems) items, has \(elements.count)", "maxItems")
        }
        if let items {
            for (i, element) in elements.enumerated() {
                if let failure = items.check(element, mode) { return failure.under(String(i)) }
            }
        }
        if uniqueItems {
            for i in elements.indices {
                for j in elements.indices where j > i && Self.jsonEqual(elements[i], elements[j]) {
                    return Failure(reversedPath: [String(j)], message: "repeats item \(i)", keyword: "uniqueItems")
                }
            }
        }
        return nil
    }

    static func matches(_ types: TypeSet, _ value: JSONValue) -> Bool {
        switch value {
        case .null: return types.contains(.null)
        case .bool: return types.contains(.boolean)
        case .number(let n):
            return types.contains(.number) || (types.contains(.integer) && n == n.rounded(.towardZero))
        case .string: return types.contains(.string)
        case .array: return types.contains(.array)
        case .object: return types.contains(.object)
        }
    }

    /// JSON Schema equality: numbers by value (1 equals 1.0), booleans never equal numbers.
    static func jsonEqual(_ a: JSONValue, _ b: JSONValue) -> Bool { a == b }

    static func short(_ value: JSONValue) -> String {
        let text = value.description
        return text.count > 80 ? String(text.prefix(77)) + "..." : text
    }

    static func num(_ n: Double) -> String { JSONValue.number(n).description }
}

func escapePointer(_ component: String) -> String {
    guard component.contains("~") || component.contains("/") else { return component }
    return component.replacing("~", with: "~0").replacing("/", with: "~1")
}
