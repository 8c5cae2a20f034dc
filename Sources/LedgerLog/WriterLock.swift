#if canImport(Glibc)
import Glibc
#endif
import LedgerCore

/// The one-writer-per-directory lock: `flock` on `<data>/LOCK`, holding a line that names the
/// holder. The kernel releases a `flock` when its process dies, so a killed writer never leaves
/// the directory stuck; the text is only for the error message of the next writer.
final class WriterLock: Sendable {
    let path: String
    private let fd: Int32

    private init(path: String, fd: Int32) {
        self.path = path
        self.fd = fd
    }

    static func acquire(directory: String, holder: String) throws -> WriterLock {
        let path = directory + "/LOCK"
        let fd = try FileIO.open(path, O_RDWR | O_CREAT)
        if flock(fd, LOCK_EX | LOCK_NB) != 0 {
            let code = errno
            let text = (try? FileIO.readFile(path)).map { String(decoding: $0, as: UTF8.self) } ?? ""
            close(fd)
            guard code == EWOULDBLOCK else { throw FileIO.fail("flock", path, code) }
            let who = text.trimmingSpaces.isEmpty ? "another process" : text.trimmingSpaces
            throw LedgerError(.locked, "data directory \(directory) is held by another writer: \(who); stop it, or read with `ledger read` alongside it")
        }
        let line = Array((holder + "\n").utf8)
        _ = ftruncate(fd, 0)
        do {
            try line.withUnsafeBytes { try FileIO.pwrite(fd, $0, 0, path) }
        } catch {
            // Closing the descriptor releases the lock: a failed open must not keep it.
            close(fd)
            throw error
        }
        return WriterLock(path: path, fd: fd)
    }

    /// Releases the lock (also released by the kernel if the process dies).
    func release() {
        _ = ftruncate(fd, 0)
        flock(fd, LOCK_UN)
    }

    deinit { close(fd) }

    /// A description of this process for the lock file: pid, command line, start time.
    static func describeCurrentProcess(now: Timestamp) -> String {
        var command = "ledger"
        if let bytes = try? FileIO.readFile("/proc/self/cmdline") {
            let parts = bytes.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
            if let first = parts.first {
                let name = first.split(separator: "/").last.map(String.init) ?? first
                command = ([name] + parts.dropFirst().prefix(2)).joined(separator: " ")
            }
        }
        var host = [CChar](repeating: 0, count: 256)
        gethostname(&host, 255)
        let hostname = String(decoding: host.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return "pid \(getpid()) (\(command)) on \(hostname) since \(now)"
    }
}

extension String {
    var trimmingSpaces: String {
        var s = Substring(self)
        while let c = s.first, c.isWhitespace { s = s.dropFirst() }
        while let c = s.last, c.isWhitespace { s = s.dropLast() }
        return String(s)
    }
}

/// `<data>/HEAD`: the offset after the last durable event, written after every fsync so that
/// readers in other processes see only whole, durable batches. 16 bytes: the offset (u64 LE) and
/// its bitwise complement, so a torn or foreign file is recognised and ignored.
enum HeadFile {
    static func path(_ directory: String) -> String { directory + "/HEAD" }

    static func encode(_ head: Int64) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.appendLE(UInt64(head))
        bytes.appendLE(~UInt64(head))
        return bytes
    }

    static func read(_ directory: String) -> Int64? { read(file: path(directory)) }

    /// A 16-byte value-and-complement file (HEAD, the Merkle tree's SYNCED); nil if missing or torn.
    static func read(file: String) -> Int64? {
        guard let bytes = try? FileIO.readFile(file), bytes.count == 16 else { return nil }
        return bytes.withUnsafeBytes { b -> Int64? in
            let v = b.baseAddress!.le(0, as: UInt64.self)
            guard b.baseAddress!.le(8, as: UInt64.self) == ~v else { return nil }
            return Int64(v)
        }
    }
}

/// `<data>/CORRUPT.json`: written when corruption is found (by `verify`, a reader, or the writer
/// on open). While it exists the log refuses writers; a clean `ledger verify` removes it.
enum CorruptionMarker {
    static func path(_ directory: String) -> String { directory + "/CORRUPT.json" }

    static func read(_ directory: String) -> String? {
        guard let bytes = try? FileIO.readFile(path(directory)) else { return nil }
        if let value = try? JSONParser.parse(bytes), let message = value["message"]?.stringValue { return message }
        return String(decoding: bytes, as: UTF8.self)
    }

    static func write(_ directory: String, message: String, offset: Int64?, segment: String?) {
        var o = JSONObject()
        o["message"] = .string(message)
        if let offset { o["offset"] = .number(Double(offset)) }
        if let segment { o["segment"] = .string(segment) }
        if let bytes = try? CanonicalJSON.encode(.object(o)) {
            try? FileIO.writeAtomically(path(directory), bytes + [0x0A], directory: directory)
        }
    }

    static func clear(_ directory: String) { FileIO.remove(path(directory)) }
}
