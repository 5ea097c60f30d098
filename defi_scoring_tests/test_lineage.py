"""Lineage that is real: values pass through the data home's IO manager, promotion promotes the version
its upstream produced, and every asset is read by another one or is a published output."""

import json
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from defi_scoring.assets.evaluation import model_evaluation
from defi_scoring.assets.ingestion import transaction_batches
from defi_scoring.assets.partitions import transaction_batch_partitions
from defi_scoring.assets.scoring import reference_scores, wallet_features
from defi_scoring.assets.training import (
    ModelVersion,
    challenger_beats_champion,
    champion_model,
    ensemble_model,
    training_set,
)
from defi_scoring.config import Settings
from defi_scoring.core.model_registry import CHALLENGER, CHAMPION, alias_version, embedded_store
from defi_scoring.core.reference_score import reference_scores as compute_reference_scores
from defi_scoring.core.synthetic import generate_wallets, write_dataset
from defi_scoring.definitions import PUBLISHED_OUTPUTS, build_definitions
from defi_scoring.resources.data_home import DataHomeResource
from defi_scoring.resources.parquet_io import DataHomeIOManager

MODEL = "defi-wallet-risk"
WEAK_ENSEMBLE = """
registered_model_name: defi-wallet-risk
members:
  - {name: xgboost, kind: xgboost, weight: 1.0,
     params: {n_estimators: 2, max_depth: 2, learning_rate: 0.3, random_state: 7}}
"""


def _ingested(home: Path, wallets: int, seed: int, labels: bool = False):
    """(definitions, instance) of a data home with one synthetic batch landed and ingested."""
    data = generate_wallets(wallets, seed=seed)
    write_dataset(data, home / "landing" / "synthetic.jsonl", home / "truth.csv", seed=seed)
    if labels:
        (home / "labels").mkdir(parents=True)
        pd.read_csv(home / "truth.csv")[["wallet_address", "is_risky"]].to_csv(home / "labels" / "l.csv", index=False)
    defs = build_definitions(Settings(home=home))
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(transaction_batch_partitions.name, ["synthetic"])
    assert defs.resolve_job_def("ingest_batch").execute_in_process(instance=instance, partition_key="synthetic").success
    return defs, instance


def _loaded_inputs(result: dg.ExecuteInProcessResult, step: str) -> set[str]:
    """The inputs of `step` that the data home's IO manager loaded (from this run or a previous one)."""
    return {
        event.event_specific_data.input_name
        for event in result.all_events
        if event.event_type_value == "LOADED_INPUT"
        and event.step_key == step
        and event.event_specific_data.manager_key == "io_manager"
    }


def test_the_io_manager_round_trips_tables_and_versions_where_the_cli_reads_them(tmp_home):
    frame = pd.DataFrame(
        {"zscore": [1.5, 308.0], "risk_level": ["low", "high"], "as_of": [1, 2]},
        index=pd.Index(["0xa", "0xb"], name="wallet"),
    )
    version = ModelVersion(MODEL, "7", "run-7", {"roc_auc": 0.91})
    seen = {}

    @dg.asset
    def sample_table() -> pd.DataFrame:
        return frame

    @dg.asset
    def sample_version() -> ModelVersion:
        return version

    @dg.asset
    def sample_reader(sample_table: pd.DataFrame, sample_version: ModelVersion) -> dict:
        seen.update(whole=sample_table, version=sample_version)
        return {"rows": len(sample_table)}

    @dg.asset(ins={"narrow": dg.AssetIn("sample_table", metadata={"columns": ["zscore", "not_there"]})})
    def sample_narrow_reader(narrow: pd.DataFrame) -> None:
        seen.update(narrow=narrow)

    data_home = DataHomeResource(home=str(tmp_home))
    result = dg.materialize(
        [sample_table, sample_version, sample_reader, sample_narrow_reader],
        resources={"io_manager": DataHomeIOManager(data_home=data_home)},
    )
    assert result.success
    table_file = Settings(home=tmp_home).tables_dir / "sample_table.parquet"  # where the CLI and the API read
    pd.testing.assert_frame_equal(pd.read_parquet(table_file), frame)
    pd.testing.assert_frame_equal(data_home.read_table("sample_table"), frame)
    pd.testing.assert_frame_equal(seen["whole"], frame)
    pd.testing.assert_frame_equal(seen["narrow"], frame[["zscore"]])  # only the columns asked for (and present)
    assert seen["version"] == version  # JSON back into the dataclass the input is annotated with
    assert json.loads((tmp_home / "tables" / "sample_version.json").read_text())["version"] == "7"
    assert json.loads((tmp_home / "tables" / "sample_reader.json").read_text()) == {"rows": 2}
    meta = result.asset_materializations_for_node("sample_table")[0].metadata
    assert meta["path"].value == str(table_file)


