import Synchronization

/// Tells in-process readers that the durable head moved. Subscribers pull events from the log by
/// offset and are only signalled (newest value wins), so a slow reader never grows memory.
public final class HeadSignal: Sendable {
    public struct State {
        public var head: Int64
        var failed = false
        var continuations: [Int: AsyncStream<Int64>.Continuation] = [:]
        var nextID = 0
    }

    let condition: ConditionLock<State>

    public init(head: Int64) { condition = ConditionLock(State(head: head)) }

    public func publish(head: Int64) {
        let targets = condition.update { state -> [AsyncStream<Int64>.Continuation] in
            state.head = head
            return Array(state.continuations.values)
        }
        for c in targets { c.yield(head) }
    }

    public func publish(failed: Bool) {
        let targets = condition.update { state -> [AsyncStream<Int64>.Continuation] in
            state.failed = failed
            let all = Array(state.continuations.values)
            state.continuations = [:]
            return all
        }
        for c in targets { c.finish() }
    }

    /// Blocks until the head is beyond `offset` (or the log failed, or `timeout` passed); returns the head.
    public func wait(beyond offset: Int64, timeout: Double) -> Int64 {
        condition.wait(until: { $0.head > offset || $0.failed }, timeout: timeout) { state, _ in state.head }
    }

    /// A stream of durable heads, newest first-come (buffering only the latest).
    public func stream() -> AsyncStream<Int64> {
        let (stream, continuation) = AsyncStream<Int64>.makeStream(bufferingPolicy: .bufferingNewest(1))
        let (id, head) = condition.withLock { state -> (Int, Int64) in
            let id = state.nextID
            state.nextID += 1
            state.continuations[id] = continuation
            return (id, state.head)
        }
        continuation.yield(head)
        continuation.onTermination = { [weak self] _ in
            _ = self?.condition.withLock { $0.continuations.removeValue(forKey: id) }
        }
        return stream
    }
}
