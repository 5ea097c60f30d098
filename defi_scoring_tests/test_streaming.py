"""Kafka sensor + scoring job against a real (embedded Tansu) broker, real Dagster, a real SQLite store."""

import contextlib
import json
import os
import signal
import socket
import threading
import time
import uuid

import dagster as dg
import orjson
import pytest
import sqlalchemy as sa
from kafka import KafkaConsumer, TopicPartition

from defi_scoring.assets.partitions import kafka_offset_ranges
from defi_scoring.config import Settings
from defi_scoring.core.batch_scoring import score_raw_messages
from defi_scoring.core.synthetic import generate_wallets, iter_messages
from defi_scoring.definitions import build_definitions
from defi_scoring.score_store import ScoreStore
from defi_scoring.streaming import client
from defi_scoring.streaming.broker import EmbeddedBroker, free_port
from defi_scoring.streaming.client import OffsetRange
from defi_scoring.streaming.settings import KafkaSettings
from defi_scoring_tests.conftest import (
    WALLET,
    example_message,
    lending_message,
    start_api,
    stop_api,
    transfer,
    transfers_message,
)


@pytest.fixture(scope="module")
def broker():
    with EmbeddedBroker() as running:
        yield running


@pytest.fixture
def kafka_env(broker, tmp_home, monkeypatch):
    """Fresh topic names per test (the broker is shared), pointed at by the environment."""
    suffix = uuid.uuid4().hex[:8]
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
        "KAFKA_INPUT_TOPIC": f"in-{suffix}",
        "KAFKA_SUCCESS_TOPIC": f"ok-{suffix}",
        "KAFKA_FAILURE_TOPIC": f"fail-{suffix}",
        "KAFKA_ALERTS_TOPIC": f"alerts-{suffix}",
        "KAFKA_MAX_RANGE_MESSAGES": "40",
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    settings = KafkaSettings.from_env()
    client.ensure_topics(settings, [settings.input_topic, *settings.output_topics])
    return settings


def _produce(settings, values, compression=None, keys=None):
    producer = client.producer(settings, compression_type=compression)
    futures = [
        producer.send(settings.input_topic, key=(keys[i] if keys else b"k"), value=value)
        for i, value in enumerate(values)
    ]
    producer.flush()
    for future in futures:
        future.get(timeout=30)  # raise if the broker refused a record
    producer.close()


def _drain(settings, topic):
    consumer = KafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers, group_id=None, enable_auto_commit=False, consumer_timeout_ms=1500
    )
    tp = TopicPartition(topic, 0)
    consumer.assign([tp])
    consumer.seek_to_beginning(tp)
    out = [(r.key.decode(), r.value) for r in consumer]
    consumer.close()
    return out


def _run_sensor_and_jobs(defs, instance, run_config=None):
    """What the daemon does: evaluate the sensor, register its partitions, execute each requested run."""
    sensor = defs.resolve_sensor_def("kafka_scoring_sensor")
    result = sensor(
        dg.build_sensor_context(
            instance=instance,
            cursor=_run_sensor_and_jobs.cursor,
            resources={"kafka": defs.resources["kafka"], "data_home": defs.resources["data_home"]},
        )
    )
    if isinstance(result, dg.SkipReason):
        return result, []
    for request in result.dynamic_partitions_requests:
        instance.add_dynamic_partitions(kafka_offset_ranges.name, list(request.partition_keys))
    _run_sensor_and_jobs.cursor = result.cursor
    runs = [
        defs.resolve_job_def("kafka_scoring").execute_in_process(
            instance=instance, partition_key=r.partition_key, run_config=run_config or {}
        )
        for r in result.run_requests
    ]
    return result, runs


_run_sensor_and_jobs.cursor = None


@pytest.fixture(autouse=True)
def _reset_cursor():
    _run_sensor_and_jobs.cursor = None


