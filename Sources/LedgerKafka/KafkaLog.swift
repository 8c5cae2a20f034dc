#if canImport(Glibc)
import Glibc
#endif
import CRdKafka
public import LedgerCore
public import LedgerLog
import Logging
import Synchronization

/// The ledger's log on an Apache Kafka topic: the ``EventLog`` protocol over librdkafka.
///
/// **One fenced writer.** Appends go through the same ``MemorySequencer`` as the segment log's
/// (ids, expected versions, gap-free offsets and versions, the hash chain), on one writer thread
/// that produces each group of requests as one Kafka transaction (idempotent producer,
/// `acks=all`, `transactional.id` = `ledger-<name>`) and acknowledges them only once the
/// transaction commits. A second writer of the same ledger fences the first, which then refuses
/// every append with `fenced`. A batch whose transaction must be aborted is produced again, the
/// same bytes at the same ledger offsets, in a new one; readers read `read_committed` and skip a
/// copy of a ledger offset they already have.
///
/// **Start-up** fences older writers first (`init_transactions` aborts their open transaction),
/// then restores the writer's snapshot (``KafkaConfiguration/stateDirectory``) and folds only
/// the topic's tail after it, checking every tail record's schema, hash and link to the
/// snapshot's chain head; it refuses to start if they do not verify.
///
/// **Readers** (``openReader(_:)``, other processes) learn the head by reading the topic's last
/// records and watching its high watermark.
public final class KafkaLog: EventLog, PreparedAppender, @unchecked Sendable {
    // @unchecked: `producer`, `sequencer`, `fetchCursor` and `kafkaNext` belong to the writer
    // thread (and to open/close before and after it runs); everything shared sits in the
    // ConditionLocks.
    public typealias Cursor = KafkaCursor
    typealias Completion = @Sendable ([Result<[AppendResult], LedgerError>]) -> Void

    public let configuration: KafkaConfiguration
    let logger: Logger
    let heads: HeadSignal
    private let producer: RDKafkaProducer?
    private let sequencer: MemorySequencer
    /// The Kafka offset after the last record the writer knows of (what its snapshot covers).
    private var kafkaNext: Int64
    /// This writer's epoch (its fence's), and the highest epoch folded (what the snapshot keeps).
    private var epoch: UInt64
    /// The Kafka offset of this writer's last record (or fence): where the next batch should
    /// follow, after at most one transaction marker.
    private var lastKafkaOffset: Int64
    private var sinceSnapshot: Int64 = 0
    private var fetchCursor: KafkaCursor?
    private var placementConsumer: RDKafkaConsumer?
    /// The writer thread's header scratch, and the CloudEvents source as bytes.
    private let headerBuffer = RDKafkaHeaderBuffer()
    private lazy var source: [UInt8] = Array(configuration.source.utf8)
    /// Consumers of finished cursors, for the next ones.
    let consumers = ConsumerPool()

    struct Submission {
        var requests: [Result<[PreparedEvent], LedgerError>]
        var completion: Completion
    }
    struct State {
        var head: Int64
        var queue: [Submission] = []
        var closed = false
        var failure: LedgerError?
        var writerRunning = false
    }
    private let state: ConditionLock<State>

    private init(configuration: KafkaConfiguration, producer: RDKafkaProducer?, sequencer: MemorySequencer, kafkaNext: Int64, head: Int64, epoch: UInt64 = 0, lastKafkaOffset: Int64 = -1) {
        self.configuration = configuration
        self.epoch = epoch
        self.lastKafkaOffset = lastKafkaOffset
        logger = configuration.logger
        self.producer = producer
        self.sequencer = sequencer
        self.kafkaNext = kafkaNext
        heads = HeadSignal(head: head)
        state = ConditionLock(State(head: head))
    }

    // MARK: opening

