"""Score store migrations on SQLite and PostgreSQL: a store made by the previous release (create_all, no
version table) is upgraded in place with its rows; a fresh one is built by the migrations; processes
opening a store at once migrate it once; the migrated schema is the models' schema; any address fits."""

import multiprocessing
import uuid

import orjson
import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from click.testing import CliRunner

from defi_scoring.cli import main
from defi_scoring.core.batch_scoring import score_raw_messages
from defi_scoring.core.normalise import normalise_messages
from defi_scoring.core.synthetic import generate_wallets, iter_messages
from defi_scoring.core.wallet_history import encode_histories
from defi_scoring.score_store import ScoreStore, metadata
from defi_scoring.score_store.migrate import (
    BASELINE,
    HEAD,
    VERSION_TABLE,
    alembic_config,
    current_revision,
    include_name,
)
from defi_scoring.score_store.ranges import pack_outputs
from defi_scoring.score_store.score_writes import MAX_EVENT_WALLET_CHARS
from defi_scoring.score_store.tables import store_engine
from defi_scoring_tests.conftest import example_message
from defi_scoring_tests.test_score_store import POSTGRES_URL, require_postgres

AS_OF = 1_735_689_600


def previous_release_metadata() -> sa.MetaData:
    """The tables exactly as the release before migrations declared them (wallet columns String(64))."""
    old = sa.MetaData()
    sa.Table(
        "wallet_histories",
        old,
        sa.Column("wallet", sa.String(64), primary_key=True),
        sa.Column("transactions", sa.Integer, nullable=False),
        sa.Column("columns", sa.LargeBinary, nullable=False),
        sa.Column("writer", sa.String(64), nullable=False),
        sa.Column("updated_at", sa.Float),
    )
    sa.Table(
        "wallet_scores",
        old,
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
    sa.Table(
        "score_events",
        old,
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
    sa.Table(
        "processed_ranges",
        old,
        sa.Column("range_key", sa.String(), primary_key=True),
        sa.Column("outputs", sa.LargeBinary, nullable=False),
        sa.Column("recorded_at", sa.Float),
    )
    return old


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, tmp_path):
    """An empty database: a SQLite file, or a schema of its own on the local PostgreSQL server."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'scores.db'}"
        return
    require_postgres()
    schema = f"migr_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(POSTGRES_URL)
    with admin.begin() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
    separator = "&" if "?" in POSTGRES_URL else "?"
    yield f"{POSTGRES_URL}{separator}options=-csearch_path%3D{schema}"
    with admin.begin() as conn:
        conn.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
    admin.dispose()


def schema_differences(engine: sa.Engine, target: sa.MetaData) -> list:
    """What autogenerate would write to turn the database's store tables into `target`."""
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True, "include_name": include_name})
        return compare_metadata(context, target)


def _previous_release_rows():
    """Rows as the previous release stored them: two runs of scores, histories and a range's outputs."""
    lines = [orjson.dumps(m) for m in iter_messages(generate_wallets(12, seed=7))] + [b"{bad"]
    messages = score_raw_messages(lines, as_of=AS_OF).messages()
    batch = normalise_messages(iter_messages(generate_wallets(12, seed=7)))
    return messages, batch.transactions


def _write_like_the_previous_release(engine: sa.Engine, messages, transactions) -> None:
    old = previous_release_metadata()
    old.create_all(engine)  # what the previous release ran on open
    events, latest = [], {}
    for m in messages:
        ok = "zscore" in m
        wallet = m["wallet_address"].lower()
        events.append(
            {"wallet": wallet, "run_id": "old-run", "source": "batch", "status": "success" if ok else "failure"}
        )
        if ok:
            latest[wallet] = {"wallet": wallet, "hybrid_score": m["hybrid_score"], "message": orjson.dumps(m).decode()}
    histories = [
        {"wallet": w, "transactions": n, "columns": blob, "writer": "old", "updated_at": 1.0}
        for w, (n, blob) in encode_histories(transactions).items()
    ]
    outputs = [("wallet-scores-success", "0xabc", b'{"x": 1}')]
    with engine.begin() as conn:
        conn.execute(old.tables["score_events"].insert(), events)
        conn.execute(old.tables["wallet_scores"].insert(), list(latest.values()))
        conn.execute(old.tables["wallet_histories"].insert(), histories)
        conn.execute(
            old.tables["processed_ranges"].insert(), [{"range_key": "t.0.0-9", "outputs": pack_outputs(outputs)}]
        )


def test_head_is_the_newest_script_and_the_baseline_the_first():
    scripts = ScriptDirectory.from_config(alembic_config())
    assert scripts.get_current_head() == HEAD
    assert [s.revision for s in scripts.walk_revisions()][-1] == BASELINE


def test_the_baseline_migration_is_the_previous_release_schema(url):
    engine = store_engine(url)
    with engine.begin() as conn:
        config = alembic_config(conn)
        command.upgrade(config, BASELINE)
    assert current_revision(engine) == BASELINE
    assert schema_differences(engine, previous_release_metadata()) == []
    engine.dispose()


