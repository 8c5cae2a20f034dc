/// The properties the fuzz targets check on arbitrary input (`Tests/fuzz.sh` runs them under
/// libFuzzer; `FuzzCorpusTests` runs the kept corpus and every crash found through them in the
/// suite). Each returns normally for any input that does not break a property, and traps
/// (`preconditionFailure`, naming the property) for one that does.
public enum Fuzzing {
    /// JSON parser: any input is parsed or refused with an error; what parses has a canonical form
    /// that parses back to the same value, and canonicalising that again changes nothing.
    public static func json(_ input: UnsafeRawBufferPointer) {
        guard let value = try? JSONParser.parse(input) else { return }
        roundTrip(value)
    }

    /// Canonicaliser: the canonical form of what parses is stable (idempotent), has no insignificant
    /// whitespace, orders members, and is what `CanonicalJSON.write` into a writer gives too.
    public static func canonical(_ input: UnsafeRawBufferPointer) {
        guard let value = try? JSONParser.parse(input) else { return }
        guard let a = try? CanonicalJSON.encode(value) else { return }  // e.g. NaN cannot occur: refused by the parser
        let writer = ByteWriter(capacity: 64)
        guard (try? CanonicalJSON.write(value, into: writer)) != nil else { preconditionFailure("canonical: encode succeeded, write into a writer failed") }
        guard writer.bytes.elementsEqual(a) else { preconditionFailure("canonical: the two canonical writers disagree") }
        var inString = false
        var escaped = false
        for b in a {
            if inString {
                if escaped { escaped = false } else if b == 0x5C { escaped = true } else if b == 0x22 { inString = false }
            } else if b == 0x22 {
                inString = true
            } else if b == 0x20 || b == 0x0A || b == 0x0D || b == 0x09 {
                preconditionFailure("canonical: whitespace outside a string")
            }
        }
        roundTrip(value)
    }

    /// Schema validator and preparation: an input read as an append request (or as the `data` of
    /// each catalog type chosen by its first byte) is accepted or refused with an error, never a
    /// trap; what is accepted is accepted again from its own canonical bytes.
    public static func schema(_ input: UnsafeRawBufferPointer) {
        guard input.count > 0 else { return }
        let catalog = EventCatalog.standard
        let types = catalog.allTypes
        let type = types[Int(input[0]) % types.count]
        guard let value = try? JSONParser.parse(UnsafeRawBufferPointer(rebasing: input[1...])) else { return }
        let first = type.schema.validate(value)
        if first == nil, let again = try? JSONParser.parse(CanonicalJSON.encode(value)) {
            if type.schema.validate(again) != nil { preconditionFailure("schema: valid data is invalid once canonical") }
        }
        _ = catalog.appendRequestSchema.validate(value)
        let policy = AppendPolicy(actor: "svc:fuzz", mode: input[0] & 1 == 0 ? .client : .admin)
        guard let request = try? AppendRequest(json: value) else { return }
        guard let prepared = try? EventPreparer.prepare(request, policy: policy, catalog: catalog) else { return }
        guard let data = try? JSONParser.parse(prepared.canonicalData), case .object = data,
            let preparedType = catalog.type(prepared.type, schemaVersion: prepared.schemaVersion),
            preparedType.schema.validate(data) == nil
        else { preconditionFailure("schema: prepared data does not validate again") }
    }

    static func roundTrip(_ value: JSONValue) {
        guard let canonical = try? CanonicalJSON.encode(value) else { return }
        guard let back = try? JSONParser.parse(canonical) else { preconditionFailure("json: the canonical form does not parse") }
        guard back == value else { preconditionFailure("json: the canonical form parses to another value") }
        guard let again = try? CanonicalJSON.encode(back), again == canonical else { preconditionFailure("json: canonicalising is not idempotent") }
    }
}
