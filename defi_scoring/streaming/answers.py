"""Watching the output topics from outside the runs: how many answers so far, and how long each took.

Used where the CLI or a bench waits on the deployed path (the stock daemon launching the runs) and
reports what a user of the topics sees: produce time → output record time, per wallet key.
"""

from __future__ import annotations

from kafka import KafkaConsumer, TopicPartition

from defi_scoring.streaming.settings import KafkaSettings


class AnswerCounter:
    """Counts the records on the output topics by reading them as they come (end offsets of the
    embedded broker lag behind multi-record batches, see streaming/client.py)."""

    def __init__(self, kafka: KafkaSettings, topics: list[str]) -> None:
        self.consumer = KafkaConsumer(**kafka.client_options())
        tps = [TopicPartition(t, p) for t in topics for p in sorted(self.consumer.partitions_for_topic(t) or [])]
        self.consumer.assign(tps)
        self.consumer.seek_to_beginning(*tps)
        self.count = 0

    def __call__(self) -> int:
        for records in self.consumer.poll(timeout_ms=200, max_records=100_000).values():
            self.count += len(records)
        return self.count

    def close(self) -> None:
        self.consumer.close()


def latencies_s(inputs: list, outputs: list) -> list[float]:
    """Seconds from each input record's timestamp to the first output record with the same key."""
    produced: dict[bytes, list[int]] = {}
    for record in inputs:
        produced.setdefault(record.key or b"", []).append(record.timestamp)
    out = []
    for record in sorted(outputs, key=lambda r: r.timestamp):
        times = produced.get(record.key or b"")
        if times:
            out.append((record.timestamp - times.pop(0)) / 1000)
    return out
