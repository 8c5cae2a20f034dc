import LedgerLog
public import ServiceLifecycle
import Synchronization

/// Wakes subscribers: when the durable head moves, and on every heartbeat tick. A subscriber
/// *pulls* its events from the log by offset; the hub only signals, newest value wins
/// (`bufferingNewest(1)`), so a slow subscriber never grows the server's memory.
///
/// Runs as a service: its shutdown ends every subscription cleanly (their streams finish), which
/// lets the HTTP server's graceful shutdown complete.
public final class SubscriptionHub: Service, Sendable {
    public enum Wake: Sendable {
        case head(Int64)
        case tick
    }

    private struct State {
        var subscribers: [Int: AsyncStream<Wake>.Continuation] = [:]
        var nextID = 0
        var closed = false
    }

    private let state = Mutex(State())
    let log: any EventLog
    let heartbeat: Duration
    /// The messages of the newest events, encoded once per head move for every subscriber.
    let feed: MessageFeed
    let source: String

    init(log: any EventLog, heartbeatSeconds: Double, source: String) {
        self.log = log
        self.source = source
        feed = MessageFeed(start: log.head)
        heartbeat = .milliseconds(Int64(max(0.05, heartbeatSeconds) * 1000))
    }

    /// A stream of wake-ups for one subscriber; nil once the hub has shut down.
    func subscribe() -> AsyncStream<Wake>? {
        let (stream, continuation) = AsyncStream<Wake>.makeStream(bufferingPolicy: .bufferingNewest(1))
        let id: Int? = state.withLock { s in
            guard !s.closed else { return nil }
            let id = s.nextID
            s.nextID += 1
            s.subscribers[id] = continuation
            return id
        }
        guard let id else { return nil }
        continuation.onTermination = { [weak self] _ in
            _ = self?.state.withLock { $0.subscribers.removeValue(forKey: id) }
        }
        return stream
    }

    /// Wakes every subscriber; returns how many there are.
    @discardableResult
    private func broadcast(_ wake: Wake) -> Int {
        let targets = state.withLock { Array($0.subscribers.values) }
        for c in targets { c.yield(wake) }
        return targets.count
    }

    /// Subscriber writes per millisecond the fan-out aims at (about 20,000 a second: on the
    /// development machine a write to a subscriber's socket costs ~10-15 µs of an event loop and
    /// wakes a reader, so this is a fifth to a quarter of a core).
    static let writesPerMillisecond = 20

    /// The least time between two wake-ups for `subscribers` subscribers: 2 ms up to 40 of
    /// them, then 1 ms more per 20 (100 subscribers: 5 ms), at most 20 ms.
    static func wakeInterval(subscribers: Int) -> Duration {
        .microseconds(min(20_000, max(2_000, subscribers * 1_000 / writesPerMillisecond)))
    }

    /// Ends every subscription and refuses new ones.
    func close() {
        let targets = state.withLock { s -> [AsyncStream<Wake>.Continuation] in
            s.closed = true
            let all = Array(s.subscribers.values)
            s.subscribers = [:]
            return all
        }
        for c in targets { c.finish() }
    }

    public func run() async throws {
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                var cursor: (any EventCursor)? = nil
                for await head in self.log.headUpdates() {
                    do {
                        try self.feed.extend(to: head, log: self.log, cursor: &cursor, source: self.source)
                    } catch {
                        // Subscribers fall back to reading the log themselves.
                        cursor = nil
                    }
                    let woken = self.broadcast(.head(head))
                    // The heads in between coalesce: each wake-up carries more events in fewer,
                    // larger writes. A wake-up costs a write per subscriber, on the same event
                    // loops that read appends; spacing them by the number of subscribers keeps
                    // that fan-out to about ``writesPerMillisecond`` whatever the number, so
                    // that many subscribers cannot starve the appends they wait for.
                    try? await Task.sleep(for: Self.wakeInterval(subscribers: woken))
                }
            }
            group.addTask {
                while !Task.isCancelled {
                    do { try await Task.sleep(for: self.heartbeat) } catch { return }
                    self.broadcast(.tick)
                }
            }
            try? await gracefulShutdown()
            self.close()
            group.cancelAll()
        }
    }
}
