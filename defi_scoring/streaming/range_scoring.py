"""Score one Kafka offset range incrementally and publish the results — the body of a sensor run.

Steps: read exactly the range → normalise (bad records become failure messages) → merge the touched
wallets' stored history with the new transactions (deduplicated by document_id; identical to a full
recompute over everything those wallets ever sent) → score with the champion → publish success,
persist histories, scores and the range's outputs in one database transaction → publish success,
failure and alert messages keyed by wallet.

Idempotency: a range already processed is not scored again; its stored outputs are republished as
they were (same bytes), so a retry or a re-execution from the UI double counts nothing; a run that
crashed after committing but before publishing is completed by its retry the same way.
A wallet's history is written only if nobody changed it since it was read (HistoryConflict → score
the range again), so two runs touching one wallet never lose each other's transactions. `force=True`
rescores it (the stored transactions are keyed by (wallet, document_id), so still nothing doubles).
`as_of` is the newest record timestamp of the range, so rescoring is deterministic too.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import orjson
import pandas as pd
from kafka.errors import KafkaError

from defi_scoring.core.batch_scoring import ScoredBatch
from defi_scoring.core.normalise import normalise_messages
from defi_scoring.core.scoring_config import ScoringConfig
from defi_scoring.core.wallet_history import merge_history
from defi_scoring.core.wallet_scoring import ModelFn, score_wallet_table
from defi_scoring.score_store import HistoryConflict, ScoreStore, history_counts
from defi_scoring.streaming.client import OffsetRange, commit_range, publish, read_range
from defi_scoring.streaming.settings import KafkaSettings

ALERT_TYPES_PUBLISHED = {"score_drop", "high_risk_pattern"}


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


def _outputs(
    settings: KafkaSettings, messages: list[dict], encoded: list[bytes]
) -> tuple[list[tuple[str, str, bytes]], int]:
    """(topic, key, value) records of a range: each message on the success or failure topic, and an
    alert record for each wallet with a score-drop or high-risk-pattern alert.
    messages: the messages' summaries (EncodedMessages.summaries)."""
    outputs, alerts = [], 0
    for m, raw in zip(messages, encoded):
        key = m.get("wallet_address") or ""
        topic = settings.success_topic if "zscore" in m else settings.failure_topic
        outputs.append((topic, key, raw))
        published = [a for a in m.get("alerts", ()) if a["type"] in ALERT_TYPES_PUBLISHED]
        if published:
            alerts += 1
            outputs.append(
                (
                    settings.alerts_topic,
                    key,
                    orjson.dumps(
                        {
                            "wallet_address": key,
                            "timestamp": m["timestamp"],
                            "hybrid_score": m.get("hybrid_score"),
                            "risk_level": m.get("risk_level"),
                            "model_version": m.get("model_version"),
                            "alerts": published,
                        }
                    ),
                )
            )
    return outputs, alerts


@dataclass
class RangeScores:
    scored: ScoredBatch
    merged: pd.DataFrame  # the touched wallets' whole history, new transactions included
    base_counts: dict[str, int]  # stored transactions per wallet when the history was read


def score_records(
    values: list[bytes | None],
    timestamps_ms: list[int],
    store: ScoreStore,
    config: ScoringConfig | None = None,
    model: ModelFn | None = None,
) -> RangeScores:
    """Normalise and score raw record values with the touched wallets' stored history."""
    started = time.perf_counter()
    as_of = max(timestamps_ms) // 1000 if timestamps_ms else int(time.time())
    batch = normalise_messages([v if v is not None else b"" for v in values])
    touched = batch.transactions["wallet"].astype(object).unique().tolist()
    history = store.wallet_history(touched)
    merged = merge_history(history, batch.transactions)
    previous = store.latest_hybrid_scores(touched)
    wallets = score_wallet_table(merged, as_of, config, model, previous)
    return RangeScores(
        ScoredBatch(batch, wallets, as_of, time.perf_counter() - started), merged, history_counts(history)
    )


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
    for attempt in range(attempts):
        result = score_records([r.value for r in records], [r.timestamp for r in records], store, config, model)
        lap("score")
        encoded = result.scored.encoded()
        messages = encoded.summaries
        outputs, alerts = _outputs(settings, messages, encoded.values)
        lap("build")
        try:
            # State first, then Kafka: once committed, a retry republishes exactly these bytes.
            with store.transaction() as conn:
                store.save_histories(result.merged, result.base_counts, conn)
                store.record_messages(messages, run_id, "stream", conn, encoded=encoded.values)
                store.save_range(offsets.key, outputs, conn)
            lap("persist")
            break
        except HistoryConflict:
            lap("persist")
            if attempt == attempts - 1:
                raise
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
