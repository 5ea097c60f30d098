"""MLflow side of the ensemble: log a training run, register it, move aliases, load the champion.

Uses registry aliases (`challenger`, `champion`, `rollback`), never stages. No Dagster import.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import mlflow  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from mlflow import MlflowClient  # noqa: E402
from mlflow.models import infer_signature  # noqa: E402
from sklearn.calibration import calibration_curve  # noqa: E402
from sklearn.metrics import precision_recall_curve, roc_curve  # noqa: E402

from defi_scoring.core.ensemble import TrainedEnsemble  # noqa: E402
from defi_scoring.core.ensemble_config import EnsembleConfig  # noqa: E402

CHALLENGER, CHAMPION, ROLLBACK = "challenger", "champion", "rollback"
PYFUNC_FILE = Path(__file__).with_name("ensemble_pyfunc.py")


@dataclass(frozen=True)
class MlflowStore:
    tracking_uri: str
    artifact_root: str
    experiment_name: str = "defi-scoring"

    def activate(self) -> str:
        """Point mlflow at this store and return the experiment id (created on first use)."""
        mlflow.set_tracking_uri(self.tracking_uri)
        mlflow.set_registry_uri(self.tracking_uri)
        experiment = mlflow.get_experiment_by_name(self.experiment_name)
        if experiment is None:
            Path(self.artifact_root.removeprefix("file://")).mkdir(parents=True, exist_ok=True)
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


def _plots(y: np.ndarray, probabilities: dict[str, np.ndarray], folder: Path) -> list[Path]:
    paths = []
    for kind in ("roc", "pr", "calibration"):
        fig, ax = plt.subplots(figsize=(6, 5))
        for name, p in probabilities.items():
            if kind == "roc":
                fpr, tpr, _ = roc_curve(y, p)
                ax.plot(fpr, tpr, label=name)
                ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC (holdout)")
            elif kind == "pr":
                precision, recall, _ = precision_recall_curve(y, p)
                ax.plot(recall, precision, label=name)
                ax.set(xlabel="recall", ylabel="precision", title="Precision–recall (holdout)")
            else:
                frac, mean = calibration_curve(y, p, n_bins=10, strategy="quantile")
                ax.plot(mean, frac, marker="o", label=name)
                ax.plot([0, 1], [0, 1], "k--", lw=0.8)
                ax.set(xlabel="predicted risk", ylabel="observed risky share", title="Calibration (holdout)")
        ax.legend(fontsize=8)
        path = folder / f"{kind}.png"
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths


def feature_importance(model: TrainedEnsemble) -> pd.DataFrame:
    """Normalised importances of the tree members that expose them, one column per member."""
    columns = {}
    for name, member in model.members.items():
        values = getattr(member, "feature_importances_", None)
        if values is not None:
            values = np.asarray(values, dtype=float)
            columns[name] = values / values.sum() if values.sum() > 0 else values
    frame = pd.DataFrame(columns, index=model.feature_names)
    frame["mean"] = frame.mean(axis=1)
    return frame.sort_values("mean", ascending=False)


def _importance_plot(importance: pd.DataFrame, folder: Path) -> Path:
    top = importance["mean"].head(20).iloc[::-1]
    fig, ax = plt.subplots(figsize=(7, 6))
    ax.barh(top.index, top.to_numpy())
    ax.set(title="Feature importance (mean of tree members)", xlabel="share")
    fig.tight_layout()
    path = folder / "feature_importance.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def model_card(config: EnsembleConfig, metrics: dict[str, dict[str, float]], data_info: dict[str, Any]) -> str:
    rows = "\n".join(
        f"| {name} | " + " | ".join(f"{m[k]:.4f}" for k in ("roc_auc", "pr_auc", "ks", "brier", "f1", "log_loss")) + " |"
        for name, m in metrics.items()
    )
    info = "\n".join(f"- {k}: {v}" for k, v in data_info.items())
    weights = ", ".join(f"{m.name} {m.weight}" for m in config.classifiers)
    return f"""# Model card — {config.registered_model_name}

