import CRdKafka
import LedgerCore
import Logging
import Synchronization

// Internal wrappers over librdkafka's C handles. Each class owns one handle and frees it in
// deinit; no C type leaves this module. librdkafka's callbacks reach Swift through an
// `Unmanaged` pointer to a ``RDKafkaCallbacks`` box passed as the handle's opaque.

/// What librdkafka's log and error callbacks call back into (from librdkafka's own threads).
final class RDKafkaCallbacks: Sendable {
    let logger: Logger
    /// Delivery reports of the messages produced since ``RDKafkaProducer/expectDeliveries(_:)``:
    /// each message's Kafka offset by the index it was produced with (−1: failed or pending).
    let deliveries = Mutex<[Int64]>([])
    init(logger: Logger) { self.logger = logger }
}

private func deliveryCallback(_ rk: OpaquePointer?, _ message: UnsafePointer<rd_kafka_message_t>?, _ opaque: UnsafeMutableRawPointer?) {
    guard let opaque, let message else { return }
    let callbacks = Unmanaged<RDKafkaCallbacks>.fromOpaque(opaque).takeUnretainedValue()
    let index = Int(bitPattern: message.pointee._private)
    let offset = message.pointee.err == RD_KAFKA_RESP_ERR_NO_ERROR ? message.pointee.offset : -1
    callbacks.deliveries.withLock { d in
        if index >= 0 && index < d.count { d[index] = offset }
    }
}

/// A librdkafka error as a ledger error (`kafka` code family), keeping the C error's name.
struct RDKafkaFailure: Error {
    var code: rd_kafka_resp_err_t
    var message: String
    var fatal = false
    var retriable = false
    var requiresAbort = false

    init(code: rd_kafka_resp_err_t, message: String) {
        self.code = code
        self.message = message
    }

    /// Takes (and destroys) an `rd_kafka_error_t`.
    init(taking error: OpaquePointer) {
        code = rd_kafka_error_code(error)
        message = String(cString: rd_kafka_error_string(error))
        fatal = rd_kafka_error_is_fatal(error) != 0
        retriable = rd_kafka_error_is_retriable(error) != 0
        requiresAbort = rd_kafka_error_txn_requires_abort(error) != 0
        rd_kafka_error_destroy(error)
    }

    var isFenced: Bool {
        code == RD_KAFKA_RESP_ERR__FENCED || code == RD_KAFKA_RESP_ERR_PRODUCER_FENCED || code == RD_KAFKA_RESP_ERR_INVALID_PRODUCER_EPOCH
            || code == RD_KAFKA_RESP_ERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED
    }

    var ledgerError: LedgerError { LedgerError(.writerFailed, "kafka: \(message)") }

    static func check(_ err: rd_kafka_resp_err_t, _ what: String) throws {
        guard err != RD_KAFKA_RESP_ERR_NO_ERROR else { return }
        throw RDKafkaFailure(code: err, message: "\(what): \(String(cString: rd_kafka_err2str(err)))")
    }
}

private func logCallback(_ rk: OpaquePointer?, _ level: Int32, _ facility: UnsafePointer<CChar>?, _ message: UnsafePointer<CChar>?) {
    guard let rk, let opaque = rd_kafka_opaque(rk) else { return }
    let callbacks = Unmanaged<RDKafkaCallbacks>.fromOpaque(opaque).takeUnretainedValue()
    let text = message.map { String(cString: $0) } ?? ""
    let fac = facility.map { String(cString: $0) } ?? ""
    // syslog levels: 0–3 error, 4 warning, 5–6 notice/info, 7 debug.
    switch level {
    case ...3: callbacks.logger.error("librdkafka \(fac): \(text)")
    case 4: callbacks.logger.warning("librdkafka \(fac): \(text)")
    case 5...6: callbacks.logger.info("librdkafka \(fac): \(text)")
    default: callbacks.logger.debug("librdkafka \(fac): \(text)")
    }
}

private func errorCallback(_ rk: OpaquePointer?, _ err: Int32, _ reason: UnsafePointer<CChar>?, _ opaque: UnsafeMutableRawPointer?) {
    guard let opaque else { return }
    let callbacks = Unmanaged<RDKafkaCallbacks>.fromOpaque(opaque).takeUnretainedValue()
    callbacks.logger.warning("kafka: \(reason.map { String(cString: $0) } ?? "error \(err)")")
}

