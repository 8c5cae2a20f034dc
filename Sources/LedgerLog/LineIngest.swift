#if canImport(Glibc)
import Glibc
#endif
import Dispatch
public import LedgerCore

/// Appends NDJSON read from a file descriptor, as `ledger append` and `ledger import` do: one
/// request per line (an object, or an array on one line for an atomic batch).
///
/// It streams: whatever has been read is parsed (on all cores), submitted, and acknowledged as
/// soon as it is durable, without waiting for the end of the input — so `producer | ledger append`
/// is a live feed. Results come back in input order. A rejected line writes nothing; the lines
/// around it go on (unless ``Mode`` says to stop).
public final class LineIngest: @unchecked Sendable {
    // @unchecked: the mutable state is guarded by `order` (a ConditionLock).

    public enum Mode: Sendable {
        /// `ledger append`: requests, stamped with the policy's actor and the ledger's time.
        case append
        /// `ledger import --preserve-time`: envelopes with their own id, time and actor. With
        /// `reproduce`, exported positions and hashes must come out the same.
        case importRecords(reproduce: Bool)
    }

    /// One line's outcome.
    public struct LineResult: Sendable {
        public var line: Int
        public var result: Result<[AppendResult], LedgerError>
    }

    public struct Summary: Sendable {
        public var lines = 0
        public var events = 0
        public var rejected = 0
        public var firstRejection: LedgerError?
    }

    let log: any PreparedAppender
    let policy: AppendPolicy
    let mode: Mode
    let stopOnRejection: Bool
    let deliver: @Sendable ([LineResult]) -> Void
    /// The longest line accepted (16 MiB, the request limit). A longer one is refused as soon as
    /// this many bytes of it have been read; the rest of it is skipped as it arrives, never held.
    let maxLineBytes: Int
    /// The most input bytes held at once (tests check that a huge line is not buffered).
    private(set) var largestPending = 0

    /// 16 MiB: the default limit on one request line.
    public static let defaultMaxLineBytes = 16 << 20

    private struct Order {
        var nextToDeliver = 0
        var ready: [Int: [LineResult]] = [:]
        var inFlight = 0
        var stop = false
        var summary = Summary()
    }
    private let order = ConditionLock(Order())

    /// - Parameter deliver: called with each chunk's results, in input order, on one thread at a time.
    public init(
        log: any PreparedAppender, policy: AppendPolicy, mode: Mode, stopOnRejection: Bool = false, maxLineBytes: Int = LineIngest.defaultMaxLineBytes,
        deliver: @escaping @Sendable ([LineResult]) -> Void
    ) {
        self.log = log
        self.maxLineBytes = maxLineBytes
        self.policy = policy
        self.mode = mode
        self.stopOnRejection = stopOnRejection
        self.deliver = deliver
    }

    /// Reads `fd` to its end; returns once every line is decided and delivered.
    public func run(fd: Int32) throws -> Summary {
        try run { pending in
            while true {
                // Straight into the pending bytes' free space: no second copy of the input.
                let n = pending.appending(upTo: 1 << 20) { read(fd, $0.baseAddress!, $0.count) }
                if n < 0 {
                    if errno == EINTR { continue }
                    throw FileIO.fail("read", fd == 0 ? "standard input" : "input")
                }
                return n > 0
            }
        }
    }

    /// Ingests bytes already in memory, in chunks of 1 MiB.
    public func run(bytes: [UInt8]) throws -> Summary {
        var position = 0
        return try run { pending in
            guard position < bytes.count else { return false }
            let end = min(bytes.count, position + (1 << 20))
            bytes.withUnsafeBytes { b in
                _ = pending.appending(upTo: end - position) { space in
                    space.copyMemory(from: UnsafeRawBufferPointer(rebasing: b[position..<end]))
                    return end - position
                }
            }
            position = end
            return true
        }
    }