def _bad_messages():
    no_wallet = example_message()
    del no_wallet["wallet_address"]
    ms = example_message()
    for tx in ms["data"][0]["transactions"]:  # every transaction unusable → the message fails
        tx["timestamp"] *= 1000
    huge = b'{"wallet_address": "' + WALLET.encode() + b'", "data": [], "pad": "' + b"x" * (6 * 1024 * 1024) + b'"}'
    return {
        "unparseable": b"\x00\xff not json",
        "oversized": huge,
        "no_wallet": orjson.dumps(no_wallet),
        "timestamp_ms": orjson.dumps(ms),
    }


def test_sensor_plans_ranges_and_runs_account_for_every_message(kafka_env, tmp_home):
    settings = kafka_env
    data = generate_wallets(60, seed=21)
    good = [orjson.dumps(m) for m in iter_messages(data)]
    bad = _bad_messages()
    _produce(settings, good + list(bad.values()))
    defs = build_definitions(Settings(home=tmp_home))
    with dg.instance_for_test() as instance:
        result, runs = _run_sensor_and_jobs(defs, instance)
        keys = [r.run_key for r in result.run_requests]
        total = len(good) + len(bad)
        assert total > 40
        assert keys == [f"{settings.input_topic}.0.0-39", f"{settings.input_topic}.0.40-{total - 1}"]
        assert {r.tags["kafka/partition"] for r in result.run_requests} == {f"{settings.input_topic}.0"}
        assert [r.partition_key for r in result.run_requests] == keys
        assert json.loads(result.cursor) == {settings.input_topic: {"0": total}}
        assert all(run.success for run in runs)
        again, more = _run_sensor_and_jobs(defs, instance)  # nothing new → no runs, cursor unchanged
        assert isinstance(again, dg.SkipReason) and more == []
        # lag tools see the consumer group at the end of what was scored
        assert client.committed_offsets(settings, settings.input_topic) == {0: total}
        assert client.consumer_lag(settings) == {0: 0}
        from defi_scoring.api.app import _kafka_status

        health = _kafka_status(settings)  # what /health shows
        assert health["status"] == "ok" and health["consumer_lag"] == {0: 0}

    successes = _drain(settings, settings.success_topic)
    failures = _drain(settings, settings.failure_topic)
    assert len(successes) + len(failures) == len(good) + len(bad)
    assert sorted(k for k, _ in successes) == sorted(orjson.loads(m)["wallet_address"] for m in good)
    errors = {orjson.loads(v)["error"] for _, v in failures}
    assert len(failures) == len(bad)
    assert any("not valid JSON" in e or "JSON" in e for e in errors), errors
    assert any("bytes" in e and "limit" in e for e in errors), errors
    assert any("wallet_address" in e for e in errors), errors
    assert any("millisecond" in e or "timestamp" in e for e in errors), errors
    first = orjson.loads(successes[0][1])
    assert {"zscore", "hybrid_score", "risk_level", "reasons", "patterns"} <= set(first)
    stats = ScoreStore(Settings(home=tmp_home).store_url).stats()
    assert stats["total_processed"] == len(good) + len(bad) and stats["failed_processed"] == len(bad)


def test_reexecuted_range_gives_identical_outputs_and_double_counts_nothing(kafka_env, tmp_home):
    settings = kafka_env
    _produce(settings, [orjson.dumps(m) for m in iter_messages(generate_wallets(15, seed=2))] + [b"{oops"])
    defs = build_definitions(Settings(home=tmp_home))
    store = ScoreStore(Settings(home=tmp_home).store_url)
    with dg.instance_for_test() as instance:
        result, _ = _run_sensor_and_jobs(defs, instance)
        (key,) = [r.partition_key for r in result.run_requests]
        first = _drain(settings, settings.success_topic) + _drain(settings, settings.failure_topic)
        stats = store.stats()
        rerun = defs.resolve_job_def("kafka_scoring").execute_in_process(instance=instance, partition_key=key)
        assert rerun.success
        assert rerun.asset_materializations_for_node("kafka_scored_ranges")[0].metadata["replayed"].value is True
    both = _drain(settings, settings.success_topic) + _drain(settings, settings.failure_topic)
    assert len(both) == 2 * len(first)
    assert sorted(both) == sorted(first + first)  # the same bytes, published again
    assert store.stats()["total_processed"] == stats["total_processed"]