/// An `rd_kafka_t` (producer or consumer) with its configuration.
///
/// `@unchecked Sendable`: librdkafka's handles are thread-safe; a consumer is still used by one
/// thread at a time (the one that owns its cursor or loop), which is what its polling assumes.
class RDKafkaClient: @unchecked Sendable {
    let handle: OpaquePointer
    let callbacks: RDKafkaCallbacks

    init(kind: rd_kafka_type_t, properties: [(String, String)], logger: Logger) throws {
        guard let conf = rd_kafka_conf_new() else { throw LedgerError(.internal, "kafka: cannot allocate a configuration") }
        var errstr = [CChar](repeating: 0, count: 512)
        for (key, value) in properties {
            if rd_kafka_conf_set(conf, key, value, &errstr, errstr.count) != RD_KAFKA_CONF_OK {
                rd_kafka_conf_destroy(conf)
                throw LedgerError(.usage, "kafka property \(key)=\(value): \(text(errstr))")
            }
        }
        let callbacks = RDKafkaCallbacks(logger: logger)
        rd_kafka_conf_set_opaque(conf, Unmanaged.passUnretained(callbacks).toOpaque())
        rd_kafka_conf_set_log_cb(conf, logCallback)
        rd_kafka_conf_set_error_cb(conf, errorCallback)
        if kind == RD_KAFKA_PRODUCER { rd_kafka_conf_set_dr_msg_cb(conf, deliveryCallback) }
        guard let handle = rd_kafka_new(kind, conf, &errstr, errstr.count) else {
            rd_kafka_conf_destroy(conf)
            throw LedgerError(.usage, "kafka: \(text(errstr))")
        }
        self.handle = handle
        self.callbacks = callbacks
    }

    deinit { rd_kafka_destroy(handle) }

    /// (low, high) watermarks of a partition, from the broker.
    func watermarks(topic: String, partition: Int32 = 0, timeoutMs: Int32 = 10_000) throws -> (Int64, Int64) {
        var low: Int64 = 0
        var high: Int64 = 0
        try RDKafkaFailure.check(rd_kafka_query_watermark_offsets(handle, topic, partition, &low, &high, timeoutMs), "watermarks of \(topic)")
        return (low, high)
    }

    /// The number of partitions of `topic`, or nil if the cluster does not know it.
    func partitionCount(topic: String, timeoutMs: Int32 = 10_000) throws -> Int? {
        guard let rkt = rd_kafka_topic_new(handle, topic, nil) else { return nil }
        defer { rd_kafka_topic_destroy(rkt) }
        var metadata: UnsafePointer<rd_kafka_metadata>?
        try RDKafkaFailure.check(rd_kafka_metadata(handle, 0, rkt, &metadata, timeoutMs), "metadata of \(topic)")
        defer { rd_kafka_metadata_destroy(metadata) }
        guard let m = metadata?.pointee, m.topic_cnt > 0 else { return nil }
        let t = m.topics[0]
        if t.err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART { return nil }
        try RDKafkaFailure.check(t.err, "metadata of \(topic)")
        return Int(t.partition_cnt)
    }
}

extension RDKafkaClient {
    /// Creates a topic through the Admin API; an existing topic is not an error.
    @available(*, noasync, message: "waits for the controller")
    func createTopic(_ topic: String, partitions: Int, replicationFactor: Int, timeoutMs: Int32 = 30_000) throws {
        var errstr = [CChar](repeating: 0, count: 512)
        guard let newTopic = rd_kafka_NewTopic_new(topic, Int32(partitions), Int32(replicationFactor), &errstr, errstr.count) else {
            throw LedgerError(.usage, "kafka: topic \(topic): \(text(errstr))")
        }
        defer { rd_kafka_NewTopic_destroy(newTopic) }
        guard let queue = rd_kafka_queue_new(handle) else { throw LedgerError(.internal, "kafka: cannot allocate a queue") }
        defer { rd_kafka_queue_destroy(queue) }
        var topics: [OpaquePointer?] = [newTopic]
        rd_kafka_CreateTopics(handle, &topics, 1, nil, queue)
        guard let event = rd_kafka_queue_poll(queue, timeoutMs) else {
            throw LedgerError(.io, "kafka: creating topic \(topic) timed out")
        }
        defer { rd_kafka_event_destroy(event) }
        try RDKafkaFailure.check(rd_kafka_event_error(event), "create topic \(topic)")
        guard let result = rd_kafka_event_CreateTopics_result(event) else { return }
        var count = 0
        guard let results = rd_kafka_CreateTopics_result_topics(result, &count), count > 0, let first = results[0] else { return }
        let err = rd_kafka_topic_result_error(first)
        if err == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS { return }
        try RDKafkaFailure.check(err, "create topic \(topic)")
    }
}

