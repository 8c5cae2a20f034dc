#if canImport(Glibc)
import Glibc
#endif
import CRdKafka
import LedgerCore
import Synchronization
public import LedgerLog

/// Reads the ledger's records from partition 0 of its topic, `read_committed`, in ledger-offset
/// order, up to the head the log knows is committed.
///
/// Kafka offsets are not ledger offsets: transaction markers (and records of aborted
/// transactions) leave gaps. The ledger offset travels in every record, so a cursor finds a
/// ledger offset by probing: Kafka offset ≥ ledger offset always holds, and a record read at
/// Kafka offset k with ledger offset l < target puts the target at k + (target − l) or later.
/// A record with a ledger offset below the next expected one is a retried batch's copy (identical
/// bytes) and is skipped; one above it is a gap, which is corruption.
public final class KafkaCursor: EventCursor {
    let topic: String
    let configuration: KafkaConfiguration
    let pool: ConsumerPool
    private var consumer: RDKafkaConsumer!
    let end: Int64?
    let filter: EventFilter
    let head: () -> Int64
    public private(set) var nextOffset: Int64
    /// The Kafka offset to read from, once positioned.
    private var positioned = false
    private var current: RDKafkaMessage?
    private var epochs = EpochFilter()
    /// How long to wait for a record the head says is committed before giving up.
    let patience: Double = 30

    init(configuration: KafkaConfiguration, pool: ConsumerPool, from: Int64, end: Int64?, filter: EventFilter, head: @escaping () -> Int64) {
        topic = configuration.topic
        self.configuration = configuration
        self.pool = pool
        self.end = end
        self.filter = filter
        self.head = head
        nextOffset = max(0, from)
    }

    deinit {
        current?.destroy()
        if let consumer { pool.park(ConsumerPool.Parked(consumer: consumer, next: positioned ? nextOffset : -1, epochs: epochs)) }
    }

    public func seek(to offset: Int64) {
        nextOffset = max(0, offset)
        positioned = false
    }

    public func next() throws -> RecordView? {
        current?.destroy()
        current = nil
        while true {
            let limit = min(end ?? Int64.max, head())
            guard nextOffset < limit else { return nil }
            if consumer == nil {
                if let parked = pool.take(at: nextOffset) {
                    consumer = parked.consumer
                    if parked.next == nextOffset {
                        positioned = true
                        epochs = parked.epochs
                    }
                } else {
                    consumer = try RDKafkaConsumer(properties: configuration.consumerProperties(), logger: configuration.logger)
                }
            }
            if !positioned { try position() }
            let message = try poll()
            let view: RecordView
            switch KafkaRecord.classify(message) {
            case .failure(let e):
                message.destroy()
                throw e
            case .success(let kind):
                guard let v = epochs.admit(kind) else {
                    message.destroy()
                    continue
                }
                view = v
            }
            if view.offset < nextOffset {  // a retried batch's copy, or slack after positioning
                message.destroy()
                continue
            }
            guard view.offset == nextOffset else {
                message.destroy()
                throw LedgerError(.corrupt, "topic \(topic): after ledger offset \(nextOffset - 1) comes \(view.offset) (kafka offset \(message.offset)): events are missing")
            }
            nextOffset += 1
            if filter.matches(view) {
                current = message
                return view
            }
            message.destroy()
        }
    }

    /// The next data message (partition ends and empty polls are waited through).
    private func poll() throws -> RDKafkaMessage {
        let deadline = monotonicSeconds() + patience
        while true {
            if let m = consumer.poll(timeoutMs: 100) {
                if m.error == RD_KAFKA_RESP_ERR_NO_ERROR { return m }
                let partitionEnd = m.isPartitionEnd
                let text = m.errorText
                let code = m.error
                m.destroy()
                if partitionEnd { continue }
                if code == RD_KAFKA_RESP_ERR__TRANSPORT || code == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN { continue }
                throw LedgerError(.io, "kafka: reading \(topic): \(text)")
            }
            if monotonicSeconds() > deadline {
                throw LedgerError(.io, "kafka: ledger offset \(nextOffset) of \(topic) is committed but did not arrive within \(Int(patience)) s")
            }
        }
    }

    /// Assigns the partition at the Kafka offset of `nextOffset` (or a little before it).
    private func position() throws {
        epochs = EpochFilter()
        var k = nextOffset
        let (low, _) = try consumer.watermarks(topic: topic)
        k = max(k, low)
        for _ in 0..<64 {
            try consumer.assign(topic: topic, offset: k)
            let message = try poll()
            let found = message.offset
            let ledger: Int64
            switch KafkaRecord.classify(message) {
            case .failure(let e):
                message.destroy()
                throw e
            case .success(.fence):
                message.destroy()
                k = found + 1
                continue
            case .success(.event(let v, _)): ledger = v.offset
            }
            message.destroy()
            if ledger == nextOffset {
                k = found
                break
            }
            if ledger > nextOffset {
                // k is a lower bound of the target's Kafka offset and `found` the first record at
                // or after it: the target is not in the topic.
                throw LedgerError(
                    found == low ? .notFound : .corrupt,
                    found == low
                        ? "ledger offset \(nextOffset) is no longer in topic \(topic) (its oldest record holds \(ledger)): retention removed it"
                        : "topic \(topic) has no record of ledger offset \(nextOffset) (kafka offset \(found) holds \(ledger))")
            }
            k = found + (nextOffset - ledger)
        }
        try consumer.assign(topic: topic, offset: k)
        positioned = true
    }
}

/// Consumers of finished cursors, kept assigned where they stopped: the next cursor that starts
/// there (a processor's or the projector's next round) goes on without a new connection or a
/// seek.
final class ConsumerPool: Sendable {
    struct Parked: @unchecked Sendable {
        // @unchecked: a parked consumer is used by no one until a cursor takes it.
        var consumer: RDKafkaConsumer
        /// The ledger offset it would read next (−1: not positioned).
        var next: Int64
        var epochs: EpochFilter
    }
    private let parked = Mutex<[Parked]>([])
    let capacity = 8

    func park(_ p: Parked) {
        parked.withLock { list in
            if list.count >= capacity { list.removeFirst() }
            list.append(p)
        }
    }

    /// One positioned at `offset` if there is one, else any.
    func take(at offset: Int64) -> Parked? {
        parked.withLock { list in
            if let i = list.lastIndex(where: { $0.next == offset }) { return list.remove(at: i) }
            return list.popLast()
        }
    }

    func drain() { parked.withLock { $0.removeAll() } }
}
