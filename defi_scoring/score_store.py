"""The score store: latest score per wallet, every scoring event, and the wallet history the streaming
runs need for incremental scoring. SQLAlchemy Core, so one code path serves SQLite (embedded default,
WAL so readers keep working while a run writes) and PostgreSQL (production, by URL).

Tables
- wallet_histories: each wallet's normalised DEX transactions, one blob per wallet, deduplicated by
  document_id when merged — adding the same transactions again changes nothing, which is what makes
  re-running an offset range double count nothing.
- wallet_scores: the latest success message per wallet (what GET /api/v1/wallets/{address} returns).
- score_events: one row per output message (success or failure), with run id, source, model version.
- processed_ranges: the outputs of each Kafka offset range, so a re-executed range republishes the
  very same messages instead of scoring twice.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import Any

import lz4.frame
import orjson
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from defi_scoring.core.wallet_history import TX_COLUMNS, decode_histories, encode_histories, merge_history

__all__ = ["TX_COLUMNS", "HistoryConflict", "ScoreStore", "shared_store"]


class HistoryConflict(RuntimeError):
    """Another writer changed a wallet's history between our read and our write; score again."""


metadata = sa.MetaData()
# One row per wallet: its whole normalised history as one blob (core.wallet_history says why).
# `transactions` and `writer` let a writer detect that someone else changed the history meanwhile.
wallet_histories = sa.Table(
    "wallet_histories",
    metadata,
    sa.Column("wallet", sa.String(64), primary_key=True),
    sa.Column("transactions", sa.Integer, nullable=False),
    sa.Column("columns", sa.LargeBinary, nullable=False),
    sa.Column("writer", sa.String(64), nullable=False),
    sa.Column("updated_at", sa.Float),
)
wallet_scores = sa.Table(
    "wallet_scores",
    metadata,
    sa.Column("wallet", sa.String(64), primary_key=True),
    sa.Column("zscore", sa.Float),
    sa.Column("hybrid_score", sa.Float),
    sa.Column("confidence", sa.Float),
    sa.Column("risk_level", sa.String(32)),
    sa.Column("model_version", sa.String(32)),
    sa.Column("run_id", sa.String(128)),
    sa.Column("scored_at", sa.BigInteger),
    sa.Column("message", sa.Text, nullable=False),
)
score_events = sa.Table(
    "score_events",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("wallet", sa.String(64), nullable=False, index=True),
    sa.Column("run_id", sa.String(128)),
    sa.Column("source", sa.String(16)),
    sa.Column("status", sa.String(8), nullable=False),
    sa.Column("model_version", sa.String(32)),
    sa.Column("zscore", sa.Float),
    sa.Column("hybrid_score", sa.Float),
    sa.Column("risk_level", sa.String(32)),
    sa.Column("error", sa.Text),
    sa.Column("processing_time_ms", sa.Integer),
    sa.Column("scored_at", sa.BigInteger, index=True),
    sa.Column("recorded_at", sa.Float),
)
processed_ranges = sa.Table(
    "processed_ranges",
    metadata,
    sa.Column("range_key", sa.String(), primary_key=True),
    sa.Column("outputs", sa.LargeBinary, nullable=False),
    sa.Column("recorded_at", sa.Float),
)


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")  # readers do not block on the writer
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


_LATEST_SQL = "SELECT message FROM wallet_scores WHERE wallet = ?"
_HISTORY_FIELDS = ("scored_at", "run_id", "source", "model_version", "zscore", "hybrid_score", "risk_level", "status")
_HISTORY_SQL = f"SELECT {', '.join(_HISTORY_FIELDS)} FROM score_events WHERE wallet = ? ORDER BY id DESC LIMIT ?"


