#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import LedgerCore
import Synchronization

/// Thin, throwing wrappers over the POSIX file calls the log needs. Every failure names the file
/// and the call, because an operator reading the error has nothing else to go on.
public enum FileIO {
    /// Test hooks: faults to inject into writes and syncs (``IOFaults``) and journals that see
    /// every write, sync, creation and rename before it happens (the power-loss tests). Several
    /// may be installed at once — tests run in parallel, each filtering by its own directory — and
    /// they come and go while other logs' threads are in a file call, so the list is read and its
    /// references retained under a lock. With none installed (always, outside the fault tests) a
    /// file call pays one atomic load.
    public static func install(_ faults: IOFaults) { updateHooks { $0.faults.append(faults) } }
    public static func remove(_ faults: IOFaults) { updateHooks { $0.faults.removeAll { $0 === faults } } }
    public static func install(_ journal: any IOJournal) { updateHooks { $0.journals.append(journal) } }
    public static func remove(_ journal: any IOJournal) { updateHooks { $0.journals.removeAll { $0 === journal } } }

    private struct Hooks {
        var faults: [IOFaults] = []
        var journals: [any IOJournal] = []
    }
    private static let hooks = Mutex(Hooks())
    private static let hooked = Atomic<Bool>(false)

    private static func updateHooks(_ change: (inout Hooks) -> Void) {
        hooks.withLock {
            change(&$0)
            hooked.store(!$0.faults.isEmpty || !$0.journals.isEmpty, ordering: .releasing)
        }
    }

    /// The journals installed (empty unless a power-loss test runs).
    private static var journals: [any IOJournal] { hooked.load(ordering: .acquiring) ? hooks.withLock { $0.journals } : [] }

    /// The fault planned for this call, if an installed ``IOFaults`` has one.
    private static func fault(_ operation: IOFaults.Operation, _ path: String) -> IOFaults.Fault? {
        guard hooked.load(ordering: .acquiring) else { return nil }
        for faults in hooks.withLock({ $0.faults }) {
            if let fault = faults.check(operation, path) { return fault }
        }
        return nil
    }

    static func errorText(_ code: Int32 = errno) -> String { String(cString: strerror(code)) }

    static func fail(_ call: String, _ path: String, _ code: Int32 = errno) -> LedgerError {
        LedgerError(.io, "\(call) \(path): \(errorText(code))")
    }

    static func open(_ path: String, _ flags: Int32, mode: mode_t = 0o600) throws -> Int32 {
        if flags & O_CREAT != 0 { for journal in journals where access(path, F_OK) != 0 { try journal.willCreate(path) } }
        let fd = Glibc.open(path, flags | O_CLOEXEC, mode)
        guard fd >= 0 else { throw fail("open", path) }
        return fd
    }

    static func exists(_ path: String) -> Bool { access(path, F_OK) == 0 }