def test_a_previous_release_store_is_upgraded_in_place_with_its_rows(url):
    messages, transactions = _previous_release_rows()
    legacy = store_engine(url)
    _write_like_the_previous_release(legacy, messages, transactions)
    assert current_revision(legacy) is None
    assert schema_differences(legacy, metadata) != []  # the wallet columns are still VARCHAR(64)
    legacy.dispose()

    store = ScoreStore(url)  # opening upgrades it
    assert current_revision(store.engine) == HEAD
    assert schema_differences(store.engine, metadata) == []
    success = next(m for m in messages if "zscore" in m)
    assert store.wallet(success["wallet_address"])["latest"] == success
    wallets = transactions["wallet"].astype(object).unique().tolist()
    assert len(store.wallet_history(wallets)) == len(transactions)
    assert store.range_outputs("t.0.0-9") == [("wallet-scores-success", "0xabc", b'{"x": 1}')]
    assert store.stats()["total_processed"] == len(messages) and store.stats()["failed_processed"] == 1
    store.record_messages(messages[:1], run_id="new-run", source="batch")  # and it takes new rows
    assert [h["run_id"] for h in store.wallet(messages[0]["wallet_address"])["history"]] == ["new-run", "old-run"]
    with store.engine.connect() as conn:
        assert conn.execute(sa.text(f"SELECT count(*) FROM {VERSION_TABLE}")).scalar() == 1


def test_a_fresh_store_is_built_by_the_migrations(url):
    store = ScoreStore(url)
    assert current_revision(store.engine) == HEAD
    assert schema_differences(store.engine, metadata) == []


def test_a_200_character_address_is_stored_and_read_back(url):
    """Only 0x + 40 hex digits is a wallet, but a failure keeps the input's raw wallet_address: 200
    characters made PostgreSQL refuse the batch (VARCHAR(64)); longer ones are cut, never refused."""
    store = ScoreStore(url)
    long_address = "0x" + "Ab" * 99
    huge_address = "0x" + "cd" * 5_000
    lines = []
    for address in (long_address, huge_address):
        message = example_message()
        message["wallet_address"] = address
        lines.append(orjson.dumps(message))
    messages = score_raw_messages([*lines, orjson.dumps(example_message())], as_of=AS_OF).messages()
    assert len(messages[0]["wallet_address"]) == 200 and "error" in messages[0]
    store.record_messages(messages, run_id="r", source="stream")
    with store.engine.connect() as conn:
        stored = conn.execute(sa.text("SELECT wallet FROM score_events WHERE status = 'failure'")).scalars().all()
    assert sorted(stored, key=len) == [long_address.lower(), huge_address.lower()[:MAX_EVENT_WALLET_CHARS]]
    assert store.stats()["total_processed"] == 3


def _open_at_once(url: str, barrier) -> str:
    barrier.wait(30)
    store = ScoreStore(url)
    revision = current_revision(store.engine)
    store.engine.dispose()
    return revision


def test_processes_opening_a_store_at_once_upgrade_it_once(url):
    messages, transactions = _previous_release_rows()
    legacy = store_engine(url)
    _write_like_the_previous_release(legacy, messages, transactions)
    legacy.dispose()
    context = multiprocessing.get_context("spawn")  # fork could copy a lock another thread holds
    with context.Manager() as manager, context.Pool(3) as pool:
        barrier = manager.Barrier(3)
        revisions = pool.starmap(_open_at_once, [(url, barrier)] * 3)
    assert revisions == [HEAD] * 3
    store = ScoreStore(url)
    assert store.stats()["total_processed"] == len(messages)
    assert schema_differences(store.engine, metadata) == []


def test_opening_a_store_at_head_asks_one_query(url):
    ScoreStore(url).engine.dispose()
    statements = []

    def count(_conn, _cursor, statement, *_args) -> None:
        statements.append(statement)

    sa.event.listen(sa.Engine, "before_cursor_execute", count)
    try:
        ScoreStore(url).engine.dispose()
    finally:
        sa.event.remove(sa.Engine, "before_cursor_execute", count)
    assert statements == [f"SELECT version_num FROM {VERSION_TABLE}"]


def test_store_commands_show_and_upgrade_the_revision(tmp_path):
    url = f"sqlite:///{tmp_path / 'scores.db'}"
    messages, transactions = _previous_release_rows()
    legacy = store_engine(url)
    _write_like_the_previous_release(legacy, messages, transactions)
    legacy.dispose()
    runner = CliRunner()
    shown = runner.invoke(main, ["store", "current", "--url", url])
    assert shown.exit_code == 0 and "made before migrations" in shown.output and f"head {HEAD}" in shown.output
    upgraded = runner.invoke(main, ["store", "upgrade"], env={"DEFI_SCORING_STORE_URL": url})
    assert upgraded.exit_code == 0 and f"upgraded from none to {HEAD}" in upgraded.output
    assert "already at" in runner.invoke(main, ["store", "upgrade", "--url", url]).output
    assert f"revision {HEAD}, head {HEAD}" in runner.invoke(main, ["store", "current", "--url", url]).output
