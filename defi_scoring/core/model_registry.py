"""MLflow side of the ensemble: log a training run, register it, move aliases, load the champion.

Uses registry aliases (`challenger`, `champion`, `rollback`), never stages. Lineage a reviewer reads in
the MLflow UI: the training set and holdout as dataset inputs (with digests), parameters and holdout
metrics attached to the LoggedModel, and registered model/version descriptions and tags (training
window, data digest, holdout metrics, promotion decision and why). No Dagster import.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import joblib
import mlflow
import numpy as np
import pandas as pd
from mlflow import MlflowClient
from mlflow.models import infer_signature

from defi_scoring.core.ensemble import TrainedEnsemble
from defi_scoring.core.ensemble_config import EnsembleConfig
from defi_scoring.core.model_aliases import CHALLENGER, CHAMPION, ROLLBACK
from defi_scoring.core.model_card import model_card
from defi_scoring.core.model_plots import feature_importance, importance_plot, quality_plots

PYFUNC_FILE = Path(__file__).with_name("ensemble_pyfunc.py")


@dataclass(frozen=True)
class MlflowStore:
    tracking_uri: str
    artifact_root: str
    experiment_name: str = "defi-scoring"

    def activate(self) -> str:
        """Point mlflow at this store and return the experiment id (created on first use).

        mlflow.set_tracking_uri also exports MLFLOW_TRACKING_URI; the variable is put back, so a store
        activated once does not become every later store's configuration in this process."""
        exported = {name: os.environ.get(name) for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
        mlflow.set_tracking_uri(self.tracking_uri)
        mlflow.set_registry_uri(self.tracking_uri)
        for name, value in exported.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        experiment = mlflow.get_experiment_by_name(self.experiment_name)
        if experiment is None:
            location = urlparse(self.artifact_root)
            if location.scheme in ("", "file"):  # a local folder; s3://, mlflow-artifacts:/ … exist remotely
                Path(location.path).mkdir(parents=True, exist_ok=True)
            return mlflow.create_experiment(self.experiment_name, artifact_location=self.artifact_root)
        return experiment.experiment_id

    def client(self) -> MlflowClient:
        return MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)


def embedded_store(home: Path) -> MlflowStore:
    root = home / "mlflow"
    root.mkdir(parents=True, exist_ok=True)
    store = MlflowStore(tracking_uri=f"sqlite:///{root / 'mlflow.db'}", artifact_root=(root / "artifacts").as_uri())
    _initialise_once(store, root)
    return store


def configured_store(home: Path) -> MlflowStore:
    """The store a process should use: MLFLOW_TRACKING_URI when set (artifacts and experiment as the
    embedded store's), else the embedded store under the data home."""
    embedded = embedded_store(home)
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    return MlflowStore(uri, embedded.artifact_root, embedded.experiment_name) if uri else embedded