    /// Opens the ledger on `configuration.topic` as its single writer (creating the topic with
    /// one partition if it does not exist), fencing any earlier writer.
    @available(*, noasync, message: "talks to the brokers and reads the topic's tail; call it from a thread of its own")
    public static func openWriter(_ configuration: KafkaConfiguration) throws -> KafkaLog {
        let logger = configuration.logger
        let producer = try RDKafkaProducer(properties: configuration.producerProperties(), logger: logger)
        try ensureTopic(configuration, client: producer)
        do {
            try producer.initTransactions(timeoutMs: configuration.transactionTimeoutMs)
        } catch let f as RDKafkaFailure {
            throw LedgerError(.writerFailed, "kafka: cannot become the writer of \(configuration.topic) (transactional id \(configuration.transactionalID)): \(f.message)")
        }
        // Older writers are fenced now (by Kafka, through the transactional id's epoch).
        var (sequencer, kafkaNext, filter) = try loadSnapshot(configuration)
        let (low, high) = try producer.watermarks(topic: configuration.topic)
        if kafkaNext > high {
            throw LedgerError(
                .corrupt,
                "the writer's snapshot covers \(sequencer.next) events up to kafka offset \(kafkaNext), but topic \(configuration.topic) ends at \(high): was the topic deleted or recreated? Move \(snapshotPath(configuration) ?? "the snapshot") aside to start from the topic alone")
        }
        if kafkaNext < low && sequencer.next > 0 {
            throw LedgerError(.corrupt, "topic \(configuration.topic) no longer holds kafka offset \(kafkaNext), where the writer's snapshot ends (retention removed it)")
        }
        if sequencer.next == 0 { kafkaNext = low }
        let tailStart = sequencer.next
        kafkaNext = try foldTail(configuration, into: sequencer, from: kafkaNext, epochs: &filter)
        // The ledger's own fence, one epoch above any in the topic; then what came before it.
        let epoch = filter.epoch + 1
        let fenceOffset = try writeFence(producer, configuration: configuration, epoch: epoch, head: sequencer.next)
        kafkaNext = try foldTail(configuration, into: sequencer, from: kafkaNext, epochs: &filter, through: fenceOffset)
        logger.info("kafka: \(configuration.topic) opened for writing at ledger offset \(sequencer.next), epoch \(epoch) (\(sequencer.next - tailStart) events read from the tail)")
        let log = KafkaLog(
            configuration: configuration, producer: producer, sequencer: sequencer, kafkaNext: kafkaNext, head: sequencer.next, epoch: epoch,
            lastKafkaOffset: fenceOffset)
        try log.saveSnapshot()
        log.state.update { $0.writerRunning = true }
        startThread(name: "ledger-kafka-writer") { [log] in log.writerLoop() }
        return log
    }

