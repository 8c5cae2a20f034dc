#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import LedgerCore
import LedgerKafka
import LedgerLog
import Synchronization

struct ImportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import",
        abstract: "Admin import of NDJSON envelopes that carry their own time, actor and id.",
        discussion: """
            Each line (Schemas/import-record.v1.json) is validated like any append; decision types \
            are allowed; times must not decrease; no processors run. The whole file is checked \
            before anything is written. Into an empty data directory, lines that also carry offset, \
            version, prevHash and hash (a `ledger read` export) must reproduce them exactly: the \
            import fails at the first difference and leaves the directory empty. Otherwise \
            positions and hashes are assigned anew after the head.
            """)

    @OptionGroup var data: DataDirectory
    @OptionGroup var kafka: KafkaOptions

    @Flag(help: "Required: keep each event's own time and actor.")
    var preserveTime = false

    @Argument(help: "The NDJSON file to import ('-' for standard input).")
    var file: String

    func validate() throws {
        if !preserveTime {
            throw ValidationError("--preserve-time is required: an import keeps each event's own time, actor and id")
        }
    }

    func run() throws {
        let bytes = try readInput(file)
        // Pass 1: every line, with no log open yet, so that bad input writes nothing.
        let policy = AppendPolicy(actor: ProcessInfoLite.localActor, mode: .admin)
        var previous: Timestamp? = nil
        var lineNumber = 0
        var records = 0
        var carriesPositions = true
        for line in bytes.split(separator: 0x0A, omittingEmptySubsequences: false) {
            lineNumber += 1
            let result = line.withUnsafeBytes { LineIngest.prepare($0, policy: policy, mode: .importRecords(reproduce: true)) }
            switch result {
            case .failure(let e):
                throw LedgerError(e.code, "line \(lineNumber)\(e.index.map { ", event \($0)" } ?? ""): \(e.message); nothing was imported")
            case .success(let events):
                for e in events {
                    if let t = e.time, let p = previous, t < p {
                        throw LedgerError(.timeOrder, "line \(lineNumber): time \(t) is before the time of the line before (\(p)): an import must not go back in time; nothing was imported")
                    }
                    previous = e.time ?? previous
                    if e.recorded == nil { carriesPositions = false }
                    records += 1
                }
            }
        }
        let directory = data.resolved
        let existed = FileIO_exists(directory + "/segments")
        let log: any EventLog & PreparedAppender = kafka.isKafka ? try kafka.openWriter(data) : try openLog(data)
        let wasEmpty = log.head == 0
        let reproduce = wasEmpty && carriesPositions && records > 0
        let progress = Progress("import", total: Int64(records))
        let imported = Mutex<Int64>(0)
        let ingest = LineIngest(log: log, policy: policy, mode: .importRecords(reproduce: reproduce), stopOnRejection: true) { results in
            var n: Int64 = 0
            for r in results {
                if case .failure(let e) = r.result { Terminal.error(lineError(e, line: r.line)) }
                if case .success(let acks) = r.result { n += Int64(acks.count) }
            }
            progress.update(imported.withLock { $0 += n; return $0 })
        }
        let summary = try ingest.run(bytes: bytes)
        progress.finish()
        try log.close()
        if summary.rejected > 0 {
            if wasEmpty && !existed { resetDataDirectory(directory) }
            let note = wasEmpty && !existed ? "nothing was imported" : "\(summary.events) events were imported before it"
            Terminal.error("import: stopped at the first rejected line; \(note)")
            throw ExitCode(2)
        }
        Terminal.line("imported \(Format.count(Int64(summary.events))) events from \(summary.lines) lines\(reproduce ? ", reproducing every offset, version and hash of the export" : ""); head offset \(log.head)")
    }
}

func FileIO_exists(_ path: String) -> Bool { access(path, F_OK) == 0 }

/// Removes what opening an empty data directory created, leaving none of an aborted import.
func resetDataDirectory(_ directory: String) {
    for sub in ["segments", "index", "quarantine", "merkle"] {
        let path = directory + "/" + sub
        if let dir = opendir(path) {
            while let entry = readdir(dir) {
                let name = withUnsafePointer(to: entry.pointee.d_name) { $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) } }
                if name != "." && name != ".." { unlink(path + "/" + name) }
            }
            closedir(dir)
        }
        rmdir(path)
    }
    for file in ["HEAD", "LOCK", "CORRUPT.json"] { unlink(directory + "/" + file) }
    rmdir(directory)
}

/// The whole input file (or standard input).
func readInput(_ file: String) throws -> [UInt8] {
    let fd = file == "-" ? 0 : open(file, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { throw LedgerError(.notFound, "cannot open \(file): \(String(cString: strerror(errno)))") }
    defer { if fd != 0 { close(fd) } }
    var out: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 1 << 20)
    while true {
        let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress!, $0.count) }
        if n < 0 {
            if errno == EINTR { continue }
            throw LedgerError(.io, "read \(file): \(String(cString: strerror(errno)))")
        }
        if n == 0 { break }
        out += chunk[0..<n]
    }
    return out
}

