"""kafka-python helpers: plan offset ranges, read exactly one range, publish, create topics.

The sensor owns the offsets (DESIGN.md "Kafka"): no consumer group, `assign()` + `seek()`, so a range
can be re-read at any time and nothing is committed before a run exists for it.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import threading
import time
from dataclasses import dataclass

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError
from kafka.structs import OffsetAndMetadata

from defi_scoring.streaming.publisher import Publisher
from defi_scoring.streaming.settings import KafkaSettings

Cursor = dict[str, dict]  # {topic: {partition: next offset to read}}, plus EPOCHS_KEY


@dataclass(frozen=True)
class OffsetRange:
    topic: str
    partition: int
    start: int
    end: int  # inclusive
    epoch: int = 0  # how many times the partition's offsets went backwards (CursorReset) before this range

    @property
    def key(self) -> str:
        """Dynamic partition key and run key: `{topic}.{partition}.{start}-{end}` (no commas), with
        `~{epoch}` appended after a reset so that new offsets never reuse an old range's key."""
        span = f"{self.start}-{self.end}" + (f"~{self.epoch}" if self.epoch else "")
        return f"{self.topic}.{self.partition}.{span}"

    @classmethod
    def parse(cls, key: str) -> OffsetRange:
        try:
            topic, partition, span = key.rsplit(".", 2)  # topics may contain dots; the tail never does
            span, _, epoch = span.partition("~")
            start, end = span.split("-")
            return cls(topic, int(partition), int(start), int(end), int(epoch or 0))
        except ValueError:
            raise ValueError(f"not an offset-range key: {key!r} (expected topic.partition.start-end[~epoch])") from None

    @property
    def size(self) -> int:
        return self.end - self.start + 1


def _consumer(settings: KafkaSettings, **overrides) -> KafkaConsumer:
    options = {
        "enable_auto_commit": False,
        "group_id": None,
        "consumer_timeout_ms": 1000,
        "max_partition_fetch_bytes": settings.max_message_bytes * 2,
        "fetch_max_bytes": settings.max_message_bytes * 4,
        "request_timeout_ms": 15_000,
        **settings.client_options(),
        **overrides,
    }
    return KafkaConsumer(**options)


EPOCHS_KEY = "~epochs"  # cursor entry {topic: {partition: resets so far}}; topics cannot contain "~"


@dataclass(frozen=True)
class CursorReset:
    """A partition whose end offset fell below the cursor: the topic was recreated or truncated (an
    in-memory broker restarted empty, a topic deleted and made again). Planning restarts at its
    beginning instead of waiting for offsets that will never come."""

    topic: str
    partition: int
    cursor: int
    end: int

    def describe(self) -> str:
        return (
            f"{self.topic}[{self.partition}]: end offset {self.end} is below the cursor {self.cursor} "
            "(topic recreated or broker restarted empty?); reading it again from its beginning"
        )


def plan_ranges(settings: KafkaSettings, cursor: Cursor) -> tuple[list[OffsetRange], Cursor, list[CursorReset]]:
    """New offset ranges of the input topic since the cursor, bounded by max_range_messages each and
    max_ranges_per_tick in all; the cursor moved past exactly those ranges; and the partitions whose
    offsets went backwards (see CursorReset)."""
    topic = settings.input_topic
    consumer = _consumer(settings)
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        if not tps:
            return [], cursor, []
        beginning = consumer.beginning_offsets(tps)
        end = _visible_end(consumer, tps, consumer.end_offsets(tps))
    finally:
        consumer.close()
    new_cursor = {t: dict(p) for t, p in cursor.items()}
    positions = new_cursor.setdefault(topic, {})
    ranges: list[OffsetRange] = []
    resets: list[CursorReset] = []
    for tp in tps:
        start = max(int(positions.get(str(tp.partition), beginning[tp])), beginning[tp])
        epoch = int(new_cursor.get(EPOCHS_KEY, {}).get(topic, {}).get(str(tp.partition), 0))
        if start > end[tp]:
            resets.append(CursorReset(topic, tp.partition, start, end[tp]))
            start, epoch = beginning[tp], epoch + 1
            new_cursor.setdefault(EPOCHS_KEY, {}).setdefault(topic, {})[str(tp.partition)] = epoch
        while start < end[tp] and len(ranges) < settings.max_ranges_per_tick:
            stop = min(end[tp], start + settings.max_range_messages)
            ranges.append(OffsetRange(topic, tp.partition, start, stop - 1, epoch))
            start = stop
        positions[str(tp.partition)] = start
    return ranges, new_cursor, resets


def _visible_end(consumer: KafkaConsumer, tps: list[TopicPartition], end: dict, probe_s: float = 0.2) -> dict:
    """End offsets, corrected by a short fetch past them.

    The embedded Tansu broker reports the end of a multi-record batch as its base offset + 1, which
    would leave the batch's tail unseen until more data arrives. Fetching from the reported end shows
    what is really there; on a real Kafka cluster this finds nothing and costs one short poll.
    """
    end = dict(end)
    consumer.assign(tps)
    for tp in tps:
        consumer.seek(tp, end[tp])
    deadline = time.monotonic() + probe_s
    while time.monotonic() < deadline:
        for tp, records in consumer.poll(timeout_ms=50).items():
            if records:
                end[tp] = max(end[tp], records[-1].offset + 1)
    return end