/// Message headers as names and values laid out in one reusable buffer: no allocation per header.
final class RDKafkaHeaderBuffer {
    private(set) var names: [StaticString] = []
    private(set) var ends: [Int] = []
    let values = ByteWriter(capacity: 2048)

    func reset() {
        names.removeAll(keepingCapacity: true)
        ends.removeAll(keepingCapacity: true)
        values.reset()
    }

    /// Adds a header whose value `write` appends to ``values``.
    @inline(__always) func add(_ name: StaticString, _ write: (ByteWriter) -> Void) {
        names.append(name)
        write(values)
        ends.append(values.count)
    }

    @inline(__always) func add(_ name: StaticString, _ value: UnsafeRawBufferPointer) {
        add(name) { $0.append(value) }
    }

    /// A new `rd_kafka_headers_t` holding copies of these headers.
    func make() -> OpaquePointer? {
        guard let headers = rd_kafka_headers_new(names.count) else { return nil }
        var start = 0
        let base = UnsafeRawPointer(values.base)
        for i in names.indices {
            let name = names[i]
            _ = rd_kafka_header_add(
                headers, UnsafeRawPointer(name.utf8Start).assumingMemoryBound(to: CChar.self), name.utf8CodeUnitCount, base + start, ends[i] - start)
            start = ends[i]
        }
        return headers
    }
}

/// One message to produce.
struct RDKafkaRecord {
    var key: UnsafeRawBufferPointer
    var value: UnsafeRawBufferPointer
    var timestampMs: Int64
    var headers: [(String, [UInt8])]
    /// Where this message's delivery report goes (see ``RDKafkaProducer/expectDeliveries(_:)``).
    var index = -1
}

/// A transactional, idempotent producer.
final class RDKafkaProducer: RDKafkaClient, @unchecked Sendable {
    init(properties: [(String, String)], logger: Logger) throws {
        try super.init(kind: RD_KAFKA_PRODUCER, properties: properties, logger: logger)
    }

    @available(*, noasync, message: "blocks until the coordinator answers")
    func initTransactions(timeoutMs: Int32) throws {
        if let e = rd_kafka_init_transactions(handle, timeoutMs) { throw RDKafkaFailure(taking: e) }
    }

    func beginTransaction() throws {
        if let e = rd_kafka_begin_transaction(handle) { throw RDKafkaFailure(taking: e) }
    }

    @available(*, noasync, message: "blocks until every message is acknowledged and the transaction ends")
    func commitTransaction(timeoutMs: Int32) throws {
        if let e = rd_kafka_commit_transaction(handle, timeoutMs) { throw RDKafkaFailure(taking: e) }
    }

    @available(*, noasync, message: "blocks until the transaction is aborted")
    func abortTransaction(timeoutMs: Int32) throws {
        if let e = rd_kafka_abort_transaction(handle, timeoutMs) { throw RDKafkaFailure(taking: e) }
    }

