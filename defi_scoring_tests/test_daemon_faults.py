"""Faults on the deployed streaming path: the stock `dagster-daemon` with the shipped dagster.yaml (warm
run launcher, run monitoring, run retries), a real broker, real SQLite stores, processes killed for real."""

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import dagster as dg
import orjson
import pytest
import sqlalchemy as sa
from dagster import DagsterInstance, DagsterRunStatus, RunsFilter

from defi_scoring.assets.partitions import transaction_batch_partitions
from defi_scoring.config import Settings, ensure_dagster_home
from defi_scoring.core.synthetic import generate_wallets, iter_messages, write_dataset
from defi_scoring.definitions import build_definitions
from defi_scoring.run_launcher import PID_TAG
from defi_scoring.streaming.broker import EmbeddedBroker
from defi_scoring.streaming.client import ensure_topics, producer, read_topic
from defi_scoring.streaming.settings import KafkaSettings

DAEMON = Path(sys.executable).parent / "dagster-daemon"


@pytest.fixture
def deployment(tmp_path, monkeypatch):
    """A fresh data home with the shipped instance configuration and a broker with empty topics."""
    monkeypatch.setenv("DEFI_SCORING_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home" / "dagster"))
    ensure_dagster_home(Settings.from_env())
    # Create the instance's SQLite storages here, before any daemon starts: a daemon and this process
    # creating a fresh home at once can both stamp Dagster's own alembic_version ("more than one head").
    with DagsterInstance.get():
        pass
    with EmbeddedBroker(log_path=tmp_path / "broker.log") as broker:
        monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", broker.bootstrap_servers)
        kafka = KafkaSettings.from_env()
        ensure_topics(kafka, [kafka.input_topic])
        ensure_topics(kafka, kafka.output_topics)
        yield kafka, tmp_path


def _produce(kafka: KafkaSettings, lines: list[bytes]) -> None:
    sender = producer(kafka)
    for line in lines:
        sender.send(kafka.input_topic, key=orjson.loads(line)["wallet_address"].encode(), value=line)
    sender.flush()
    sender.close()


