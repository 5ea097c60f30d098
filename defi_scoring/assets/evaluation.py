"""`model_evaluation`: the champion on the labelled wallets it was not trained on, with plots in MLflow.

It evaluates the version `champion_model` promoted (its input, `tables/champion_model.json`) and excludes
the wallets `training_set` (its other input) trained on. Wallets are scored as the scoring doors score
them, with the model behind the `champion` alias; if that alias no longer points at the promoted version
(moved by hand or by another run), the evaluation fails instead of crediting one version with another's
metrics.
"""

import dagster as dg
import pandas as pd

from defi_scoring.assets.ingestion import transaction_batches
from defi_scoring.assets.metadata import frame_table
from defi_scoring.assets.training import ModelVersion
from defi_scoring.core.ensemble_config import load_ensemble_config
from defi_scoring.core.evaluation import evaluate_labelled, risk_of
from defi_scoring.core.model_registry import CHAMPION, alias_version, log_evaluation
from defi_scoring.core.model_scoring import score_with_model
from defi_scoring.core.scoring_config import load_scoring_config
from defi_scoring.core.training import label_files, load_labels
from defi_scoring.core.wallet_scoring import score_wallet_table
from defi_scoring.resources.data_home import DataHomeResource
from defi_scoring.resources.mlflow_store import MlflowResource


class EvaluationConfig(dg.Config):
    bootstrap_rounds: int = 300
    """Resamples for the 95% intervals."""


@dg.asset(
    ins={
        "champion": dg.AssetIn("champion_model"),
        "training_set": dg.AssetIn("training_set", metadata={"columns": ["holdout"], "allow_missing": True}),
    },
    deps=[transaction_batches],  # the landed transactions the labelled wallets are scored on
    group_name="training",
    kinds={"mlflow", "python"},
    output_required=False,
    description="The champion scored on every labelled wallet it was not trained on (the holdout accounts "
    "and labelled wallets outside the training set): metrics with bootstrap 95% intervals, the hybrid "
    "score's separation, calibration; logged as an MLflow run with ROC/PR/calibration plots.",
)
def model_evaluation(
    context: dg.AssetExecutionContext,
    config: EvaluationConfig,
    champion: ModelVersion,
    training_set: pd.DataFrame | None,
    data_home: DataHomeResource,
    mlflow_store: MlflowResource,
):
    files = label_files(data_home.settings.home / "labels")
    name, version = champion.name, champion.version
    store = mlflow_store.store
    if not files:
        context.log.warning("No labels: evaluation of %s v%s skipped.", name, version)
        return
    _require_champion(store, name, version)
    transactions = data_home.read_all_transactions()
    as_of = int(transactions["timestamp"].max())
    scores = score_wallet_table(
        transactions, as_of, load_scoring_config(), lambda behaviour: score_with_model(behaviour, store, name)
    )
    if scores.model_version != version:
        _require_champion(store, name, version)  # the alias moved while the wallets were scored
        raise dg.Failure(description=f"{name} v{version} did not score the wallets: {scores.model_note}")
    table = scores.table.join(load_labels(files), how="inner")
    trained_on = set()
    if training_set is not None and "holdout" in training_set.columns:
        trained_on = set(training_set.index[~training_set["holdout"].astype(bool)])
    table = table[~table.index.isin(trained_on)]
    threshold = load_ensemble_config().decision_threshold
    evaluation = evaluate_labelled(table, threshold, rounds=config.bootstrap_rounds)
    y = table["is_risky"].to_numpy()
    curves = {
        f"champion v{version}": (y, risk_of(table)),
        "hybrid (100 − score)": (y, (100 - table["hybrid_score"].to_numpy(float)) / 100),
    }
    run_id = log_evaluation(store, name, version, evaluation, curves, {"dagster_run_id": context.run.run_id})
    metrics = evaluation["ensemble"]
    yield dg.MaterializeResult(
        metadata={
            "champion_version": version,
            "wallets": evaluation["wallets"],
            "risky": evaluation["risky"],
            "excluded_training_wallets": len(trained_on),
            "roc_auc": metrics["roc_auc"]["value"],
            "f1": metrics["f1"]["value"],
            "hybrid_roc_auc_of_100_minus_score": evaluation["hybrid"]["roc_auc_of_100_minus_score"],
            "metrics": frame_table(pd.DataFrame(metrics).T, index_name="metric"),
            "calibration": frame_table(pd.DataFrame(evaluation["calibration"])),
            "mlflow_run_id": run_id,
        }
    )


def _require_champion(store, name: str, version: str) -> None:
    """The version to evaluate must be the one the scorer serves (the `champion` alias)."""
    current = alias_version(store, name, CHAMPION)
    if current != version:
        raise dg.Failure(
            description=f"champion_model promoted {name} v{version} but the '{CHAMPION}' alias now points at "
            f"{'v' + current if current else 'no version'}: materialise champion_model again to evaluate the "
            "version that serves, or move the alias back.",
            metadata={"promoted_version": version, "alias_version": current or "none"},
        )
