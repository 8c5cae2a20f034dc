import HTTPTypes
import Hummingbird
import LedgerCore
import LedgerLog
import NIOCore
import ServiceLifecycle

extension HTTPField.Name {
    static let lastEventID = HTTPField.Name("Last-Event-ID")!
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
            let feed = self.hub.feed
            var wakeups = wakes.makeAsyncIterator()
            while true {
                let head = self.log.head
                if head - position > self.configuration.lagBound {
                    if !lagging {
                        lagging = true
                        try await writer.write(ByteBuffer(string: "event: lagging\ndata: {\"behind\":\(head - position),\"head\":\(head),\"position\":\(position)}\n\n"))
                    }
                } else if position >= head {
                    lagging = false
                }
                if let chunks = feed.chunks(from: position) {
                    if !chunks.isEmpty {
                        // Near the head: the shared, already encoded messages.
                        for chunk in chunks where chunk.end > position {
                            let (buffer, n) = Self.messages(of: chunk, from: position, filter: filter)
                            position = chunk.end
                            if n > 0 {
                                try await writer.write(buffer)
                                self.metrics.delivered.increment(by: n)
                                sentSinceTick = true
                            }
                        }
                        self.metrics.subscriptionLag.record(max(0, self.log.head - position))
                        continue
                    }
                } else {
                    // Behind the shared messages: catch up from the log, a chunk at a time, on the
                    // blocking pool (disk reads).
                    if position < head {
                        self.metrics.subscriptionLag.record(head - position)
                        let at = position
                        let (bytes, next, n) = try await self.blocking { try self.readMessages(from: at, end: head, filter: filter) }
                        position = next
                        if n > 0 {
                            try await writer.write(ByteBuffer(bytes: bytes))
                            self.metrics.delivered.increment(by: n)
                            sentSinceTick = true
                        }
                        continue
                    }
                }
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

    /// The messages of `chunk` from `position` on that match `filter`: a slice of the shared
    /// buffer when nothing is filtered out, else a buffer of the matching messages.
    static func messages(of chunk: MessageFeed.Chunk, from position: Int64, filter: EventFilter) -> (ByteBuffer, Int) {
        let first = Int(max(0, position - chunk.start))
        guard first < chunk.entries.count else { return (ByteBuffer(), 0) }
        if filter == .all {
            let from = chunk.entries[first].range.lowerBound
            return (chunk.bytes.getSlice(at: chunk.bytes.readerIndex + from, length: chunk.bytes.readableBytes - from) ?? ByteBuffer(), chunk.entries.count - first)
        }
        var out = ByteBuffer()
        var n = 0
        for e in chunk.entries[first...] {
            guard filter.stream.map({ $0 == e.stream }) ?? true, filter.type.map({ $0 == e.type }) ?? true,
                filter.category.map({ e.stream.hasPrefix($0 + "-") }) ?? true
            else { continue }
            var slice = chunk.bytes.getSlice(at: chunk.bytes.readerIndex + e.range.lowerBound, length: e.range.count)!
            out.writeBuffer(&slice)
            n += 1
        }
        return (out, n)
    }

    /// SSE messages of the matching events in [from, end), read from the log (at most one
    /// chunk's worth); returns them, the offset to go on from, and how many there are.
    func readMessages(from: Int64, end: Int64, filter: EventFilter) throws -> ([UInt8], Int64, Int) {
        var out: [UInt8] = []
        var n = 0
        var position = from
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
