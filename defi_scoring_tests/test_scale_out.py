"""The Dask engine on a real LocalCluster of worker processes: the same results as one process."""

import dagster as dg
import numpy as np
import pandas as pd
import pytest
from distributed import Client, LocalCluster

from defi_scoring.assets.partitions import transaction_batch_partitions
from defi_scoring.batch_files import read_transactions
from defi_scoring.config import Settings
from defi_scoring.core.ensemble import evaluate, train_ensemble
from defi_scoring.core.ensemble_config import load_ensemble_config
from defi_scoring.core.features import reference_features
from defi_scoring.core.model_registry import CHAMPION, alias_version, configured_store
from defi_scoring.core.normalise import normalise_messages
from defi_scoring.core.reference_score import reference_scores
from defi_scoring.core.scoring_config import default_scoring_config
from defi_scoring.core.synthetic import generate_wallets, iter_messages, write_dataset
from defi_scoring.core.training import split_xy
from defi_scoring.core.wallet_scoring import score_wallet_table
from defi_scoring.definitions import build_definitions
from defi_scoring.distributed.engine import partition_batches
from defi_scoring.distributed.jobs import features_on_cluster, score_on_cluster
from defi_scoring.distributed.partitions import wallet_partition
from defi_scoring.score_store import ScoreStore


@pytest.fixture(scope="module")
def client():
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, memory_limit="3GiB", dashboard_address=None
        ) as c,
        Client(c) as client,
    ):
        yield client


@pytest.fixture(scope="module")
def landed(tmp_path_factory):
    """20,000 generated wallets (sybil farms and pump-and-dump groups included) in three batches."""
    folder = tmp_path_factory.mktemp("batches")
    data = generate_wallets(20_000, seed=11)
    messages = list(iter_messages(data))
    files = []
    for k in range(3):
        batch = normalise_messages(messages[k::3])
        (folder / f"b{k}").mkdir()
        path = folder / f"b{k}" / "transactions.parquet"
        batch.transactions.assign(batch_key=f"b{k}").to_parquet(path, index=False)
        files.append(path)
    return data, files, folder


def test_features_reference_and_hybrid_scores_on_the_cluster_equal_one_process(client, landed):
    data, files, folder = landed
    transactions = read_transactions(files)
    as_of = int(transactions["timestamp"].max())
    local = score_wallet_table(transactions, as_of).table

    batches = partition_batches(client, files, folder / "work", partition_rows=50_000)
    assert batches.partitions >= 4
    features_on_cluster(client, batches, as_of, folder / "features.parquet")
    store_url = f"sqlite:///{folder / 'scores.db'}"  # the Dask door appends to a store, then scores from it
    parts = score_on_cluster(
        client, batches, as_of, default_scoring_config(), None, folder / "scored.parquet", store_url
    )
    assert sum(p.wallets for p in parts) == len(local)
    batches.cleanup()

    features = pd.read_parquet(folder / "features.parquet").drop(columns=["as_of"])
    expected_features = reference_features(transactions, as_of)
    pd.testing.assert_frame_equal(features.loc[expected_features.index], expected_features)
    pd.testing.assert_frame_equal(
        reference_scores(features).loc[local.index, ["lp_score", "swap_score", "zscore"]],
        local[["lp_score", "swap_score", "zscore"]],
    )
    scored = pd.read_parquet(folder / "scored.parquet")
    assert sorted(scored.index) == sorted(local.index)
    pd.testing.assert_frame_equal(scored.loc[local.index], local, check_dtype=False, check_categorical=False)

    # the cross-wallet groups were split over partitions, and still found whole
    wallets = data.wallets.assign(wallet=data.wallets["wallet_address"].str.lower())
    wallets["partition"] = wallet_partition(wallets["wallet"], batches.partitions)
    for archetype, pattern in (("sybil_farm", "sybil_cluster_detected"), ("pump_dumper", "pump_and_dump_detected")):
        group = wallets[wallets["archetype"] == archetype]
        spread = group.groupby("cluster_id")["partition"].nunique()  # pump groups share cluster_id -1
        assert (spread > 1).all() and len(group) > 50, f"{archetype} groups should straddle partitions"
        assert scored.loc[group["wallet"], pattern].mean() > 0.8


