"""One wallet, one score: the same transactions through every door (batch asset, Dask job, stream,
API, file) give the same scores, patterns and alerts; the API appends to the stored history."""

from pathlib import Path

import dagster as dg
import numpy as np
import orjson
import pytest
from fastapi.testclient import TestClient

from defi_scoring.api.app import create_app
from defi_scoring.assets.partitions import transaction_batch_partitions
from defi_scoring.config import Settings
from defi_scoring.core.batch_scoring import score_raw_messages
from defi_scoring.core.synthetic import generate_wallets, iter_messages
from defi_scoring.core.synthetic_messages import split_newest
from defi_scoring.definitions import build_definitions
from defi_scoring.score_store import ScoreStore
from defi_scoring_tests import test_streaming as streaming
from defi_scoring_tests.conftest import dex_message, swap

# the real broker and its per-test topics, as the streaming tests have them
broker, kafka_env, _reset_cursor = streaming.broker, streaming.kafka_env, streaming._reset_cursor
_drain, _produce, _run_sensor_and_jobs = streaming._drain, streaming._produce, streaming._run_sensor_and_jobs

# Everything a consumer reads about a wallet's score (processing_time_ms is the only field left out).
COMPARED = (
    "zscore",
    "timestamp",
    "categories",
    "activity",
    "tags",
    "hybrid_score",
    "confidence",
    "risk_level",
    "breakdown",
    "ml",
    "reasons",
    "patterns",
    "alerts",
    "recommendations",
)


def _comparable(message: dict) -> dict:
    """The compared fields; `ml.note` says why no model scored (no model store given to the file door,
    no champion registered in a data home's store) and is left out: the model fields themselves stay."""
    fields = {k: message.get(k) for k in COMPARED}
    fields["ml"] = {k: v for k, v in (fields["ml"] or {}).items() if k != "note"}
    return fields


def _by_wallet(messages) -> dict[str, dict]:
    return {m["wallet_address"].lower(): _comparable(m) for m in messages if "zscore" in m}


@pytest.fixture(scope="module")
def population():
    """300 generated wallets: sybil farms, pump-and-dump groups and rug pulls among ordinary ones."""
    data = generate_wallets(300, seed=21)
    lines = [orjson.dumps(m) for m in iter_messages(data)]
    return data, lines


def _stored_messages(home: Path) -> dict[str, dict]:
    store = ScoreStore(Settings(home=home).store_url)
    with store.engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT message FROM wallet_scores").all()
    return _by_wallet(orjson.loads(r[0]) for r in rows)


