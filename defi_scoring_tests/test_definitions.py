"""Real Dagster execution: load the Definitions, run the landing sensor, materialise the graph."""

import os
import time

import dagster as dg
import orjson
import pandas as pd

from defi_scoring.assets.partitions import transaction_batch_partitions
from defi_scoring.config import Settings
from defi_scoring.core.synthetic import generate_wallets, write_dataset
from defi_scoring.definitions import build_definitions
from defi_scoring.resources.parquet_io import DataHomeIOManager
from defi_scoring.score_store import ScoreStore
from defi_scoring_tests.conftest import DAY, DEPOSIT_TIME, example_message


def _land(home, name, lines, age_s: float = 60):
    """A landing file written `age_s` seconds ago (the sensor takes files that have settled)."""
    landing = home / "landing"
    landing.mkdir(parents=True, exist_ok=True)
    path = landing / f"{name}.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    os.utime(path, (time.time() - age_s, time.time() - age_s))
    return path


def test_definitions_load_with_every_asset_job_and_sensor(tmp_home):
    defs = build_definitions(Settings(home=tmp_home))
    keys = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
    assert keys == {
        "transaction_batches",
        "wallet_features",
        "reference_scores",
        "scored_wallets",
        "training_set",
        "ensemble_model",
        "champion_model",
        "model_evaluation",
        "kafka_scored_ranges",
        "daily_wallet_scores",
        "known_addresses",
        "exposure_rescoring",
    }
    jobs = (
        "ingest_batch",
        "score_wallets",
        "train_model",
        "kafka_scoring",
        "daily_rescoring",
        "import_known_addresses",
    )
    for job in jobs:
        assert defs.resolve_job_def(job)
    assert defs.resolve_sensor_def("kafka_scoring_sensor")
    assert defs.resolve_sensor_def("known_addresses_sensor")
    assert defs.resolve_schedule_def("weekly_retraining").cron_schedule == "0 3 * * 1"
    assert defs.resolve_sensor_def("landing_folder_sensor")
    io_manager = defs.resources["io_manager"]  # asset values as Parquet/JSON under the data home's tables/
    assert isinstance(io_manager, DataHomeIOManager) and io_manager.data_home is defs.resources["data_home"]


def test_landing_sensor_adds_a_partition_and_a_run_per_new_file(tmp_home):
    defs = build_definitions(Settings(home=tmp_home))
    _land(tmp_home, "batch-a", [orjson.dumps(example_message())])
    _land(tmp_home, "batch b", [orjson.dumps(example_message())])  # space: renamed to a safe key
    sensor = defs.resolve_sensor_def("landing_folder_sensor")
    with dg.instance_for_test() as instance:
        result = sensor(
            dg.build_sensor_context(instance=instance, resources={"data_home": defs.resources["data_home"]})
        )
        assert sorted(r.partition_key for r in result.run_requests) == ["batch-a", "batch_b"]
        assert sorted(r.run_key for r in result.run_requests) == ["batch-a", "batch_b"]
        (add,) = result.dynamic_partitions_requests
        assert sorted(add.partition_keys) == ["batch-a", "batch_b"]
        assert (tmp_home / "landing" / "batch_b.jsonl").exists()
        instance.add_dynamic_partitions(transaction_batch_partitions.name, ["batch-a", "batch_b"])
        again = sensor(dg.build_sensor_context(instance=instance, resources={"data_home": defs.resources["data_home"]}))
        assert isinstance(again, dg.SkipReason) and again.skip_message == "no new batch"


