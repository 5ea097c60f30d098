"""Recording output messages: every one as a score event, successes also as the wallet's latest score."""

from __future__ import annotations

import time
from functools import cached_property
from typing import Any

import orjson
import sqlalchemy as sa

from defi_scoring.score_store.connection import StoreConnection
from defi_scoring.score_store.tables import score_events, wallet_scores

_LATEST_UPDATED = (
    "zscore",
    "hybrid_score",
    "confidence",
    "risk_level",
    "model_version",
    "run_id",
    "scored_at",
    "message",
)
# A failure's wallet is the input's raw `wallet_address`, any string: kept whole up to this length,
# cut beyond it (it stays whole in the event's error text). PostgreSQL refuses b-tree index entries
# over ~2,700 bytes, and only 42-character addresses are ever looked up.
MAX_EVENT_WALLET_CHARS = 512
_EVENT = sa.insert(score_events)
_EVENT_COLUMNS = (
    "wallet",
    "run_id",
    "source",
    "status",
    "model_version",
    "zscore",
    "hybrid_score",
    "risk_level",
    "error",
    "processing_time_ms",
    "scored_at",
    "recorded_at",
)
_LATEST_COLUMNS = ("wallet", *_LATEST_UPDATED)


def score_rows(
    messages: list[dict[str, Any]], encoded: list[bytes], run_id: str, source: str, now: float
) -> tuple[list[tuple], list[tuple]]:
    """(score_events rows, wallet_scores rows) of output messages, tuples of _EVENT_COLUMNS and
    _LATEST_COLUMNS; a wallet scored twice keeps its last."""
    events, latest = [], {}
    for m, raw in zip(messages, encoded):
        ok = "zscore" in m
        wallet = (m.get("wallet_address") or "").lower()
        zscore = float(m["zscore"]) if ok else None
        events.append(
            (
                wallet if ok else wallet[:MAX_EVENT_WALLET_CHARS],
                run_id,
                source,
                "success" if ok else "failure",
                m.get("model_version"),
                zscore,
                m.get("hybrid_score"),
                m.get("risk_level"),
                None if ok else m.get("error"),
                m.get("processing_time_ms"),
                m.get("timestamp"),
                now,
            )
        )
        if ok:
            latest[wallet] = (
                wallet,
                zscore,
                m.get("hybrid_score"),
                m.get("confidence"),
                m.get("risk_level"),
                m.get("model_version"),
                run_id,
                m.get("timestamp"),
                raw.decode(),
            )
    return events, list(latest.values())


class ScoreWrites(StoreConnection):
    @cached_property
    def _upsert_latest(self):
        """A wallet's latest success replaces the one stored."""
        insert = self._insert(wallet_scores)
        return insert.on_conflict_do_update(
            index_elements=["wallet"], set_={name: insert.excluded[name] for name in _LATEST_UPDATED}
        )

    def record_messages(
        self,
        messages: list[dict[str, Any]],
        run_id: str,
        source: str,
        conn: sa.Connection | None = None,
        encoded: list[bytes] | None = None,
    ) -> None:
        """Store output messages: every one as an event; successes also as the wallet's latest score.
        `encoded`: the messages as already serialised (then `messages` may be their summaries,
        core.success_messages.EncodedMessages, which carry every field read here)."""
        encoded = encoded if encoded is not None else [orjson.dumps(m) for m in messages]
        events, latest = score_rows(messages, encoded, run_id, source, time.time())

        def write(c: sa.Connection) -> None:
            if events:
                self._executemany(c, _EVENT, _EVENT_COLUMNS, events)
            if latest:
                self._executemany(c, self._upsert_latest, _LATEST_COLUMNS, latest)

        self._run(write, conn)