    /// Queues one message (copied) to partition `partition` of `topic` through
    /// `rd_kafka_produceva`; polls while the local queue is full.
    @available(*, noasync, message: "polls while librdkafka's queue is full")
    func produce(topic: String, partition: Int32, _ record: RDKafkaRecord) throws {
        try topic.withCString { topicName in
            while true {
                guard let headers = rd_kafka_headers_new(record.headers.count) else { throw LedgerError(.internal, "kafka: cannot allocate headers") }
                for (name, value) in record.headers {
                    value.withUnsafeBytes { v in _ = rd_kafka_header_add(headers, name, -1, v.baseAddress, v.count) }
                }
                var vus = [rd_kafka_vu_t](repeating: rd_kafka_vu_t(), count: 8)
                vus[0].vtype = RD_KAFKA_VTYPE_TOPIC
                vus[0].u.cstr = topicName
                vus[1].vtype = RD_KAFKA_VTYPE_PARTITION
                vus[1].u.i32 = partition
                vus[2].vtype = RD_KAFKA_VTYPE_KEY
                vus[2].u.mem.ptr = UnsafeMutableRawPointer(mutating: record.key.baseAddress)
                vus[2].u.mem.size = record.key.count
                vus[3].vtype = RD_KAFKA_VTYPE_VALUE
                vus[3].u.mem.ptr = UnsafeMutableRawPointer(mutating: record.value.baseAddress)
                vus[3].u.mem.size = record.value.count
                vus[4].vtype = RD_KAFKA_VTYPE_MSGFLAGS
                vus[4].u.i = RD_KAFKA_MSG_F_COPY
                vus[5].vtype = RD_KAFKA_VTYPE_TIMESTAMP
                vus[5].u.i64 = record.timestampMs
                vus[6].vtype = RD_KAFKA_VTYPE_HEADERS
                vus[6].u.headers = headers
                vus[7].vtype = RD_KAFKA_VTYPE_OPAQUE
                vus[7].u.ptr = UnsafeMutableRawPointer(bitPattern: record.index)
                guard let error = rd_kafka_produceva(handle, vus, vus.count) else { return }
                let failure = RDKafkaFailure(taking: error)
                rd_kafka_headers_destroy(headers)
                if failure.code == RD_KAFKA_RESP_ERR__QUEUE_FULL {
                    rd_kafka_poll(handle, 10)
                    continue
                }
                throw RDKafkaFailure(code: failure.code, message: "produce to \(topic): \(failure.message)")
            }
        }
    }

    /// Starts collecting the delivery reports of the next `count` messages (indexes 0..<count).
    func expectDeliveries(_ count: Int) {
        callbacks.deliveries.withLock { $0 = [Int64](repeating: -1, count: count) }
    }

    /// The Kafka offsets the expected messages landed at (−1 where none was reported).
    var deliveredOffsets: [Int64] { callbacks.deliveries.withLock { $0 } }

    /// Queues one message (copied) with the headers of `headers`, through `rd_kafka_produceva`
    /// without allocating per message (beyond what librdkafka copies).
    @available(*, noasync, message: "polls while librdkafka's queue is full")
    func produce(
        topic: String, partition: Int32, key: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer, timestampMs: Int64, index: Int,
        headers buffer: RDKafkaHeaderBuffer
    ) throws {
        try topic.withCString { topicName in
            try withUnsafeTemporaryAllocation(of: rd_kafka_vu_t.self, capacity: 8) { vus in
                while true {
                    guard let headers = buffer.make() else { throw LedgerError(.internal, "kafka: cannot allocate headers") }
                    for i in 0..<8 { vus[i] = rd_kafka_vu_t() }
                    vus[0].vtype = RD_KAFKA_VTYPE_TOPIC
                    vus[0].u.cstr = topicName
                    vus[1].vtype = RD_KAFKA_VTYPE_PARTITION
                    vus[1].u.i32 = partition
                    vus[2].vtype = RD_KAFKA_VTYPE_KEY
                    vus[2].u.mem.ptr = UnsafeMutableRawPointer(mutating: key.baseAddress)
                    vus[2].u.mem.size = key.count
                    vus[3].vtype = RD_KAFKA_VTYPE_VALUE
                    vus[3].u.mem.ptr = UnsafeMutableRawPointer(mutating: value.baseAddress)
                    vus[3].u.mem.size = value.count
                    vus[4].vtype = RD_KAFKA_VTYPE_MSGFLAGS
                    vus[4].u.i = RD_KAFKA_MSG_F_COPY
                    vus[5].vtype = RD_KAFKA_VTYPE_TIMESTAMP
                    vus[5].u.i64 = timestampMs
                    vus[6].vtype = RD_KAFKA_VTYPE_HEADERS
                    vus[6].u.headers = headers
                    vus[7].vtype = RD_KAFKA_VTYPE_OPAQUE
                    vus[7].u.ptr = UnsafeMutableRawPointer(bitPattern: index)
                    guard let error = rd_kafka_produceva(handle, vus.baseAddress, 8) else { return }
                    let failure = RDKafkaFailure(taking: error)
                    rd_kafka_headers_destroy(headers)
                    if failure.code == RD_KAFKA_RESP_ERR__QUEUE_FULL {
                        rd_kafka_poll(handle, 10)
                        continue
                    }
                    throw RDKafkaFailure(code: failure.code, message: "produce to \(topic): \(failure.message)")
                }
            }
        }
    }