def _start_daemon(log: Path, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [str(DAEMON), "run", "-m", "defi_scoring.definitions"],
        env={**os.environ, **(env or {})},
        stdout=open(log, "wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _stop(daemon: subprocess.Popen) -> None:
    os.killpg(daemon.pid, signal.SIGTERM)
    daemon.wait(timeout=60)


def _wait_for(condition, timeout: float, what: str, log: Path):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    with DagsterInstance.get() as instance:
        runs = [
            (r.run_id[:8], r.status.value, r.tags.get("dagster/retry_number"), r.tags.get(PID_TAG))
            for r in _range_runs(instance)
        ]
    # the whole log is kept next to the test's files; the lines about runs say what monitoring and retries did
    about_runs = [line for line in log.read_text().splitlines() if "Sensor" not in line and "AssetDaemon" not in line]
    raise AssertionError(
        f"timed out waiting for {what}; range runs {runs}; daemon log ({log}):\n" + "\n".join(about_runs[-60:])
    )


def _range_runs(instance: DagsterInstance) -> list:
    return instance.get_runs(RunsFilter(job_name="kafka_scoring"))


def test_a_run_killed_mid_range_is_retried_and_every_message_answered_once(deployment):
    kafka, tmp_path = deployment
    lines = [orjson.dumps(m) for m in iter_messages(generate_wallets(3000, seed=21))]  # whole histories: a long run
    _produce(kafka, lines)
    log = tmp_path / "daemon.log"
    daemon = _start_daemon(log)
    try:
        with DagsterInstance.get() as instance:

            def started_run():
                runs = [r for r in _range_runs(instance) if r.status == DagsterRunStatus.STARTED and PID_TAG in r.tags]
                return runs[0] if runs else None

            run = _wait_for(started_run, 180, "a started range run", log)
            os.kill(int(run.tags[PID_TAG]), signal.SIGKILL)

            def retried_and_done():
                runs = _range_runs(instance)
                return len(runs) >= 2 and any(r.status == DagsterRunStatus.SUCCESS for r in runs)

            _wait_for(retried_and_done, 300, "the retried run's success", log)
            failed = instance.get_run_by_id(run.run_id)
            assert failed.status == DagsterRunStatus.FAILURE
            retry = next(r for r in _range_runs(instance) if r.status == DagsterRunStatus.SUCCESS)
            assert retry.tags["dagster/retry_number"] == "1" and retry.tags["kafka/range"] == run.tags["kafka/range"]
    finally:
        _stop(daemon)
    outputs = read_topic(kafka, kafka.success_topic) + read_topic(kafka, kafka.failure_topic)
    assert {r.key for r in outputs} == {orjson.loads(line)["wallet_address"].encode() for line in lines}
    assert len({(r.key, r.value) for r in outputs}) == len(lines)  # one answer each (a replay repeats bytes)
    engine = sa.create_engine(Settings.from_env().store_url)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM score_events")).scalar() == len(lines)
        assert conn.execute(sa.text("SELECT count(*) FROM processed_ranges")).scalar() == 1


def test_a_range_that_fails_every_retry_is_answered_on_the_failure_topic(deployment):
    kafka, tmp_path = deployment
    lines = [orjson.dumps(m) for m in iter_messages(generate_wallets(20, seed=22))]
    _produce(kafka, lines)
    log = tmp_path / "daemon.log"
    unreachable = "postgresql+psycopg://nobody@127.0.0.1:9/nothing"  # every run fails to reach its store
    daemon = _start_daemon(log, {"DEFI_SCORING_STORE_URL": unreachable, "DEFI_SCORING_STORE_WAIT_SECONDS": "1"})
    try:

        def all_failed():
            records = read_topic(kafka, kafka.failure_topic, idle_ms=300)
            return records if len(records) >= len(lines) else None

        failures = _wait_for(
            all_failed,
            240,
            "failure records for the whole range",
            log,
        )
        with DagsterInstance.get() as instance:
            runs = _range_runs(instance)
    finally:
        _stop(daemon)
    assert len(runs) == 3 and all(r.status == DagsterRunStatus.FAILURE for r in runs)  # 1 + 2 retries
    assert read_topic(kafka, kafka.success_topic) == []
    assert len(failures) == len(lines)
    assert {r.key for r in failures} == {orjson.loads(line)["wallet_address"].encode() for line in lines}
    error = orjson.loads(failures[0].value)["error"]
    assert error.startswith("Processing failed: offset") and "could not be scored" in error


DAGSTER = DAEMON.parent / "dagster"
LAUNCH_TRAINING = [str(DAGSTER), "job", "launch", "-j", "train_model", "-m", "defi_scoring.definitions"]
TRAIN_OPS = ("training_set", "ensemble_model", "champion_model", "ensemble_model_challenger_beats_champion")
SMALL_ENSEMBLE = """
registered_model_name: defi-wallet-risk
members:
  - {name: xgboost, kind: xgboost, weight: 1.0, params: {n_estimators: 20, max_depth: 3, random_state: 42}}
  - {name: lightgbm, kind: lightgbm, weight: 1.0, params: {n_estimators: 20, num_leaves: 7, verbose: -1}}
"""


def test_range_runs_forked_from_the_worker_score_with_its_preloaded_champion(deployment):
    """The warm worker loads the champion before it forks runs; OpenMP state left by that load once
    made every forked run wait forever in the champion's predict (run_worker.RUN_OMP_ENV)."""
    kafka, tmp_path = deployment
    settings = Settings.from_env()
    write_dataset(
        generate_wallets(600, seed=23),
        settings.landing_dir / "b.jsonl",
        settings.home / "labels" / "labels.csv",
        seed=23,
    )
    (tmp_path / "ensemble.yaml").write_text(SMALL_ENSEMBLE)
    config = {"ensemble_config_path": str(tmp_path / "ensemble.yaml")}
    defs = build_definitions(settings)
    with DagsterInstance.get() as instance:
        instance.add_dynamic_partitions(transaction_batch_partitions.name, ["b"])
        assert defs.resolve_job_def("ingest_batch").execute_in_process(instance=instance, partition_key="b").success
        trained = defs.resolve_job_def("train_model").execute_in_process(
            instance=instance,
            run_config={
                "ops": {
                    op: {"config": config}
                    for op in (
                        "training_set",
                        "ensemble_model",
                        "champion_model",
                        "ensemble_model_challenger_beats_champion",
                    )
                }
            },
        )
        assert trained.success
    lines = [orjson.dumps(m) for m in iter_messages(generate_wallets(40, seed=24))]
    _produce(kafka, lines)
    log = tmp_path / "daemon.log"
    daemon = _start_daemon(log)
    try:
        answered = lambda: len(read_topic(kafka, kafka.success_topic, idle_ms=300)) >= len(lines)
        _wait_for(answered, 240, f"{len(lines)} answers scored with the champion", log)
        # retraining through the same worker (forked after its champion load) trains with OpenMP too
        run_id = str(uuid.uuid4())
        run_config = json.dumps({"ops": {op: {"config": config} for op in TRAIN_OPS}})
        subprocess.run(
            [*LAUNCH_TRAINING, "--run-id", run_id, "--config-json", run_config],
            check=True,
            capture_output=True,
            timeout=120,
        )  # queued; the daemon launches it with the warm launcher
        with DagsterInstance.get() as instance:
            finished = lambda: instance.get_run_by_id(run_id).is_finished
            _wait_for(finished, 240, "the retraining run to finish", log)
            trained_again = instance.get_latest_materialization_event(dg.AssetKey("ensemble_model"))
            assert trained_again is not None and trained_again.run_id == run_id
    finally:
        _stop(daemon)
    messages = [orjson.loads(r.value) for r in read_topic(kafka, kafka.success_topic)]
    assert len(messages) == len(lines)
    assert {m["ml"]["available"] for m in messages} == {True}
    assert {m["model_version"] for m in messages} == {"1"}
