"""Answering an offset range that could not be scored: one failure record per input record.

Run retries (shipped dagster.yaml) launch a failed range again; when the last attempt fails too, the
`kafka_range_failed` sensor calls this so that success + failure = input still holds. A range whose
outputs were committed (it failed while publishing) gets those outputs republished instead.
"""

from __future__ import annotations

import contextlib
import time

from defi_scoring.core.normalise import wallet_hint
from defi_scoring.core.outcomes import failure
from defi_scoring.score_store import ScoreStore
from defi_scoring.streaming.client import OffsetRange, publish, read_range
from defi_scoring.streaming.settings import KafkaSettings


def answer_failed_range(
    settings: KafkaSettings, offsets: OffsetRange, error: str, store: ScoreStore | None = None
) -> tuple[int, bool]:
    """Publish the range's answers; returns (records published, whether they were the stored outputs)."""
    stored = None
    if store is not None:
        with contextlib.suppress(Exception):  # the store may be what failed
            stored = store.range_outputs(offsets.key)
    if stored is not None:
        publish(settings, stored)
        return len(stored), True
    now = int(time.time())
    outputs = []
    for record in read_range(settings, offsets):
        wallet = wallet_hint(record.value)
        error_text = f"Processing failed: offset {record.offset} of {offsets.key} could not be scored: {error}"
        outputs.append((settings.failure_topic, wallet, failure(wallet, error_text, now).value))
    publish(settings, outputs)
    return len(outputs), False