def _batch_door(home: Path, lines: list[bytes], engine: str) -> dict[str, dict]:
    (home / "landing").mkdir(parents=True, exist_ok=True)
    (home / "landing" / "population.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    defs = build_definitions(Settings(home=home))
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(transaction_batch_partitions.name, ["population"])
        assert defs.resolve_job_def("ingest_batch").execute_in_process(instance=instance, partition_key="population")
        ops = {"scored_wallets": {"config": {"engine": engine}}, "wallet_features": {"config": {"engine": engine}}}
        run = defs.resolve_job_def("score_wallets").execute_in_process(instance=instance, run_config={"ops": ops})
        assert run.success
    return _stored_messages(home)


def test_every_door_gives_the_same_scores(population, tmp_path, kafka_env, tmp_home, monkeypatch):
    """Batch asset (local and Dask engines, real Dagster), API (one batch request), stream (real broker,
    real sensor run, one range) and `score FILE` (no store) over the same 300 wallets, each door on a
    fresh data home: every wallet's message is the same, field for field."""
    _, lines = population
    file_door = _by_wallet(score_raw_messages(lines).messages())
    assert len(file_door) >= 290
    flagged = {p["pattern"] for m in file_door.values() for p in m["patterns"]}
    assert {"sybil_cluster", "pump_and_dump"} <= flagged  # the cross-wallet signals are exercised

    doors = {"batch asset": _batch_door(tmp_path / "batch", lines, "local")}
    doors["dask job"] = _batch_door(tmp_path / "dask", lines, "dask")

    api_home = tmp_path / "api"
    with TestClient(create_app(Settings(home=api_home))) as client:
        answer = client.post("/api/v1/score/batch", content=b"[" + b",".join(lines) + b"]")
        assert answer.status_code == 200
        doors["api"] = _by_wallet(answer.json())
    assert _stored_messages(api_home) == doors["api"]

    monkeypatch.setenv("KAFKA_MAX_RANGE_MESSAGES", "1000")  # one range: the population arrives at once
    _produce(kafka_env, lines)
    with dg.instance_for_test() as instance:
        _, runs = _run_sensor_and_jobs(build_definitions(Settings(home=tmp_home)), instance)
        assert runs and all(r.success for r in runs)
    doors["stream"] = _by_wallet(orjson.loads(v) for _, v in _drain(kafka_env, kafka_env.success_topic))

    for door, scores in doors.items():
        assert scores.keys() == file_door.keys(), door
        differing = [w for w in file_door if scores[w] != file_door[w]]
        assert not differing, f"{door}: {len(differing)} wallets differ from the file door, e.g. {differing[:3]}"


def _farm(members: int = 20, start: int = 1_703_980_800) -> list[dict]:
    """A hand-built sybil farm: every member replays one 6-step (action, pool) sequence, starting
    within the same hour, with small jitter in time and amounts."""
    pools = [f"0x{k:040x}" for k in (11, 12, 13)]
    messages = []
    for m in range(members):
        wallet = f"0x{0xFA4E0000 + m:040x}"
        t0 = start + 97 * m
        txs = [
            swap(f"farm-{m}-{i}", ts=t0 + 3_600 * i + m, usd_in=300.0 + m, usd_out=299.0, pool=pools[i % 3])
            for i in range(6)
        ]
        messages.append(dex_message(txs, wallet))
    return messages


def test_a_sybil_farm_arriving_in_20_ranges_is_flagged_on_every_member(kafka_env, tmp_home, monkeypatch):
    """One member per offset range (real broker, real sensor runs): each range appends to the stored
    population, and the earlier members are scored again when the farm grows around them."""
    monkeypatch.setenv("KAFKA_MAX_RANGE_MESSAGES", "1")
    farm = _farm()
    _produce(kafka_env, [orjson.dumps(m) for m in farm])
    with dg.instance_for_test() as instance:
        _, runs = _run_sensor_and_jobs(build_definitions(Settings(home=tmp_home)), instance)
        assert len(runs) == 20 and all(r.success for r in runs)
    latest = _stored_messages(tmp_home)
    members = [m["wallet_address"].lower() for m in farm]
    assert set(members) <= latest.keys()
    unflagged = [w for w in members if "sybil_cluster" not in {p["pattern"] for p in latest[w]["patterns"]}]
    assert not unflagged, f"{len(unflagged)} of 20 members not flagged, e.g. {unflagged[:2]}"
    # one output per input record: the 20 ranges published 20 success messages, the re-scores are stored
    assert len(_drain(kafka_env, kafka_env.success_topic)) == 20
    # and alone, without the farm around it, the first member is no sybil
    (alone,) = score_raw_messages([orjson.dumps(farm[0])]).messages()
    assert "sybil_cluster" not in {p["pattern"] for p in alone["patterns"]}


def _wallet_with_history(n: int = 200) -> tuple[dict, dict]:
    """(a message of n stored swaps over ~50 days, a message of one new swap a day later)."""
    start = 1_700_000_000
    pools = [f"0x{k:040x}" for k in (21, 22, 23, 24)]
    stored = [
        swap(f"hist-{i}", ts=start + 21_600 * i, usd_in=50.0 + i, usd_out=49.0 + i, pool=pools[i % 4]) for i in range(n)
    ]
    new = swap("new-1", ts=start + 21_600 * n + 86_400, usd_in=5_000.0, usd_out=4_990.0, pool=pools[0])
    return dex_message(stored), dex_message([new])


def _field_state(store: ScoreStore, wallet: str) -> tuple:
    """What a write would change: the wallet's stored transactions, its latest score, every event."""
    history = store.wallet_history([wallet])
    with store.engine.connect() as conn:
        events = conn.exec_driver_sql("SELECT count(*) FROM score_events").scalar()
        latest = conn.exec_driver_sql("SELECT message FROM wallet_scores WHERE wallet = ?", (wallet,)).scalar()
    return len(history), events, latest


def test_posting_one_new_transaction_scores_the_full_stored_history(tmp_path):
    """A wallet with 200 stored transactions: POSTing one new one answers what landing it as a batch
    gives (batch asset, same stored state); ?persist=false answers the same and writes nothing."""
    stored, new = _wallet_with_history()
    wallet = stored["wallet_address"].lower()

    landed_home = tmp_path / "landed"
    (landed_home / "landing").mkdir(parents=True)
    defs = build_definitions(Settings(home=landed_home))
    with dg.instance_for_test() as instance:
        for key, message in (("first", stored), ("second", new)):
            (landed_home / "landing" / f"{key}.jsonl").write_bytes(orjson.dumps(message) + b"\n")
            instance.add_dynamic_partitions(transaction_batch_partitions.name, [key])
            assert defs.resolve_job_def("ingest_batch").execute_in_process(instance=instance, partition_key=key)
            assert defs.resolve_job_def("score_wallets").execute_in_process(instance=instance)
    landed = _stored_messages(landed_home)[wallet]

    api_home = tmp_path / "api"
    with TestClient(create_app(Settings(home=api_home))) as client:
        assert client.post("/api/v1/score", content=orjson.dumps(stored)).status_code == 200
        store = ScoreStore(Settings(home=api_home).store_url)
        before = _field_state(store, wallet)
        assert before[0] == 200
        what_if = client.post("/api/v1/score?persist=false", content=orjson.dumps(new))
        assert what_if.status_code == 200
        assert _field_state(store, wallet) == before  # nothing written
        posted = client.post("/api/v1/score", content=orjson.dumps(new))
        assert posted.status_code == 200
        assert _field_state(store, wallet)[0] == 201
    answer = _by_wallet([posted.json()])[wallet]
    assert answer == landed
    assert _by_wallet([what_if.json()])[wallet] == answer
    assert answer["categories"][1]["transaction_count"] == 201  # scored on the full history
    assert answer["risk_level"] != "insufficient_history"
    # the body alone (no stored history) is another wallet entirely: one swap
    (alone,) = score_raw_messages([orjson.dumps(new)]).messages()
    assert alone["categories"][1]["transaction_count"] == 1


def test_forty_wallets_posted_concurrently_or_one_by_one_get_the_same_answers(population, tmp_path):
    """40 callers at once (the dynamic batcher scores them in shared windows) and then one by one:
    the same answers, as what-ifs (?persist=false) against a stored population and as appends of
    transactions already stored."""
    from concurrent.futures import ThreadPoolExecutor

    from defi_scoring_tests.conftest import start_api, stop_api

    data, lines = population
    messages = [orjson.loads(line) for line in lines]
    sybils = set(data.wallets.loc[data.wallets["cluster_id"] >= 0, "wallet_address"])
    rng = np.random.default_rng(4)
    halves = [split_newest(m, rng) for m in messages]
    older = [orjson.dumps(o) for o, _ in halves if o is not None]
    home = tmp_path / "home"
    process, client = start_api({"DEFI_SCORING_HOME": str(home)})
    try:
        assert client.post("/api/v1/score/batch", content=b"[" + b",".join(older) + b"]").status_code == 200
        farm_members = [i for i, m in enumerate(messages) if m["wallet_address"] in sybils]
        assert len(farm_members) >= 10
        picked = (farm_members + [i for i in range(len(messages)) if i not in farm_members])[:40]
        bodies = [orjson.dumps(halves[i][1]) for i in picked]

        def answers(path: str, together: bool) -> list[dict]:
            post = lambda body: client.post(path, content=body).json()
            if not together:
                return [post(b) for b in bodies]
            with ThreadPoolExecutor(40) as pool:
                return list(pool.map(post, bodies))

        for path in ("/api/v1/score?persist=false", "/api/v1/score"):
            if path == "/api/v1/score":  # appends: stored first, so both rounds post what is stored
                assert all(client.post(path, content=b).status_code == 200 for b in bodies)
            together = [_by_wallet([a]) for a in answers(path, together=True)]
            alone = [_by_wallet([a]) for a in answers(path, together=False)]
            assert all(together), "every caller got a score"
            differing = [i for i, (a, b) in enumerate(zip(together, alone)) if a != b]
            assert not differing, f"{path}: {len(differing)} of 40 answers differ, e.g. {bodies[differing[0]][:80]!r}"
    finally:
        stop_api(process)
