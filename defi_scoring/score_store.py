"""The score store: latest score per wallet, every scoring event, and the wallet history the streaming
runs need for incremental scoring. SQLAlchemy Core, so one code path serves SQLite (embedded default,
WAL so readers keep working while a run writes) and PostgreSQL (production, by URL).

Tables
- wallet_transactions: normalised DEX transactions, primary key (wallet, document_id) — inserting is
  idempotent, which is what makes re-running an offset range double count nothing.
- wallet_scores: the latest success message per wallet (what GET /api/v1/wallets/{address} returns).
- score_events: one row per output message (success or failure), with run id, source, model version.
- processed_ranges: the outputs of each Kafka offset range, so a re-executed range republishes the
  very same messages instead of scoring twice.
"""

from __future__ import annotations

import time
from typing import Any, Iterable

import orjson
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

TX_COLUMNS = ["wallet", "document_id", "protocol_type", "action", "timestamp", "protocol", "pool_id", "amount_usd",
              "token_a_symbol", "token_a_usd", "token_b_symbol", "token_b_usd"]
_CATEGORICAL = ["wallet", "protocol_type", "action", "protocol", "pool_id", "token_a_symbol", "token_b_symbol"]

metadata = sa.MetaData()
# Values that come from the input (document ids, pools, symbols) are unbounded strings: a VARCHAR(n)
# would make PostgreSQL refuse a whole offset range because of one long id, every time it is retried.
wallet_transactions = sa.Table(
    "wallet_transactions", metadata,
    sa.Column("wallet", sa.String(64), primary_key=True),
    sa.Column("document_id", sa.String(), primary_key=True),
    sa.Column("protocol_type", sa.String()),
    sa.Column("action", sa.String()),
    sa.Column("timestamp", sa.BigInteger, nullable=False),
    sa.Column("protocol", sa.String()),
    sa.Column("pool_id", sa.String()),
    sa.Column("amount_usd", sa.Float),
    sa.Column("token_a_symbol", sa.String()),
    sa.Column("token_a_usd", sa.Float),
    sa.Column("token_b_symbol", sa.String()),
    sa.Column("token_b_usd", sa.Float),
)
wallet_scores = sa.Table(
    "wallet_scores", metadata,
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
    "score_events", metadata,
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
    "processed_ranges", metadata,
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


class ScoreStore:
    def __init__(self, url: str, create: bool = True) -> None:
        self.url = url
        is_sqlite = url.startswith("sqlite")
        # Pre-ping guards against server-side disconnects (PostgreSQL); a SQLite file has none, and the
        # extra round trip would double the cost of every API read.
        self.engine = sa.create_engine(url, pool_pre_ping=not is_sqlite,
                                       **({} if is_sqlite else {"pool_size": 10, "max_overflow": 20}))
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
        return (postgresql.insert(table) if self.dialect == "postgresql" else sqlite.insert(table))

    def ping(self) -> bool:
        with self.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        return True

    # --- wallet history (incremental scoring) -----------------------------------------------------

    def wallet_history(self, wallets: Iterable[str], chunk: int = 5_000) -> pd.DataFrame:
        """Stored transactions of these (lower-cased) wallets, in the normalised column layout."""
        wallets = list(dict.fromkeys(wallets))
        frames = []
        with self.engine.connect() as conn:
            for i in range(0, len(wallets), chunk):
                query = sa.select(wallet_transactions).where(wallet_transactions.c.wallet.in_(wallets[i:i + chunk]))
                frames.append(pd.DataFrame(conn.execute(query).fetchall(), columns=TX_COLUMNS))
        frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=TX_COLUMNS)
        return as_normalised(frame)

    def add_transactions(self, transactions: pd.DataFrame, conn: sa.Connection | None = None) -> None:
        """Insert normalised transactions; (wallet, document_id) already stored are left as they are."""
        if transactions.empty:
            return
        frame = transactions[TX_COLUMNS].astype(object)
        frame = frame.where(frame.notna(), None)
        rows = list(frame.itertuples(index=False, name=None))
        # Driver-level executemany with plain tuples: ~5× faster than ORM-style dict rows for 100k+ rows.
        columns = ", ".join(TX_COLUMNS)
        if self.dialect == "postgresql":
            sql = (f"INSERT INTO wallet_transactions ({columns}) VALUES ({', '.join(['%s'] * len(TX_COLUMNS))}) "
                   "ON CONFLICT (wallet, document_id) DO NOTHING")
        else:
            sql = f"INSERT OR IGNORE INTO wallet_transactions ({columns}) VALUES ({', '.join(['?'] * len(TX_COLUMNS))})"
        self._run(lambda c: c.exec_driver_sql(sql, rows), conn)

    # --- scores ---------------------------------------------------------------------------------

    def latest_hybrid_scores(self, wallets: Iterable[str], chunk: int = 5_000) -> pd.Series:
        wallets = list(dict.fromkeys(wallets))
        out: dict[str, float] = {}
        with self.engine.connect() as conn:
            for i in range(0, len(wallets), chunk):
                query = sa.select(wallet_scores.c.wallet, wallet_scores.c.hybrid_score).where(
                    wallet_scores.c.wallet.in_(wallets[i:i + chunk]))
                out.update({w: s for w, s in conn.execute(query) if s is not None})
        return pd.Series(out, dtype=float)

    def record_messages(self, messages: list[dict[str, Any]], run_id: str, source: str,
                        conn: sa.Connection | None = None) -> None:
        """Store output messages: every one as an event; successes also as the wallet's latest score."""
        now = time.time()
        events, latest = [], {}
        for m in messages:
            ok = "zscore" in m
            wallet = (m.get("wallet_address") or "").lower()
            events.append({
                "wallet": wallet, "run_id": run_id, "source": source, "status": "success" if ok else "failure",
                "model_version": m.get("model_version"), "zscore": float(m["zscore"]) if ok else None,
                "hybrid_score": m.get("hybrid_score"), "risk_level": m.get("risk_level"),
                "error": None if ok else m.get("error"), "processing_time_ms": m.get("processing_time_ms"),
                "scored_at": m.get("timestamp"), "recorded_at": now,
            })
            if ok:
                latest[wallet] = {
                    "wallet": wallet, "zscore": float(m["zscore"]), "hybrid_score": m.get("hybrid_score"),
                    "confidence": m.get("confidence"), "risk_level": m.get("risk_level"),
                    "model_version": m.get("model_version"), "run_id": run_id, "scored_at": m.get("timestamp"),
                    "message": orjson.dumps(m).decode(),
                }

        def write(c: sa.Connection) -> None:
            if events:
                c.execute(score_events.insert(), events)
            if latest:
                statement = self._insert(wallet_scores)
                statement = statement.on_conflict_do_update(
                    index_elements=["wallet"],
                    set_={k: statement.excluded[k] for k in ("zscore", "hybrid_score", "confidence", "risk_level",
                                                             "model_version", "run_id", "scored_at", "message")})
                c.execute(statement, list(latest.values()))

        self._run(write, conn)

    def wallet(self, address: str, history_limit: int = 100) -> dict[str, Any] | None:
        """Latest success message of a wallet plus its scoring history (newest first); None if unknown."""
        found = self.wallet_json(address, history_limit)
        return None if found is None else {"latest": orjson.loads(found[0]), "history": orjson.loads(found[1])}

    def wallet_json(self, address: str, history_limit: int = 100) -> tuple[str, bytes] | None:
        """(latest success message as stored JSON, history as JSON) — the API serves these without
        parsing the stored message again."""
        wallet = address.lower()
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(wallet_scores.c.message).where(wallet_scores.c.wallet == wallet)).first()
            if row is None:
                return None
            history = conn.execute(
                sa.select(score_events.c.scored_at, score_events.c.run_id, score_events.c.source,
                          score_events.c.model_version, score_events.c.zscore, score_events.c.hybrid_score,
                          score_events.c.risk_level, score_events.c.status)
                .where(score_events.c.wallet == wallet)
                .order_by(score_events.c.id.desc()).limit(history_limit)
            ).mappings().all()
        return row[0], orjson.dumps([{str(k): v for k, v in h.items()} for h in history])

    def stats(self) -> dict[str, Any]:
        e = score_events.c
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(
                sa.func.count(),
                sa.func.sum(sa.case((e.status == "success", 1), else_=0)),
                sa.func.avg(e.processing_time_ms),
                sa.func.max(e.scored_at),
                sa.func.max(e.recorded_at),
            )).one()
        total, ok, avg_ms, last_scored, last_recorded = row
        return {"total_processed": int(total or 0), "successful_processed": int(ok or 0),
                "failed_processed": int((total or 0) - (ok or 0)),
                "average_processing_time_ms": float(avg_ms or 0.0),
                "last_processed_timestamp": int(last_recorded) if last_recorded else None,
                "last_scored_as_of": int(last_scored) if last_scored else None}

    # --- Kafka offset ranges ----------------------------------------------------------------------

    def range_outputs(self, range_key: str) -> list[tuple[str, str, bytes]] | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(processed_ranges.c.outputs)
                               .where(processed_ranges.c.range_key == range_key)).first()
        if row is None:
            return None
        return [(t, k, v.encode()) for t, k, v in orjson.loads(row[0])]

    def save_range(self, range_key: str, outputs: list[tuple[str, str, bytes]], conn: sa.Connection) -> None:
        blob = orjson.dumps([(t, k, v.decode()) for t, k, v in outputs])
        statement = self._insert(processed_ranges).on_conflict_do_update(
            index_elements=["range_key"], set_={"outputs": blob, "recorded_at": time.time()})
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


def as_normalised(frame: pd.DataFrame) -> pd.DataFrame:
    """Stored rows → the dtypes of core.normalise (categoricals, int64 timestamps, float amounts)."""
    frame = frame.copy()
    for column in _CATEGORICAL:
        frame[column] = frame[column].astype("category")
    frame["timestamp"] = frame["timestamp"].astype("int64")
    for column in ("amount_usd", "token_a_usd", "token_b_usd"):
        frame[column] = frame[column].astype(float)
    frame["document_id"] = frame["document_id"].astype(object)
    return frame
