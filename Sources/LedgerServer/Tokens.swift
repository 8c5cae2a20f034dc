import Crypto
#if canImport(Glibc)
import Glibc
#endif
import LedgerCore
import Synchronization

/// What a bearer token may do (INTERFACES.md, Auth). A principal may hold several roles; it may
/// do what any of them allows.
public enum Role: String, Sendable, CaseIterable, Hashable {
    case reader, writer, auditor, finops, admin
}

/// The authenticated caller of a request.
public struct Principal: Sendable, Equatable {
    /// `svc:ci`, `user:carol`: the `actor` of the events it appends.
    public var name: String
    public var roles: Set<Role>
    /// Streams it may read or write (by prefix); nil means every stream.
    public var streamPrefixes: [String]?

    public init(name: String, roles: Set<Role>, streamPrefixes: [String]? = nil) {
        self.name = name
        self.roles = roles
        self.streamPrefixes = streamPrefixes
    }

    public func has(_ role: Role) -> Bool { roles.contains(role) }
    public func hasAny(_ roles: Role...) -> Bool { roles.contains { self.roles.contains($0) } }

    /// Whether `stream` lies within the principal's prefixes.
    public func mayTouch(stream: String) -> Bool {
        guard let prefixes = streamPrefixes else { return true }
        return prefixes.contains { stream.hasPrefix($0) }
    }

    /// Whether every stream of `category` lies within the principal's prefixes.
    public func mayTouch(category: String) -> Bool {
        guard let prefixes = streamPrefixes else { return true }
        let streams = category + "-"
        return prefixes.contains { streams.hasPrefix($0) }
    }
}

/// The tokens file (`--tokens FILE`): SHA-256 digests of bearer tokens mapped to principals.
/// Tokens themselves are never stored. Reloaded on SIGHUP without a restart; a file that does not
/// parse leaves the previous tokens in force (and says why).
///
/// ```json
/// {"tokens": [{"sha256": "<64 hex>", "principal": "svc:ci", "roles": ["writer"], "streamPrefixes": ["job-"]}]}
/// ```
public final class TokenStore: Sendable {
    struct Entry: Sendable {
        var digest: [UInt8]
        var principal: Principal
    }

    public let path: String
    private let entries: Mutex<[Entry]>

    /// Loads the file; throws a message naming what is wrong with it.
    public init(path: String) throws {
        self.path = path
        entries = Mutex(try TokenStore.load(path))
    }

    /// Re-reads the file; on failure the tokens in force stay and the error is thrown.
    public func reload() throws -> Int {
        let loaded = try TokenStore.load(path)
        entries.withLock { $0 = loaded }
        return loaded.count
    }

    /// The principal of a bearer token, comparing digests in constant time (every entry is
    /// compared, whatever matches).
    public func principal(token: String) -> Principal? {
        let digest = Array(SHA256.hash(data: Array(token.utf8)))
        return entries.withLock { list in
            var found: Principal?
            for entry in list {
                var difference: UInt8 = 0
                for i in 0..<32 { difference |= entry.digest[i] ^ digest[i] }
                if difference == 0 && found == nil { found = entry.principal }
            }
            return found
        }
    }

    /// The lowercase hex SHA-256 of a token: what the file stores.
    public static func digest(of token: String) -> String {
        hexString(SHA256.hash(data: Array(token.utf8)))
    }

    static func load(_ path: String) throws -> [Entry] {
        let bytes: [UInt8]
        do { bytes = try readWholeFile(path) } catch { throw LedgerError(.usage, "tokens file \(path): \(error)") }
        let value: JSONValue
        do { value = try JSONParser.parse(bytes) } catch {
            throw LedgerError(.usage, "tokens file \(path) is not JSON: \(error.message)")
        }
        guard let list = value["tokens"]?.arrayValue else {
            throw LedgerError(.usage, "tokens file \(path): expected {\"tokens\": [{\"sha256\", \"principal\", \"roles\", \"streamPrefixes\"?}, …]}")
        }
        var entries: [Entry] = []
        var seen: Set<String> = []
        for (i, item) in list.enumerated() {
            func fail(_ what: String) -> LedgerError { LedgerError(.usage, "tokens file \(path): tokens[\(i)]: \(what)") }
            guard case .object(let o) = item else { throw fail("must be an object") }
            for key in o.keys where !["sha256", "principal", "roles", "streamPrefixes"].contains(key) {
                throw fail("unknown member \"\(key)\" (sha256, principal, roles, streamPrefixes)")
            }
            guard let hex = o["sha256"]?.stringValue, hex.utf8.count == 64, let digest = Hash256(hex: hex) else {
                throw fail("\"sha256\" must be the 64 lowercase hex digits of the token's SHA-256 (`printf %s TOKEN | sha256sum`)")
            }
            guard seen.insert(hex).inserted else { throw fail("the same token digest appears twice") }
            guard let name = o["principal"]?.stringValue, StreamName.isValidPrincipal(name) else {
                throw fail("\"principal\" must be a name like svc:ci or user:carol (1-128 of [A-Za-z0-9._:-])")
            }
            guard let roleNames = o["roles"]?.arrayValue, !roleNames.isEmpty else {
                throw fail("\"roles\" must be a non-empty array of \(Role.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            var roles: Set<Role> = []
            for r in roleNames {
                guard let text = r.stringValue, let role = Role(rawValue: text) else {
                    throw fail("unknown role \(r) (roles: \(Role.allCases.map(\.rawValue).joined(separator: ", ")))")
                }
                roles.insert(role)
            }
            var prefixes: [String]?
            if let p = o["streamPrefixes"] {
                guard let array = p.arrayValue, !array.isEmpty else { throw fail("\"streamPrefixes\" must be a non-empty array of strings (leave it out for every stream)") }
                prefixes = try array.map {
                    guard let s = $0.stringValue, !s.isEmpty else { throw fail("\"streamPrefixes\" must hold non-empty strings") }
                    return s
                }
            }
            entries.append(Entry(digest: digest.bytes, principal: Principal(name: name, roles: roles, streamPrefixes: prefixes)))
        }
        return entries
    }
}

func readWholeFile(_ path: String) throws -> [UInt8] {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { throw LedgerError(.notFound, "cannot open \(path): \(String(cString: strerror(errno)))") }
    defer { close(fd) }
    var out: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress!, $0.count) }
        if n < 0 {
            if errno == EINTR { continue }
            throw LedgerError(.io, "read \(path): \(String(cString: strerror(errno)))")
        }
        if n == 0 { return out }
        out += chunk[0..<n]
    }
}
