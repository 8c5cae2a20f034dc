#if canImport(Glibc)
import Glibc
#endif
import LedgerCore

private final class ThreadBody: @unchecked Sendable {
    let body: @Sendable () -> Void
    let name: String
    init(_ body: @escaping @Sendable () -> Void, _ name: String) {
        self.body = body
        self.name = name
    }
}

/// Starts a named OS thread: the package's one way to start a thread. Blocking I/O, fsync and
/// condition waits run on such threads, never on Swift's cooperative pool.
public func startThread(name: String, _ body: @escaping @Sendable () -> Void) {
    let box = Unmanaged.passRetained(ThreadBody(body, name)).toOpaque()
    var thread = pthread_t()
    let result = pthread_create(&thread, nil, { raw in
        let box = Unmanaged<ThreadBody>.fromOpaque(raw!).takeRetainedValue()
        _ = setThreadName(pthread_self(), String(box.name.prefix(15)))
        box.body()
        return nil
    }, box)
    precondition(result == 0, "pthread_create failed: \(result)")
    pthread_detach(thread)
}

/// glibc's pthread_setname_np (a GNU extension the Glibc module does not export): names the
/// ledger's threads in `top -H`, `perf` and core dumps.
@_silgen_name("pthread_setname_np")
private func setThreadName(_ thread: pthread_t, _ name: UnsafePointer<CChar>) -> Int32

/// glibc's gettid (the Glibc module does not export it).
@_silgen_name("gettid")
private func currentThreadID() -> Int32

/// Lowers the calling OS thread's scheduling priority to `nice` (Linux: a nice value is per
/// thread; threads it starts inherit it). Raising it back needs privileges, so this is for
/// threads that do background work for their whole life. Returns whether it took effect.
@discardableResult
public func lowerThreadPriority(nice: Int32) -> Bool {
    setpriority(__priority_which_t(PRIO_PROCESS.rawValue), id_t(currentThreadID()), nice) == 0
}

/// The calling OS thread's nice value.
public func threadPriority() -> Int32 {
    getpriority(__priority_which_t(PRIO_PROCESS.rawValue), id_t(currentThreadID()))
}

/// A few long-lived threads that run blocking work for async callers: opening and closing a log,
/// snapshots, SQLite transactions, reads of segment files. `run` suspends the caller (it never
/// blocks a cooperative thread) and resumes it with the result.
///
/// A pool is also a `TaskExecutor`: async work given it as its preference
/// (`withTaskExecutorPreference`) runs on its threads instead of the cooperative pool. The
/// server runs its background folds so — the processors on ``background`` — at a lower
/// priority than the threads that answer requests and deliver to subscribers.
public final class BlockingPool: TaskExecutor, Sendable {
    private struct Job {
        var body: @Sendable () -> Void
    }
    private struct Queue {
        var jobs: [Job] = []
        var head = 0
    }
    private let queue = ConditionLock(Queue())
    public let threads: Int

    /// The pool the engine and the server share (4 threads: blocking work is short).
    public static let shared = BlockingPool(name: "ledger-blocking", threads: 4)

    /// A server's processors (their rounds as async work with this pool as executor
    /// preference): one thread per core at nice ``backgroundNice``. Under load the threads that
    /// take appends and deliver to subscribers run first and the folds take the CPU left over;
    /// they read the log, so falling behind for a moment loses nothing and costs no memory.
    public static let background = BlockingPool(name: "ledger-bg", threads: 2, nice: backgroundNice)
    /// The nice value of a server's background folds (the processors, the projector).
    public static let backgroundNice: Int32 = 5

    /// - Parameter nice: the threads' nice value (0: the process's own priority).
    public init(name: String, threads: Int, nice: Int32 = 0) {
        self.threads = max(1, threads)
        for i in 0..<self.threads {
            startThread(name: "\(name)-\(i)") { [queue] in
                if nice > 0 { lowerThreadPriority(nice: nice) }
                while true {
                    let job: Job = queue.wait(until: { $0.head < $0.jobs.count }) { q in
                        let job = q.jobs[q.head]
                        q.head += 1
                        if q.head == q.jobs.count {
                            q.jobs.removeAll(keepingCapacity: true)
                            q.head = 0
                        } else if q.head > 1024 && q.head * 2 > q.jobs.count {
                            q.jobs.removeFirst(q.head)
                            q.head = 0
                        }
                        return job
                    }
                    job.body()
                }
            }
        }
    }

    /// Runs `body` on one of the pool's threads; the caller is suspended, not blocked. `body`
    /// (and whatever it captured) is released before the caller resumes.
    public func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
            let once = Once(body)
            let job = Job { continuation.resume(with: Result { try once.take()() }) }
            queue.update { q in q.jobs.append(job) }
        }
    }

    /// A closure handed out once, so that the pool's thread does not hold it (and what it
    /// captured, such as a projector and its lock) after it ran.
    private final class Once<T>: @unchecked Sendable {
        // @unchecked: taken exactly once, by the one thread that runs the job.
        private var body: (@Sendable () throws -> T)?
        init(_ body: @escaping @Sendable () throws -> T) { self.body = body }
        func take() -> @Sendable () throws -> T {
            defer { body = nil }
            return body!
        }
    }

    /// Runs an async job on one of the pool's threads (the `TaskExecutor` requirement).
    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        let executor = asUnownedTaskExecutor()
        queue.update { q in q.jobs.append(Job { job.runSynchronously(on: executor) }) }
    }

    /// Non-throwing form of ``run(_:)``.
    public func run<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { (continuation: CheckedContinuation<T, Never>) in
            let once = Once<T>(body)
            queue.update { q in q.jobs.append(Job { continuation.resume(returning: try! once.take()()) }) }
        }
    }

}

/// glibc's malloc_trim (a GNU extension the Glibc module does not export).
@_silgen_name("malloc_trim")
private func mallocTrim(_ pad: Int) -> Int32

/// Gives the heap's free memory back to the system (after work that needed a lot for a moment,
/// such as encoding a large snapshot), so a long-running process does not stay at its high-water
/// mark.
public func releaseFreeMemory() { _ = mallocTrim(0) }

/// Seconds on the monotonic clock: for pacing and timing, never for what is recorded.
public func monotonicSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}
