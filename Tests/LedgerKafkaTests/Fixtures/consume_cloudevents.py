"""Reads a ledger's Kafka topic with confluent-kafka (librdkafka's Python client) and turns every
record into a CloudEvent with the cloudevents SDK's Kafka binding (binary mode).

Usage: consume_cloudevents.py BOOTSTRAP TOPIC EXPECTED_EVENTS
Prints one JSON line per ledger event: {"offset", "id", "type", "subject", "hash", "prevhash",
"value_offset"}; fences (type dev.platform-ledger.fence) are counted, not printed. Exits 1 if a
record is not a CloudEvent, or if fewer than EXPECTED_EVENTS ledger events arrive within 60 s.
"""
import json
import sys
import time

from cloudevents.core.bindings.kafka import KafkaMessage, from_binary_event
from confluent_kafka import Consumer, KafkaError, TopicPartition

bootstrap, topic, expected = sys.argv[1], sys.argv[2], int(sys.argv[3])
consumer = Consumer({
    "bootstrap.servers": bootstrap,
    "group.id": "interop-test",
    "enable.auto.commit": False,
    "isolation.level": "read_committed",
    "enable.partition.eof": True,
})
consumer.assign([TopicPartition(topic, 0, 0)])
events, fences = [], 0
deadline = time.time() + 60
while len(events) < expected and time.time() < deadline:
    msg = consumer.poll(0.5)
    if msg is None:
        continue
    if msg.error():
        if msg.error().code() == KafkaError._PARTITION_EOF:
            continue
        print("kafka error:", msg.error(), file=sys.stderr)
        sys.exit(1)
    headers = {k: v for k, v in (msg.headers() or [])}
    event = from_binary_event(KafkaMessage(headers=headers, key=msg.key(), value=msg.value()))
    if event.get_type() == "dev.platform-ledger.fence":
        fences += 1
        continue
    envelope = json.loads(msg.value())
    events.append({
        "offset": int(event.get_extension("ledgeroffset")),
        "id": event.get_id(),
        "type": event.get_type(),
        "subject": event.get_subject(),
        "hash": event.get_extension("ledgerhash"),
        "prevhash": event.get_extension("ledgerprevhash"),
        "value_offset": envelope["offset"],
        "value_hash": envelope["hash"],
        "value_id": envelope["id"],
    })
consumer.close()
for e in events:
    print(json.dumps(e, sort_keys=True))
print(f"fences: {fences}", file=sys.stderr)
sys.exit(0 if len(events) >= expected else 1)