def test_partitions_are_stable_and_keep_each_wallet_whole(landed):
    _, files, _ = landed
    transactions = read_transactions(files)
    first = wallet_partition(transactions["wallet"], 16)
    again = wallet_partition(transactions["wallet"].astype(object), 16)
    assert np.array_equal(first, again)  # categorical or plain strings: the same partition
    assert transactions.assign(p=first).groupby("wallet", observed=True)["p"].nunique().max() == 1
    assert len(np.unique(first)) == 16


def test_dagster_runs_the_batch_and_training_assets_with_engine_dask(tmp_home):
    """Batch assets: the dask engine writes the same tables, metadata and store rows as the local one.
    Training: xgboost/lightgbm on the cluster register a model within 0.005 ROC-AUC of local training."""
    defs = build_definitions(Settings(home=tmp_home))
    data = generate_wallets(3_000, seed=5)
    write_dataset(data, tmp_home / "landing" / "generated.jsonl", tmp_home / "labels" / "labels.csv")
    as_of = int(data.transactions["timestamp"].max()) + 86_400

    def score(engine: str):
        ops = {op: {"config": {"engine": engine}} for op in ("scored_wallets",)}
        ops["wallet_features"] = {"config": {"engine": engine, "as_of": as_of}}
        result = defs.resolve_job_def("score_wallets").execute_in_process(instance=instance, run_config={"ops": ops})
        assert result.success
        table = pd.read_parquet(tmp_home / "tables" / "scored_wallets.parquet")
        return result, table

    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(transaction_batch_partitions.name, ["generated"])
        assert defs.resolve_job_def("ingest_batch").execute_in_process(instance=instance, partition_key="generated")
        score("local")  # the previous scores of the next two runs (score-drop alerts) are these
        cluster_run, on_cluster = score("dask")
        assert (tmp_home / "tables" / "scored_wallets.parquet").is_dir()  # parts, one per partition
        local_run, local = score("local")
        assert on_cluster["previous_score"].notna().all()
        pd.testing.assert_frame_equal(on_cluster.loc[local.index], local, check_dtype=False, check_categorical=False)
        for node in ("wallet_features", "scored_wallets"):
            meta = {k: v.value for k, v in local_run.asset_materializations_for_node(node)[0].metadata.items()}
            meta_dask = {k: v.value for k, v in cluster_run.asset_materializations_for_node(node)[0].metadata.items()}
            assert meta_dask.pop("engine") == "dask" and meta.pop("engine") == "local"
            for key in ("wallets", "transactions", "hybrid_score_mean", "risk_levels", "patterns", "alerts"):
                if key in meta:
                    assert meta_dask[key] == meta[key], key
        store = ScoreStore(Settings(home=tmp_home).store_url)
        assert store.stats()["successful_processed"] == 3 * len(local)  # one event per wallet per run

        ops = {op: {"config": {"engine": "dask"}} for op in ("training_set", "ensemble_model")}
        trained = defs.resolve_job_def("train_model").execute_in_process(instance=instance, run_config={"ops": ops})
        assert trained.success
        meta = trained.asset_materializations_for_node("ensemble_model")[0].metadata
        assert alias_version(configured_store(tmp_home), load_ensemble_config().registered_model_name, CHAMPION)

    frame = pd.read_parquet(tmp_home / "tables" / "training_set.parquet")
    x_train, y_train = split_xy(frame, holdout=False)
    x_hold, y_hold = split_xy(frame, holdout=True)
    local_auc = evaluate(train_ensemble(load_ensemble_config(), x_train, y_train), x_hold, y_hold)["ensemble"][
        "roc_auc"
    ]
    assert abs(meta["holdout_roc_auc"].value - local_auc) <= 0.005


def test_the_cli_engine_option_is_run_config_the_jobs_accept(tmp_home):
    """`land --engine dask` and `train --engine dask` pass config that the jobs' schemas validate."""
    from defi_scoring.cli.data_commands import score_step

    defs = build_definitions(Settings(home=tmp_home))
    job, config = score_step(1_700_000_000, "dask")
    assert dg.validate_run_config(defs.resolve_job_def(job), config["run_config"])
    train_ops = {op: {"config": {"engine": "dask"}} for op in ("training_set", "ensemble_model")}
    assert dg.validate_run_config(defs.resolve_job_def("train_model"), {"ops": train_ops})
    with pytest.raises(dg.DagsterInvalidConfigError):
        dg.validate_run_config(defs.resolve_job_def(job), score_step(None, "spark")[1]["run_config"])