@pytest.mark.parametrize("compression", ["lz4", "snappy", "zstd", "gzip"])
def test_compressed_topics_are_read(kafka_env, tmp_home, compression):
    settings = kafka_env
    data = generate_wallets(10, seed=3)
    _produce(settings, [orjson.dumps(m) for m in iter_messages(data)], compression=compression)
    defs = build_definitions(Settings(home=tmp_home))
    with dg.instance_for_test() as instance:
        _, runs = _run_sensor_and_jobs(defs, instance)
        assert runs and all(r.success for r in runs)
    assert len(_drain(settings, settings.success_topic)) == 10


def test_incremental_update_equals_full_recompute(kafka_env, tmp_home):
    """A wallet's history arrives over two ranges (one transaction repeated): the second run's score
    equals scoring the whole history at once."""
    settings = kafka_env
    (message,) = list(iter_messages(generate_wallets(1, seed=9)))  # one wallet, many transactions
    txs = message["data"][0]["transactions"]
    assert len(txs) >= 4
    half = len(txs) // 2
    part = lambda t: orjson.dumps({**message, "data": [{"protocolType": "dexes", "transactions": t}]})
    defs = build_definitions(Settings(home=tmp_home))
    with dg.instance_for_test() as instance:
        _produce(settings, [part(txs[:half])])
        _run_sensor_and_jobs(defs, instance)
        _produce(settings, [part(txs[half - 1 :])])  # overlaps by one document_id
        result, _ = _run_sensor_and_jobs(defs, instance)
        assert [r.partition_key for r in result.run_requests] == [f"{settings.input_topic}.0.1-1"]
    outputs = [orjson.loads(v) for _, v in _drain(settings, settings.success_topic)]
    latest = outputs[-1]
    (full,) = score_raw_messages([orjson.dumps(message)], as_of=latest["timestamp"]).messages()
    assert latest["zscore"] == full["zscore"]
    assert latest["hybrid_score"] == full["hybrid_score"]
    assert latest["categories"] == full["categories"]
    stored = ScoreStore(Settings(home=tmp_home).store_url).wallet_history([message["wallet_address"].lower()])
    assert len(stored) == len(txs)


def test_offset_range_keys_round_trip():
    r = OffsetRange("wallet.transactions", 3, 10, 19)
    assert r.key == "wallet.transactions.3.10-19" and OffsetRange.parse(r.key) == r and r.size == 10
    with pytest.raises(ValueError, match="offset-range key"):
        OffsetRange.parse("batch-a")


