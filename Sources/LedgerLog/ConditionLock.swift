#if canImport(Glibc)
import Glibc
#endif

/// State guarded by a mutex with a condition variable: what the ledger's own threads use to hand
/// work to each other (the one condition type of the package; `Synchronization.Mutex` where no
/// condition is needed). Waiting blocks an OS thread, so it is only ever called on the ledger's
/// own threads, never on the cooperative pool.
public final class ConditionLock<State>: @unchecked Sendable {
    // @unchecked: `state` is only touched with `mutex` held.
    private var mutex = pthread_mutex_t()
    private var condition = pthread_cond_t()
    private var state: State

    public init(_ state: State) {
        self.state = state
        pthread_mutex_init(&mutex, nil)
        var attributes = pthread_condattr_t()
        pthread_condattr_init(&attributes)
        pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
        pthread_cond_init(&condition, &attributes)
        pthread_condattr_destroy(&attributes)
    }

    deinit {
        pthread_cond_destroy(&condition)
        pthread_mutex_destroy(&mutex)
    }

    public func withLock<R>(_ body: (inout State) throws -> R) rethrows -> R {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        return try body(&state)
    }

    /// Waits until `predicate` holds, then runs `body` with the lock still held.
    @available(*, noasync, message: "blocks the calling thread")
    public func wait<R>(until predicate: (State) -> Bool, then body: (inout State) throws -> R) rethrows -> R {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        while !predicate(state) { pthread_cond_wait(&condition, &mutex) }
        return try body(&state)
    }

    /// Like ``wait(until:then:)`` but gives up after `seconds`; `body` gets whether it held.
    @available(*, noasync, message: "blocks the calling thread")
    public func wait<R>(until predicate: (State) -> Bool, timeout seconds: Double, then body: (inout State, Bool) throws -> R) rethrows -> R {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        var deadline = timespec()
        clock_gettime(CLOCK_MONOTONIC, &deadline)
        let nanos = Int(seconds * 1e9) + deadline.tv_nsec
        deadline.tv_sec += nanos / 1_000_000_000
        deadline.tv_nsec = nanos % 1_000_000_000
        while !predicate(state) {
            if pthread_cond_timedwait(&condition, &mutex, &deadline) == ETIMEDOUT { break }
        }
        return try body(&state, predicate(state))
    }

    public func broadcast() { pthread_cond_broadcast(&condition) }

    /// Runs `body` under the lock, then wakes every waiter.
    public func update<R>(_ body: (inout State) throws -> R) rethrows -> R {
        pthread_mutex_lock(&mutex)
        defer {
            pthread_cond_broadcast(&condition)
            pthread_mutex_unlock(&mutex)
        }
        return try body(&state)
    }
}