def test_reference_scores_receives_wallet_features_as_its_input(tmp_home):
    defs, instance = _ingested(tmp_home, 120, seed=5)
    result = dg.materialize(
        [transaction_batches, wallet_features, reference_scores],
        selection=[wallet_features, reference_scores],
        instance=instance,
        resources=defs.resources,
    )
    assert result.success
    assert _loaded_inputs(result, "reference_scores") == {"wallet_features"}
    features = pd.read_parquet(tmp_home / "tables" / "wallet_features.parquet")
    scores = pd.read_parquet(tmp_home / "tables" / "reference_scores.parquet")
    expected = compute_reference_scores(features).assign(
        as_of=features["as_of"], transaction_count=features["transaction_count"]
    )
    pd.testing.assert_frame_equal(scores, expected)
    assert (
        result.asset_materializations_for_node("reference_scores")[0]
        .metadata["path"]
        .value.endswith("tables/reference_scores.parquet")
    )


def test_scored_wallets_checks_its_zscores_against_reference_scores(tmp_home):
    defs, instance = _ingested(tmp_home, 120, seed=6)
    run = defs.resolve_job_def("score_wallets").execute_in_process(instance=instance)
    assert run.success
    assert _loaded_inputs(run, "scored_wallets") == {"reference"}
    (check,) = [e for e in run.get_asset_check_evaluations() if e.check_name == "zscore_matches_reference"]
    assert check.passed
    assert check.metadata["compared_wallets"].value == len(
        pd.read_parquet(tmp_home / "tables" / "scored_wallets.parquet")
    )


@pytest.fixture
def trained(tmp_home):
    """A data home with labels, the weak ensemble's config, and ensemble_model materialised once (v1)
    with its blocking check."""
    defs, instance = _ingested(tmp_home, 600, seed=9, labels=True)
    weak = tmp_home / "weak.yaml"
    weak.write_text(WEAK_ENSEMBLE)
    config = {"ensemble_config_path": str(weak)}
    ops = ("training_set", "ensemble_model", "champion_model", "ensemble_model_challenger_beats_champion")
    run_config = {"ops": {op: {"config": config} for op in ops}}
    graph = [transaction_batches, training_set, ensemble_model, champion_model, challenger_beats_champion]
    first = dg.materialize(
        graph,
        selection=dg.AssetSelection.assets(training_set, ensemble_model),
        instance=instance,
        resources=defs.resources,
        run_config={"ops": {op: v for op, v in run_config["ops"].items() if op != "champion_model"}},
    )
    assert first.success
    return defs, instance, graph, run_config, first