    static func size(_ fd: Int32, _ path: String) throws -> Int64 {
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw fail("fstat", path) }
        return Int64(st.st_size)
    }

    static func size(path: String) -> Int64? {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        return Int64(st.st_size)
    }

    /// Reads exactly `count` bytes at `offset` (fewer only at end of file).
    static func pread(_ fd: Int32, _ buffer: UnsafeMutableRawPointer, _ count: Int, _ offset: Int64, _ path: String) throws -> Int {
        var done = 0
        while done < count {
            let n = Glibc.pread(fd, buffer + done, count - done, off_t(offset) + off_t(done))
            if n < 0 {
                if errno == EINTR { continue }
                throw fail("pread", path)
            }
            if n == 0 { break }
            done += n
        }
        return done
    }

    static func pwrite(_ fd: Int32, _ buffer: UnsafeRawBufferPointer, _ offset: Int64, _ path: String) throws {
        for journal in journals { try journal.willWrite(fd: fd, path: path, offset: offset, count: buffer.count) }
        var buffer = buffer
        var injected: Int32 = 0
        if let fault = fault(.write, path) {
            switch fault {
            case .error(let code): throw fail("pwrite", path, code)
            case .partial(let code):
                buffer = UnsafeRawBufferPointer(rebasing: buffer[0..<(buffer.count / 2)])
                injected = code
            }
        }
        var done = 0
        while done < buffer.count {
            let n = Glibc.pwrite(fd, buffer.baseAddress! + done, buffer.count - done, off_t(offset) + off_t(done))
            if n < 0 {
                if errno == EINTR { continue }
                throw fail("pwrite", path)
            }
            done += n
        }
        if injected != 0 { throw fail("pwrite", path, injected) }
    }

    static func write(_ fd: Int32, _ buffer: UnsafeRawBufferPointer, _ path: String) throws {
        for journal in journals { try journal.willWrite(fd: fd, path: path, offset: Int64(lseek(fd, 0, SEEK_CUR)), count: buffer.count) }
        var buffer = buffer
        var injected: Int32 = 0
        if let fault = fault(.write, path) {
            switch fault {
            case .error(let code): throw fail("write", path, code)
            case .partial(let code):
                buffer = UnsafeRawBufferPointer(rebasing: buffer[0..<(buffer.count / 2)])
                injected = code
            }
        }
        var done = 0
        while done < buffer.count {
            let n = Glibc.write(fd, buffer.baseAddress! + done, buffer.count - done)
            if n < 0 {
                if errno == EINTR { continue }
                throw fail("write", path)
            }
            done += n
        }
        if injected != 0 { throw fail("write", path, injected) }
    }

    static func fsync(_ fd: Int32, _ path: String) throws {
        let journals = journals
        let marks = try journals.map { try $0.willSync(path) }
        if case .error(let code)? = fault(.sync, path) { throw fail("fsync", path, code) }
        guard Glibc.fsync(fd) == 0 else { throw fail("fsync", path) }
        for (journal, mark) in zip(journals, marks) { journal.didSync(path, mark) }
    }

    static func fdatasync(_ fd: Int32, _ path: String) throws {
        let journals = journals
        let marks = try journals.map { try $0.willSync(path) }
        if case .error(let code)? = fault(.sync, path) { throw fail("fdatasync", path, code) }
        guard Glibc.fdatasync(fd) == 0 else { throw fail("fdatasync", path) }
        for (journal, mark) in zip(journals, marks) { journal.didSync(path, mark) }
    }

    static func truncate(_ fd: Int32, _ length: Int64, _ path: String) throws {
        guard ftruncate(fd, off_t(length)) == 0 else { throw fail("ftruncate", path) }
    }

    /// fsync of a directory, so that files created or renamed in it survive a crash.
    static func syncDirectory(_ path: String) throws {
        let fd = try open(path, O_RDONLY | O_DIRECTORY)
        defer { close(fd) }
        try fsync(fd, path)
    }

    /// Copies bytes `from..<to` of an open file into a new file `target` (which must not exist), fsynced.
    static func copyRange(_ fd: Int32, _ path: String, from: Int64, to: Int64, into target: String) throws {
        let out = try open(target, O_WRONLY | O_CREAT | O_EXCL)
        defer { close(out) }
        var buffer = [UInt8](repeating: 0, count: Int(min(to - from, 1 << 20)))
        var position = from
        while position < to {
            let n = try buffer.withUnsafeMutableBytes { try pread(fd, $0.baseAddress!, Int(min(Int64($0.count), to - position)), position, path) }
            if n == 0 { break }
            try buffer.withUnsafeBytes { try write(out, UnsafeRawBufferPointer(rebasing: $0[0..<n]), target) }
            position += Int64(n)
        }
        try fsync(out, target)
    }

    public static func makeDirectory(_ path: String) throws {
        if mkdir(path, 0o700) != 0 && errno != EEXIST { throw fail("mkdir", path) }
    }

    static func rename(_ from: String, _ to: String) throws {
        for journal in journals { try journal.willRename(from, to) }
        guard Glibc.rename(from, to) == 0 else { throw fail("rename", from + " to") }
    }

    static func remove(_ path: String) {
        _ = unlink(path)
    }

    static func list(_ directory: String) throws -> [String] {
        guard let dir = opendir(directory) else { throw fail("opendir", directory) }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafePointer(to: entry.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted()
    }

    /// Reads a whole (small) file.
    static func readFile(_ path: String) throws -> [UInt8] {
        let fd = try open(path, O_RDONLY)
        defer { close(fd) }
        let size = Int(try self.size(fd, path))
        var bytes = [UInt8](repeating: 0, count: size)
        let n = try bytes.withUnsafeMutableBytes { (b) -> Int in
            try pread(fd, b.baseAddress!, size, 0, path)
        }
        return Array(bytes[0..<n])
    }

    /// Replaces `path` atomically and durably: temporary file, fsync, rename, fsync of the directory.
    public static func writeAtomically(_ path: String, _ bytes: [UInt8], directory: String) throws {
        let temporary = path + ".tmp"
        let fd = try open(temporary, O_WRONLY | O_CREAT | O_TRUNC)
        do {
            try bytes.withUnsafeBytes { (b) in try write(fd, b, temporary) }
            try fsync(fd, temporary)
        } catch {
            close(fd)
            throw error
        }
        close(fd)
        try rename(temporary, path)
        try syncDirectory(directory)
    }
}

