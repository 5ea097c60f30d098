"""Reading scores back: previous scores for the score-drop alert, one wallet for the API, totals."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import orjson
import pandas as pd
import sqlalchemy as sa

from defi_scoring.score_store.connection import StoreConnection
from defi_scoring.score_store.tables import score_events

_LATEST_SQL = "SELECT message FROM wallet_scores WHERE wallet = ?"
_HISTORY_FIELDS = ("scored_at", "run_id", "source", "model_version", "zscore", "hybrid_score", "risk_level", "status")
_HISTORY_SQL = f"SELECT {', '.join(_HISTORY_FIELDS)} FROM score_events WHERE wallet = ? ORDER BY id DESC LIMIT ?"


class ScoreReads(StoreConnection):
    def latest_hybrid_scores(self, wallets: Iterable[str], chunk: int = 5_000) -> pd.Series:
        """Each known wallet's last hybrid score (wallets never scored are absent). Plain driver SQL:
        every API call asks this for its few wallets, and building the statement cost more than the lookup."""
        wallets = list(dict.fromkeys(wallets))
        out: dict[str, float] = {}
        with self.engine.connect() as conn:
            for i in range(0, len(wallets), chunk):
                part = wallets[i : i + chunk]
                sql = f"SELECT wallet, hybrid_score FROM wallet_scores WHERE wallet IN ({', '.join('?' * len(part))})"
                out.update({w: s for w, s in conn.exec_driver_sql(self._sql(sql), tuple(part)) if s is not None})
        # (from arrays: pandas' dict constructor costs ~0.1 ms, and every API call asks)
        return pd.Series(np.fromiter(out.values(), float, len(out)), index=pd.Index(list(out), dtype=object))

    def wallet(self, address: str, history_limit: int = 100) -> dict[str, Any] | None:
        """Latest success message of a wallet plus its scoring history (newest first); None if unknown."""
        found = self.wallet_json(address, history_limit)
        return None if found is None else {"latest": orjson.loads(found[0]), "history": orjson.loads(found[1])}

    def wallet_json(self, address: str, history_limit: int = 100) -> tuple[str, bytes] | None:
        """(latest success message as stored JSON, history as JSON) — the API serves these without
        parsing the stored message again. Plain driver SQL: the hot read of the API, where building
        SQLAlchemy statements cost more than the two index lookups themselves."""
        wallet = address.lower()
        with self.engine.connect() as conn:
            row = conn.exec_driver_sql(self._sql(_LATEST_SQL), (wallet,)).first()
            if row is None:
                return None
            history = conn.exec_driver_sql(self._sql(_HISTORY_SQL), (wallet, int(history_limit))).all()
        return row[0], orjson.dumps([dict(zip(_HISTORY_FIELDS, h)) for h in history])

    def stats(self) -> dict[str, Any]:
        """Totals over every score event (GET /api/v1/stats)."""
        e = score_events.c
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(
                    sa.func.count(),
                    sa.func.sum(sa.case((e.status == "success", 1), else_=0)),
                    sa.func.avg(e.processing_time_ms),
                    sa.func.max(e.scored_at),
                    sa.func.max(e.recorded_at),
                )
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