def test_parallel_driver_scores_each_partition_in_order_in_its_own_process(kafka_env, tmp_home, monkeypatch):
    """workers=2, as the daemon with the default dagster.yaml: runs are queued without blocking the
    sensor, each Kafka partition's ranges run in offset order in one worker process, and every input
    message is answered exactly once."""
    from kafka.partitioner.default import murmur2

    from defi_scoring_tests.sensor_driver import SensorDriver

    topic = f"{kafka_env.input_topic}-p2"
    monkeypatch.setenv("KAFKA_INPUT_TOPIC", topic)
    monkeypatch.setenv("KAFKA_MAX_RANGE_MESSAGES", "15")
    settings = KafkaSettings.from_env()
    client.ensure_topics(settings, [topic], partitions=2)
    messages = list(iter_messages(generate_wallets(60, seed=21)))
    keys = [m["wallet_address"].encode() for m in messages]
    sender = client.producer(settings)
    for key, message in zip(keys, messages):
        sender.send(topic, key=key, value=orjson.dumps(message), partition=(murmur2(key) & 0x7FFFFFFF) % 2)
    sender.send(topic, key=b"bad", value=b"{not json", partition=1)
    sender.flush()
    sender.close()

    defs = build_definitions(Settings(home=tmp_home))
    with dg.instance_for_test() as instance:
        driver = SensorDriver(defs, instance, workers=2, home=tmp_home)
        try:
            driver.warm_up()
            answered, deadline = 0, time.monotonic() + 120
            while answered < len(messages) + 1 and time.monotonic() < deadline:
                answered += sum(run["messages"] for run in driver.tick())
                time.sleep(0.5)
            answered += sum(run["messages"] for run in driver.drain())
        finally:
            driver.close()
        # worker runs carry the sensor's tags (the daemon's per-partition limit keys on kafka/partition)
        runs = instance.get_runs()
        assert runs and all(r.tags.get("kafka/range") == r.tags.get("dagster/partition") for r in runs)
        assert {r.tags.get("kafka/partition") for r in runs} == {f"{topic}.0", f"{topic}.1"}
    assert answered == len(messages) + 1
    ranges = [OffsetRange.parse(run["key"]) for run in driver.runs]
    assert {r.partition for r in ranges} == {0, 1}
    for partition in (0, 1):
        starts = [r.start for r in ranges if r.partition == partition]
        assert starts == sorted(starts) and starts[0] == 0  # in offset order, from the beginning
    successes = _drain(settings, settings.success_topic)
    failures = _drain(settings, settings.failure_topic)
    assert sorted(k for k, _ in successes) == sorted(m["wallet_address"] for m in messages)
    assert len(failures) == 1
    assert orjson.loads(failures[0][1])["error"].startswith("Processing failed: invalid JSON")


def test_transfers_and_lending_messages_through_range_runs(kafka_env, tmp_home):
    messages = [
        transfers_message([transfer(f"a{i}", "receive", ts=1703980800 + 60 * i) for i in range(3)]),
        transfers_message([transfer(f"a{i}", "send", ts=1703990800 + 60 * i) for i in range(3, 5)]),
        lending_message(
            [{"document_id": "l1", "action": "borrow", "timestamp": 1703980800, "asset": {"amountUSD": 100}}],
            wallet="0x" + "5" * 40,
        ),
        lending_message([{"document_id": "l2", "action": "stake", "timestamp": 1703980800}], wallet="0x" + "6" * 40),
    ]
    _produce(kafka_env, [orjson.dumps(m) for m in messages])
    defs = build_definitions(Settings(home=tmp_home))
    with dg.instance_for_test() as instance:
        _, runs = _run_sensor_and_jobs(defs, instance)
        assert runs and all(r.success for r in runs)
    ok = [orjson.loads(v) for _, v in _drain(kafka_env, kafka_env.success_topic)]
    failed = [orjson.loads(v) for _, v in _drain(kafka_env, kafka_env.failure_topic)]
    assert len(ok) + len(failed) == 4 and len(failed) == 1 and "'stake' for lending" in failed[0]["error"]
    # the second message merged into the stored history: the wallet's score covers all five transfers
    assert ok[1]["activity"]["transfers"]["transaction_count"] == 5
    stored = ScoreStore(Settings(home=tmp_home).store_url).wallet(WALLET)["latest"]
    assert stored["activity"]["transfers"]["transaction_count"] == 5


