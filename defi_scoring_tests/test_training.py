"""Training on a real MLflow SQLite store in a temp dir, with real Dagster runs."""

import subprocess
import sys
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from defi_scoring.api.state import ServiceState
from defi_scoring.assets.partitions import transaction_batch_partitions
from defi_scoring.config import Settings
from defi_scoring.core import model_scoring
from defi_scoring.core.batch_scoring import score_raw_messages
from defi_scoring.core.model_features import model_features
from defi_scoring.core.model_registry import CHALLENGER, CHAMPION, ROLLBACK, alias_version, embedded_store
from defi_scoring.core.model_scoring import score_with_model
from defi_scoring.core.normalise import normalise_messages
from defi_scoring.core.synthetic import DEFAULT_END_TIME, generate_wallets, write_dataset
from defi_scoring.core.training import load_labels
from defi_scoring.definitions import build_definitions

MODEL = "defi-wallet-risk"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A data home with one landed synthetic batch (ingested) and its true labels kept aside."""
    home = tmp_path_factory.mktemp("train") / "home"
    data = generate_wallets(2500, seed=21)
    write_dataset(data, home / "landing" / "synthetic.jsonl", home / "truth.csv", seed=21)
    defs = build_definitions(Settings(home=home))
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(transaction_batch_partitions.name, ["synthetic"])
    assert defs.resolve_job_def("ingest_batch").execute_in_process(instance=instance, partition_key="synthetic").success
    return home, defs, instance, pd.read_csv(home / "truth.csv")


def _write_labels(home, truth):
    labels = truth[["wallet_address", "is_risky"]]
    (home / "labels").mkdir(exist_ok=True)
    labels.to_csv(home / "labels" / "labels.csv", index=False)


WEAK_ENSEMBLE = """
registered_model_name: defi-wallet-risk
members:
  - {name: xgboost, kind: xgboost, weight: 1.0,
     params: {n_estimators: 1, max_depth: 1, learning_rate: 0.1, random_state: 42}}
