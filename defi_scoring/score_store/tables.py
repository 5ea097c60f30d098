"""The store's tables and how an engine is made for them (SQLite embedded, PostgreSQL by URL).

- wallet_histories: each wallet's normalised transactions, one blob per wallet, deduplicated by
  document_id when merged — adding the same transactions again changes nothing, which is what makes
  re-running an offset range double count nothing. `transactions` and `writer` let a writer detect
  that someone else changed the history meanwhile.
- wallet_scores: the latest success message per wallet (what GET /api/v1/wallets/{address} returns).
- score_events: one row per output message (success or failure), with run id, source, model version.
- processed_ranges: the outputs of each Kafka offset range, so a re-executed range republishes the
  very same messages instead of scoring twice.
- population_*: the population index (`population.py`), each wallet's contribution to the three
  cross-wallet signals, replaced whole when its history grows; scoring reads only the rows it needs.
- known_addresses, counterparty_index: the lists screened against and who dealt with whom
  (`known_addresses.py`, counterparty exposure).

Wallet columns are unbounded Text: a failure message carries the input's raw `wallet_address`, which
may be any string (schema changes go through `migrations/`; `migrate.py` applies them on open).
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

metadata = sa.MetaData()
wallet_histories = sa.Table(
    "wallet_histories",
    metadata,
    sa.Column("wallet", sa.Text, primary_key=True),
    sa.Column("transactions", sa.Integer, nullable=False),
    sa.Column("columns", sa.LargeBinary, nullable=False),
    sa.Column("writer", sa.String(64), nullable=False),
    sa.Column("updated_at", sa.Float),
)
wallet_scores = sa.Table(
    "wallet_scores",
    metadata,
    sa.Column("wallet", sa.Text, primary_key=True),
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
    sa.Column("wallet", sa.Text, nullable=False, index=True),
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

# The population index. Hashes (fingerprint digests, pool ids) are uint64 viewed as signed int64.
population_fingerprints = sa.Table(
    "population_fingerprints",
    metadata,
    sa.Column("wallet", sa.Text, primary_key=True),
    sa.Column("digest", sa.BigInteger, nullable=False),
    sa.Column("length", sa.Integer, nullable=False),
    sa.Column("start", sa.BigInteger, nullable=False),
    sa.Column("peers", sa.Float, nullable=False),  # current peer count (kept by update_population)
    sa.Column("scored_peers", sa.Float, nullable=False),  # the one it was last scored with
    sa.Column("moved", sa.Boolean, nullable=False),  # peers != scored_peers
    sa.Index("ix_population_fingerprints_group", "digest", "length", "start"),
    sa.Index("ix_population_fingerprints_moved", "moved"),
)
population_swaps = sa.Table(
    "population_swaps",
    metadata,
    sa.Column("wallet", sa.Text, primary_key=True),
    sa.Column("ts_min", sa.BigInteger, nullable=False, index=True),
    sa.Column("ts_max", sa.BigInteger, nullable=False, index=True),
)
population_dumps = sa.Table(
    "population_dumps",
    metadata,
    sa.Column("wallet", sa.Text, primary_key=True),
    sa.Column("token", sa.Text, primary_key=True),
    sa.Column("dumps", sa.Integer, nullable=False),
    sa.Index("ix_population_dumps_token", "token", "dumps"),
)
population_windows = sa.Table(
    "population_windows",
    metadata,
    sa.Column("wallet", sa.Text, primary_key=True),
    sa.Column("grid", sa.SmallInteger, primary_key=True, autoincrement=False),
    sa.Column("token", sa.Text, primary_key=True),
    sa.Column("bucket", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Index("ix_population_windows_key", "grid", "token", "bucket"),
)
population_liquidity = sa.Table(
    "population_liquidity",
    metadata,
    sa.Column("wallet", sa.Text, primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),  # row number within the wallet
    sa.Column("pool", sa.BigInteger, nullable=False),
    sa.Column("ts", sa.BigInteger, nullable=False),
    sa.Column("cents", sa.BigInteger, nullable=False),
    sa.Index("ix_population_liquidity_pool", "pool", "ts", "cents"),
)
population_pool_spans = sa.Table(
    "population_pool_spans",
    metadata,
    sa.Column("wallet", sa.Text, primary_key=True),
    sa.Column("pool", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("first_seen", sa.BigInteger, nullable=False),
    sa.Column("last_seen", sa.BigInteger, nullable=False),
    sa.Index("ix_population_pool_spans_pool", "pool", "first_seen", "last_seen"),
)
POPULATION_TABLES = (
    population_fingerprints,
    population_swaps,
    population_dumps,
    population_windows,
    population_liquidity,
    population_pool_spans,
)


# Known addresses (issue 36, `known_addresses.py`): one row per (address, source, category) as imported,
# so an address listed by two sources keeps both; a removal marks the row instead of deleting it.
known_addresses = sa.Table(
    "known_addresses",
    metadata,
    sa.Column("address", sa.Text, primary_key=True),  # lower-cased
    sa.Column("source", sa.Text, primary_key=True),
    sa.Column("category", sa.Text, primary_key=True),
    sa.Column("label", sa.Text),
    sa.Column("listed_at", sa.BigInteger),  # unix s, when the source listed it (if it says)
    sa.Column("removed", sa.Boolean, nullable=False),
    sa.Column("imported_at", sa.Float, nullable=False),
)
# Distinct (wallet, counterparty) pairs of the stored histories, kept on append: which stored wallets
# touched an address (re-screening after a list changes) and the stored neighbours of a wallet
# (indirect exposure) without decoding histories.
counterparty_index = sa.Table(
    "counterparty_index",
    metadata,
    sa.Column("wallet", sa.Text, primary_key=True),
    sa.Column("counterparty", sa.Text, primary_key=True),
    sa.Index("ix_counterparty_index_counterparty", "counterparty"),
)

# Watchlists and signed webhooks (issue 35, `subscriptions.py`, docs/webhooks.md). Subscribers hold API
# keys (only their SHA-256 is stored); a subscription watches wallets; webhook_deliveries is the
# transactional outbox, written in the scoring transaction and emptied by the dispatcher.
webhook_subscribers = sa.Table(
    "webhook_subscribers",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("key_hash", sa.String(64), nullable=False),
    sa.Column("revoked", sa.Boolean, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Index("ix_webhook_subscribers_key_hash", "key_hash", unique=True),
)
webhook_subscriptions = sa.Table(
    "webhook_subscriptions",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("subscriber", sa.String(40)),  # None: made with the admin key
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("secret", sa.Text, nullable=False),  # the HMAC key (signing needs it in clear)
    sa.Column("events", sa.Text, nullable=False),  # JSON list of event types
    sa.Column("threshold", sa.Float),
    sa.Column("min_change", sa.Float),
    sa.Column("description", sa.Text),
    sa.Column("status", sa.String(16), nullable=False),  # active | paused
    sa.Column("status_reason", sa.Text),
    sa.Column("dead_streak", sa.Integer, nullable=False),  # dead deliveries since the last delivered one
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Index("ix_webhook_subscriptions_subscriber", "subscriber"),
)
webhook_watched = sa.Table(
    "webhook_watched",
    metadata,
    sa.Column("subscription_id", sa.String(40), primary_key=True),
    sa.Column("wallet", sa.Text, primary_key=True),  # lower-cased
    sa.Column("added_at", sa.Float, nullable=False),
    sa.Index("ix_webhook_watched_wallet", "wallet"),
)
webhook_deliveries = sa.Table(
    "webhook_deliveries",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),  # the body's `id` and X-Delivery-ID
    sa.Column("subscription_id", sa.String(40), nullable=False),
    sa.Column("wallet", sa.Text, nullable=False),
    sa.Column("type", sa.String(24), nullable=False),
    sa.Column("payload", sa.Text, nullable=False),  # the JSON body, fixed when enqueued
    sa.Column("status", sa.String(12), nullable=False),  # pending | failed | delivered | dead
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("retry_from", sa.Float, nullable=False),  # start of the retry horizon (created or redelivered)
    sa.Column("next_attempt_at", sa.Float, nullable=False),  # also the lease of a claimed row
    sa.Column("last_attempt_at", sa.Float),
    sa.Column("last_status", sa.Integer),
    sa.Column("last_error", sa.Text),
    sa.Column("delivered_at", sa.Float),
    sa.Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
    sa.Index("ix_webhook_deliveries_subscription", "subscription_id", "status", "created_at"),
)
WEBHOOK_TABLES = (webhook_subscribers, webhook_subscriptions, webhook_watched, webhook_deliveries)


def store_engine(url: str) -> sa.Engine:
    """An engine for the store at `url`; a fresh data home gets its SQLite file's folder created."""
    is_sqlite = url.startswith("sqlite")
    database = sa.engine.make_url(url).database if is_sqlite else None
    if database and database != ":memory:":  # SQLite creates the file, not its folder
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    # Pre-ping guards against server-side disconnects (PostgreSQL); a SQLite file has none, and the
    # extra round trip would double the cost of every API read.
    engine = sa.create_engine(
        url, pool_pre_ping=not is_sqlite, **({} if is_sqlite else {"pool_size": 10, "max_overflow": 20})
    )
    if engine.dialect.name == "sqlite":
        sa.event.listen(engine, "connect", sqlite_pragmas)
    return engine


def sqlite_pragmas(dbapi_connection, _record=None) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")  # readers do not block on the writer
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()
