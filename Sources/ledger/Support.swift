#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import LedgerCore
import LedgerLog
import LedgerSimulator
import Synchronization

/// `--data-dir`, shared by every command that reads or writes a data directory.
struct DataDirectory: ParsableArguments {
    @Option(name: .customLong("data-dir"), help: ArgumentHelp("The data directory (default $LEDGER_DATA_DIR, else ./ledger-data).", valueName: "DIR"))
    var path: String?

    var resolved: String { path ?? ProcessInfoLite.environment("LEDGER_DATA_DIR") ?? "./ledger-data" }
}

enum ProcessInfoLite {
    static func environment(_ name: String) -> String? {
        guard let value = getenv(name) else { return nil }
        return String(cString: value)
    }

    /// `user:<login name>`: the actor of the local CLI's appends.
    static var localActor: String {
        var name = environment("USER") ?? environment("LOGNAME")
        if name == nil, let pw = getpwuid(geteuid()) { name = String(cString: pw.pointee.pw_name) }
        let cleaned = String((name ?? "unknown").filter { $0.isASCII && ($0.isLetter || $0.isNumber || "._:-".contains($0)) }.prefix(120))
        return "user:" + (cleaned.isEmpty ? "unknown" : cleaned)
    }
}

func exitProcess(_ code: Int32) -> Never {
    Terminal.flush()
    exit(code)
}

/// Buffered standard output (1 MiB) and line-at-a-time standard error.
enum Terminal {
    private static let buffer = Mutex<[UInt8]>([])

    static func write(_ bytes: [UInt8]) {
        buffer.withLock { b in
            b.append(contentsOf: bytes)
            if b.count >= 1 << 20 { drain(&b) }
        }
    }

    static func line(_ text: String) { write(Array((text + "\n").utf8)) }

    static func json(_ value: JSONValue) {
        var bytes = (try? CanonicalJSON.encode(value)) ?? Array("null".utf8)
        bytes.append(0x0A)
        write(bytes)
    }

    static func flush() { buffer.withLock { drain(&$0) } }

    private static func drain(_ b: inout [UInt8]) {
        var done = 0
        while done < b.count {
            let n = b.withUnsafeBytes { Glibc.write(1, $0.baseAddress! + done, $0.count - done) }
            if n <= 0 {
                if errno == EINTR { continue }
                break
            }
            done += n
        }
        b.removeAll(keepingCapacity: true)
    }

    static func error(_ text: String) {
        flush()
        let bytes = Array((text + "\n").utf8)
        bytes.withUnsafeBytes { _ = Glibc.write(2, $0.baseAddress!, $0.count) }
    }
}

/// Aligned columns for people.
struct Table {
    var headers: [String]
    var rows: [[String]] = []
    /// Columns whose cells are right-aligned (numbers).
    var numeric: Set<Int> = []

    init(_ headers: [String], numeric: Set<Int> = []) {
        self.headers = headers
        self.numeric = numeric
    }

    mutating func add(_ row: [String]) { rows.append(row) }

    func render() -> String {
        var widths = headers.map(\.count)
        for row in rows { for (i, cell) in row.enumerated() where i < widths.count { widths[i] = max(widths[i], cell.count) } }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { i, cell in
                let pad = String(repeating: " ", count: max(0, widths[i] - cell.count))
                return numeric.contains(i) ? pad + cell : cell + pad
            }.joined(separator: "  ").trimmingTrailingSpaces
        }
        return ([line(headers)] + rows.map(line)).joined(separator: "\n")
    }
}

extension String {
    var trimmingTrailingSpaces: String {
        var s = Substring(self)
        while s.last == " " { s = s.dropLast() }
        return String(s)
    }
}

