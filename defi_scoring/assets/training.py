"""`training_set` → `ensemble_model` → (blocking check) → `champion_model`.

Values pass through the `io_manager` (resources/parquet_io.py): the training set as
`tables/training_set.parquet`, the registered version (`ModelVersion`) as `tables/ensemble_model.json`
and the promoted one as `tables/champion_model.json`. The blocking check compares the version
`ensemble_model` registered and tags it with its decision; `champion_model` promotes that version, not
whatever the `challenger` alias points to when it runs, and only when the check passed for it.
"""

import time
from dataclasses import dataclass

import dagster as dg
import pandas as pd

from defi_scoring.assets.engine import Engine, cluster_partitions
from defi_scoring.assets.ingestion import transaction_batches
from defi_scoring.core.ensemble import classification_metrics, evaluate, train_ensemble
from defi_scoring.core.ensemble_config import load_ensemble_config
from defi_scoring.core.model_registry import (
    CHAMPION,
    alias_version,
    load_version,
    log_training_run,
    promote,
    record_promotion_decision,
)
from defi_scoring.core.scoring_config import load_scoring_config
from defi_scoring.core.training import build_training_set, label_files, load_labels, split_xy, with_holdout
from defi_scoring.resources.dask import DaskResource
from defi_scoring.resources.data_home import DataHomeResource
from defi_scoring.resources.mlflow_store import MlflowResource


class TrainingConfig(dg.Config):
    as_of: int | None = None
    """Unix seconds the features are computed at; default: the newest transaction time."""
    ensemble_config_path: str = ""
    """ensemble.yaml from DEFI_SCORING_CONFIG_DIR, ./models or the package by default."""
    engine: Engine = "local"
    """local: this process; dask: features and the xgboost/lightgbm members on the `dask` resource's cluster."""


METRIC_NAMES = ("roc_auc", "pr_auc", "ks", "brier", "f1", "log_loss")
PROMOTED = "promoted"  # the promotion_decision tag challenger_beats_champion gives a version that won


@dataclass(frozen=True)
class ModelVersion:
    """One registered version of the ensemble: the value of `ensemble_model` (the version it registered)
    and of `champion_model` (the version it promoted)."""

    name: str
    version: str
    run_id: str
    """The MLflow run that trained and logged it."""
    metrics: dict[str, float]
    """The ensemble's holdout metrics."""


def _metrics_table(metrics: dict) -> dg.TableMetadataValue:
    """Holdout metrics of the ensemble and each member as a Dagster table (sortable in the UI)."""
    schema = dg.TableSchema(
        columns=[dg.TableColumn("model", "string"), *(dg.TableColumn(k, "float") for k in METRIC_NAMES)]
    )
    records = [
        dg.TableRecord({"model": m, **{k: round(float(v[k]), 4) for k in METRIC_NAMES}}) for m, v in metrics.items()
    ]
    return dg.MetadataValue.table(records, schema=schema)


def _first(frame, column: str) -> int | None:
    return int(frame[column].iloc[0]) if column in frame.columns and len(frame) else None


