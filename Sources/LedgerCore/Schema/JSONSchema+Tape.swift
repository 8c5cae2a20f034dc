#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What the tape's validator can say: valid, invalid, or "not here" (a value or keyword the tape
/// leaves to the full path: the verdict of ``JSONSchema/validate(_:mode:)`` on the tree then
/// decides, message included). Three values, not two, because `not`, `anyOf` and `oneOf` turn an
/// invalid sub-verdict into a valid one: "unsure" must never be read as "invalid" there.
public enum TapeVerdict: UInt8, Sendable {
    case valid, invalid, unsure
}

extension JSONSchema {
    /// Validates entry `i` of `tape` with exactly the rules of ``check(_:_:)``; `.valid` only when
    /// the tree validator would find no violation.
    public func verdict(_ tape: JSONTape, _ i: Int, mode: ValidationMode = .ledger) -> TapeVerdict {
        if let boolean { return boolean ? .valid : .invalid }
        var unsure = false
        if let ref {
            switch ref.verdict(tape, i, mode: mode) {
            case .invalid: return .invalid
            case .unsure: unsure = true
            case .valid: break
            }
        }
        let e = tape[i]
        if let types, !Self.matches(types, tape, i) { return .invalid }
        if enumValues != nil || constValue != nil {
            // Strings are compared by their bytes; other values are rare here: the tree decides.
            guard e.kind == .string else { return .unsure }
            let bytes = tape.bytes(i)
            if let enumValues, !enumValues.contains(where: { Self.equals($0, bytes) }) { return .invalid }
            if let constValue, !Self.equals(constValue, bytes) { return .invalid }
        }
        let own: TapeVerdict
        switch e.kind {
        case .string: own = stringVerdict(tape.bytes(i), mode)
        case .number:
            guard let n = tape.number(i) else { return .unsure }
            own = checkNumber(n) == nil ? .valid : .invalid
        case .object: own = objectVerdict(tape, i, mode)
        case .array: own = arrayVerdict(tape, i, mode)
        case .null, .false, .true: own = .valid
        }
        if own == .invalid { return .invalid }
        if own == .unsure { unsure = true }
        for schema in allOf {
            switch schema.verdict(tape, i, mode: mode) {
            case .invalid: return .invalid
            case .unsure: unsure = true
            case .valid: break
            }
        }
        if !anyOf.isEmpty {
            var any = TapeVerdict.invalid
            for schema in anyOf {
                let v = schema.verdict(tape, i, mode: mode)
                if v == .valid {
                    any = .valid
                    break
                }
                if v == .unsure { any = .unsure }
            }
            if any == .invalid { return .invalid }
            if any == .unsure { unsure = true }
        }
        if !oneOf.isEmpty {
            var matching = 0
            for schema in oneOf {
                switch schema.verdict(tape, i, mode: mode) {
                case .valid: matching += 1
                case .unsure: return .unsure
                case .invalid: break
                }
            }
            if matching != 1 { return .invalid }
        }
        if let not {
            switch not.verdict(tape, i, mode: mode) {
            case .valid: return .invalid
            case .unsure: return .unsure
            case .invalid: break
            }
        }
        return unsure ? .unsure : .valid
    }

    /// The tape's strings are ASCII: a character is a byte.
    private func stringVerdict(_ s: UnsafeBufferPointer<UInt8>, _ mode: ValidationMode) -> TapeVerdict {
        if let minLength, s.count < minLength { return .invalid }
        if let maxLength, s.count > maxLength { return .invalid }
        if let pattern, !pattern.matches(ascii: s) { return .invalid }
        if isTime && mode == .ledger && Timestamp.parse(s) == nil { return .invalid }
        return .valid
    }

    private func objectVerdict(_ tape: JSONTape, _ i: Int, _ mode: ValidationMode) -> TapeVerdict {
        let count = Int(tape[i].count)
        if let minProperties, count < minProperties { return .invalid }
        if let maxProperties, count > maxProperties { return .invalid }
        var unsure = false
        var found: UInt64 = 0
        var k = i + 1
        for _ in 0..<count {
            let key = tape.bytes(k)
            if let propertyNames {
                switch propertyNames.verdict(tape, k, mode: mode) {
                case .invalid: return .invalid
                case .unsure: unsure = true
                case .valid: break
                }
            }
            var schema: JSONSchema? = nil
            if let j = propertyIndex(key) {
                schema = propertyList[j].schema
                found |= propertyList[j].requiredBit
            }
            let sub: TapeVerdict
            if let schema {
                sub = schema.verdict(tape, k + 1, mode: mode)
            } else if let additionalProperties {
                sub = additionalProperties.verdict(tape, k + 1, mode: mode)
            } else {
                sub = .valid
            }
            if sub == .invalid { return .invalid }
            if sub == .unsure { unsure = true }
            k = Int(tape[k + 1].next)
        }
        if !requiredFastPath || found != requiredMask {
            for name in required {
                var bytes = name
                let present = bytes.withUTF8 { tape.member(i, $0) != nil }
                if !present { return .invalid }
            }
        }
        return unsure ? .unsure : .valid
    }

    /// The position in `propertyList` of the property named `key`.
    @inline(__always) private func propertyIndex(_ key: UnsafeBufferPointer<UInt8>) -> Int? {
        propertyNameBytes.withUnsafeBufferPointer { names -> Int? in
            propertyNameEnds.withUnsafeBufferPointer { ends -> Int? in
                var start = 0
                for j in 0..<ends.count {
                    let end = ends[j]
                    if end - start == key.count && (key.count == 0 || memcmp(names.baseAddress! + start, key.baseAddress!, key.count) == 0) {
                        return j
                    }
                    start = end
                }
                return nil
            }
        }
    }

    private func arrayVerdict(_ tape: JSONTape, _ i: Int, _ mode: ValidationMode) -> TapeVerdict {
        let count = Int(tape[i].count)
        if let minItems, count < minItems { return .invalid }
        if let maxItems, count > maxItems { return .invalid }
        // Equality of items by JSON value (1 equals 1.0): the tree's.
        if uniqueItems && count > 1 { return .unsure }
        var unsure = false
        if let items {
            var k = i + 1
            for _ in 0..<count {
                switch items.verdict(tape, k, mode: mode) {
                case .invalid: return .invalid
                case .unsure: unsure = true
                case .valid: break
                }
                k = Int(tape[k].next)
            }
        }
        return unsure ? .unsure : .valid
    }

    private static func matches(_ types: TypeSet, _ tape: JSONTape, _ i: Int) -> Bool {
        switch tape[i].kind {
        case .null: return types.contains(.null)
        case .false, .true: return types.contains(.boolean)
        case .number:
            if types.contains(.number) { return true }
            guard types.contains(.integer) else { return false }
            if tape[i].simple { return true }
            guard let n = tape.number(i) else { return false }
            return n == n.rounded(.towardZero)
        case .string: return types.contains(.string)
        case .array: return types.contains(.array)
        case .object: return types.contains(.object)
        }
    }

    private static func equals(_ value: JSONValue, _ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        guard case .string(var s) = value else { return false }
        return s.withUTF8 { $0.elementsEqual(bytes) }
    }
}

extension Pattern {
    /// ``matches(_:)`` for ASCII bytes.
    func matches(ascii bytes: UnsafeBufferPointer<UInt8>) -> Bool { program.search(bytes) }
}