/// Human-readable numbers.
enum Format {
    static func bytes(_ n: Int64) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var v = Double(n)
        var u = 0
        while v >= 1024 && u < units.count - 1 {
            v /= 1024
            u += 1
        }
        return u == 0 ? "\(n) B" : fixed(v, 1) + " " + units[u]
    }

    static func fixed(_ v: Double, _ digits: Int) -> String {
        guard v.isFinite else { return "\(v)" }
        var scale = 1.0
        for _ in 0..<digits { scale *= 10 }
        let r = (v * scale).rounded() / scale
        var s = "\(r)"
        if let dot = s.firstIndex(of: ".") {
            let decimals = s.distance(from: dot, to: s.endIndex) - 1
            if decimals < digits { s += String(repeating: "0", count: digits - decimals) }
            if digits == 0 { s = String(s[..<dot]) }
        } else if digits > 0 {
            s += "." + String(repeating: "0", count: digits)
        }
        return s
    }

    static func count(_ n: Int64) -> String {
        let s = String(n)
        var out = ""
        for (i, c) in s.reversed().enumerated() {
            if i > 0 && i % 3 == 0 && c != "-" { out.append(",") }
            out.append(c)
        }
        return String(out.reversed())
    }
}

/// Peak resident set size of this process, in bytes (VmHWM).
func peakRSS() -> Int64 {
    guard let text = try? String(contentsOfFileLite: "/proc/self/status") else { return 0 }
    for line in text.split(separator: "\n") where line.hasPrefix("VmHWM:") {
        let digits = line.filter(\.isNumber)
        return (Int64(digits) ?? 0) * 1024
    }
    return 0
}

/// Current resident set size (VmRSS).
func currentRSS() -> Int64 {
    guard let text = try? String(contentsOfFileLite: "/proc/self/status") else { return 0 }
    for line in text.split(separator: "\n") where line.hasPrefix("VmRSS:") {
        return (Int64(line.filter(\.isNumber)) ?? 0) * 1024
    }
    return 0
}

extension String {
    init(contentsOfFileLite path: String) throws {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw LedgerError(.io, "open \(path)") }
        defer { close(fd) }
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress!, $0.count) }
            if n <= 0 { break }
            out += chunk[0..<n]
        }
        self = String(decoding: out, as: UTF8.self)
    }
}

/// Opens a log for writing with the CLI's logger and options.
func openLog(_ dataDir: DataDirectory, fsync: FsyncPolicy = .always, configure: (inout LogOptions) -> Void = { _ in }) throws -> SegmentLog {
    var options = LogOptions()
    options.fsync = fsync
    configure(&options)
    return try SegmentLog.open(directory: dataDir.resolved, options: options)
}

/// Progress of a long command on standard error — done, rate, time left — redrawn at most four
/// times a second, and only when standard error is a terminal (scripts and logs see nothing).
final class Progress: Sendable {
    let label: String
    let total: Int64?
    let unit: String
    private let enabled: Bool
    private let started = monotonicSeconds()
    private let last = Mutex<(draw: Double, drawn: Bool)>((0, false))

    init(_ label: String, total: Int64?, unit: String = "events") {
        self.label = label
        self.total = total
        self.unit = unit
        enabled = isatty(2) == 1 && ProcessInfoLite.environment("LEDGER_NO_PROGRESS") == nil
    }

    func update(_ done: Int64) {
        guard enabled else { return }
        let now = monotonicSeconds()
        let due = last.withLock { l -> Bool in
            guard now - l.draw >= 0.25 else { return false }
            l = (now, true)
            return true
        }
        guard due else { return }
        let rate = Double(done) / max(now - started, 0.001)
        var text = "\r\u{1B}[K\(label): \(Format.count(done))"
        if let total, total > 0 {
            text += " / \(Format.count(total)) \(unit) (\(Int(Double(done) * 100 / Double(total)))%)"
        } else {
            text += " \(unit)"
        }
        text += ", \(Format.count(Int64(rate)))/s"
        if let total, rate > 0, done < total { text += ", \(Self.duration(Double(total - done) / rate)) left" }
        let bytes = Array(text.utf8)
        bytes.withUnsafeBytes { _ = Glibc.write(2, $0.baseAddress!, $0.count) }
    }

    /// Clears the line.
    func finish() {
        guard enabled, last.withLock({ $0.drawn }) else { return }
        let clear = Array("\r\u{1B}[K".utf8)
        clear.withUnsafeBytes { _ = Glibc.write(2, $0.baseAddress!, $0.count) }
    }

    static func duration(_ seconds: Double) -> String {
        let s = Int(seconds.rounded(.up))
        return s < 60 ? "\(s) s" : s < 3600 ? "\(s / 60) min \(s % 60) s" : "\(s / 3600) h \(s % 3600 / 60) min"
    }
}