    /// Appends the fence record of `epoch` in a transaction of its own; returns its Kafka offset.
    private static func writeFence(_ producer: RDKafkaProducer, configuration: KafkaConfiguration, epoch: UInt64, head: Int64) throws -> Int64 {
        let value = Array(#"{"epoch":\#(epoch),"head":\#(head),"writer":"\#(configuration.transactionalID)"}"#.utf8)
        let now = configuration.clock()
        do {
            producer.expectDeliveries(1)
            try producer.beginTransaction()
            try value.withUnsafeBytes { v in
                try Array("ledger-fence".utf8).withUnsafeBytes { k in
                    try producer.produce(
                        topic: configuration.topic, partition: 0,
                        RDKafkaRecord(
                            key: k, value: v, timestampMs: now.milliseconds, headers: KafkaRecord.fence(epoch: epoch, time: now, source: configuration.source), index: 0))
                }
            }
            try producer.commitTransaction(timeoutMs: configuration.transactionTimeoutMs)
        } catch let f as RDKafkaFailure {
            throw LedgerError(.writerFailed, "kafka: writing the writer's fence to \(configuration.topic) failed: \(f.message)")
        }
        let offset = producer.deliveredOffsets[0]
        guard offset >= 0 else { throw LedgerError(.writerFailed, "kafka: the writer's fence was not acknowledged") }
        return offset
    }

    /// Opens the ledger on `configuration.topic` for reading only: it follows the head another
    /// process's writer commits.
    @available(*, noasync, message: "talks to the brokers; call it from a thread of its own")
    public static func openReader(_ configuration: KafkaConfiguration) throws -> KafkaLog {
        let probe = try RDKafkaConsumer(properties: configuration.consumerProperties(), logger: configuration.logger)
        guard try probe.partitionCount(topic: configuration.topic) != nil else {
            throw LedgerError(.notFound, "kafka: topic \(configuration.topic) does not exist on \(configuration.brokers)")
        }
        let head = try lastHead(configuration, consumer: probe)
        let log = KafkaLog(configuration: configuration, producer: nil, sequencer: MemorySequencer(), kafkaNext: 0, head: head)
        log.state.update { $0.writerRunning = true }
        startThread(name: "ledger-kafka-head") { [log] in log.headLoop(consumer: probe) }
        return log
    }

    /// Creates the topic with one partition if the cluster does not have it.
    private static func ensureTopic(_ configuration: KafkaConfiguration, client: RDKafkaClient) throws {
        let topic = configuration.topic
        if let partitions = try client.partitionCount(topic: topic) {
            if partitions > 1 {
                configuration.logger.notice("kafka: topic \(topic) has \(partitions) partitions; the ledger uses partition 0 only (one partition carries the total order)")
            }
            return
        }
        try client.createTopic(topic, partitions: 1, replicationFactor: configuration.replicationFactor)
    }

    // MARK: snapshot

    static func snapshotPath(_ configuration: KafkaConfiguration) -> String? {
        configuration.stateDirectory.map { $0 + "/kafka-" + configuration.ledgerName + ".writer" }
    }

    private static func loadSnapshot(_ configuration: KafkaConfiguration) throws -> (MemorySequencer, Int64, EpochFilter) {
        let empty = (MemorySequencer(maxRequestBytes: configuration.maxRequestBytes), Int64(0), EpochFilter())
        guard let path = snapshotPath(configuration), let bytes = try? readFile(path), bytes.count > 16 else { return empty }
        let kafkaNext = bytes.withUnsafeBytes { Int64(littleEndian: $0.loadUnaligned(as: Int64.self)) }
        let epoch = bytes.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(fromByteOffset: 8, as: UInt64.self)) }
        do {
            var filter = EpochFilter()
            _ = filter.admit(.fence(epoch: epoch))
            return (try MemorySequencer(snapshot: Array(bytes[16...]), maxRequestBytes: configuration.maxRequestBytes), kafkaNext, filter)
        } catch {
            configuration.logger.warning("kafka: the writer's snapshot \(path) is damaged; folding the whole topic instead")
            return empty
        }
    }

    /// Writes the snapshot (temporary file, fsync, rename): the Kafka offset, the epoch, then the
    /// sequencer.
    private func saveSnapshot() throws {
        guard let path = Self.snapshotPath(configuration), let directory = configuration.stateDirectory else { return }
        var bytes: [UInt8] = []
        withUnsafeBytes(of: kafkaNext.littleEndian) { bytes.append(contentsOf: $0) }
        withUnsafeBytes(of: epoch.littleEndian) { bytes.append(contentsOf: $0) }
        bytes += sequencer.snapshot()
        try writeFileDurably(bytes, to: path, directory: directory)
        sinceSnapshot = 0
    }

    /// Folds every committed record from Kafka offset `from` to the end into `sequencer`,
    /// verifying each; returns the Kafka offset after the last.
    private static func foldTail(
        _ configuration: KafkaConfiguration, into sequencer: MemorySequencer, from: Int64, epochs: inout EpochFilter, through last: Int64? = nil
    ) throws -> Int64 {
        let consumer = try RDKafkaConsumer(properties: configuration.consumerProperties(), logger: configuration.logger)
        try consumer.assign(topic: configuration.topic, offset: from)
        var next = from
        var lastTime = sequencer.next == 0 ? Int64.min : sequencer.lastTime
        let deadline = monotonicSeconds() + 60
        while true {
            guard let m = consumer.poll(timeoutMs: 200) else {
                if monotonicSeconds() > deadline { throw LedgerError(.io, "kafka: reading the tail of \(configuration.topic) timed out") }
                continue
            }
            defer { m.destroy() }
            if m.isPartitionEnd {
                if let last, next <= last { continue }
                return next
            }
            guard m.error == RD_KAFKA_RESP_ERR_NO_ERROR else {
                if m.error == RD_KAFKA_RESP_ERR__TRANSPORT || m.error == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN { continue }
                throw LedgerError(.io, "kafka: reading the tail of \(configuration.topic): \(m.errorText)")
            }
            next = m.offset + 1
            guard let view = epochs.admit(try KafkaRecord.classify(m).get()) else {
                if let last, m.offset >= last { return next }
                continue
            }
            if view.offset < sequencer.next { continue }  // a retried batch's copy
            guard view.offset == sequencer.next else {
                throw LedgerError(.corrupt, "topic \(configuration.topic): after ledger offset \(sequencer.next - 1) comes \(view.offset) (kafka offset \(m.offset)): events are missing; the writer will not start")
            }
            switch Verifier.checkRecord(view, previousHash: sequencer.lastHash, previousTime: lastTime) {
            case .failure(let e):
                throw LedgerError(.corrupt, "topic \(configuration.topic), kafka offset \(m.offset): \(e.message); the tail does not verify against the writer's checkpoint, so the writer will not start")
            case .success: break
            }
            try sequencer.observe(view)
            lastTime = view.time.milliseconds
            if let last, m.offset >= last { return next }
        }
    }

    /// The ledger offset after the last committed record (read from the topic's end).
    private static func lastHead(_ configuration: KafkaConfiguration, consumer: RDKafkaConsumer) throws -> Int64 {
        let (low, high) = try consumer.watermarks(topic: configuration.topic)
        var window: Int64 = 64
        while true {
            let start = max(low, high - window)
            try consumer.assign(topic: configuration.topic, offset: start)
            var last: Int64 = -1
            var epochs = EpochFilter()
            let deadline = monotonicSeconds() + 30
            while true {
                guard let m = consumer.poll(timeoutMs: 100) else {
                    if monotonicSeconds() > deadline { throw LedgerError(.io, "kafka: reading the end of \(configuration.topic) timed out") }
                    continue
                }
                defer { m.destroy() }
                if m.isPartitionEnd { break }
                guard m.error == RD_KAFKA_RESP_ERR_NO_ERROR else { continue }
                if case .success(let kind) = KafkaRecord.classify(m), let v = epochs.admit(kind) { last = max(last, v.offset) }
            }
            if last >= 0 || start == low { return last + 1 }
            window *= 4
        }
    }

    // MARK: EventLog

    public var head: Int64 { state.withLock { $0.head } }

    public var maxDataBytes: Int { configuration.maxDataBytes }

    public var failure: LedgerError? { state.withLock { $0.failure } }

    public func headUpdates() -> AsyncStream<Int64> { heads.stream() }

    /// Blocks until the head passes `offset`, the log fails, or `timeout` seconds pass.
    @available(*, noasync, message: "waits on a condition variable; call it from a thread of its own")
    public func waitForHead(beyond offset: Int64, timeout: Double) -> Int64 { heads.wait(beyond: offset, timeout: timeout) }

    public func cursor(from: Int64, end: Int64?, filter: EventFilter) -> KafkaCursor {
        KafkaCursor(configuration: configuration, pool: consumers, from: from, end: end, filter: filter) { [weak self] in self?.head ?? 0 }
    }

    public func firstOffset(atOrAfter time: Timestamp) throws -> Int64 {
        // Times never decrease along the log: binary search over ledger offsets.
        var lo: Int64 = 0
        var hi = head
        let reader = EventReader(source: self)
        while lo < hi {
            let mid = lo + (hi - lo) / 2
            guard let e = try reader.event(at: mid) else { throw LedgerError(.io, "kafka: ledger offset \(mid) could not be read") }
            if e.time < time { lo = mid + 1 } else { hi = mid }
        }
        return lo
    }

    public func idLookup() throws -> any IDLookup { KafkaIDLookup(log: self) }

    public func append(requests: [[AppendRequest]], policy: AppendPolicy) async -> [Result<[AppendResult], LedgerError>] {
        var policy = policy
        policy.maxDataBytes = min(policy.maxDataBytes, configuration.maxDataBytes)
        let prepared = requests.map { EventPreparer.prepare(request: $0, policy: policy) }
        return await withCheckedContinuation { continuation in
            submit(prepared) { continuation.resume(returning: $0) }
        }
    }

    /// Queues prepared requests; `completion` runs on the writer thread once the accepted ones are
    /// committed in Kafka.
    public func submit(_ prepared: [Result<[PreparedEvent], LedgerError>], completion: @escaping @Sendable ([Result<[AppendResult], LedgerError>]) -> Void) {
        let refused: LedgerError? = state.update { s in
            if let f = s.failure { return f }
            if s.closed { return LedgerError(.closed, "the log is closed") }
            if producer == nil { return LedgerError(.usage, "this ledger was opened for reading only (its writer is another process)") }
            s.queue.append(Submission(requests: prepared, completion: completion))
            return nil
        }
        if let refused { completion(prepared.map { _ in .failure(refused) }) }
    }

    @available(*, noasync, message: "close() waits for the writer thread; call it from a thread of its own")
    public func close() throws {
        state.update { $0.closed = true }
        state.wait(until: { !$0.writerRunning }) { _ in }
        heads.publish(failed: true)
        fetchCursor = nil
        consumers.drain()
        if producer != nil, failure == nil { try saveSnapshot() }
    }

    // MARK: the writer

    private func writerLoop() {
        defer { state.update { $0.writerRunning = false } }
        while true {
            let (taken, closed): ([Submission], Bool) = state.wait(until: { !$0.queue.isEmpty || $0.closed }) { s in
                let q = s.queue
                s.queue = []
                return (q, s.closed)
            }
            if taken.isEmpty && closed { return }
            if let f = failure {
                for s in taken { s.completion(s.requests.map { _ in .failure(f) }) }
                continue
            }
            let all = taken.flatMap(\.requests)
            let hashBefore = sequencer.lastHash
            let batch = sequencer.sequence(all, now: configuration.clock()) { [self] offset in try fetch(offset) }
            var results = batch.results
            if batch.count > 0 {
                do {
                    try commit(batch, requests: all, hashBefore: hashBefore)
                    state.update { $0.head = batch.nextOffset }
                    heads.publish(head: batch.nextOffset)
                    sinceSnapshot += Int64(batch.count)
                    if sinceSnapshot >= configuration.snapshotEvery { try? saveSnapshot() }
                } catch {
                    let e = (error as? LedgerError) ?? LedgerError.wrap(error)
                    stop(e)
                    results = results.map { r in
                        if case .success(let rs) = r, let first = rs.first, first.offset >= batch.baseOffset { return .failure(e) }
                        return r
                    }
                }
            }
            var at = 0
            for s in taken {
                s.completion(Array(results[at..<(at + s.requests.count)]))
                at += s.requests.count
            }
        }
    }

    /// Stops the writer for good: every later append fails with `error`.
    private func stop(_ error: LedgerError) {
        logger.critical("kafka: the writer of \(configuration.topic) stopped: \(error.message)")
        let queued: [Submission] = state.update { s in
            if s.failure == nil { s.failure = error }
            let q = s.queue
            s.queue = []
            return q
        }
        for s in queued { s.completion(s.requests.map { _ in .failure(error) }) }
        heads.publish(failed: true)
    }

    /// Produces the batch as one transaction and commits it; aborts and produces it again on an
    /// abortable error, retries the commit on a retriable one, stops on a fatal one (fenced).
    private func commit(_ batch: SequencedBatch, requests: [Result<[PreparedEvent], LedgerError>], hashBefore: Hash256) throws {
        guard let producer else { throw LedgerError(.usage, "read-only") }
        let extras = try extrasByOffset(batch, requests: requests)
        var attempt = 0
        while true {
            attempt += 1
            do {
                producer.expectDeliveries(batch.count)
                try producer.beginTransaction()
                var prevHash = hashBefore
                for offset in batch.baseOffset..<batch.nextOffset {
                    try batch.withRecord(at: offset) { view in
                        guard let hash = view.storedHash else { throw LedgerError(.internal, "a record the writer built has no hash") }
                        var x = extras[Int(offset - batch.baseOffset)]
                        x.prevHash = prevHash
                        source.withUnsafeBytes { KafkaRecord.writeHeaders(view, hash: hash, extras: x, epoch: epoch, source: $0, into: headerBuffer) }
                        try producer.produce(
                            topic: configuration.topic, partition: 0, key: view.streamBytes, value: view.json, timestampMs: view.time.milliseconds,
                            index: Int(offset - batch.baseOffset), headers: headerBuffer)
                        prevHash = hash
                    }
                }
                try commitTransaction(producer)
                try checkPlacement(producer.deliveredOffsets, batch: batch)
                return
            } catch let f as RDKafkaFailure {
                if f.isFenced || producer.fatalError?.isFenced == true {
                    throw LedgerError(.fenced, "another writer of ledger \(configuration.ledgerName) (transactional id \(configuration.transactionalID)) took over topic \(configuration.topic); this one stopped accepting appends: \(f.message)")
                }
                if f.fatal || attempt >= configuration.maxAttempts {
                    throw LedgerError(.writerFailed, "kafka: the batch at ledger offset \(batch.baseOffset) could not be committed after \(attempt) attempts: \(f.message)")
                }
                logger.warning("kafka: the batch at ledger offset \(batch.baseOffset) failed (\(f.message)); aborting its transaction and producing it again")
                do { try producer.abortTransaction(timeoutMs: configuration.transactionTimeoutMs) } catch let a as RDKafkaFailure {
                    if a.fatal || a.isFenced {
                        throw LedgerError(.writerFailed, "kafka: aborting the failed transaction at ledger offset \(batch.baseOffset) failed: \(a.message)")
                    }
                }
                usleep(UInt32(min(2_000_000, 50_000 << min(attempt, 5))))
            }
        }
    }

    /// After a commit: the batch's records must sit together, right after this writer's previous
    /// record (one transaction marker, or the copies of an aborted attempt, may lie between).
    /// Anything else there is read, and a fence or record of a newer writer means this one was
    /// fenced: its batch is not acknowledged (readers skip it by its epoch).
    private func checkPlacement(_ offsets: [Int64], batch: SequencedBatch) throws {
        guard let first = offsets.first, let last = offsets.last, !offsets.contains(-1) else {
            throw LedgerError(.writerFailed, "kafka: the batch at ledger offset \(batch.baseOffset) committed without a delivery report for every record")
        }
        let together = zip(offsets, offsets.dropFirst()).allSatisfy { $1 == $0 + 1 }
        guard together else { throw LedgerError(.writerFailed, "kafka: the records of the batch at ledger offset \(batch.baseOffset) were split") }
        if first != lastKafkaOffset + 1 {
            // Usually one transaction marker (which read_committed never returns as a message).
            let consumer = try placementConsumer ?? RDKafkaConsumer(properties: configuration.consumerProperties(), logger: logger)
            placementConsumer = consumer
            try consumer.assign(topic: configuration.topic, offset: lastKafkaOffset + 1)
            let deadline = monotonicSeconds() + 30
            var at = lastKafkaOffset + 1
            while at < first {
                guard let m = consumer.poll(timeoutMs: 100) else {
                    if monotonicSeconds() > deadline { throw LedgerError(.writerFailed, "kafka: could not read back what precedes the batch at ledger offset \(batch.baseOffset)") }
                    continue
                }
                defer { m.destroy() }
                guard m.error == RD_KAFKA_RESP_ERR_NO_ERROR else { continue }
                at = m.offset + 1
                guard m.offset < first else { break }
                switch KafkaRecord.classify(m) {
                case .success(.fence(let e)) where e > epoch, .success(.event(_, let e)) where e > epoch:
                    throw LedgerError(
                        .fenced,
                        "another writer of ledger \(configuration.ledgerName) (epoch \(e), this one \(epoch)) took over topic \(configuration.topic); this one stopped accepting appends")
                default: break
                }
            }
        }
        lastKafkaOffset = last
        kafkaNext = last + 1
    }

    /// Commits, retrying a commit whose outcome is retriable (a timeout, a coordinator moving).
    private func commitTransaction(_ producer: RDKafkaProducer) throws {
        var tries = 0
        while true {
            do {
                try producer.commitTransaction(timeoutMs: configuration.transactionTimeoutMs)
                return
            } catch let f as RDKafkaFailure where f.retriable && !f.requiresAbort && !f.fatal && tries < 10 {
                tries += 1
                logger.warning("kafka: commit failed (\(f.message)); retrying it")
            }
        }
    }

    /// Actor, schema version, causation and correlation of each new record, from the requests.
    private func extrasByOffset(_ batch: SequencedBatch, requests: [Result<[PreparedEvent], LedgerError>]) throws -> [KafkaRecord.Extras] {
        var extras = [KafkaRecord.Extras](repeating: KafkaRecord.Extras(actor: "", schemaVersion: 1, prevHash: .zero), count: batch.count)
        for (i, request) in requests.enumerated() {
            guard case .success(let events) = request, case .success(let results) = batch.results[i] else { continue }
            for (j, r) in results.enumerated() where r.offset >= batch.baseOffset && r.offset < batch.nextOffset && j < events.count {
                let e = events[j]
                extras[Int(r.offset - batch.baseOffset)] = KafkaRecord.Extras(
                    actor: e.actor, schemaVersion: e.schemaVersion, causationId: e.causationId, correlationId: e.correlationId, prevHash: .zero)
            }
        }
        return extras
    }

    /// An event of an earlier batch (an idempotent retry of it), read back from Kafka.
    private func fetch(_ offset: Int64) throws -> StoredEvent? {
        let cursor = fetchCursor ?? cursor(from: offset, end: nil, filter: .all)
        fetchCursor = cursor
        cursor.seek(to: offset)
        guard let view = try cursor.next(), view.offset == offset else { return nil }
        return view.stored()
    }

    // MARK: readers

    /// Follows another process's writer: looks at the high watermark and, when it moved, reads
    /// the new head from the topic's end.
    private func headLoop(consumer: RDKafkaConsumer) {
        defer { state.update { $0.writerRunning = false } }
        var lastHigh: Int64 = -1
        while !state.withLock({ $0.closed }) {
            if let (_, high) = try? consumer.watermarks(topic: configuration.topic, timeoutMs: 2000), high != lastHigh,
                let head = try? Self.lastHead(configuration, consumer: consumer)
            {
                lastHigh = high
                let moved: Bool = state.update { s in
                    guard head > s.head else { return false }
                    s.head = head
                    return true
                }
                if moved { heads.publish(head: head) }
            }
            state.wait(until: { $0.closed }, timeout: configuration.headPollInterval) { _, _ in }
        }
    }
}

