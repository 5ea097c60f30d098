"""Reading scores back: previous scores for the score-drop alert, one wallet for the API, totals."""

from __future__ import annotations

from collections.abc import Iterable
from functools import cached_property, lru_cache
from typing import Any

import numpy as np
import orjson
import pandas as pd
import sqlalchemy as sa

from defi_scoring.score_store.connection import StoreConnection
from defi_scoring.score_store.tables import score_events, wallet_scores

# Built once: executing a prebuilt statement reuses its compiled form (SQLAlchemy's statement cache),
# which keeps the API's reads near the cost of the index lookups themselves.
_HISTORY_FIELDS = ("scored_at", "run_id", "source", "model_version", "zscore", "hybrid_score", "risk_level", "status")
_LATEST = sa.select(wallet_scores.c.message).where(wallet_scores.c.wallet == sa.bindparam("wallet"))
_HISTORY = (
    sa.select(*(score_events.c[name] for name in _HISTORY_FIELDS))
    .where(score_events.c.wallet == sa.bindparam("wallet"))
    .order_by(score_events.c.id.desc())
    .limit(sa.bindparam("limit", type_=sa.Integer))
)
_HYBRID_SCORES = sa.select(wallet_scores.c.wallet, wallet_scores.c.hybrid_score).where(
    wallet_scores.c.wallet.in_(sa.bindparam("wallets", expanding=True))
)
_FEW = 64  # up to this many wallets: one statement per count, compiled once and run at driver level


def _hybrid_scores_of(count: int) -> tuple[sa.Select, tuple[str, ...]]:
    names = tuple(f"w{i}" for i in range(count))
    statement = sa.select(wallet_scores.c.wallet, wallet_scores.c.hybrid_score).where(
        wallet_scores.c.wallet.in_([sa.bindparam(name) for name in names])
    )
    return statement, names


class ScoreReads(StoreConnection):
    @cached_property
    def _few_hybrid_scores(self):
        return lru_cache(maxsize=_FEW)(_hybrid_scores_of)

    def latest_hybrid_scores(
        self, wallets: Iterable[str], conn: sa.Connection | None = None, chunk: int = 5_000
    ) -> pd.Series:
        """Each known wallet's last hybrid score (wallets never scored are absent). Every API call asks
        this for its few wallets: a statement per count, compiled once (an expanding IN list cost ~0.1 ms
        a call, more than the lookup); larger sets expand one prebuilt statement."""
        wallets = list(dict.fromkeys(wallets))
        out: dict[str, float] = {}
        with self._connect(conn) as conn:
            for i in range(0, len(wallets), chunk):
                part = wallets[i : i + chunk]
                if len(part) <= _FEW:
                    rows = self._driver_query(conn, *self._few_hybrid_scores(len(part)), tuple(part))
                else:
                    rows = conn.execute(_HYBRID_SCORES, {"wallets": part})
                out.update({w: s for w, s in rows if s is not None})
        # (from arrays: pandas' dict constructor costs ~0.1 ms, and every API call asks)
        return pd.Series(np.fromiter(out.values(), float, len(out)), index=pd.Index(list(out), dtype=object))

    def wallet(self, address: str, history_limit: int = 100) -> dict[str, Any] | None:
        """Latest success message of a wallet plus its scoring history (newest first); None if unknown."""
        found = self.wallet_json(address, history_limit)
        return None if found is None else {"latest": orjson.loads(found[0]), "history": orjson.loads(found[1])}

    def wallet_json(self, address: str, history_limit: int = 100) -> tuple[str, bytes] | None:
        """(latest success message as stored JSON, history as JSON) — the API serves these without
        parsing the stored message again. The hot read of the API: two prebuilt statements."""
        wallet = address.lower()
        with self.engine.connect() as conn:
            row = conn.execute(_LATEST, {"wallet": wallet}).first()
            if row is None:
                return None
            history = conn.execute(_HISTORY, {"wallet": wallet, "limit": int(history_limit)}).all()
        return row[0], orjson.dumps([dict(zip(_HISTORY_FIELDS, h)) for h in history])

    def stats(self) -> dict[str, Any]:
        """Totals over every score event of a processed message (GET /api/v1/stats): the re-scores of
        stored wallets whose population moved (source `population`) answer no message and are left out."""
        e = score_events.c
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(
                    sa.func.count(),
                    sa.func.sum(sa.case((e.status == "success", 1), else_=0)),
                    sa.func.avg(e.processing_time_ms),
                    sa.func.max(e.scored_at),
                    sa.func.max(e.recorded_at),
                ).where(e.source.is_distinct_from("population"))
            ).one()
        total, ok, avg_ms, last_scored, last_recorded = row
        return {
            "total_processed": int(total or 0),
            "successful_processed": int(ok or 0),
            "failed_processed": int((total or 0) - (ok or 0)),
            "average_processing_time_ms": float(avg_ms or 0.0),
            "last_processed_timestamp": int(last_recorded) if last_recorded else None,
            "last_scored_as_of": int(last_scored) if last_scored else None,
        }