    /// `read` appends the next bytes and returns false at the end of the input.
    private func run(read: (InputBuffer) throws -> Bool) throws -> Summary {
        let pending = InputBuffer()
        var lineNumber = 1
        var chunk = 0
        // Bytes of an over-long line skipped so far (nil: not skipping one).
        var skipping: Int? = nil
        while true {
            if order.withLock({ $0.stop }) { break }
            guard try read(pending) else { break }
            largestPending = max(largestPending, pending.count)
            if let skipped = skipping {
                guard let newline = pending.firstNewline else {
                    skipping = skipped + pending.count
                    pending.removeAll()
                    continue
                }
                reject(tooLong(skipped + newline), line: lineNumber, chunk: chunk)
                chunk += 1
                lineNumber += 1
                pending.removeFirst(newline + 1)
                skipping = nil
            }
            if let lastNewline = pending.lastNewline {
                // The complete lines are prepared before `submit` returns: it reads them in place.
                lineNumber = submit(UnsafeRawBufferPointer(rebasing: pending.bytes[0...lastNewline]), firstLine: lineNumber, chunk: chunk)
                pending.removeFirst(lastNewline + 1)
                chunk += 1
            }
            // What is left is the start of a line: past the limit, refuse it now and skip the rest.
            if pending.count > maxLineBytes {
                skipping = pending.count
                pending.removeAll()
            }
        }
        if let skipped = skipping, !order.withLock({ $0.stop }) {
            reject(tooLong(skipped + pending.count), line: lineNumber, chunk: chunk)
            chunk += 1
        } else if pending.count > 0 && !order.withLock({ $0.stop }) {
            _ = submit(pending.bytes, firstLine: lineNumber, chunk: chunk)
            chunk += 1
        }
        let total = chunk
        return order.wait(until: { $0.nextToDeliver == total || ($0.stop && $0.inFlight == 0) }) { $0.summary }
    }

    private func tooLong(_ bytes: Int) -> LedgerError {
        LedgerError(
            .batchTooLarge,
            "the line holds \(bytes) bytes, more than the \(maxLineBytes) a request line may hold: refused once \(maxLineBytes) bytes of it were read, the rest skipped unread into memory; nothing of it written")
    }

    /// A line refused before it was read whole: its result takes its place in the input order.
    private func reject(_ error: LedgerError, line: Int, chunk: Int) {
        order.wait(until: { $0.inFlight < 4 }) { $0.inFlight += 1 }
        log.submit([.failure(error)]) { [self] results in
            finish(chunk: chunk, results.map { LineResult(line: line, result: $0) })
        }
    }

    /// Parses and prepares the lines of `bytes` in parallel, submits them, returns the next line
    /// number. The bytes are read before it returns, never after.
    private func submit(_ bytes: UnsafeRawBufferPointer, firstLine: Int, chunk: Int) -> Int {
        var starts: [Int] = []
        var i = 0
        while i < bytes.count {
            starts.append(i)
            if let newline = memchr(bytes.baseAddress! + i, 0x0A, bytes.count - i) {
                i = UnsafeRawPointer(newline) - bytes.baseAddress! + 1
            } else {
                i = bytes.count
            }
        }
        let count = starts.count
        let lineStarts = starts
        let parts = count >= 256 ? 2 : 1
        let slots = ResultSlots(count: count)
        var linePolicy = self.policy
        linePolicy.maxDataBytes = log.maxDataBytes
        let policy = linePolicy
        let mode = self.mode
        let maxLine = maxLineBytes
        do {
            let base = UncheckedPointer(bytes)
            DispatchQueue.concurrentPerform(iterations: parts) { part in
                let scratch = ByteWriter(capacity: 4096)
                let tape = JSONTape.Storage()
                let lo = part * count / parts
                let hi = (part + 1) * count / parts
                for k in lo..<hi {
                    let start = lineStarts[k]
                    var end = k + 1 < count ? lineStarts[k + 1] - 1 : base.raw.count
                    if end > start && base.raw[end - 1] == 0x0A { end -= 1 }
                    if end > start && base.raw[end - 1] == 0x0D { end -= 1 }
                    let line = UnsafeRawBufferPointer(rebasing: base.raw[start..<end])
                    if line.count > maxLine {
                        slots.set(k, .failure(tooLong(line.count)))
                    } else {
                        let result = LineIngest.prepare(line, policy: policy, mode: mode, scratch: scratch, tape: tape)
                        if case .success(let events) = result, let keys = RequestKeys(events) { slots.keys[k] = keys }
                        slots.set(k, result)
                    }
                }
            }
        }
        // Blank lines are skipped: not requests, not counted.
        var prepared: [Result<[PreparedEvent], LedgerError>] = []
        var lines: [Int] = []
        var keys: [RequestKeys?] = []
        prepared.reserveCapacity(count)
        lines.reserveCapacity(count)
        keys.reserveCapacity(count)
        slots.take { k, r in
            if case .success(let events) = r, events.isEmpty { return }
            prepared.append(r)
            lines.append(firstLine + k)
            keys.append(slots.keys[k])
        }
        // Back-pressure: a few chunks in flight keep every stage busy without piling up memory.
        order.wait(until: { $0.inFlight < 4 }) { $0.inFlight += 1 }
        let lineNumbers = lines
        let completion: @Sendable ([Result<[AppendResult], LedgerError>]) -> Void = { [self] results in
            finish(chunk: chunk, results.enumerated().map { LineResult(line: lineNumbers[$0.offset], result: $0.element) })
        }
        if let segmentLog = log as? SegmentLog {
            segmentLog.submit(prepared, keys: keys, completion: completion)
        } else {
            log.submit(prepared, completion: completion)
        }
        return firstLine + count
    }