def test_landing_sensor_waits_for_writes_rejects_non_batches_and_never_overwrites(tmp_home):
    defs = build_definitions(Settings(home=tmp_home))
    line = orjson.dumps(example_message())
    _land(tmp_home, "growing", [line], age_s=0)  # still being written
    _land(tmp_home, "a b", [line])  # both become key "a_b": neither may overwrite the other
    _land(tmp_home, "a_b", [line])
    empty = _land(tmp_home, "empty", [])
    empty.write_bytes(b"")
    os.utime(empty, (time.time() - 60, time.time() - 60))
    _land(tmp_home, "binary", [b"\x00\x01\x02PK"])
    _land(tmp_home, ".hidden", [line])
    (tmp_home / "landing" / "partial.jsonl.part").write_bytes(line)
    sensor = defs.resolve_sensor_def("landing_folder_sensor")
    resources = {"data_home": defs.resources["data_home"]}
    with dg.instance_for_test() as instance:
        result = sensor(dg.build_sensor_context(instance=instance, resources=resources))
        assert sorted(r.partition_key for r in result.run_requests) == ["a_b", "a_b-2"]
        landing = tmp_home / "landing"
        assert sorted(p.name for p in landing.glob("a_b*.jsonl")) == ["a_b-2.jsonl", "a_b.jsonl"]
        rejected = landing / "rejected"
        assert "empty file" in (rejected / "empty.jsonl.reason.txt").read_text()
        assert "binary file" in (rejected / "binary.jsonl.reason.txt").read_text()
        assert (landing / "growing.jsonl").exists() and (landing / ".hidden.jsonl").exists()

        instance.add_dynamic_partitions(transaction_batch_partitions.name, ["a_b", "a_b-2"])
        waiting = sensor(dg.build_sensor_context(instance=instance, resources=resources))
        assert isinstance(waiting, dg.SkipReason) and "1 still being written" in waiting.skip_message
        os.utime(landing / "growing.jsonl", (time.time() - 60, time.time() - 60))  # the writer finished
        settled = sensor(dg.build_sensor_context(instance=instance, resources=resources))
        assert [r.partition_key for r in settled.run_requests] == ["growing"]


def test_materialise_the_asset_graph_on_a_temporary_instance(tmp_home):
    defs = build_definitions(Settings(home=tmp_home))
    data = generate_wallets(200, seed=3)
    write_dataset(data, tmp_home / "landing" / "synthetic.jsonl", bad_fraction=0.05, seed=3)
    _land(tmp_home, "worked-example", [orjson.dumps(example_message()), b"{broken"])
    as_of = DEPOSIT_TIME + 30 * DAY
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(transaction_batch_partitions.name, ["synthetic", "worked-example"])
        for key in ("synthetic", "worked-example"):
            result = defs.resolve_job_def("ingest_batch").execute_in_process(instance=instance, partition_key=key)
            assert result.success
        meta = result.asset_materializations_for_node("transaction_batches")[0].metadata
        assert meta["messages"].value == 2 and meta["rejected_messages"].value == 1
        scored = defs.resolve_job_def("score_wallets").execute_in_process(
            instance=instance,
            run_config={
                "ops": {"wallet_features": {"config": {"as_of": as_of}}, "scored_wallets": {"config": {"as_of": as_of}}}
            },
        )
        assert scored.success
        score_meta = scored.asset_materializations_for_node("reference_scores")[0].metadata
        assert "| zscore | wallets |" in score_meta["zscore_distribution"].value
        materialised = instance.get_latest_materialization_event(dg.AssetKey("reference_scores"))
        assert materialised is not None
        hybrid_meta = scored.asset_materializations_for_node("scored_wallets")[0].metadata
        assert "| risk level | wallets |" in hybrid_meta["risk_levels"].value
        assert hybrid_meta["model_version"].value == "none"
        assert "ML analysis unavailable" in hybrid_meta["model_note"].value
        assert hybrid_meta["path"].value == str(tmp_home / "tables" / "scored_wallets.parquet")  # by the IO manager
        (matches,) = [e for e in scored.get_asset_check_evaluations() if e.check_name == "zscore_matches_reference"]
        assert matches.passed and matches.metadata["compared_wallets"].value == hybrid_meta["wallets"].value

    scores = pd.read_parquet(tmp_home / "tables" / "reference_scores.parquet")
    assert len(scores) == 200 - 0 + 1 - _rejected_synthetic_wallets(tmp_home)
    example = scores.loc["0x742d35cc6634c0532925a3b8d4c9db96590e4265"]
    assert f"{example['zscore']:.18f}" == "308.000000000000000000"
    hybrid = pd.read_parquet(tmp_home / "tables" / "scored_wallets.parquet")
    assert hybrid.index.equals(scores.index)
    assert hybrid["hybrid_score"].between(0, 100).all() and hybrid["risk_level"].notna().all()
    assert f"{hybrid.loc[example.name, 'zscore']:.18f}" == "308.000000000000000000"
    # the asset also wrote every wallet's success message to the score store the API serves
    store = ScoreStore(Settings(home=tmp_home).store_url)
    assert store.stats()["successful_processed"] == len(hybrid)
    stored = store.wallet(example.name)["latest"]
    assert stored["zscore"] == "308.000000000000000000" and stored["wallet_address"] == example.name
    assert stored["hybrid_score"] == round(float(hybrid.loc[example.name, "hybrid_score"]), 2)
    assert set(stored["breakdown"]) == {
        "liquidity_provision",
        "trading",
        "transfer_behaviour",
        "lending_behaviour",
        "longevity_consistency",
        "integrity",
    }
    rejections = pd.read_parquet(tmp_home / "batches" / "synthetic" / "rejections.parquet")
    assert len(rejections) > 0 and rejections["error"].str.startswith("Processing failed").all()