def test_champion_model_promotes_the_version_ensemble_model_produced_not_the_alias(tmp_home, trained):
    defs, instance, graph, run_config, first = trained
    store = embedded_store(tmp_home)
    client = store.client()
    (check,) = first.get_asset_check_evaluations()
    assert check.passed  # no champion yet
    produced = json.loads((tmp_home / "tables" / "ensemble_model.json").read_text())
    assert produced["version"] == "1" and produced["name"] == MODEL and produced["metrics"]["roc_auc"] > 0
    assert (
        produced["run_id"] == first.asset_materializations_for_node("ensemble_model")[0].metadata["mlflow_run_id"].value
    )

    # Between the two steps, another version takes the challenger alias (and looks promotable).
    v1 = client.get_model_version(MODEL, "1")
    other = client.create_model_version(
        MODEL, source=v1.source, run_id=v1.run_id, tags={"promotion_decision": "promoted"}
    )
    client.set_registered_model_alias(MODEL, CHALLENGER, other.version)
    assert alias_version(store, MODEL, CHALLENGER) == "2"

    promoted = dg.materialize(
        graph,
        selection=[champion_model],
        instance=instance,
        resources=defs.resources,
        run_config={"ops": {"champion_model": run_config["ops"]["champion_model"]}},
    )
    assert promoted.success
    assert _loaded_inputs(promoted, "champion_model") == {"ensemble_model"}
    assert alias_version(store, MODEL, CHAMPION) == "1"
    assert promoted.asset_materializations_for_node("champion_model")[0].metadata["champion_version"].value == "1"
    assert json.loads((tmp_home / "tables" / "champion_model.json").read_text())["version"] == "1"

    # model_evaluation evaluates the promoted version only while it is the one that serves.
    client.set_registered_model_alias(MODEL, CHAMPION, "2")
    evaluation = dg.materialize(
        [*graph, model_evaluation],
        selection=[model_evaluation],
        instance=instance,
        resources=defs.resources,
        raise_on_error=False,
    )
    assert not evaluation.success
    failure = evaluation.get_step_failure_events()[0].event_specific_data.error.message
    assert "promoted defi-wallet-risk v1" in failure and "now points at v2" in failure
    client.set_registered_model_alias(MODEL, CHAMPION, "1")
    evaluation = dg.materialize(
        [*graph, model_evaluation],
        selection=[model_evaluation],
        instance=instance,
        resources=defs.resources,
        run_config={"ops": {"model_evaluation": {"config": {"bootstrap_rounds": 20}}}},
    )
    assert evaluation.success
    assert _loaded_inputs(evaluation, "model_evaluation") == {"champion", "training_set"}
    meta = evaluation.asset_materializations_for_node("model_evaluation")[0].metadata
    assert meta["champion_version"].value == "1" and meta["excluded_training_wallets"].value > 0


def test_champion_model_refuses_a_version_the_blocking_check_did_not_pass(tmp_home, trained):
    defs, instance, graph, run_config, _ = trained
    store = embedded_store(tmp_home)
    # ensemble_model again without its check: v2 is registered, its promotion decision still pending.
    again = dg.materialize(
        graph,
        selection=dg.AssetSelection.assets(ensemble_model).without_checks(),
        instance=instance,
        resources=defs.resources,
        run_config={"ops": {"ensemble_model": run_config["ops"]["ensemble_model"]}},
    )
    assert again.success and alias_version(store, MODEL, CHALLENGER) == "2"
    refused = dg.materialize(
        graph,
        selection=[champion_model],
        instance=instance,
        resources=defs.resources,
        run_config={"ops": {"champion_model": run_config["ops"]["champion_model"]}},
        raise_on_error=False,
    )
    assert not refused.success
    message = refused.get_step_failure_events()[0].event_specific_data.error.message
    assert "v2 is not promoted" in message and "decision: pending" in message
    assert alias_version(store, MODEL, CHAMPION) is None


def test_no_asset_is_a_leaf_that_nothing_reads_unless_it_is_published(tmp_home):
    defs = build_definitions(Settings(home=tmp_home))
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    read_by_checks = {
        key.to_user_string()
        for check in defs.asset_checks
        for key in check.keys_by_input_name.values()
        if key not in {c.asset_key for c in check.check_keys}
    }
    leaves = {k for k in keys if not graph.get(dg.AssetKey(k)).child_keys and k not in read_by_checks}
    assert leaves <= set(PUBLISHED_OUTPUTS), f"assets nothing reads: {sorted(leaves - set(PUBLISHED_OUTPUTS))}"
    assert set(PUBLISHED_OUTPUTS) <= keys and all(PUBLISHED_OUTPUTS.values())

    def value_inputs(name: str) -> dict[str, str]:
        asset = defs.resolve_assets_def(name)
        nothing = {d.name for d in asset.op.input_defs if d.dagster_type.is_nothing}
        return {i: k.to_user_string() for i, k in asset.keys_by_input_name.items() if i not in nothing}

    assert value_inputs("reference_scores") == {"wallet_features": "wallet_features"}
    assert value_inputs("ensemble_model") == {"training_set": "training_set"}
    assert value_inputs("champion_model") == {"ensemble_model": "ensemble_model"}
    assert value_inputs("model_evaluation") == {"champion": "champion_model", "training_set": "training_set"}
    assert value_inputs("scored_wallets") == {"reference": "reference_scores"}
    parents = {k: {p.to_user_string() for p in graph.get(dg.AssetKey(k)).parent_keys} for k in keys}
    assert parents["scored_wallets"] == {"transaction_batches", "champion_model", "reference_scores"}
    assert parents["training_set"] == {"transaction_batches"}  # its model features read the landed batches
    assert "wallet_features" not in parents["scored_wallets"] | parents["training_set"]
