"""Score one Kafka offset range incrementally and publish the results — the body of a sensor run.

Steps: read exactly the range → normalise (bad records become failure messages) → the scoring
service appends the new transactions to the touched wallets' stored histories and scores them on
their full histories against the stored population, and the range's outputs are saved in the same
database transaction → publish success, failure and alert messages keyed by wallet, one per input
record (a stored wallet whose sybil peers the range moved is scored again and its new score stored).

Idempotency: a range already processed is not scored again; its stored outputs are republished as
they were (same bytes), so a retry or a re-execution from the UI double counts nothing; a run that
crashed after committing but before publishing is completed by its retry the same way.
A wallet's history is written only if nobody changed it since it was read (HistoryConflict → the
service scores the range again), so two runs touching one wallet never lose each other's transactions. `force=True`
rescores it (the stored transactions are keyed by (wallet, document_id), so still nothing doubles).
Each wallet is scored as of its newest stored transaction, so rescoring is deterministic too.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from kafka.errors import KafkaError

from defi_scoring.core.normalise import normalise_messages
from defi_scoring.core.outcomes import Outcome, with_alerts
from defi_scoring.core.scoring_config import ScoringConfig
from defi_scoring.core.wallet_scoring import ModelFn
from defi_scoring.score_store import ScoreStore
from defi_scoring.service.scoring_service import ScoringService, ServiceResult
from defi_scoring.streaming.client import OffsetRange, commit_range, publish, read_range
from defi_scoring.streaming.settings import KafkaSettings


@dataclass
class RangeResult:
    offsets: OffsetRange
    messages: int
    successes: int
    failures: int
    alerts: int
    wallets: int
    replayed: bool
    seconds: float
    model_version: str | None
    stage_seconds: dict[str, float] = field(default_factory=dict)  # read, score, build, persist, publish


def _outputs(settings: KafkaSettings, outcomes: list[Outcome]) -> tuple[list[tuple[str, str, bytes]], int]:
    """(topic, key, value) records of a range: each answer on the success or failure topic, and an
    alert record for each wallet with a score-drop or high-risk-pattern alert (core.outcomes)."""
    topics = {"success": settings.success_topic, "failure": settings.failure_topic, "alert": settings.alerts_topic}
    records, alerts = with_alerts(outcomes)
    return [(topics[o.kind], o.wallet, o.value) for o in records], alerts


def _commit(settings: KafkaSettings, offsets: OffsetRange) -> None:
    """The range is answered; a failed group commit only delays what lag tools show (the next range's
    commit covers it), so it is logged, not raised."""
    try:
        commit_range(settings, offsets)
    except KafkaError as exc:
        logging.getLogger(__name__).warning("consumer group commit of %s failed: %s", offsets.key, exc)


def process_range(
    settings: KafkaSettings,
    offsets: OffsetRange,
    store: ScoreStore,
    run_id: str,
    config: ScoringConfig | None = None,
    model: ModelFn | None = None,
    force: bool = False,
    attempts: int = 3,
) -> RangeResult:
    """Score one offset range, persist, then publish (see module docstring)."""
    started = time.perf_counter()
    if not force:
        stored = store.range_outputs(offsets.key)
        if stored is not None:
            publish(settings, stored)
            _commit(settings, offsets)
            counts = pd.Series([t for t, _, _ in stored]).value_counts()
            return RangeResult(
                offsets,
                int(counts.get(settings.success_topic, 0) + counts.get(settings.failure_topic, 0)),
                int(counts.get(settings.success_topic, 0)),
                int(counts.get(settings.failure_topic, 0)),
                int(counts.get(settings.alerts_topic, 0)),
                0,
                True,
                time.perf_counter() - started,
                None,
            )
    stages: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(stage: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        stages[stage] = round(stages.get(stage, 0.0) + now - clock, 3)
        clock = now

    records = read_range(settings, offsets)
    lap("read")
    built: dict[str, Any] = {}

    def keep_outputs(conn, result: ServiceResult) -> None:
        """State first, then Kafka: once committed, a retry republishes exactly these bytes."""
        lap("score")
        # one output per input record (the neighbours' new scores are in the store, not on the topics)
        built["outputs"], built["alerts"] = _outputs(settings, result.outcomes())
        lap("build")
        store.save_range(offsets.key, built["outputs"], conn)

    batch = normalise_messages([r.value if r.value is not None else b"" for r in records])
    result = ScoringService(store, config, model).score(
        batch,
        source="stream",
        run_id=run_id,
        failed_at=max(r.timestamp for r in records) // 1000 if records else int(time.time()),
        before_commit=keep_outputs,
        attempts=attempts,
    )
    lap("persist")
    outputs, alerts, messages = built["outputs"], built["alerts"], result.messages.summaries
    publish(settings, outputs)
    _commit(settings, offsets)
    lap("publish")
    failures = len(result.scored.batch.rejections)
    return RangeResult(
        offsets,
        len(messages),
        len(messages) - failures,
        failures,
        alerts,
        len(result.scored.wallets.table),
        False,
        time.perf_counter() - started,
        result.scored.wallets.model_version,
        stages,
    )
