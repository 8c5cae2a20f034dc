import Hummingbird
import LedgerCore
import LedgerLog

/// Checkpoints and proofs over HTTP (`Schemas/proofs.md`): the same as `ledger checkpoint list`
/// and `ledger prove`, for auditors (auditor, admin).
extension LedgerAPI {
    func treeDirectory() throws -> String {
        guard let dataDirectory else { throw APIError.notFound("this ledger keeps no Merkle tree (no data directory)") }
        return dataDirectory
    }

    func checkpoints(_ request: Request, _ context: LedgerRequestContext) async throws -> Response {
        _ = try context.require(.auditor, .admin, for: "read checkpoints")
        guard let dataDirectory else { return JSONResponse.make(["checkpoints": []]) }
        let all = try await blocking { try Checkpoints(dataDirectory: dataDirectory).list() }
        return JSONResponse.make(["checkpoints": .array(all.map { c in
            ["size": .number(Double(c.size)), "root": .string(c.note.checkpoint.root.description), "note": .string(c.note.text)]
        })])
    }

    func inclusionProof(_ request: Request, _ context: LedgerRequestContext) async throws -> Response {
        _ = try context.require(.auditor, .admin, for: "read proofs")
        let offset = try integer(request, "offset", required: true)!
        let log = self.log
        let size = try integer(request, "treeSize", required: false) ?? log.head
        guard size >= 1, size <= log.head else { throw APIError.badRequest("invalid_parameter", "treeSize must be between 1 and the head \(log.head), not \(size)") }
        guard offset < size else { throw APIError.badRequest("invalid_parameter", "offset \(offset) is not in a tree of \(size) events") }
        let directory = try treeDirectory()
        let body = try await blocking { () -> JSONValue in
            let tree = try MerkleStore(dataDirectory: directory)
            try tree.catchUp(log, to: size)
            let proof = try tree.inclusionProof(index: offset, size: size)
            return ["offset": .number(Double(offset)), "treeSize": .number(Double(size)), "leafHash": .string(try tree.leaf(offset).description),
                    "root": .string(try tree.root(size: size).description), "proof": .array(proof.map { .string($0.description) })]
        }
        return JSONResponse.make(body)
    }

    func consistencyProof(_ request: Request, _ context: LedgerRequestContext) async throws -> Response {
        _ = try context.require(.auditor, .admin, for: "read proofs")
        let first = try integer(request, "first", required: true)!
        let log = self.log
        let second = try integer(request, "second", required: false) ?? log.head
        guard first >= 1, first <= second, second <= log.head else {
            throw APIError.badRequest("invalid_parameter", "a consistency proof needs 1 ≤ first ≤ second ≤ the head \(log.head), not \(first), \(second)")
        }
        let directory = try treeDirectory()
        let body = try await blocking { () -> JSONValue in
            let tree = try MerkleStore(dataDirectory: directory)
            try tree.catchUp(log, to: second)
            let proof = try tree.consistencyProof(first: first, second: second)
            return ["first": .number(Double(first)), "second": .number(Double(second)), "firstRoot": .string(try tree.root(size: first).description),
                    "secondRoot": .string(try tree.root(size: second).description), "proof": .array(proof.map { .string($0.description) })]
        }
        return JSONResponse.make(body)
    }

    private func integer(_ request: Request, _ name: String, required: Bool) throws -> Int64? {
        guard let text = request.uri.queryParameters.get(name) else {
            if required { throw APIError.badRequest("missing_parameter", "\(name) is required") }
            return nil
        }
        guard let value = Int64(text), value >= 0 else { throw APIError.badRequest("invalid_parameter", "\(name) must be an integer ≥ 0, not \(text.prefix(40))") }
        return value
    }
}