    /// Waits until every queued message is delivered (or the timeout passes).
    @available(*, noasync, message: "waits for the brokers")
    func flush(timeoutMs: Int32 = 10_000) { rd_kafka_flush(handle, timeoutMs) }

    /// The producer's fatal error, if it has one (fenced, for one).
    var fatalError: RDKafkaFailure? {
        var errstr = [CChar](repeating: 0, count: 512)
        let err = rd_kafka_fatal_error(handle, &errstr, errstr.count)
        guard err != RD_KAFKA_RESP_ERR_NO_ERROR else { return nil }
        return RDKafkaFailure(code: err, message: text(errstr))
    }
}

/// A message polled from a consumer; valid until destroyed (by the next poll of its owner).
struct RDKafkaMessage {
    let pointer: UnsafeMutablePointer<rd_kafka_message_t>

    var error: rd_kafka_resp_err_t { pointer.pointee.err }
    var isPartitionEnd: Bool { error == RD_KAFKA_RESP_ERR__PARTITION_EOF }
    var partition: Int32 { pointer.pointee.partition }
    var offset: Int64 { pointer.pointee.offset }
    var errorText: String {
        if let p = pointer.pointee.payload, pointer.pointee.len > 0 {
            return String(decoding: UnsafeRawBufferPointer(start: p, count: pointer.pointee.len), as: UTF8.self)
        }
        return String(cString: rd_kafka_err2str(error))
    }
    var key: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: pointer.pointee.key, count: pointer.pointee.key_len) }
    var value: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: pointer.pointee.payload, count: pointer.pointee.len) }

    /// The last header of this name.
    func header(_ name: String) -> UnsafeRawBufferPointer? {
        var headers: OpaquePointer?
        guard rd_kafka_message_headers(pointer, &headers) == RD_KAFKA_RESP_ERR_NO_ERROR, let headers else { return nil }
        var value: UnsafeRawPointer?
        var size = 0
        guard rd_kafka_header_get_last(headers, name, &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR else { return nil }
        return UnsafeRawBufferPointer(start: value, count: size)
    }

    func destroy() { rd_kafka_message_destroy(pointer) }
}

/// A consumer reading partitions it assigns itself (no group rebalancing), `read_committed`.
final class RDKafkaConsumer: RDKafkaClient, @unchecked Sendable {
    init(properties: [(String, String)], logger: Logger) throws {
        try super.init(kind: RD_KAFKA_CONSUMER, properties: properties, logger: logger)
    }

    deinit { rd_kafka_consumer_close(handle) }

    /// Reads `partition` of `topic` from Kafka offset `offset` (replacing any assignment).
    func assign(topic: String, partition: Int32 = 0, offset: Int64) throws {
        try withPartitionList(topic, partition, offset) { try RDKafkaFailure.check(rd_kafka_assign(handle, $0), "assign \(topic)[\(partition)]") }
    }

    /// The next message or event, or nil when none came within the timeout.
    @available(*, noasync, message: "waits for the broker")
    func poll(timeoutMs: Int32) -> RDKafkaMessage? {
        rd_kafka_consumer_poll(handle, timeoutMs).map(RDKafkaMessage.init)
    }

    /// Commits `offset` (the next to read) of partition 0 for the consumer's group.
    func commit(topic: String, offset: Int64) throws {
        try withPartitionList(topic, 0, offset) { try RDKafkaFailure.check(rd_kafka_commit(handle, $0, 0), "commit offset \(offset) of \(topic)") }
    }
}