def test_broker_restarted_empty_the_sensor_says_so_and_reads_the_new_topic(kafka_env, tmp_home, monkeypatch):
    """An in-memory broker that comes back empty: offsets restart at 0, below the sensor's cursor."""
    settings = kafka_env
    before = [orjson.dumps(m) for m in iter_messages(generate_wallets(30, seed=31))]
    _produce(settings, before)
    defs = build_definitions(Settings(home=tmp_home))
    with dg.instance_for_test() as instance:
        _, runs = _run_sensor_and_jobs(defs, instance)
        assert all(run.success for run in runs)
        with EmbeddedBroker() as restarted:  # same topic names, nothing on them
            monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", restarted.bootstrap_servers)
            settings = KafkaSettings.from_env()
            client.ensure_topics(settings, [settings.input_topic, *settings.output_topics])
            after = [orjson.dumps(m) for m in iter_messages(generate_wallets(5, seed=32))]
            _produce(settings, after)
            defs = build_definitions(Settings(home=tmp_home))
            result, runs = _run_sensor_and_jobs(defs, instance)
            assert [r.run_key for r in result.run_requests] == [f"{settings.input_topic}.0.0-4~1"]  # not a reused key
            assert all(run.success for run in runs)
            answered = _drain(settings, settings.success_topic) + _drain(settings, settings.failure_topic)
            assert sorted(k for k, _ in answered) == sorted(orjson.loads(m)["wallet_address"] for m in after)
            assert json.loads(result.cursor)["~epochs"] == {settings.input_topic: {"0": 1}}
            _produce(settings, after[:2])
            result, _ = _run_sensor_and_jobs(defs, instance)  # the new epoch carries on normally
            assert [r.run_key for r in result.run_requests] == [f"{settings.input_topic}.0.5-6~1"]
            from defi_scoring.api.app import _kafka_status

            shown = _kafka_status(settings, tmp_home)["last_offset_reset"]  # what /health shows
            assert shown["topic"] == settings.input_topic and shown["cursor"] == 30 and shown["end"] == 5
            ranges, _, resets = client.plan_ranges(settings, {settings.input_topic: {"0": 99}})
            assert "end offset 7 is below the cursor 99" in resets[0].describe() and ranges[0].start == 0


def test_offset_range_keys_carry_the_epoch_after_a_reset():
    assert OffsetRange.parse("t.x.0.5-9~2") == OffsetRange("t.x", 0, 5, 9, 2)
    assert OffsetRange("t", 1, 0, 4, 3).key == "t.1.0-4~3" and OffsetRange("t", 1, 0, 4).key == "t.1.0-4"


def _eventually(condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.5)
    return False


