public import Foundation
import LedgerSimulator

/// What every test target shares: scratch directories, a seeded generator, the `ledger`
/// executable and child processes.

/// The repository's root folder (tests read `Schemas/`, `Replay/` and fixtures from the tree).
public let repositoryRoot: URL = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

/// A fresh temporary directory, removed when the value is dropped.
public final class TemporaryDirectory: @unchecked Sendable {
    public let path: String
    public init(_ name: String = "ledger-test") {
        path = FileManager.default.temporaryDirectory.appending(path: "\(name)-\(getpid())-\(UUID().uuidString.prefix(8))").path
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }
}

/// The seeded generator of the tests: the simulator's SplitMix64 (`SeededRandom`) started at the
/// seed, plus where the seed comes from. A randomised test takes its seed from
/// `LEDGER_TEST_SEED` when set (to re-run a failure), else from its default, and names the seed
/// in every failure message.
public struct SeededGenerator: RandomNumberGenerator, Sendable {
    private var random: SeededRandom
    public var state: UInt64 { random.state }
    public let seed: UInt64
    public init(seed: UInt64) {
        self.seed = seed
        random = SeededRandom(state: seed)
    }

    /// `LEDGER_TEST_SEED` if set, else `fallback`.
    public init(defaultSeed fallback: UInt64) {
        let env = ProcessInfo.processInfo.environment["LEDGER_TEST_SEED"].flatMap(UInt64.init)
        self.init(seed: env ?? fallback)
    }

    public mutating func next() -> UInt64 { random.next() }

    /// "seed N (re-run with LEDGER_TEST_SEED=N)": append it to failure messages.
    public var note: String { "seed \(seed) (re-run with LEDGER_TEST_SEED=\(seed))" }
}

/// The `ledger` executable built alongside the tests.
public let ledgerBinary: String = {
    var dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    for _ in 0..<4 {
        let candidate = dir.appending(path: "ledger").path
        if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        dir = dir.deletingLastPathComponent()
    }
    for build in [".build-test/release", ".build/release", ".build/debug"] {
        let candidate = repositoryRoot.appending(path: "\(build)/ledger").path
        if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
    }
    fatalError("cannot find the ledger executable next to \(CommandLine.arguments[0])")
}()

/// What a finished child process printed.
public struct Run: Sendable {
    public var status: Int32
    public var stdout: String
    public var stderr: String
    public var lines: [String] { stdout.split(separator: "\n").map(String.init) }
}

/// Runs a program to its end, feeding `input` on stdin.
@discardableResult
public func runProgram(_ executable: String, _ arguments: [String], input: String = "", environment: [String: String] = [:]) throws -> Run {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable.hasPrefix("/") ? executable : "/usr/bin/env")
    process.arguments = executable.hasPrefix("/") ? arguments : [executable] + arguments
    var env = ProcessInfo.processInfo.environment
    for (k, v) in environment { env[k] = v }
    process.environment = env
    let stdin = Pipe()
    let stdout = Pipe()
    let stderr = Pipe()
    process.standardInput = stdin
    process.standardOutput = stdout
    process.standardError = stderr
    try process.run()
    let writer = Thread {
        stdin.fileHandleForWriting.write(Data(input.utf8))
        try? stdin.fileHandleForWriting.close()
    }
    writer.start()
    let group = DispatchGroup()
    nonisolated(unsafe) var out = Data()
    group.enter()
    DispatchQueue.global().async {
        out = stdout.fileHandleForReading.readDataToEndOfFile()
        group.leave()
    }
    let err = stderr.fileHandleForReading.readDataToEndOfFile()
    group.wait()
    process.waitUntilExit()
    return Run(status: process.terminationStatus, stdout: String(decoding: out, as: UTF8.self), stderr: String(decoding: err, as: UTF8.self))
}

/// Runs `ledger` with `arguments`.
@discardableResult
public func ledger(_ arguments: [String], input: String = "", environment: [String: String] = [:]) throws -> Run {
    try runProgram(ledgerBinary, arguments, input: input, environment: environment)
}

/// Runs `python3` with `arguments`.
@discardableResult
public func python(_ arguments: [String], input: String = "") throws -> Run {
    try runProgram("python3", arguments, input: input)
}

/// A long-running child process (`ledger serve`, a feeder): its output lines collected as they
/// come, signals, and waits with bounds (never a bare sleep).
public final class ChildProcess: @unchecked Sendable {
    // @unchecked: the line buffers are guarded by `lock`; `process` is only started and waited on.
    public let process = Process()
    private let lock = NSCondition()
    private var outLines: [String] = []
    private var errLines: [String] = []
    private var finished = 0
    private let stdinPipe = Pipe()

    public init(_ executable: String, _ arguments: [String], environment: [String: String] = [:]) throws {
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        for (k, v) in environment { env[k] = v }
        process.environment = env
        let out = Pipe()
        let err = Pipe()
        process.standardInput = stdinPipe
        process.standardOutput = out
        process.standardError = err
        try process.run()
        collect(out.fileHandleForReading, stdout: true)
        collect(err.fileHandleForReading, stdout: false)
    }

    private func collect(_ handle: FileHandle, stdout: Bool) {
        let thread = Thread { [self] in
            var pending = Data()
            while true {
                let chunk = handle.availableData
                if chunk.isEmpty { break }
                pending.append(chunk)
                while let newline = pending.firstIndex(of: 0x0A) {
                    let line = String(decoding: pending[pending.startIndex..<newline], as: UTF8.self)
                    pending.removeSubrange(pending.startIndex...newline)
                    lock.lock()
                    if stdout { outLines.append(line) } else { errLines.append(line) }
                    lock.broadcast()
                    lock.unlock()
                }
            }
            lock.lock()
            finished += 1
            lock.broadcast()
            lock.unlock()
        }
        thread.start()
    }

    public var pid: Int32 { process.processIdentifier }
    public var stdoutLines: [String] { lock.withLock { outLines } }
    public var stderrLines: [String] { lock.withLock { errLines } }

    /// Waits up to `timeout` seconds for a stdout line satisfying `predicate`.
    public func waitForLine(timeout: Double = 30, _ predicate: (String) -> Bool) -> String? {
        let deadline = Date().addingTimeInterval(timeout)
        lock.lock()
        defer { lock.unlock() }
        while true {
            if let line = outLines.first(where: predicate) { return line }
            if finished == 2 || Date() >= deadline { return nil }
            lock.wait(until: min(deadline, Date().addingTimeInterval(0.5)))
        }
    }

    public func write(_ text: String) throws { try stdinPipe.fileHandleForWriting.write(contentsOf: Data(text.utf8)) }
    public func closeInput() { try? stdinPipe.fileHandleForWriting.close() }

    public func signal(_ signal: Int32) { kill(process.processIdentifier, signal) }

    /// Waits up to `timeout` seconds for the process to end; its status, or nil if it did not.
    public func wait(timeout: Double = 30) -> (status: Int32, signaled: Bool)? {
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning {
            if Date() >= deadline { return nil }
            usleep(2000)
        }
        process.waitUntilExit()
        return (process.terminationStatus, process.terminationReason == .uncaughtSignal)
    }

    deinit {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }
}

/// Waits up to `timeout` seconds for `condition`, polling; true if it held.
public func eventually(timeout: Double = 10, _ condition: () throws -> Bool) rethrows -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        if try condition() { return true }
        usleep(5000)
    }
    return try condition()
}