class _KeptClient:
    """One Kafka client kept for the life of the process: connecting and fetching metadata again for
    every range costs ~0.1–0.3 s, a tenth of a small run. Only the latest settings' client is kept
    (tests start many brokers); a client that failed is closed and made again on next use. Hold
    `lock` while using a client that is not thread-safe (KafkaConsumer; the Publisher is thread-safe)."""

    def __init__(self, make) -> None:
        self.make = make
        self.lock = threading.RLock()
        self.key: str | None = None
        self.client = None

    def get(self, settings: KafkaSettings):
        with self.lock:
            if self.key != repr(settings):
                self.close()
                self.client, self.key = self.make(settings), repr(settings)
            return self.client

    def close(self) -> None:
        with self.lock:
            if self.client is not None:
                self.client.close()
            self.client, self.key = None, None


def read_range(settings: KafkaSettings, offsets: OffsetRange, timeout_s: float = 30.0) -> list:
    """The records of exactly this range (records past its end are ignored), in offset order."""
    tp = TopicPartition(offsets.topic, offsets.partition)
    records = []
    with _range_consumer.lock:
        consumer = _range_consumer.get(settings)
        try:
            consumer.assign([tp])
            consumer.seek(tp, offsets.start)
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline:
                batch = consumer.poll(timeout_ms=500, max_records=settings.max_range_messages)
                records += [r for r in batch.get(tp, []) if offsets.start <= r.offset <= offsets.end]
                if consumer.position(tp) > offsets.end:
                    return records
        except BaseException:
            _range_consumer.close()
            raise
    raise TimeoutError(
        f"read {len(records)} of {offsets.size} records of {offsets.key} in {timeout_s:.0f}s; "
        f"is the broker at {settings.bootstrap_servers} up and the range still retained?"
    )


def producer(settings: KafkaSettings, **overrides) -> KafkaProducer:
    options = {
        "linger_ms": 5,
        "acks": "all",
        "max_request_size": settings.max_message_bytes * 2,
        "batch_size": 512 * 1024,
        **settings.client_options(),
        **overrides,
    }
    return KafkaProducer(**options)


_range_consumer = _KeptClient(_consumer)
_committer = _KeptClient(lambda settings: _consumer(settings, group_id=settings.consumer_group))
_publisher = _KeptClient(Publisher)


@atexit.register
def _close_publisher() -> None:
    # librdkafka's reconnect attempts while it shuts down (the broker may be gone) are not news
    logging.getLogger("defi_scoring.kafka").disabled = True
    _publisher.close()


def publish(settings: KafkaSettings, outputs: list[tuple[str, str, bytes]]) -> None:
    """Send (topic, key, value) records and wait until the broker has them all (librdkafka)."""
    if not outputs:
        return
    sender = _publisher.get(settings)  # thread-safe: used without holding the lock
    try:
        sender.publish(outputs)
    except BaseException:
        _publisher.close()
        raise


def ensure_topics(settings: KafkaSettings, topics: list[str], partitions: int = 1) -> None:
    admin = KafkaAdminClient(**settings.client_options())
    try:
        existing = set(admin.list_topics())
        for topic in topics:
            if topic in existing:
                continue
            with contextlib.suppress(TopicAlreadyExistsError):  # created meanwhile by another client
                admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])
    finally:
        admin.close()


def read_topic(settings: KafkaSettings, topic: str, idle_ms: int = 1500) -> list:
    """Every record currently on a topic (all partitions), for demos, benches and tests."""
    consumer = _consumer(settings, consumer_timeout_ms=idle_ms)
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        if not tps:
            return []
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        return list(consumer)
    finally:
        consumer.close()


def commit_range(settings: KafkaSettings, offsets: OffsetRange) -> None:
    """Commit the offset after a scored range to the consumer group `settings.consumer_group`, so that
    the usual lag tools (kafka-consumer-groups --describe, Burrow, exporters) and /health show how far
    scoring is behind. Never moves the group backwards, except into a new epoch (CursorReset)."""
    tp = TopicPartition(offsets.topic, offsets.partition)
    with _committer.lock:
        consumer = _committer.get(settings)
        try:
            committed = consumer.committed(tp)
            if offsets.epoch > 0 or committed is None or offsets.end + 1 > committed:
                consumer.commit({tp: OffsetAndMetadata(offsets.end + 1, offsets.key, -1)})
        except BaseException:
            _committer.close()
            raise


def committed_offsets(settings: KafkaSettings, topic: str) -> dict[int, int | None]:
    """The consumer group's committed offset per partition of `topic` (None: nothing committed yet)."""
    with _committer.lock:
        consumer = _committer.get(settings)
        partitions = sorted(consumer.partitions_for_topic(topic) or [])
        return {p: consumer.committed(TopicPartition(topic, p)) for p in partitions}


def consumer_lag(settings: KafkaSettings) -> dict[int, int]:
    """Per partition of the input topic: messages not yet scored (end offset − the group's committed
    offset; everything when nothing is committed yet)."""
    topic = settings.input_topic
    with _committer.lock:
        consumer = _committer.get(settings)
        try:
            tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
            end = consumer.end_offsets(tps)
            beginning = consumer.beginning_offsets(tps)
            committed = {tp: consumer.committed(tp) for tp in tps}
        except BaseException:
            _committer.close()
            raise
    return {tp.partition: max(0, end[tp] - max(committed[tp] or beginning[tp], beginning[tp])) for tp in tps}