@dg.asset(
    # Model features read the landed transactions themselves: they are computed at one as-of for every
    # wallet (the newest transaction) and include transfer and lending features, which wallet_features
    # (§4 features, each wallet at its own newest transaction) does not hold.
    deps=[transaction_batches],
    group_name="training",
    kinds={"python", "parquet"},
    output_required=False,
    description="Model features + is_risky labels, split by account (stratified, fixed per wallet), over every "
    "landed batch at one as-of (tables/training_set.parquet).",
)
def training_set(
    context: dg.AssetExecutionContext, config: TrainingConfig, data_home: DataHomeResource, dask: DaskResource
):
    files = label_files(data_home.settings.home / "labels")
    if not files:
        context.log.warning(
            "No labels in %s (CSV/Parquet with wallet_address, is_risky): training skipped.",
            data_home.settings.home / "labels",
        )
        return
    labels = load_labels(files)
    ensemble_config = load_ensemble_config(config.ensemble_config_path or None)
    if config.engine == "dask":
        from defi_scoring.distributed.jobs import training_features_on_cluster

        timestamps = pd.read_parquet(data_home.batch_files(), columns=["timestamp"])["timestamp"]
        window = int(timestamps.min()), int(timestamps.max())
        as_of = config.as_of or window[1]
        with cluster_partitions(context, data_home, dask) as (client, batches):
            labelled = training_features_on_cluster(client, batches, as_of, labels, load_scoring_config())
        frame = with_holdout(labelled, ensemble_config.holdout_fraction)
    else:
        transactions = data_home.read_all_transactions()
        window = int(transactions["timestamp"].min()), int(transactions["timestamp"].max())
        as_of = config.as_of or window[1]
        frame = build_training_set(transactions, labels, as_of, ensemble_config.holdout_fraction)
    if frame.empty or frame["is_risky"].nunique() < 2:
        context.log.warning("Labels cover %d wallets but only one class: training skipped.", len(frame))
        return
    frame = frame.assign(as_of=as_of, window_start=window[0], window_end=window[1])
    yield dg.MaterializeResult(
        value=frame,
        metadata={
            "wallets": len(frame),
            "holdout_wallets": int(frame["holdout"].sum()),
            "risky_share": float(frame["is_risky"].mean()),
            "label_files": ", ".join(p.name for p in files),
            "as_of": dg.MetadataValue.timestamp(float(as_of)),
        },
    )


@dg.asset(
    group_name="training",
    kinds={"xgboost", "lightgbm", "scikitlearn", "mlflow"},
    description="Trains the ensemble on training_set, logs it to MLflow and registers a version with alias "
    "`challenger`; its value is that version (name, version, MLflow run, holdout metrics).",
)
def ensemble_model(
    context: dg.AssetExecutionContext,
    config: TrainingConfig,
    training_set: pd.DataFrame,
    mlflow_store: MlflowResource,
    dask: DaskResource,
) -> dg.MaterializeResult[ModelVersion]:
    frame = training_set
    ensemble_config = load_ensemble_config(config.ensemble_config_path or None)
    x_train, y_train = split_xy(frame, holdout=False)
    x_hold, y_hold = split_xy(frame, holdout=True)
    started = time.perf_counter()
    progress = lambda m: context.log.info("training %s", m)
    if config.engine == "dask":
        from defi_scoring.distributed.training import train_ensemble_on_cluster

        with dask.get_client() as client:
            model = train_ensemble_on_cluster(client, ensemble_config, x_train, y_train, progress=progress)
    else:
        model = train_ensemble(ensemble_config, x_train, y_train, progress=progress)
    train_seconds = time.perf_counter() - started
    metrics = evaluate(model, x_hold, y_hold)
    data_info = {
        "train_wallets": len(x_train),
        "holdout_wallets": len(x_hold),
        "risky_share": round(float(frame["is_risky"].mean()), 4),
        "as_of": int(frame["as_of"].iloc[0]),
        "features": len(model.feature_names),
        "engine": config.engine,
        "window_start": _first(frame, "window_start"),
        "window_end": _first(frame, "window_end"),
    }
    registered = log_training_run(
        mlflow_store.store,
        ensemble_config,
        model,
        metrics,
        frame,
        data_info,
        tags={"dagster_run_id": context.run.run_id},
    )
    ensemble = metrics["ensemble"]
    value = ModelVersion(
        registered.name, registered.version, registered.run_id, {k: float(v) for k, v in ensemble.items()}
    )
    return dg.MaterializeResult(
        value=value,
        metadata={
            "model_version": registered.version,
            "mlflow_run_id": registered.run_id,
            "train_seconds": round(train_seconds, 2),
            **{f"holdout_{k}": v for k, v in ensemble.items()},
            "metrics": _metrics_table(metrics),
        },
    )


