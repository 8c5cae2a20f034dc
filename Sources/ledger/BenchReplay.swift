#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import Foundation
import Synchronization
import LedgerCore
import LedgerLog
import LedgerProjections
import LedgerSimulator

struct BenchReplay: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "replay",
        abstract: "The projections: rebuild from a large simulated log, incremental lag under load, as-of queries.",
        discussion: """
            Scenarios: rebuild (folds a log of --events events of the steady simulated platform into \
            every read model, from offset 0), asof (queries as of --asof-back events before the head \
            of that log: a month of chargeback, the registry, SLO status, one stream's audit trail), \
            lag (appends at --rate events/s to a fresh log while a projector in the same process \
            follows the head, woken by the writer's head signal, as `ledger serve` runs it; the \
            lag of each event is the time from its append being submitted to its rows being \
            committed with the checkpoint). The large log is built once and kept in --work-dir, \
            so later runs measure only the projections.
            """)

    enum Scenario: String, ExpressibleByArgument, CaseIterable { case all, rebuild, asof, lag }

    @Option(help: "all, rebuild, asof or lag.")
    var scenario: Scenario = .all
    @Option(help: "Events in the simulated log of the rebuild and asof scenarios.")
    var events: Int = 10_000_000
    @Option(help: "How many events before the head the as-of queries ask.")
    var asofBack: Int = 1_000_000
    @Option(help: "Append rate of the lag scenario, events/s.")
    var rate: Int = 50_000
    @Option(help: "Seconds of appending in the lag scenario.")
    var seconds: Double = 20
    @Option(help: "Events per transaction of the projector.")
    var chunk: Int = 16_384
    @Option(help: "Where the large log is kept between runs.")
    var workDir: String = "/tmp/ledger-bench-replay"

    func run() async throws {
        mkdir(workDir, 0o755)
        Terminal.line("ledger bench replay — \(machineDescription())")
        Terminal.flush()
        let big = workDir + "/log-\(events)"
        if scenario != .lag { try await ensureLog(big) }
        if scenario == .all || scenario == .rebuild { try rebuild(big) }
        if scenario == .all || scenario == .asof { try asOf(big) }
        if scenario == .all || scenario == .lag { try await lag(workDir + "/lag") }
        Terminal.flush()
    }

    /// Builds the steady workload's log unless a complete one is already there.
    func ensureLog(_ dir: String) async throws {
        if let reader = try? LogReader(directory: dir), reader.head == Int64(events) {
            Terminal.line("log: \(Format.count(Int64(events))) events in \(dir) (kept from an earlier run)")
            return
        }
        removeTree(dir)
        var options = LogOptions()
        options.fsync = .onClose
        let log = try SegmentLog.open(directory: dir, options: options)
        let policy = AppendPolicy(actor: "svc:bench", mode: .admin)
        var workload = SteadyWorkload(seed: 7)
        let start = monotonicSeconds()
        var appended = 0
        var slice: [[AppendRequest]] = []
        slice.reserveCapacity(4000)
        while appended < events {
            slice.removeAll(keepingCapacity: true)
            while slice.count < 4000 && appended + slice.count < events, let e = workload.next() { slice.append([e.request]) }
            for case .failure(let e) in await log.append(requests: slice, policy: policy) {
                throw LedgerError(.internal, "the log refused a simulated event: \(e.description)")
            }
            appended += slice.count
            if appended % 1_000_000 < 4000 {
                Terminal.line("  built \(Format.count(Int64(appended))) events…")
                Terminal.flush()
            }
        }
        try await log.close()
        let s = monotonicSeconds() - start
        Terminal.line("log: built \(Format.count(Int64(events))) events of the steady platform in \(Format.fixed(s, 1)) s (\(Format.count(Int64(Double(events) / s))) events/s, generated and appended)")
        Terminal.flush()
    }

    func rebuild(_ dir: String) throws {
        let reader = try LogReader(directory: dir)
        let store = try ProjectionStore(dataDirectory: dir)
        let projector = try Projector(store: store, source: reader)
        projector.chunkSize = chunk
        let start = monotonicSeconds()
        var lastReport = start
        let checkpoint = try projector.rebuild { offset in
            let now = monotonicSeconds()
            if now - lastReport >= 10 {
                lastReport = now
                Terminal.line("  \(Format.count(offset)) events applied…")
                Terminal.flush()
            }
        }
        let s = monotonicSeconds() - start
        let size = fileSize(store.path) + fileSize(store.path + "-wal")
        Terminal.line("rebuild: \(Format.count(checkpoint.nextOffset)) events into registry, chargeback, SLO and audit in \(Format.fixed(s, 2)) s = \(Format.count(Int64(Double(checkpoint.nextOffset) / s))) events/s; database \(Format.bytes(size)); peak RSS \(Format.bytes(peakRSS()))")
        Terminal.flush()
    }

    func asOf(_ dir: String) throws {
        let reader = try LogReader(directory: dir)
        let store = try ProjectionStore(dataDirectory: dir)
        if try store.checkpoint().nextOffset < reader.head {
            try Projector(store: store, source: reader).catchUp()
        }
        let point = max(0, reader.head - 1 - Int64(asofBack))
        func timed<T>(_ name: String, _ body: () throws -> T) rethrows -> T {
            let start = monotonicSeconds()
            let value = try body()
            Terminal.line("asof: \(name) as of offset \(Format.count(point)) (\(Format.count(Int64(asofBack))) events before the head) in \(Format.fixed((monotonicSeconds() - start) * 1000, 0)) ms")
            Terminal.flush()
            return value
        }
        let q = try QueryContext(store: store, source: reader, asOf: .offset(point))
        let end = Timestamp(milliseconds: q.time)
        let month = Chargeback.Options(from: end.adding(milliseconds: -30 * 86_400_000).startOfDay, to: end, groupBy: [.team, .gpuType])
        let report = try timed("chargeback of the 30 days before it") { try Chargeback.report(q, month) }
        let models = try timed("registry models") { try Registry.models(q) }
        let slos = try timed("SLO status") { try SLOStatus.all(q) }
        let trail = try timed("audit trail of stream deployment-api-1") { try Audit.events(q, .stream, "deployment-api-1") }
        Terminal.line("    (\(report.lines.count) chargeback rows, \(models.count) models, \(slos.count) SLOs, \(trail.count) events of the stream)")
    }

    func lag(_ dir: String) async throws {
        removeTree(dir)
        let log = try SegmentLog.open(directory: dir)
        let store = try ProjectionStore(dataDirectory: dir)
        let clock = LagClock(events: Int(Double(rate) * seconds))
        let chunk = self.chunk
        let follower = Thread {
            do {
                // As `ledger serve` runs it: in the writer's process, woken by its head signal.
                let projector = try Projector(store: store, source: log)
                projector.chunkSize = chunk
                while !clock.stopping {
                    let at = try projector.catchUp { offset in clock.visible(offset, at: monotonicSeconds()) }.nextOffset
                    _ = log.waitForHead(beyond: at, timeout: 0.05)
                }
                clock.finished()
            } catch {
                clock.fail(LedgerError.wrap(error))
            }
        }
        follower.start()
        let policy = AppendPolicy(actor: "svc:bench", mode: .admin)
        var workload = SteadyWorkload(seed: 11)
        let tick = 0.005
        let perTick = max(1, Int(Double(rate) * tick))
        let total = Int(Double(rate) * seconds)
        let start = monotonicSeconds()
        var appended = 0
        var inflight: [Task<Void, any Error>] = []
        while appended < total {
            let due = start + Double(appended / perTick) * tick
            let now = monotonicSeconds()
            if due > now { usleep(UInt32((due - now) * 1_000_000)) }
            var batch: [[AppendRequest]] = []
            batch.reserveCapacity(perTick)
            while batch.count < perTick, let e = workload.next() { batch.append([e.request]) }
            let submitted = monotonicSeconds()
            let requests = batch
            inflight.append(Task {
                let results = await log.append(requests: requests, policy: policy)
                let acknowledged = monotonicSeconds()
                for result in results {
                    switch result {
                    case .success(let r): clock.submitted(r.first!.offset, at: submitted, acknowledged: acknowledged)
                    case .failure(let e): throw e
                    }
                }
            })
            appended += batch.count
            if inflight.count > 64 { try await inflight.removeFirst().value }
        }
        for t in inflight { try await t.value }
        let appendSeconds = monotonicSeconds() - start
        // Let the projector reach the head, then stop it.
        let head = log.head
        while clock.visibleHead < head, clock.failure == nil { usleep(1000) }
        clock.stop()
        while !clock.done, clock.failure == nil { usleep(1000) }
        try await log.close()
        if let failure = clock.failure { throw failure }
        let lags = clock.lags()
        let latencies = Latencies(seconds: lags)
        func p(_ q: Double) -> String { latencies.ms(q, digits: 1) }
        let acks = Latencies(seconds: clock.acknowledgements)
        Terminal.line("lag: appended \(Format.count(Int64(appended))) events in \(Format.fixed(appendSeconds, 2)) s (\(Format.count(Int64(Double(appended) / appendSeconds))) events/s, durable) while the projector followed; append-to-visible lag p50 \(p(0.5)) ms, p99 \(p(0.99)) ms, max \(p(1)) ms (of which the durable append itself p50 \(acks.ms(0.5, digits: 1)) ms, p99 \(acks.ms(0.99, digits: 1)) ms); peak RSS \(Format.bytes(peakRSS()))")
        removeTree(dir)
    }

    func fileSize(_ path: String) -> Int64 {
        var st = stat()
        return stat(path, &st) == 0 ? Int64(st.st_size) : 0
    }
}