    private func finish(chunk: Int, _ results: [LineResult]) {
        order.update { state in
            state.ready[chunk] = results
            state.inFlight -= 1
        }
        // Deliver in order; whoever holds the next chunk delivers it (one at a time).
        while true {
            let next: [LineResult]? = order.update { state in
                guard let r = state.ready.removeValue(forKey: state.nextToDeliver) else { return nil }
                return r
            }
            guard let next else { return }
            if !order.withLock({ $0.stop && $0.summary.firstRejection != nil }) { deliver(next) }
            order.update { state in
                for r in next {
                    state.summary.lines += 1
                    switch r.result {
                    case .success(let a): state.summary.events += a.count
                    case .failure(let e):
                        state.summary.rejected += 1
                        if state.summary.firstRejection == nil { state.summary.firstRejection = e }
                        if stopOnRejection { state.stop = true }
                    }
                }
                state.nextToDeliver += 1
            }
        }
    }

    /// One line → one prepared atomic request (empty for a blank line).
    /// `scratch` and `tape` are a thread's buffers, reused from line to line.
    public static func prepare(
        _ line: UnsafeRawBufferPointer, policy: AppendPolicy, mode: Mode, scratch: ByteWriter? = nil, tape: JSONTape.Storage? = nil
    ) -> Result<[PreparedEvent], LedgerError> {
        var blank = true
        for b in line where b != 0x20 && b != 0x09 {
            blank = false
            break
        }
        if blank { return .success([]) }
        let scratch = scratch ?? ByteWriter(capacity: 1024)
        // The single pass over the bytes first; whatever it does not take (or refuses) goes the
        // full way, which prepares the same events or names the fault.
        if case .append = mode, let events = EventPreparer.prepare(line: line, policy: policy, tape: tape ?? JSONTape.Storage(), scratch: scratch) {
            return .success(events)
        }
        do {
            let value = try JSONParser.parse(line)
            let items: [JSONValue]
            if case .array(let a) = value {
                guard !a.isEmpty else { throw LedgerError(.invalidRequest, "an atomic batch needs at least one event") }
                items = a
            } else {
                items = [value]
            }
            var requests: [AppendRequest] = []
            var recorded: [RecordedPosition?] = []
            for (i, item) in items.enumerated() {
                do {
                    switch mode {
                    case .append:
                        requests.append(try AppendRequest(json: item))
                        recorded.append(nil)
                    case .importRecords(let reproduce):
                        let (request, position) = try AppendRequest.importRecord(json: item)
                        requests.append(request)
                        recorded.append(reproduce ? position : nil)
                    }
                } catch {
                    throw items.count > 1 ? error.at(index: i) : error
                }
            }
            return EventPreparer.prepare(request: requests, policy: policy, recorded: recorded, scratch: scratch)
        } catch {
            return .failure(LedgerError.wrap(error))
        }
    }
}