/// librdkafka's in-process mock cluster: brokers on localhost ports that speak the real protocol.
final class RDKafkaMockCluster: @unchecked Sendable {
    // @unchecked: librdkafka's mock API is thread-safe; the handles are only freed in deinit.
    private let client: RDKafkaClient
    private let cluster: OpaquePointer
    let brokers: Int

    init(brokers: Int, logger: Logger) throws {
        client = try RDKafkaClient(kind: RD_KAFKA_PRODUCER, properties: [], logger: logger)
        guard let cluster = rd_kafka_mock_cluster_new(client.handle, Int32(brokers)) else {
            throw LedgerError(.internal, "kafka: cannot start a mock cluster")
        }
        self.cluster = cluster
        self.brokers = brokers
    }

    deinit { rd_kafka_mock_cluster_destroy(cluster) }

    var bootstrapServers: String { String(cString: rd_kafka_mock_cluster_bootstraps(cluster)) }

    func createTopic(_ name: String, partitions: Int, replicationFactor: Int) throws {
        try RDKafkaFailure.check(rd_kafka_mock_topic_create(cluster, name, Int32(partitions), Int32(replicationFactor)), "create topic \(name)")
    }

    func setBroker(_ id: Int32, up: Bool) throws {
        try RDKafkaFailure.check(up ? rd_kafka_mock_broker_set_up(cluster, id) : rd_kafka_mock_broker_set_down(cluster, id), "broker \(id)")
    }

    func setLeader(topic: String, partition: Int32, broker: Int32) throws {
        try RDKafkaFailure.check(rd_kafka_mock_partition_set_leader(cluster, topic, partition, broker), "leader of \(topic)[\(partition)]")
    }

    func pushRequestErrors(apiKey: Int16, _ errors: [rd_kafka_resp_err_t]) {
        errors.withUnsafeBufferPointer { rd_kafka_mock_push_request_errors_array(cluster, apiKey, errors.count, $0.baseAddress) }
    }

    func setCoordinator(transactionalID: String, broker: Int32) throws {
        try RDKafkaFailure.check(rd_kafka_mock_coordinator_set(cluster, "transaction", transactionalID, broker), "coordinator of \(transactionalID)")
    }
}

/// The text of a NUL-terminated C buffer.
func text(_ buffer: [CChar]) -> String {
    let end = buffer.firstIndex(of: 0) ?? buffer.count
    return String(decoding: buffer[..<end].map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

extension RDKafkaConsumer {
    /// Joins the consumer group (its `group.id`) for `topic`; the group assigns the partitions.
    func subscribe(topic: String) throws {
        try withPartitionList(topic, RD_KAFKA_PARTITION_UA, nil) { try RDKafkaFailure.check(rd_kafka_subscribe(handle, $0), "subscribe to \(topic)") }
    }

    /// Whether the group has assigned partition `partition` of `topic` to this member.
    func isAssigned(topic: String, partition: Int32 = 0) -> Bool {
        var list: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?
        guard rd_kafka_assignment(handle, &list) == RD_KAFKA_RESP_ERR_NO_ERROR, let list else { return false }
        defer { rd_kafka_topic_partition_list_destroy(list) }
        for i in 0..<Int(list.pointee.cnt) {
            let tp = list.pointee.elems[i]
            if tp.partition == partition, String(cString: tp.topic) == topic { return true }
        }
        return false
    }
}

/// A one-entry `rd_kafka_topic_partition_list_t` for the length of `body`.
private func withPartitionList(_ topic: String, _ partition: Int32, _ offset: Int64?, _ body: (UnsafeMutablePointer<rd_kafka_topic_partition_list_t>) throws -> Void) throws {
    guard let list = rd_kafka_topic_partition_list_new(1) else { throw LedgerError(.internal, "kafka: cannot allocate a partition list") }
    defer { rd_kafka_topic_partition_list_destroy(list) }
    let entry = rd_kafka_topic_partition_list_add(list, topic, partition)
    if let offset { entry?.pointee.offset = offset }
    try body(list)
}
