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

/// A few long-lived threads that run blocking work for async callers: opening and closing a log,
/// snapshots, SQLite transactions, reads of segment files. `run` suspends the caller (it never
/// blocks a cooperative thread) and resumes it with the result.
public final class BlockingPool: Sendable {
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

    public init(name: String, threads: Int) {
        self.threads = max(1, threads)
        for i in 0..<self.threads {
            startThread(name: "\(name)-\(i)") { [queue] in
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

    /// Runs `body` on one of the pool's threads; the caller is suspended, not blocked.
    public func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
            let job = Job { continuation.resume(with: Result { try body() }) }
            queue.update { q in q.jobs.append(job) }
        }
    }

    /// Non-throwing form of ``run(_:)``.
    public func run<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { (continuation: CheckedContinuation<T, Never>) in
            queue.update { q in q.jobs.append(Job { continuation.resume(returning: body()) }) }
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