/// Slots filled from several threads, each index by exactly one, read once all are filled.
///
/// A fixed allocation, never an array: `withUnsafeMutableBufferPointer` on a class's array from
/// two threads at once swaps the array out for the closure's duration, so the second thread
/// could write through an empty buffer (a data race Thread Sanitizer reported).
private final class ResultSlots: @unchecked Sendable {
    // @unchecked: each slot is written by one thread; `values` is read after every writer joined.
    private let storage: UnsafeMutablePointer<Result<[PreparedEvent], LedgerError>?>
    private let count: Int
    /// Each line's index keys (``RequestKeys``), written by the thread that prepares it.
    let keys: UnsafeMutablePointer<RequestKeys?>
    init(count: Int) {
        self.count = count
        storage = .allocate(capacity: max(1, count))
        storage.initialize(repeating: nil, count: max(1, count))
        keys = .allocate(capacity: max(1, count))
        keys.initialize(repeating: nil, count: max(1, count))
    }
    private var taken = false
    deinit {
        if !taken { storage.deinitialize(count: max(1, count)) }
        storage.deallocate()
        keys.deinitialize(count: max(1, count))
        keys.deallocate()
    }
    func set(_ i: Int, _ value: Result<[PreparedEvent], LedgerError>) {
        precondition(i >= 0 && i < count)
        storage[i] = value
    }
    /// Moves each value out in order (no copy, no retain and release of each line's events);
    /// once only, after every writer joined.
    func take(_ body: (Int, Result<[PreparedEvent], LedgerError>) -> Void) {
        precondition(!taken)
        taken = true
        for i in 0..<count { body(i, (storage + i).move()!) }
        if count == 0 { storage.deinitialize(count: 1) }
    }
}

/// The input read but not yet submitted: the start of a line, then what the next read adds. One
/// growable allocation (a `[UInt8]` would be zero-filled or copied into on every read).
private final class InputBuffer {
    private var storage = UnsafeMutableRawPointer.allocate(byteCount: 1 << 20, alignment: 16)
    private var capacity = 1 << 20
    private(set) var count = 0

    deinit { storage.deallocate() }

    var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: storage, count: count) }

    /// Lets `fill` write up to `limit` bytes after the held ones; keeps the count it returns
    /// (a negative count — a failed read — keeps nothing) and returns it.
    func appending(upTo limit: Int, _ fill: (UnsafeMutableRawBufferPointer) -> Int) -> Int {
        if count + limit > capacity {
            var bigger = capacity
            while count + limit > bigger { bigger *= 2 }
            let grown = UnsafeMutableRawPointer.allocate(byteCount: bigger, alignment: 16)
            grown.copyMemory(from: storage, byteCount: count)
            storage.deallocate()
            storage = grown
            capacity = bigger
        }
        let n = fill(UnsafeMutableRawBufferPointer(start: storage + count, count: limit))
        if n > 0 { count += n }
        return n
    }

    var firstNewline: Int? { memchr(storage, 0x0A, count).map { UnsafeRawPointer($0) - UnsafeRawPointer(storage) } }
    /// Scanned from the end: what follows the last newline is at most one line's start.
    var lastNewline: Int? {
        let b = storage.assumingMemoryBound(to: UInt8.self)
        var i = count - 1
        while i >= 0 && b[i] != 0x0A { i -= 1 }
        return i >= 0 ? i : nil
    }

    func removeFirst(_ n: Int) {
        if n < count { memmove(storage, storage + n, count - n) }
        count -= n
    }

    func removeAll() { count = 0 }
}

private struct UncheckedPointer: @unchecked Sendable {
    let raw: UnsafeRawBufferPointer
    init(_ raw: UnsafeRawBufferPointer) { self.raw = raw }
}