"""


def _train(defs, instance, ensemble_yaml=None):
    config = {"ensemble_config_path": str(ensemble_yaml)} if ensemble_yaml else {}
    run_config = {
        "ops": {
            op: {"config": config}
            for op in ("training_set", "ensemble_model", "champion_model", "ensemble_model_challenger_beats_champion")
        }
    }
    return defs.resolve_job_def("train_model").execute_in_process(
        instance=instance, raise_on_error=False, run_config=run_config
    )


def test_no_labels_skips_training_plainly(world):
    home, defs, instance, _ = world
    result = _train(defs, instance)
    assert result.success
    assert result.asset_materializations_for_node("training_set") == []
    assert alias_version(embedded_store(home), MODEL, CHALLENGER) is None
    scores = score_with_model(pd.DataFrame(), embedded_store(home), MODEL)
    assert not scores.available and scores.note.startswith("ML analysis unavailable")


def test_training_registers_promotes_only_a_better_challenger_and_loads_by_alias(world):
    home, defs, instance, truth = world
    store = embedded_store(home)

    weak = home / "weak_ensemble.yaml"
    weak.write_text(WEAK_ENSEMBLE)
    _write_labels(home, truth)

    # 1. A deliberately weak ensemble, no champion yet → v1 registered and promoted.
    first = _train(defs, instance, weak)
    assert first.success
    assert alias_version(store, MODEL, CHALLENGER) == "1" and alias_version(store, MODEL, CHAMPION) == "1"

    run = store.client().get_run(
        first.asset_materializations_for_node("ensemble_model")[0].metadata["mlflow_run_id"].value
    )
    assert run.data.tags["dagster_run_id"] == first.run_id
    for name in ("ensemble", "xgboost"):
        for metric in ("roc_auc", "pr_auc", "ks", "brier", "f1", "log_loss"):
            assert f"{name}.{metric}" in run.data.metrics
    artifacts = {a.path for a in store.client().list_artifacts(run.info.run_id)}
    plots = {a.path for a in store.client().list_artifacts(run.info.run_id, "plots")}
    assert {"model_card.md", "feature_importance.csv"} <= artifacts
    assert {"plots/roc.png", "plots/pr.png", "plots/calibration.png", "plots/feature_importance.png"} <= plots
    weak_auc = run.data.metrics["ensemble.roc_auc"]

    # 2. The configured ensemble → v2 beats v1 on the same holdout → champion v2, rollback v1.
    second = _train(defs, instance)
    assert second.success
    check = second.get_asset_check_evaluations()[0]
    assert check.passed
    assert alias_version(store, MODEL, CHAMPION) == "2" and alias_version(store, MODEL, ROLLBACK) == "1"
    clean_auc = second.asset_materializations_for_node("ensemble_model")[0].metadata["holdout_roc_auc"].value
    assert clean_auc >= 0.95 and clean_auc > weak_auc
    run2 = store.client().get_run(
        second.asset_materializations_for_node("ensemble_model")[0].metadata["mlflow_run_id"].value
    )
    for name in ("ensemble", "xgboost", "lightgbm", "random_forest", "neural_network"):
        assert f"{name}.roc_auc" in run2.data.metrics and f"{name}.log_loss" in run2.data.metrics

    # 3. The weak ensemble again → v3 is the challenger, the blocking check fails, champion stays v2.
    third = _train(defs, instance, weak)
    assert not third.success
    (evaluation,) = third.get_asset_check_evaluations()
    assert not evaluation.passed
    assert third.asset_materializations_for_node("champion_model") == []
    assert alias_version(store, MODEL, CHALLENGER) == "3" and alias_version(store, MODEL, CHAMPION) == "2"

    # Scoring loads the champion by alias.
    batch = normalise_messages((home / "landing" / "synthetic.jsonl").read_bytes().splitlines()[:200])
    features = model_features(batch.transactions, DEFAULT_END_TIME)
    scores = score_with_model(features, store, MODEL)
    assert scores.available and scores.model_version == "2"
    assert {"risk_probability", "confidence", "anomaly_score", "member_xgboost"} <= set(scores.predictions.columns)
    truth_risky = load_labels([home / "truth.csv"]).reindex(features.index)
    predicted = scores.predictions["risk_probability"] > 0.5
    assert (predicted == truth_risky.astype(bool)).mean() > 0.9

    # The registered model loads and predicts in a fresh process.
    code = (
        "import mlflow, pandas as pd, sys;"
        f"mlflow.set_tracking_uri({store.tracking_uri!r});"
        f"m = mlflow.pyfunc.load_model('models:/{MODEL}@{CHAMPION}');"
        f"x = pd.read_parquet({str(home / 'tables' / 'training_set.parquet')!r}).head(20);"
        "p = m.predict(x[m.metadata.get_input_schema().input_names()]);"
        "print(p['risk_probability'].between(0, 1).all(), len(p))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[-2:] == ["True", "20"]

    # Lineage in the registry: descriptions, tags, datasets, and metrics on the LoggedModel.
    client = store.client()
    registered = client.get_registered_model(MODEL)
    assert "Wallet risk ensemble" in registered.description and registered.tags["project"] == "defi-scoring"
    v2, v3 = client.get_model_version(MODEL, "2"), client.get_model_version(MODEL, "3")
    assert v2.description.startswith("Trained on") and "Promotion: promoted to champion" in v2.description
    assert v2.tags["promotion_decision"] == "promoted" and v3.tags["promotion_decision"] == "kept champion"
    assert "vs champion v2" in v3.tags["promotion_reason"]
    assert float(v2.tags["holdout_roc_auc"]) == pytest.approx(clean_auc, abs=1e-4)
    assert " – " in v2.tags["training_window"] and "unknown" not in v2.tags["training_window"]
    inputs = {d.dataset.name: d.dataset for d in client.get_run(v2.run_id).inputs.dataset_inputs}
    assert set(inputs) == {"training_set", "holdout"} and v2.tags["data_digest"] == inputs["training_set"].digest
    assert v2.source == f"models:/{v2.tags['logged_model_id']}"
    logged = client.get_logged_model(v2.tags["logged_model_id"])
    attached = {m.key: m for m in logged.metrics}
    assert attached["ensemble.roc_auc"].value == pytest.approx(clean_auc)
    assert attached["ensemble.roc_auc"].dataset_digest == inputs["holdout"].digest
    assert logged.params["decision_threshold"] == "0.5" and logged.params["xgboost.weight"] == "0.35"

    # The champion evaluated on the labelled wallets it was not trained on, with plots in MLflow.
    (evaluated,) = second.asset_materializations_for_node("model_evaluation")
    meta = evaluated.metadata
    holdout = second.asset_materializations_for_node("training_set")[0].metadata["holdout_wallets"].value
    assert meta["champion_version"].value == "2" and meta["wallets"].value == holdout
    assert meta["excluded_training_wallets"].value > 0 and meta["roc_auc"].value == pytest.approx(clean_auc, abs=0.02)
    evaluation_run = client.get_run(meta["mlflow_run_id"].value)
    assert evaluation_run.data.tags["evaluated_version"] == "2"
    assert {"ensemble.roc_auc", "ensemble.roc_auc.low", "ensemble.f1.high"} <= set(evaluation_run.data.metrics)
    plots = {a.path for a in client.list_artifacts(evaluation_run.info.run_id, "plots")}
    assert {"plots/roc.png", "plots/pr.png", "plots/calibration.png"} <= plots
    assert "evaluation.ensemble.roc_auc" in {m.key for m in client.get_logged_model(v2.tags["logged_model_id"]).metrics}
    assert third.asset_materializations_for_node("model_evaluation") == []  # the losing challenger: not promoted


def test_a_corrupt_champion_is_scored_around_shown_in_health_and_replaced_by_retraining(world, caplog):
    """Champion artifacts damaged on disk: scoring goes on without the model and says why, the API's
    /health shows it, and the next training promotes its challenger whatever the metrics."""
    home, defs, instance, truth = world
    store = embedded_store(home)
    _write_labels(home, truth)
    assert _train(defs, instance).success or alias_version(store, MODEL, CHAMPION)  # a champion exists
    broken = alias_version(store, MODEL, CHAMPION)
    source = store.client().get_model_version(MODEL, broken).source
    model_id = source.rstrip("/").split("/")[-1]  # models:/m-… (MLflow 3 LoggedModel)
    damaged = [p for p in Path(home).rglob("*.joblib") if model_id in str(p)]
    assert damaged, f"no model artifacts found for {source}"
    for path in damaged:
        path.write_bytes(b"\x00 not a model \xff")
    model_scoring._cache.clear()  # as a process that starts after the damage

    lines = (home / "landing" / "synthetic.jsonl").read_bytes().splitlines()[:50]
    features = model_features(normalise_messages(lines).transactions, DEFAULT_END_TIME)
    with caplog.at_level("ERROR", logger="defi_scoring.core.model_scoring"):
        scores = score_with_model(features, store, MODEL)
    assert not scores.available and "cannot be loaded" in scores.note and "retrain" in scores.note
    assert any(r.message.startswith("ALERT champion version") for r in caplog.records)  # an alert is logged
    messages = score_raw_messages(
        lines, as_of=DEFAULT_END_TIME, model=lambda f: score_with_model(f, store, MODEL)
    ).messages()
    assert all("cannot be loaded" in m["ml"]["note"] for m in messages if "ml" in m)
    state = ServiceState(Settings(home=home))
    health = state.champion_status(max_age_s=0)
    assert health["status"] == "error" and "cannot be loaded" in health["detail"]

    weak = home / "weak_ensemble.yaml"
    weak.write_text(WEAK_ENSEMBLE)
    retrained = _train(defs, instance, weak)  # even a weak challenger replaces it
    assert retrained.success
    assert alias_version(store, MODEL, CHAMPION) != broken
    assert score_with_model(features, store, MODEL).available


def test_which_version_is_champion_is_reused_for_a_while_and_asked_again_on_refresh(world):
    """The API asked MLflow for the champion alias on every call (~2 ms, a tenth of one call); it now
    reuses the answer for CHAMPION_RECHECK_SECONDS, and reload-model (refresh) asks at once."""
    home, *_ = world
    store = embedded_store(home)
    client = store.client()
    current = alias_version(store, MODEL, CHAMPION)
    other = next(str(v.version) for v in client.search_model_versions(f"name='{MODEL}'") if str(v.version) != current)
    assert model_scoring.champion_version(store, MODEL) == current
    try:
        client.set_registered_model_alias(MODEL, CHAMPION, other)
        assert model_scoring.champion_version(store, MODEL, max_age_s=60) == current  # the answer reused
        assert model_scoring.champion_version(store, MODEL, max_age_s=0) == other  # asked again
        client.set_registered_model_alias(MODEL, CHAMPION, current)
        assert model_scoring.champion_version(store, MODEL, max_age_s=60) == other  # reused until it ages
        assert model_scoring.load_champion(store, MODEL, refresh=True, alias_max_age_s=60)[1] == current
    finally:
        client.set_registered_model_alias(MODEL, CHAMPION, current)