class _SwitchableProxy:
    """A TCP proxy in front of PostgreSQL that can refuse connections for a while (and cut the open
    ones), as a database restart or failover looks to its clients."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target, self.port = target, free_port()
        self.listener: socket.socket | None = None
        self.open: list[socket.socket] = []

    def on(self) -> None:
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", self.port))
        self.listener.listen(64)
        threading.Thread(target=self._accept, args=(self.listener,), daemon=True).start()

    def off(self) -> None:
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in accept()
        self.listener.close()
        for conn in self.open:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
                conn.close()
        self.open.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client_side, _ = listener.accept()
            except OSError:
                return
            server_side = socket.create_connection(self.target)
            self.open += [client_side, server_side]
            for a, b in ((client_side, server_side), (server_side, client_side)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)


@pytest.fixture
def outage_database():
    """A fresh PostgreSQL database on the local server (skipped where there is none)."""
    admin_url = os.environ.get("DEFI_SCORING_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
    name = f"outage_{uuid.uuid4().hex[:8]}"
    try:
        admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3})
        with admin.connect() as conn:
            conn.execute(sa.text(f"CREATE DATABASE {name}"))
    except sa.exc.OperationalError as exc:
        from defi_scoring_tests.test_score_store import REQUIRE_POSTGRES

        (pytest.fail if REQUIRE_POSTGRES else pytest.skip)(f"PostgreSQL not reachable at {admin_url}: {exc}")
    url = sa.engine.make_url(admin_url)
    yield url, name
    with admin.connect() as conn:
        conn.execute(sa.text(f"DROP DATABASE {name} WITH (FORCE)"))
    admin.dispose()


def test_a_30s_store_outage_mid_stream_is_waited_out_and_every_message_answered_once(
    kafka_env, tmp_home, monkeypatch, outage_database
):
    settings = kafka_env
    url, name = outage_database
    proxy = _SwitchableProxy((url.host or "127.0.0.1", url.port or 5432))
    proxy.on()
    through_proxy = url.set(host="127.0.0.1", port=proxy.port, database=name).render_as_string(hide_password=False)
    monkeypatch.setenv("DEFI_SCORING_STORE_URL", through_proxy)
    defs = build_definitions(Settings(home=tmp_home))
    first = [orjson.dumps(m) for m in iter_messages(generate_wallets(20, seed=41))]
    second = [orjson.dumps(m) for m in iter_messages(generate_wallets(20, seed=42))]
    api, api_client = start_api({"DEFI_SCORING_HOME": str(tmp_home), "DEFI_SCORING_STORE_URL": through_proxy})

    def store_health() -> str:
        return api_client.get("/health").json()["components"]["store"]["status"]

    try:
        with dg.instance_for_test() as instance:
            _produce(settings, first)
            assert all(run.success for run in _run_sensor_and_jobs(defs, instance)[1])
            assert store_health() == "ok"
            proxy.off()  # the database goes away mid-stream …
            _produce(settings, second)
            threading.Timer(30, proxy.on).start()  # … for 30 s
            assert _eventually(lambda: store_health() in ("error", "slow"), 10)  # the API shows it meanwhile
            started = time.monotonic()
            _, runs = _run_sensor_and_jobs(defs, instance)
            waited = time.monotonic() - started
            assert all(run.success for run in runs) and waited >= 20, waited
            logged = [entry.user_message for entry in instance.all_logs(runs[0].run_id)]
            assert any("score store unreachable" in m and "trying again" in m for m in logged)  # the run says why
            assert _eventually(lambda: store_health() == "ok", 15)  # and recovers without a restart
    finally:
        stop_api(api)
        proxy.off()
    answered = _drain(settings, settings.success_topic) + _drain(settings, settings.failure_topic)
    expected = sorted(orjson.loads(m)["wallet_address"] for m in first + second)
    assert sorted(k for k, _ in answered) == expected  # every message once
    direct = url.set(database=name).render_as_string(hide_password=False)
    engine = sa.create_engine(direct)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM score_events")).scalar() == len(expected)
    engine.dispose()


def test_broker_down_and_back_with_its_data_the_sensor_continues_where_it_was(tmp_home, monkeypatch):
    """A broker that keeps its data (any real Kafka) and is unavailable for a while: the sensor says so,
    keeps its cursor, and continues at the next offset when it is back; nothing lost, nothing twice.
    The broker process is frozen (SIGSTOP) and thawed, since the embedded broker only keeps data in memory."""
    with EmbeddedBroker() as own:
        suffix = uuid.uuid4().hex[:8]
        for key, value in {
            "KAFKA_BOOTSTRAP_SERVERS": own.bootstrap_servers,
            "KAFKA_INPUT_TOPIC": f"in-{suffix}",
            "KAFKA_SUCCESS_TOPIC": f"ok-{suffix}",
            "KAFKA_FAILURE_TOPIC": f"fail-{suffix}",
            "KAFKA_ALERTS_TOPIC": f"alerts-{suffix}",
        }.items():
            monkeypatch.setenv(key, value)
        settings = KafkaSettings.from_env()
        client.ensure_topics(settings, [settings.input_topic, *settings.output_topics])
        first = [orjson.dumps(m) for m in iter_messages(generate_wallets(20, seed=51))]
        second = [orjson.dumps(m) for m in iter_messages(generate_wallets(15, seed=52))]
        _produce(settings, first)
        defs = build_definitions(Settings(home=tmp_home))
        with dg.instance_for_test() as instance:
            assert all(run.success for run in _run_sensor_and_jobs(defs, instance)[1])
            os.kill(own.process.pid, signal.SIGSTOP)
            try:
                down, runs = _run_sensor_and_jobs(defs, instance)
                assert isinstance(down, dg.SkipReason) and "not reachable" in down.skip_message and runs == []
            finally:
                os.kill(own.process.pid, signal.SIGCONT)
            _produce(settings, second)
            result, runs = _run_sensor_and_jobs(defs, instance)
            assert [r.run_key for r in result.run_requests] == [f"{settings.input_topic}.0.20-34"]
            assert all(run.success for run in runs)
        answered = _drain(settings, settings.success_topic) + _drain(settings, settings.failure_topic)
        assert sorted(k for k, _ in answered) == sorted(orjson.loads(m)["wallet_address"] for m in first + second)