/// When each event was submitted and when it became visible in the projections.
final class LagClock: @unchecked Sendable {
    // @unchecked: every field is guarded by `lock`.
    private let lock = Mutex(())
    // Preallocated, indexed by offset: a growing hash table rehashed under the lock held the
    // projector's progress callback for tens of milliseconds (the lag measured the benchmark).
    private var submittedAt: [Double]
    private var visibleAt: [(offset: Int64, time: Double)] = []

    init(events: Int) {
        submittedAt = [Double](repeating: .nan, count: events)
        appendLatencies.reserveCapacity(events)
    }
    private var _visibleHead: Int64 = 0
    private var _stopping = false
    private var _done = false
    private var _failure: LedgerError?

    private var appendLatencies: [Double] = []
    func submitted(_ offset: Int64, at time: Double, acknowledged: Double) {
        lock.withLock { _ in
            if offset >= 0 && offset < submittedAt.count { submittedAt[Int(offset)] = time }
            appendLatencies.append(acknowledged - time)
        }
    }
    /// Submission to acknowledgement of each append (the log's share of the lag).
    var acknowledgements: [Double] { lock.withLock { _ in appendLatencies } }
    func visible(_ nextOffset: Int64, at time: Double) {
        lock.withLock { _ in
            visibleAt.append((nextOffset, time))
            _visibleHead = nextOffset
        }
    }
    var visibleHead: Int64 { lock.withLock { _ in _visibleHead } }
    var stopping: Bool { lock.withLock { _ in _stopping } }
    var done: Bool { lock.withLock { _ in _done } }
    var failure: LedgerError? { lock.withLock { _ in _failure } }
    func stop() { lock.withLock { _ in _stopping = true } }
    func finished() { lock.withLock { _ in _done = true } }
    func fail(_ error: LedgerError) { lock.withLock { _ in _failure = error; _done = true } }

    /// For every event, visible − submitted.
    func lags() -> [Double] {
        lock.withLock { _ in
            var result: [Double] = []
            result.reserveCapacity(appendLatencies.count)
            var previous: Int64 = 0
            for (next, time) in visibleAt {
                for offset in previous..<next {
                    if offset < submittedAt.count, !submittedAt[Int(offset)].isNaN { result.append(time - submittedAt[Int(offset)]) }
                }
                previous = max(previous, next)
            }
            return result
        }
    }
}
