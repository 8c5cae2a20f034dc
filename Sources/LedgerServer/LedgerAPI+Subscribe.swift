import HTTPTypes
import Hummingbird
import LedgerCore
import LedgerLog
import NIOCore
import ServiceLifecycle

extension HTTPField.Name {
    static let lastEventID = HTTPField.Name("Last-Event-ID")!
}

/// A subscription's cursor, handed to the blocking pool and back: one user at a time.
final class CursorBox: @unchecked Sendable {
    // @unchecked: used by one subscription at a time, sequentially (its task, or a pool job it awaits).
    var cursor: (any EventCursor)?
}

extension LedgerAPI {
    /// `GET /v1/subscribe?from&stream&category&type` as Server-Sent Events.
    ///
    /// Catch-up from `from` (or `Last-Event-ID` + 1; without either, from the head: new events
    /// only), then live. Each message is `id: <offset>`, `event: <type>`, `data: <CloudEvent>`.
    /// The subscriber pulls from the log by offset and is only signalled that the head moved, so
    /// it can neither skip an event nor grow the server's memory: one that falls further behind
    /// than the lag bound is told `event: lagging` and goes on catching up from disk. Idle
    /// subscriptions get a heartbeat comment. Server shutdown ends them cleanly.
    func subscribe(_ request: Request, _ context: LedgerRequestContext) async throws -> Response {
        let principal = try context.require(.reader, .writer, .auditor, .admin, for: "subscribe")
        let q = Query(request)
        let filter = try readFilter(q, principal)
        let start: Int64
        if let from = try q.offset("from") {
            start = from
        } else if let last = request.headers[.lastEventID] {
            guard let n = Int64(last.trimmingSpaces), n >= -1 else {
                throw APIError.badRequest("invalid_parameter", "Last-Event-ID must be the offset of the last event received, not \"\(last.prefix(40))\"")
            }
            start = n + 1
        } else {
            start = log.head
        }
        guard acquireSubscription(principal.name) else {
            throw APIError(.tooManyRequests, "too_many_subscriptions", "\(principal.name) has \(configuration.maxSubscriptionsPerPrincipal) subscriptions open already; close one or retry later", retryAfter: 5)
        }
        guard let wakes = hub.subscribe() else {
            releaseSubscription(principal.name)
            throw APIError(.serviceUnavailable, "shutting_down", "the server is shutting down", retryAfter: 5)
        }
        metrics.subscriptionOpened()
        let body = ResponseBody { writer in
            defer {
                self.releaseSubscription(principal.name)
                self.metrics.subscriptionClosed()
            }
            try await writer.write(ByteBuffer(string: "retry: 2000\n\n"))
            var position = start
            var lagging = false
            var sentSinceTick = false
            let box = CursorBox()
            var wakeups = wakes.makeAsyncIterator()
            while true {
                while true {
                    let head = self.log.head
                    guard position < head else { break }
                    self.metrics.subscriptionLag.record(head - position)
                    if head - position > self.configuration.lagBound {
                        if !lagging {
                            lagging = true
                            try await writer.write(ByteBuffer(string: "event: lagging\ndata: {\"behind\":\(head - position),\"head\":\(head),\"position\":\(position)}\n\n"))
                        }
                        let at = position
                        let (bytes, next, n) = try await self.blocking { try self.readMessages(from: at, end: head, filter: filter, box: box, cache: false) }
                        position = next
                        if n > 0 {
                            try await writer.write(ByteBuffer(bytes: bytes))
                            self.metrics.delivered.increment(by: n)
                            sentSinceTick = true
                        }
                    } else {
                        // Near the head the events are in the page cache (and their messages in
                        // the shared cache): read them here, without a hop to the pool.
                        let (bytes, next, n) = try self.readMessages(from: position, end: head, filter: filter, box: box, cache: true)
                        position = next
                        if n > 0 {
                            try await writer.write(ByteBuffer(bytes: bytes))
                            self.metrics.delivered.increment(by: n)
                            sentSinceTick = true
                        }
                    }
                }
                lagging = false
                guard let wake = await wakeups.next() else { break }
                if case .tick = wake {
                    if !sentSinceTick { try await writer.write(ByteBuffer(string: ": heartbeat\n\n")) }
                    sentSinceTick = false
                }
            }
            try await writer.finish(nil)
        }
        return Response(
            status: .ok,
            headers: [.contentType: "text/event-stream", .cacheControl: "no-cache", HTTPField.Name("X-Accel-Buffering")!: "no"],
            body: body)
    }

    /// SSE messages of the matching events in [from, end), at most one chunk; returns them, the
    /// offset to go on from, and how many there are. With `cache`, messages come from (and go
    /// to) the shared cache, so each event becomes a CloudEvent once for all live subscribers.
    func readMessages(from: Int64, end: Int64, filter: EventFilter, box: CursorBox, cache useCache: Bool) throws -> ([UInt8], Int64, Int) {
        var out: [UInt8] = []
        var n = 0
        var position = from
        let stop = min(end, from + Int64(configuration.subscriptionChunk))
        if useCache {
            while position < stop {
                if let e = cache.get(position) {
                    if (filter.stream == nil || filter.stream == e.stream) && (filter.type == nil || filter.type == e.type)
                        && (filter.category == nil || e.stream.hasPrefix(filter.category! + "-"))
                    {
                        out += e.message
                        n += 1
                    }
                    position += 1
                    continue
                }
                // A miss: read from the log (unfiltered, to fill the cache for everyone).
                if box.cursor == nil { box.cursor = log.cursor(from: position, end: nil, filter: .all) }
                let cursor = box.cursor!
                cursor.seek(to: position)
                while position < stop, let view = try cursor.next() {
                    let message = try CloudEvent.sseMessage(view, source: configuration.source)
                    let entry = MessageCache.Entry(offset: view.offset, stream: view.stream, type: view.type, message: message)
                    cache.put(entry)
                    if filter.stream.map({ $0 == entry.stream }) ?? true, filter.type.map({ $0 == entry.type }) ?? true,
                        filter.category.map({ entry.stream.hasPrefix($0 + "-") }) ?? true
                    {
                        out += message
                        n += 1
                    }
                    position = view.offset + 1
                }
                break
            }
            return (out, position, n)
        }
        // Catching up from far behind: a filtered cursor, messages built for this subscriber only.
        let cursor = log.cursor(from: position, end: end, filter: filter)
        while n < configuration.subscriptionChunk, let view = try cursor.next() {
            out += try CloudEvent.sseMessage(view, source: configuration.source)
            n += 1
            position = view.offset + 1
        }
        if n < configuration.subscriptionChunk { position = end }
        return (out, position, n)
    }

    func acquireSubscription(_ name: String) -> Bool {
        subscriptions.withLock { counts in
            let n = counts[name, default: 0]
            guard n < configuration.maxSubscriptionsPerPrincipal else { return false }
            counts[name] = n + 1
            return true
        }
    }

    func releaseSubscription(_ name: String) {
        subscriptions.withLock { counts in
            let n = counts[name, default: 1] - 1
            if n <= 0 { counts.removeValue(forKey: name) } else { counts[name] = n }
        }
    }
}