def _initialise_once(store: MlflowStore, root: Path) -> None:
    """Create/migrate the SQLite schema under a file lock: MLflow migrates on first connection, and two
    processes doing that at once (parallel runs on a fresh home) collide in alembic."""
    marker = root / ".schema-ready"
    if marker.exists():
        return
    import fcntl

    with open(root / ".schema.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if not marker.exists():
                store.client().search_registered_models(max_results=1)
                marker.touch()
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@dataclass(frozen=True)
class RegisteredVersion:
    name: str
    version: str
    run_id: str


def log_training_run(
    store: MlflowStore,
    config: EnsembleConfig,
    model: TrainedEnsemble,
    metrics: dict[str, dict[str, float]],
    training_frame: pd.DataFrame,
    data_info: dict[str, Any],
    tags: dict[str, str],
) -> RegisteredVersion:
    """One MLflow run: params, datasets, plots, importance, model card and the LoggedModel with its
    params and holdout metrics; registers a version (described and tagged) with alias `challenger`.

    `training_frame` is the `training_set` table (model features, `is_risky`, `holdout`)."""
    from defi_scoring.core.training import split_xy

    experiment_id = store.activate()
    x_holdout, y_holdout = split_xy(training_frame, holdout=True)
    params = {f"{m.name}.{k}": v for m in config.members for k, v in m.params.items()}
    params.update({f"{m.name}.weight": m.weight for m in config.members})
    params.update(
        {
            "decision_threshold": config.decision_threshold,
            "holdout_fraction": config.holdout_fraction,
            "n_features": len(model.feature_names),
        }
    )
    flat_metrics = {f"{name}.{k}": v for name, values in metrics.items() for k, v in values.items()}
    with mlflow.start_run(experiment_id=experiment_id, tags=tags) as run, tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        mlflow.log_params(params)
        train_data, holdout_data = _datasets(training_frame)
        mlflow.log_input(train_data, context="training")
        mlflow.log_input(holdout_data, context="evaluation")
        mlflow.log_metrics({f"{name}.train_seconds": s for name, s in model.train_seconds.items()})
        prediction = model.predict(x_holdout)
        probabilities = {"ensemble": prediction["risk_probability"].to_numpy()}
        probabilities.update({n: prediction[f"member_{n}"].to_numpy() for n in model.members})
        for path in quality_plots(y_holdout, probabilities, folder):
            mlflow.log_artifact(str(path), artifact_path="plots")
        importance = feature_importance(model)
        importance.to_csv(folder / "feature_importance.csv")
        mlflow.log_artifact(str(folder / "feature_importance.csv"))
        mlflow.log_artifact(str(importance_plot(importance, folder)), artifact_path="plots")
        (folder / "model_card.md").write_text(model_card(config, metrics, data_info))
        mlflow.log_artifact(str(folder / "model_card.md"))

        joblib.dump(model, folder / "ensemble.joblib")
        example = x_holdout.head(5).astype("float64")  # counts as doubles: a missing value stays valid
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=str(PYFUNC_FILE),
            artifacts={"ensemble": str(folder / "ensemble.joblib")},
            signature=infer_signature(example, model.predict(example)),
            input_example=example,
            params={k: str(v) for k, v in params.items()},
            model_type="classifier",
            tags={"data_digest": train_data.digest, **tags},
        )
        mlflow.log_metrics(flat_metrics, model_id=info.model_id, dataset=holdout_data)
    version = _register(store, config, info, run.info.run_id, metrics["ensemble"], data_info, train_data.digest)
    store.client().set_registered_model_alias(config.registered_model_name, CHALLENGER, version)
    return RegisteredVersion(config.registered_model_name, version, run.info.run_id)


def _datasets(training_frame: pd.DataFrame):
    """The training and holdout parts as MLflow datasets (their digests identify the data)."""
    columns = [c for c in training_frame.columns if c not in ("holdout", "as_of", "window_start", "window_end")]
    parts = {}
    for name, holdout in (("training_set", False), ("holdout", True)):
        part = training_frame.loc[training_frame["holdout"] == holdout, columns].reset_index()
        parts[name] = mlflow.data.from_pandas(part, name=name, targets="is_risky")
    return parts["training_set"], parts["holdout"]


def _register(
    store: MlflowStore,
    config: EnsembleConfig,
    info,
    run_id: str,
    holdout: dict[str, float],
    data_info: dict[str, Any],
    digest: str,
) -> str:
    """Create the registered model on first use, then a version described and tagged for review."""
    client = store.client()
    name = config.registered_model_name
    weights = ", ".join(f"{m.name} {m.weight}" for m in config.classifiers)
    if not client.search_registered_models(filter_string=f"name = '{name}'"):
        client.create_registered_model(
            name,
            tags={
                "project": "defi-scoring",
                "task": "wallet risk (1 = risky)",
                "aliases": "champion, challenger, rollback",
            },
            description=f"Wallet risk ensemble of defi-scoring (weighted vote: {weights}; IsolationForest "
            f"anomaly score). `champion` serves scoring, `challenger` is the newest trained version, "
            f"`rollback` the previous champion. Promotion needs the challenger to beat the champion's "
            f"holdout ROC-AUC by {config.promotion_margin}.",
        )
    window = f"{_iso(data_info.get('window_start'))} – {_iso(data_info.get('window_end'))}"
    version_tags = {
        "training_window": window,
        "as_of": _iso(data_info.get("as_of")),
        "data_digest": digest,
        "train_wallets": str(data_info.get("train_wallets")),
        "holdout_wallets": str(data_info.get("holdout_wallets")),
        **{f"holdout_{k}": f"{holdout[k]:.4f}" for k in ("roc_auc", "pr_auc", "f1", "ks", "brier")},
        "logged_model_id": info.model_id,
        "promotion_decision": "pending",
        "promotion_reason": "not yet compared with the champion",
    }
    description = (
        f"Trained on {data_info.get('train_wallets')} labelled wallets (risky share "
        f"{data_info.get('risky_share')}), transactions {window}, data digest {digest}. Holdout "
        f"({data_info.get('holdout_wallets')} wallets): ROC-AUC {holdout['roc_auc']:.4f}, PR-AUC "
        f"{holdout['pr_auc']:.4f}, F1 {holdout['f1']:.4f} at threshold {config.decision_threshold}."
    )
    created = client.create_model_version(
        name, source=info.model_uri, run_id=run_id, tags=version_tags, description=description, model_id=info.model_id
    )
    return str(created.version)