/// Little-endian integer access to byte buffers.
extension UnsafeRawPointer {
    @inline(__always) func le<T: FixedWidthInteger>(_ offset: Int, as: T.Type = T.self) -> T {
        T(littleEndian: loadUnaligned(fromByteOffset: offset, as: T.self))
    }
}

extension UnsafeMutableRawPointer {
    @inline(__always) func putLE<T: FixedWidthInteger>(_ value: T, at offset: Int) {
        storeBytes(of: value.littleEndian, toByteOffset: offset, as: T.self)
    }
}

extension Array where Element == UInt8 {
    @inline(__always) mutating func appendLE<T: FixedWidthInteger>(_ value: T) {
        var v = value.littleEndian
        Swift.withUnsafeBytes(of: &v) { append(contentsOf: $0) }
    }
}

/// I/O faults for the log's fault tests: the Nth write (`write`/`pwrite`) or sync
/// (`fsync`/`fdatasync`) of a file under `directory`, counted from when the object is installed,
/// fails as planned. Files elsewhere (other tests running at the same time) are not touched.
public final class IOFaults: Sendable {
    public enum Operation: Sendable { case write, sync }
    public enum Fault: Sendable {
        /// The call fails with this errno (EIO, ENOSPC …), writing nothing.
        case error(Int32)
        /// A write puts the first half of its bytes in the file, then fails with this errno.
        case partial(Int32)
    }

    private struct State {
        var writes = 0
        var syncs = 0
        var fired = false
    }
    private let state = Mutex(State())
    private let plan: (Operation, Int, Fault)?
    let directory: String

    /// Counts operations and fails the `n`th (1-based) of `operation` with `fault`.
    public init(directory: String, failing operation: Operation, at n: Int, with fault: Fault) {
        self.directory = directory
        plan = (operation, n, fault)
    }

    /// Counts operations only (to learn how many a scenario has).
    public init(directory: String) {
        self.directory = directory
        plan = nil
    }

    /// Writes and syncs seen so far, and whether the planned fault fired.
    public var counts: (writes: Int, syncs: Int, fired: Bool) { state.withLock { ($0.writes, $0.syncs, $0.fired) } }

    func check(_ operation: Operation, _ path: String) -> Fault? {
        guard path.hasPrefix(directory) else { return nil }
        return state.withLock { s in
            let n: Int
            switch operation {
            case .write:
                s.writes += 1
                n = s.writes
            case .sync:
                s.syncs += 1
                n = s.syncs
            }
            guard let (op, at, fault) = plan, op == operation, at == n else { return nil }
            s.fired = true
            return fault
        }
    }
}

/// What the power-loss tests watch: each call may throw (the simulated machine is down) and
/// otherwise records what a crash before the next sync could still undo.
public protocol IOJournal: AnyObject, Sendable {
    func willCreate(_ path: String) throws
    func willWrite(fd: Int32, path: String, offset: Int64, count: Int) throws
    /// Before a sync of `path`, a file (fsync/fdatasync) or a directory (its entries): returns a
    /// mark of what was written so far, which ``didSync(_:_:)`` then knows to be durable.
    func willSync(_ path: String) throws -> Int
    func didSync(_ path: String, _ mark: Int)
    func willRename(_ from: String, _ to: String) throws
}
