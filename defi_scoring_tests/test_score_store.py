"""The score store on SQLite and on PostgreSQL (one suite, parametrised), and Dagster on PostgreSQL."""

import os
import threading
import uuid

import orjson
import pandas as pd
import pytest
import sqlalchemy as sa

from defi_scoring.core.batch_scoring import score_raw_messages
from defi_scoring.core.normalise import normalise_messages
from defi_scoring.core.synthetic import generate_wallets, iter_messages
from defi_scoring.core.wallet_history import merge_history
from defi_scoring.score_store import HistoryConflict, ScoreStore, history_counts
from defi_scoring_tests.conftest import DEPOSIT_TIME, WALLET, example_message

POSTGRES_URL = os.environ.get("DEFI_SCORING_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def _postgres_reachable() -> str | None:
    try:
        with sa.create_engine(POSTGRES_URL, connect_args={"connect_timeout": 3}).connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        return None
    except Exception as exc:
        return f"PostgreSQL not reachable at {POSTGRES_URL} ({type(exc).__name__}); set DEFI_SCORING_TEST_POSTGRES_URL"


# In CI (CI or DEFI_SCORING_REQUIRE_POSTGRES set) the PostgreSQL tests never skip: without a server
# they fail, so the production store cannot go untested unnoticed (.ci/run starts the local server).
REQUIRE_POSTGRES = any(
    os.environ.get(v, "").lower() not in ("", "0", "false") for v in ("CI", "DEFI_SCORING_REQUIRE_POSTGRES")
)
POSTGRES_PROBLEM = _postgres_reachable()
POSTGRES_SKIP = None if REQUIRE_POSTGRES else POSTGRES_PROBLEM  # for skipif markers: never set in CI


def require_postgres() -> None:
    """Skip where there is no PostgreSQL server; fail instead where one is required."""
    if POSTGRES_PROBLEM and REQUIRE_POSTGRES:
        pytest.fail(f"{POSTGRES_PROBLEM}, and CI / DEFI_SCORING_REQUIRE_POSTGRES requires it", pytrace=False)
    if POSTGRES_PROBLEM:
        pytest.skip(POSTGRES_PROBLEM)


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    if request.param == "sqlite":
        yield ScoreStore(f"sqlite:///{tmp_path / 'scores.db'}")
        return
    require_postgres()
    schema = f"test_{uuid.uuid4().hex[:10]}"  # an isolated schema per test
    admin = sa.create_engine(POSTGRES_URL)
    with admin.begin() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
    separator = "&" if "?" in POSTGRES_URL else "?"
    yield ScoreStore(f"{POSTGRES_URL}{separator}options=-csearch_path%3D{schema}")
    with admin.begin() as conn:
        conn.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
    admin.dispose()


def _scored(n=30, seed=1):
    lines = [orjson.dumps(m) for m in iter_messages(generate_wallets(n, seed=seed))] + [b"{bad"]
    return lines, score_raw_messages(lines, as_of=1_735_689_600)


def test_records_latest_scores_events_and_stats(store):
    lines, scored = _scored()
    messages = scored.messages()
    store.record_messages(messages, run_id="run-1", source="batch")
    stats = store.stats()
    assert stats["total_processed"] == len(lines) and stats["failed_processed"] == 1
    assert stats["successful_processed"] == len(lines) - 1 and stats["last_processed_timestamp"] is not None
    address = messages[0]["wallet_address"]
    found = store.wallet(address.upper().replace("0X", "0x"))  # any case
    assert found["latest"] == messages[0]
    assert found["history"][0]["run_id"] == "run-1" and found["history"][0]["status"] == "success"
    assert store.wallet("0x" + "0" * 40) is None


def test_rescoring_updates_latest_and_appends_history(store):
    _, scored = _scored(5)
    first = scored.messages()
    store.record_messages(first, run_id="run-1", source="batch")
    changed = [dict(m, hybrid_score=1.0, zscore="1.000000000000000000") for m in first]
    store.record_messages(changed, run_id="run-2", source="stream")
    found = store.wallet(first[0]["wallet_address"])
    assert found["latest"]["hybrid_score"] == 1.0
    assert [h["run_id"] for h in found["history"]] == ["run-2", "run-1"]
    assert store.latest_hybrid_scores([first[0]["wallet_address"].lower()]).iloc[0] == 1.0
    keys = [m["wallet_address"].lower() for m in first]
    latest = store.latest_hybrid_scores([*keys, "0x" + "0" * 40, keys[0]], chunk=2)  # unknown, repeated, chunks
    assert latest.to_dict() == dict.fromkeys(keys, 1.0)


def test_transactions_insert_is_idempotent_and_history_round_trips(store):
    batch = normalise_messages(iter_messages(generate_wallets(20, seed=3)))
    store.add_transactions(batch.transactions)
    store.add_transactions(batch.transactions)  # a re-run: nothing doubles
    wallets = batch.transactions["wallet"].astype(object).unique().tolist()
    history = store.wallet_history(wallets)
    assert len(history) == len(batch.transactions)
    key = ["wallet", "document_id"]
    left = history.astype({"wallet": object}).sort_values(key).reset_index(drop=True)
    right = batch.transactions[history.columns].astype({"wallet": object}).sort_values(key).reset_index(drop=True)
    pd.testing.assert_series_equal(left["amount_usd"], right["amount_usd"])
    assert (left["timestamp"].to_numpy() == right["timestamp"].to_numpy()).all()


def test_range_outputs_round_trip(store):
    outputs = [("topic-a", "0xabc", b'{"x": 1}'), ("topic-b", "", b"\xe2\x82\xac")]
    assert store.range_outputs("t.0.0-9") is None
    with store.transaction() as conn:
        store.save_range("t.0.0-9", outputs, conn)
    assert store.range_outputs("t.0.0-9") == outputs


def test_readers_keep_working_while_a_writer_holds_a_transaction(store):
    (message,) = score_raw_messages([orjson.dumps(example_message())], as_of=DEPOSIT_TIME + 86400).messages()
    store.record_messages([message], run_id="r", source="api")
    started, release = threading.Event(), threading.Event()

    def writer():
        with store.transaction() as conn:
            store.add_transactions(normalise_messages([example_message()]).transactions, conn)
            started.set()
            release.wait(10)

    thread = threading.Thread(target=writer)
    thread.start()
    started.wait(10)
    try:
        assert store.wallet(message["wallet_address"])["latest"]["zscore"] == message["zscore"]
        assert store.stats()["total_processed"] == 1
    finally:
        release.set()
        thread.join()


def test_dagster_instance_on_postgres_runs_the_batch_jobs(tmp_home):
    """Production mode: Dagster run/event storage on PostgreSQL (dagster-postgres). Its NOTIFY needs the
    psycopg2 driver, named explicitly: SQLAlchemy 2.1 maps a bare postgresql:// URL to psycopg 3."""
    require_postgres()
    import dagster as dg

    from defi_scoring.assets.partitions import transaction_batch_partitions
    from defi_scoring.config import Settings
    from defi_scoring.definitions import build_definitions

    database = "defi_scoring_dagster_test"
    admin = sa.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        if not conn.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :d"), {"d": database}).first():
            conn.execute(sa.text(f"CREATE DATABASE {database}"))
    admin.dispose()
    url = sa.engine.make_url(POSTGRES_URL).set(database=database, drivername="postgresql+psycopg2")
    (tmp_home / "landing").mkdir(parents=True)
    (tmp_home / "landing" / "pg.jsonl").write_bytes(orjson.dumps(example_message()) + b"\n")
    defs = build_definitions(Settings(home=tmp_home))
    overrides = {"storage": {"postgres": {"postgres_url": url.render_as_string(hide_password=False)}}}
    with dg.instance_for_test(overrides=overrides) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        instance.add_dynamic_partitions(transaction_batch_partitions.name, ["pg"])
        result = defs.resolve_job_def("ingest_batch").execute_in_process(instance=instance, partition_key="pg")
        assert result.success
        assert instance.get_run_by_id(result.run_id).is_success
        assert instance.get_latest_materialization_event(dg.AssetKey("transaction_batches")) is not None


def test_long_identifiers_from_the_input_are_stored(store):
    """Ids and pool names come from the input: a long one must not make the database refuse the batch."""
    message = example_message()
    message["data"][0]["transactions"][0]["document_id"] = "d" * 300
    message["data"][0]["transactions"][0]["poolId"] = "p" * 300
    batch = normalise_messages([message])
    assert "d" * 300 in set(batch.transactions["document_id"])
    store.add_transactions(batch.transactions)
    history = store.wallet_history([WALLET.lower()])
    assert set(history["document_id"]) == set(batch.transactions["document_id"])


def _one_wallet_parts():
    batch = normalise_messages(iter_messages(generate_wallets(20, seed=11)))
    wallets = batch.transactions["wallet"].astype(object)
    tx = batch.transactions[wallets == wallets.value_counts().index[0]]  # the wallet with most transactions
    assert len(tx) >= 6
    return tx.iloc[:3], tx.iloc[3:5], tx.iloc[5:]


@pytest.mark.parametrize("stored_before", [True, False], ids=["update", "insert"])
def test_a_history_changed_meanwhile_is_not_overwritten(store, stored_before):
    """Two runs read the same wallet's history and both add transactions: the second write must fail
    (HistoryConflict, so its range is scored again) instead of dropping the first run's transactions."""
    old, part_a, part_b = _one_wallet_parts()
    wallet = old["wallet"].astype(object).iloc[0]
    if stored_before:
        store.add_transactions(old)
    history = store.wallet_history([wallet])
    base = history_counts(history)
    with store.transaction() as conn:
        assert store.save_histories(merge_history(history, part_a), base, conn) == 1
    with pytest.raises(HistoryConflict, match="changed while this run scored them"), store.transaction() as conn:
        store.save_histories(merge_history(history, part_b), base, conn)
    stored = set(store.wallet_history([wallet])["document_id"])
    expected = set(part_a["document_id"]) | (set(old["document_id"]) if stored_before else set())
    assert stored == expected
    # scored again from the fresh history, the second run's transactions get in
    history = store.wallet_history([wallet])
    with store.transaction() as conn:
        store.save_histories(merge_history(history, part_b), history_counts(history), conn)
    assert set(store.wallet_history([wallet])["document_id"]) == expected | set(part_b["document_id"])