def record_promotion_decision(store: MlflowStore, name: str, version: str, promoted: bool, reason: str) -> None:
    """Tag a version with the champion comparison's outcome and append it to the description."""
    client = store.client()
    client.set_model_version_tag(name, version, "promotion_decision", "promoted" if promoted else "kept champion")
    client.set_model_version_tag(name, version, "promotion_reason", reason)
    current = client.get_model_version(name, version).description or ""
    decision = f"Promotion: {'promoted to champion' if promoted else 'not promoted'} — {reason}."
    client.update_model_version(name, version, description=f"{current.split(' Promotion:')[0]} {decision}")


def _iso(seconds: Any) -> str:
    if seconds is None or (isinstance(seconds, float) and np.isnan(seconds)):
        return "unknown"
    return pd.Timestamp(int(seconds), unit="s", tz="UTC").strftime("%Y-%m-%d %H:%M UTC")


def alias_version(store: MlflowStore, name: str, alias: str) -> str | None:
    try:
        return str(store.client().get_model_version_by_alias(name, alias).version)
    except mlflow.exceptions.MlflowException:
        return None


def load_version(store: MlflowStore, name: str, version_or_alias: str) -> mlflow.pyfunc.PyFuncModel:
    store.activate()
    ref = (
        f"models:/{name}@{version_or_alias}" if not version_or_alias.isdigit() else f"models:/{name}/{version_or_alias}"
    )
    return mlflow.pyfunc.load_model(ref)


def promote(store: MlflowStore, name: str, version: str) -> str | None:
    """Point `champion` at `version`; the previous champion (if any) keeps the `rollback` alias."""
    client = store.client()
    previous = alias_version(store, name, CHAMPION)
    if previous is not None and previous != version:
        client.set_registered_model_alias(name, ROLLBACK, previous)
    client.set_registered_model_alias(name, CHAMPION, version)
    return previous


def log_evaluation(
    store: MlflowStore,
    name: str,
    version: str,
    evaluation: dict[str, Any],
    curves: dict[str, tuple[np.ndarray, np.ndarray]],
    tags: dict[str, str],
) -> str:
    """An evaluation run of a registered version: metrics with their intervals (also attached to the
    version's LoggedModel), ROC/PR/calibration plots, the calibration table; returns the run id.

    `curves`: label → (y, risk) for the plots, e.g. the champion's probability and 100 − hybrid score."""
    experiment_id = store.activate()
    model_version = store.client().get_model_version(name, version)
    model_id = (model_version.tags or {}).get("logged_model_id")
    flat = {
        f"ensemble.{m}{suffix}": v[key]
        for m, v in evaluation["ensemble"].items()
        for suffix, key in (("", "value"), (".low", "low"), (".high", "high"))
    }
    flat["hybrid.roc_auc_of_100_minus_score"] = evaluation["hybrid"]["roc_auc_of_100_minus_score"]
    run_tags = {"evaluated_model": name, "evaluated_version": version, "kind": "evaluation", **tags}
    with (
        mlflow.start_run(experiment_id=experiment_id, run_name=f"evaluation of v{version}", tags=run_tags) as run,
        tempfile.TemporaryDirectory() as tmp,
    ):
        folder = Path(tmp)
        mlflow.log_params(
            {"wallets": evaluation["wallets"], "risky": evaluation["risky"], "threshold": evaluation["threshold"]}
        )
        mlflow.log_metrics(flat)
        if model_id:
            mlflow.log_metrics({f"evaluation.{k}": v for k, v in flat.items()}, model_id=model_id)
        first = next(iter(curves.values()))
        probabilities = {label: risk for label, (_, risk) in curves.items()}
        for path in quality_plots(first[0], probabilities, folder, subject="labelled wallets"):
            mlflow.log_artifact(str(path), artifact_path="plots")
        pd.DataFrame(evaluation["calibration"]).to_csv(folder / "calibration.csv", index=False)
        mlflow.log_artifact(str(folder / "calibration.csv"))
        mlflow.log_dict(evaluation, "evaluation.json")
    return run.info.run_id