def _rejected_synthetic_wallets(home) -> int:
    """Synthetic wallets with no scoreable message (their only message was corrupted)."""
    return len(pd.read_parquet(home / "batches" / "synthetic" / "rejections.parquet"))


def test_workspace_yaml_and_dg_both_load_the_code_location(tmp_home):
    import subprocess
    import sys
    from pathlib import Path

    bin_dir = Path(sys.executable).parent
    root = Path(__file__).resolve().parents[1]
    validate = subprocess.run(
        [str(bin_dir / "dagster"), "definitions", "validate", "-w", "workspace.yaml"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert validate.returncode == 0, validate.stderr
    assert "All code locations passed validation" in validate.stderr + validate.stdout
    listed = subprocess.run(
        [str(bin_dir / "dg"), "list", "defs"], cwd=root, capture_output=True, text=True, timeout=300
    )
    assert listed.returncode == 0, listed.stderr
    for name in ("transaction_batches", "wallet_features", "reference_scores", "landing_folder_sensor"):
        assert name in listed.stdout


def test_default_instance_serialises_runs_of_one_kafka_partition(tmp_home):
    from defi_scoring.config import ensure_dagster_home

    path = ensure_dagster_home(Settings(home=tmp_home))
    instance = dg.DagsterInstance.from_config(str(path))
    limits = instance.run_coordinator.get_run_queue_config().tag_concurrency_limits
    assert {"key": "kafka/partition", "value": {"applyLimitPerUniqueValue": True}, "limit": 1} in limits


def test_batch_assets_score_real_transfers_messages(tmp_home, real_sample):
    lines = (real_sample / "messages.jsonl").read_bytes().splitlines()[:60]
    meta, scored = _ingest_and_score(tmp_home, "real", lines)
    assert meta["messages"].value == 60 and meta["rejected_messages"].value == 0
    wallets = {orjson.loads(line)["wallet_address"].lower() for line in lines}
    assert set(scored.index) == wallets
    assert (scored["zscore"] == 150.0).all() and scored["hybrid_score"].between(0, 100).all()
    assert (scored["transfer_count"] > 0).all()


def test_batch_assets_take_good_and_bad_transfers_and_lending_messages(tmp_home):
    from defi_scoring_tests.conftest import lending_message, lending_rows, transfer, transfers_message

    lender, sender, bad_lender, bad_sender = ("0x" + c * 40 for c in "abcd")
    messages = [
        lending_message(lending_rows(), wallet=lender),
        # one good transfer and one without a counterparty (dropped with a warning, the rest scored)
        transfers_message([transfer("t1", ts=1703980800), transfer("t2", counterparty=None)], wallet=sender),
        lending_message([{"document_id": "x", "action": "stake", "timestamp": 1703980800}], wallet=bad_lender),
        transfers_message([transfer("m", action="mint")], wallet=bad_sender),
    ]
    meta, scored = _ingest_and_score(tmp_home, "section-1b", [orjson.dumps(m) for m in messages])
    assert meta["messages"].value == 4 and meta["rejected_messages"].value == 2
    assert set(scored.index) == {lender, sender}  # the two messages without a valid row are rejected
    assert scored.loc[lender, "lending_count"] == 2 and abs(scored.loc[lender, "borrowed_usd"] - 1000) < 1e-6
    assert scored.loc[sender, "transfer_count"] == 1
    assert (scored["zscore"] == 150.0).all() and scored["hybrid_score"].between(0, 100).all()


def _ingest_and_score(home, key: str, lines: list[bytes]) -> tuple[dict, pd.DataFrame]:
    """Land `lines` as batch `key`, run `ingest_batch` and `score_wallets` in process: (the batch's
    materialisation metadata, the scored_wallets table)."""
    defs = build_definitions(Settings(home=home))
    _land(home, key, lines)
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(transaction_batch_partitions.name, [key])
        ingest = defs.resolve_job_def("ingest_batch").execute_in_process(instance=instance, partition_key=key)
        meta = ingest.asset_materializations_for_node("transaction_batches")[0].metadata
        assert defs.resolve_job_def("score_wallets").execute_in_process(instance=instance).success
    return meta, pd.read_parquet(home / "tables" / "scored_wallets.parquet")