Weighted-vote ensemble of wallet-risk classifiers ({weights}); an IsolationForest feeds the anomaly
score. Output: risk probability (1 = risky), member probabilities, ensemble confidence, anomaly score.

## Data
{info}

## Holdout metrics (threshold {config.decision_threshold})
| model | ROC-AUC | PR-AUC | KS | Brier | F1 | log-loss |
|---|---|---|---|---|---|---|
{rows}

## Caveats
- Trained on the labels it was given; with the generator's labels, the archetypes are synthetic and
  cleaner than real wallets, so these metrics overstate real-world quality.
- The holdout is the newest wallets by first activity; wallets of a behaviour absent from training
  (a new attack pattern) are not covered.
- Probabilities are not recalibrated; use the calibration plot before reading them as frequencies.
"""


def log_training_run(store: MlflowStore, config: EnsembleConfig, model: TrainedEnsemble,
                     metrics: dict[str, dict[str, float]], x_holdout: pd.DataFrame, y_holdout: np.ndarray,
                     data_info: dict[str, Any], tags: dict[str, str]) -> RegisteredVersion:
    """One MLflow run: params, metrics, plots, importance, model card; registers the ensemble and
    points the `challenger` alias at the new version."""
    experiment_id = store.activate()
    with mlflow.start_run(experiment_id=experiment_id, tags=tags) as run, tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for member in config.members:
            mlflow.log_params({f"{member.name}.{k}": v for k, v in member.params.items()})
            mlflow.log_param(f"{member.name}.weight", member.weight)
        mlflow.log_params({"decision_threshold": config.decision_threshold,
                           "holdout_fraction": config.holdout_fraction, "n_features": len(model.feature_names)})
        for name, values in metrics.items():
            mlflow.log_metrics({f"{name}.{k}": v for k, v in values.items()})
        mlflow.log_metrics({f"{name}.train_seconds": s for name, s in model.train_seconds.items()})
        prediction = model.predict(x_holdout)
        probabilities = {"ensemble": prediction["risk_probability"].to_numpy()}
        probabilities.update({n: prediction[f"member_{n}"].to_numpy() for n in model.members})
        for path in _plots(y_holdout, probabilities, folder):
            mlflow.log_artifact(str(path), artifact_path="plots")
        importance = feature_importance(model)
        importance.to_csv(folder / "feature_importance.csv")
        mlflow.log_artifact(str(folder / "feature_importance.csv"))
        mlflow.log_artifact(str(_importance_plot(importance, folder)), artifact_path="plots")
        (folder / "model_card.md").write_text(model_card(config, metrics, data_info))
        mlflow.log_artifact(str(folder / "model_card.md"))

        joblib.dump(model, folder / "ensemble.joblib")
        example = x_holdout.head(5)
        info = mlflow.pyfunc.log_model(
            name="model", python_model=str(PYFUNC_FILE), artifacts={"ensemble": str(folder / "ensemble.joblib")},
            signature=infer_signature(example, model.predict(example)), input_example=example,
            registered_model_name=config.registered_model_name,
        )
        version = str(info.registered_model_version)
    store.client().set_registered_model_alias(config.registered_model_name, CHALLENGER, version)
    return RegisteredVersion(config.registered_model_name, version, run.info.run_id)


def alias_version(store: MlflowStore, name: str, alias: str) -> str | None:
    try:
        return str(store.client().get_model_version_by_alias(name, alias).version)
    except mlflow.exceptions.MlflowException:
        return None


def load_version(store: MlflowStore, name: str, version_or_alias: str) -> mlflow.pyfunc.PyFuncModel:
    store.activate()
    ref = f"models:/{name}@{version_or_alias}" if not version_or_alias.isdigit() else f"models:/{name}/{version_or_alias}"
    return mlflow.pyfunc.load_model(ref)


def promote(store: MlflowStore, name: str, version: str) -> str | None:
    """Point `champion` at `version`; the previous champion (if any) keeps the `rollback` alias."""
    client = store.client()
    previous = alias_version(store, name, CHAMPION)
    if previous is not None and previous != version:
        client.set_registered_model_alias(name, ROLLBACK, previous)
    client.set_registered_model_alias(name, CHAMPION, version)
    return previous