@dg.asset_check(
    asset=ensemble_model,
    additional_ins={"training_set": dg.AssetIn("training_set")},
    blocking=True,
    description="The version ensemble_model registered beats the champion's holdout ROC-AUC by the promotion "
    "margin (or there is no champion yet, or it cannot be loaded); tags the version with the decision. "
    "Blocks champion_model otherwise.",
)
def challenger_beats_champion(
    config: TrainingConfig, ensemble_model: ModelVersion, training_set: pd.DataFrame, mlflow_store: MlflowResource
) -> dg.AssetCheckResult:
    store = mlflow_store.store
    ensemble_config = load_ensemble_config(config.ensemble_config_path or None)
    name, challenger = ensemble_model.name, ensemble_model.version
    champion = alias_version(store, name, CHAMPION)
    if champion is None:
        record_promotion_decision(store, name, challenger, True, "no champion yet")
        return dg.AssetCheckResult(passed=True, metadata={"challenger": challenger, "reason": "no champion yet"})
    try:
        models = {"champion": load_version(store, name, champion)}
    except Exception as exc:  # a champion whose artifacts are gone or corrupt is no champion to defend
        reason = f"champion v{champion} cannot be loaded ({type(exc).__name__}: {str(exc)[:200]}); replaced"
        record_promotion_decision(store, name, challenger, True, reason)
        return dg.AssetCheckResult(passed=True, metadata={"challenger": challenger, "reason": reason})
    models["challenger"] = load_version(store, name, challenger)
    x_hold, y_hold = split_xy(training_set, holdout=True)
    scores = {}
    for label, model in models.items():
        p = model.predict(x_hold)["risk_probability"].to_numpy()
        scores[label] = classification_metrics(y_hold, p, ensemble_config.decision_threshold)["roc_auc"]
    margin = ensemble_config.promotion_margin
    passed = challenger != champion and scores["challenger"] >= scores["champion"] + margin
    reason = (
        f"holdout ROC-AUC {scores['challenger']:.4f} vs champion v{champion} {scores['champion']:.4f} (needs +{margin})"
    )
    record_promotion_decision(store, name, challenger, passed, reason)
    return dg.AssetCheckResult(
        passed=passed,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "challenger_version": challenger,
            "champion_version": champion,
            "challenger_roc_auc": scores["challenger"],
            "champion_roc_auc": scores["champion"],
            "margin": margin,
        },
        description=f"challenger v{challenger} {reason}",
    )


@dg.asset(
    group_name="training",
    kinds={"mlflow"},
    description="Moves the `champion` alias to the version ensemble_model registered, once "
    "challenger_beats_champion passed for it; the previous champion keeps `rollback`. Its value is the "
    "promoted version (tables/champion_model.json), which model_evaluation evaluates.",
)
def champion_model(
    config: TrainingConfig, ensemble_model: ModelVersion, mlflow_store: MlflowResource
) -> dg.MaterializeResult[ModelVersion]:
    """`config` is accepted for the train_model job's shared run config; the version carries its model name."""
    store = mlflow_store.store
    name, version = ensemble_model.name, ensemble_model.version
    tags = store.client().get_model_version(name, version).tags or {}
    decision = tags.get("promotion_decision", "none")
    if decision != PROMOTED:
        raise dg.Failure(
            description=f"{name} v{version} is not promoted: challenger_beats_champion has not passed for it "
            f"(decision: {decision}; {tags.get('promotion_reason', 'no reason recorded')}).",
            metadata={"version": version, "decision": decision},
        )
    previous = promote(store, name, version)
    return dg.MaterializeResult(
        value=ensemble_model,
        metadata={
            "champion_version": version,
            "rollback_version": previous or "none",
            "mlflow_run_id": ensemble_model.run_id,
            **{f"holdout_{k}": v for k, v in ensemble_model.metrics.items() if k == "roc_auc"},
        },
    )