class ScoreStore:
    def __init__(self, url: str, create: bool = True) -> None:
        self.url = url
        is_sqlite = url.startswith("sqlite")
        database = sa.engine.make_url(url).database if is_sqlite else None
        if database and database != ":memory:":  # a fresh data home: SQLite creates the file, not its folder
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        # Pre-ping guards against server-side disconnects (PostgreSQL); a SQLite file has none, and the
        # extra round trip would double the cost of every API read.
        self.engine = sa.create_engine(
            url, pool_pre_ping=not is_sqlite, **({} if is_sqlite else {"pool_size": 10, "max_overflow": 20})
        )
        if self.engine.dialect.name == "sqlite":
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)
        if create:
            self._create_tables()

    def _create_tables(self, attempts: int = 3) -> None:
        """create_all checks then creates; two processes starting on a fresh database can both see no
        table and one fails with "already exists". Checking again is then enough."""
        for attempt in range(attempts):
            try:
                metadata.create_all(self.engine)
                return
            except (sa.exc.OperationalError, sa.exc.ProgrammingError, sa.exc.IntegrityError):
                if attempt == attempts - 1:
                    raise
                time.sleep(0.2 * (attempt + 1))

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def _insert(self, table: sa.Table):
        return postgresql.insert(table) if self.dialect == "postgresql" else sqlite.insert(table)

    def ping(self) -> bool:
        with self.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        return True

    # --- wallet history (incremental scoring) -----------------------------------------------------

    def wallet_history(
        self, wallets: Iterable[str], conn: sa.Connection | None = None, chunk: int = 5_000
    ) -> pd.DataFrame:
        """Stored transactions of these (lower-cased) wallets, in the normalised column layout."""
        wallets = list(dict.fromkeys(wallets))
        found_wallets, blobs = [], []
        with self.engine.connect() if conn is None else _borrowed(conn) as c:
            for i in range(0, len(wallets), chunk):
                query = sa.select(wallet_histories.c.wallet, wallet_histories.c.columns).where(
                    wallet_histories.c.wallet.in_(wallets[i : i + chunk])
                )
                for wallet, blob in c.execute(query):
                    found_wallets.append(wallet)
                    blobs.append(blob)
        return decode_histories(found_wallets, blobs)

    def add_transactions(self, transactions: pd.DataFrame, conn: sa.Connection | None = None) -> None:
        """Merge normalised transactions into the stored histories; (wallet, document_id) already
        stored are left as they are, so adding the same transactions twice changes nothing."""
        if transactions.empty:
            return

        def work(c: sa.Connection) -> None:
            history = self.wallet_history(transactions["wallet"].astype(object).unique().tolist(), c)
            self.save_histories(merge_history(history, transactions), history_counts(history), c)

        self._run(work, conn)

    def save_histories(self, merged: pd.DataFrame, base_counts: dict[str, int], conn: sa.Connection) -> int:
        """Write the histories of wallets that gained transactions since they were read with
        `base_counts` transactions. Raises HistoryConflict if another writer got there first (the
        caller's transaction then rolls back and it scores again). Returns the wallets written."""
        counts = history_counts(merged)
        changed = [w for w, n in counts.items() if n != base_counts.get(w, 0)]
        if not changed:
            return 0
        subset = merged[merged["wallet"].astype(object).isin(changed)]
        encoded = encode_histories(subset)
        token, now = uuid.uuid4().hex, time.time()
        updates = [(blob, n, token, now, w, base_counts[w]) for w, (n, blob) in encoded.items() if base_counts.get(w)]
        inserts = [(w, n, blob, token, now) for w, (n, blob) in encoded.items() if not base_counts.get(w)]
        if updates:
            self._executemany(
                conn,
                "UPDATE wallet_histories SET columns = ?, transactions = ?, writer = ?, "
                "updated_at = ? WHERE wallet = ? AND transactions = ?",
                updates,
            )
        if inserts:
            self._executemany(
                conn,
                "INSERT INTO wallet_histories (wallet, transactions, columns, writer, updated_at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (wallet) DO NOTHING",
                inserts,
            )
        lost = []
        for i in range(0, len(changed), 5_000):
            lost += (
                conn.execute(
                    sa.select(wallet_histories.c.wallet).where(
                        wallet_histories.c.wallet.in_(changed[i : i + 5_000]), wallet_histories.c.writer != token
                    )
                )
                .scalars()
                .all()
            )
        if lost:
            raise HistoryConflict(
                f"{len(lost)} wallet histories changed while this run scored them "
                f"(e.g. {lost[0]}); the range is scored again"
            )
        return len(changed)

    def _executemany(self, conn: sa.Connection, sql: str, rows: list[tuple]) -> None:
        """Driver-level executemany with plain tuples (~5× faster than SQLAlchemy dict rows);
        `?` placeholders, rewritten for PostgreSQL drivers."""
        conn.exec_driver_sql(self._sql(sql), rows)

    # --- scores ---------------------------------------------------------------------------------

    def latest_hybrid_scores(self, wallets: Iterable[str], chunk: int = 5_000) -> pd.Series:
        wallets = list(dict.fromkeys(wallets))
        out: dict[str, float] = {}
        with self.engine.connect() as conn:
            for i in range(0, len(wallets), chunk):
                query = sa.select(wallet_scores.c.wallet, wallet_scores.c.hybrid_score).where(
                    wallet_scores.c.wallet.in_(wallets[i : i + chunk])
                )
                out.update({w: s for w, s in conn.execute(query) if s is not None})
        return pd.Series(out, dtype=float)

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
        now = time.time()
        encoded = encoded if encoded is not None else [orjson.dumps(m) for m in messages]
        events, latest = [], {}
        for m, raw in zip(messages, encoded):
            ok = "zscore" in m
            wallet = (m.get("wallet_address") or "").lower()
            zscore = float(m["zscore"]) if ok else None
            events.append(
                (
                    wallet,
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

        def write(c: sa.Connection) -> None:
            if events:
                self._executemany(
                    c,
                    "INSERT INTO score_events (wallet, run_id, source, status, model_version, zscore, "
                    "hybrid_score, risk_level, error, processing_time_ms, scored_at, recorded_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    events,
                )
            if latest:
                updated = (
                    "zscore",
                    "hybrid_score",
                    "confidence",
                    "risk_level",
                    "model_version",
                    "run_id",
                    "scored_at",
                    "message",
                )
                self._executemany(
                    c,
                    "INSERT INTO wallet_scores (wallet, zscore, hybrid_score, confidence, risk_level, "
                    "model_version, run_id, scored_at, message) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (wallet) DO UPDATE SET " + ", ".join(f"{k} = excluded.{k}" for k in updated),
                    list(latest.values()),
                )

        self._run(write, conn)

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

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s") if self.dialect == "postgresql" else sql

    def stats(self) -> dict[str, Any]:
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

    # --- Kafka offset ranges ----------------------------------------------------------------------

    def range_outputs(self, range_key: str) -> list[tuple[str, str, bytes]] | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(processed_ranges.c.outputs).where(processed_ranges.c.range_key == range_key)
            ).first()
        return None if row is None else _unpack_outputs(row[0])

    def save_range(self, range_key: str, outputs: list[tuple[str, str, bytes]], conn: sa.Connection) -> None:
        blob = _pack_outputs(outputs)
        statement = self._insert(processed_ranges).on_conflict_do_update(
            index_elements=["range_key"], set_={"outputs": blob, "recorded_at": time.time()}
        )
        conn.execute(statement, {"range_key": range_key, "outputs": blob, "recorded_at": time.time()})

    def transaction(self):
        """One atomic unit: `with store.transaction() as conn: ...` — all or nothing."""
        return self.engine.begin()

    def _run(self, work, conn: sa.Connection | None) -> None:
        if conn is not None:
            work(conn)
            return
        with self.engine.begin() as own:
            work(own)


def history_counts(history: pd.DataFrame) -> dict[str, int]:
    """{wallet: transactions} of a normalised transactions frame."""
    if history.empty:
        return {}
    counts = history["wallet"].astype(object).value_counts()
    return dict(zip(counts.index.tolist(), counts.tolist()))


def _pack_outputs(outputs: list[tuple[str, str, bytes]]) -> bytes:
    """(topic, key, value) records → one lz4 frame: a JSON header of topics/keys/lengths, then the
    values back to back (nesting JSON in JSON would escape every quote and double the size)."""
    header = orjson.dumps([[t for t, _, _ in outputs], [k for _, k, _ in outputs], [len(v) for _, _, v in outputs]])
    return lz4.frame.compress(header + b"\n" + b"".join(v for _, _, v in outputs))


def _unpack_outputs(blob: bytes) -> list[tuple[str, str, bytes]]:
    raw = lz4.frame.decompress(blob)
    newline = raw.index(b"\n")
    topics, keys, lengths = orjson.loads(raw[:newline])
    out, position = [], newline + 1
    for topic, key, length in zip(topics, keys, lengths):
        out.append((topic, key, raw[position : position + length]))
        position += length
    return out


class _borrowed:
    """A caller's connection used as a context manager without closing it."""

    def __init__(self, conn: sa.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> sa.Connection:
        return self.conn

    def __exit__(self, *exc) -> None:
        return None


@lru_cache(maxsize=8)
def shared_store(url: str) -> ScoreStore:
    """One ScoreStore (engine and connection pool) per URL and process."""
    return ScoreStore(url)