/// Event id → ledger offset for a Kafka log: folds the topic's records once, then what is new.
final class KafkaIDLookup: IDLookup {
    let log: KafkaLog
    private var offsets: [EventID: Int64] = [:]
    private var cursor: KafkaCursor?

    init(log: KafkaLog) { self.log = log }

    func offset(of id: EventID) throws -> Int64? {
        if let o = offsets[id] { return o }
        let cursor = self.cursor ?? log.cursor(from: 0, end: nil, filter: .all)
        self.cursor = cursor
        while let view = try cursor.next() { offsets[view.id] = view.offset }
        return offsets[id]
    }
}

// MARK: files

func readFile(_ path: String) throws -> [UInt8] {
    let fd = open(path, O_RDONLY)
    guard fd >= 0 else { throw LedgerError(.io, "cannot open \(path): \(String(cString: strerror(errno)))") }
    defer { close(fd) }
    var out: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 1 << 16)
    while true {
        let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress!, $0.count) }
        if n < 0 && errno == EINTR { continue }
        guard n >= 0 else { throw LedgerError(.io, "cannot read \(path): \(String(cString: strerror(errno)))") }
        if n == 0 { return out }
        out += chunk[0..<n]
    }
}

/// Writes `bytes` to `path` through a temporary file, fsynced, renamed, the directory fsynced;
/// the directory is created owner-only if missing.
func writeFileDurably(_ bytes: [UInt8], to path: String, directory: String) throws {
    if mkdir(directory, 0o700) != 0 && errno != EEXIST {
        throw LedgerError(.io, "cannot create \(directory): \(String(cString: strerror(errno)))")
    }
    let tmp = path + ".tmp"
    let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
    guard fd >= 0 else { throw LedgerError(.io, "cannot create \(tmp): \(String(cString: strerror(errno)))") }
    var done = 0
    while done < bytes.count {
        let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + done, $0.count - done) }
        if n < 0 && errno == EINTR { continue }
        guard n > 0 else {
            close(fd)
            throw LedgerError(.io, "cannot write \(tmp): \(String(cString: strerror(errno)))")
        }
        done += n
    }
    guard fsync(fd) == 0 else {
        close(fd)
        throw LedgerError(.io, "fsync \(tmp): \(String(cString: strerror(errno)))")
    }
    close(fd)
    guard rename(tmp, path) == 0 else { throw LedgerError(.io, "cannot rename \(tmp): \(String(cString: strerror(errno)))") }
    let dfd = open(directory, O_RDONLY)
    if dfd >= 0 {
        fsync(dfd)
        close(dfd)
    }
}
