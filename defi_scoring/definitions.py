"""The one Definitions object of the project (`dagster dev -w workspace.yaml` or `dg dev`)."""

import os

import dagster as dg

from defi_scoring.assets import reference_scores, scored_wallets, transaction_batches, wallet_features
from defi_scoring.assets.training import challenger_beats_champion, champion_model, ensemble_model, training_set
from defi_scoring.config import Settings
from defi_scoring.jobs import ingest_batch_job, score_wallets_job, train_model_job
from defi_scoring.resources.mlflow_store import MlflowResource
from defi_scoring.schedules import retraining_schedule
from defi_scoring.resources.data_home import DataHomeResource
from defi_scoring.sensors import landing_folder_sensor


def build_definitions(settings: Settings | None = None) -> dg.Definitions:
    settings = settings or Settings.from_env()
    return dg.Definitions(
        assets=[transaction_batches, wallet_features, reference_scores, scored_wallets, training_set, ensemble_model,
                champion_model],
        asset_checks=[challenger_beats_champion],
        jobs=[ingest_batch_job, score_wallets_job, train_model_job],
        schedules=[retraining_schedule],
        sensors=[landing_folder_sensor],
        resources={
            "data_home": DataHomeResource(home=str(settings.home)),
            "mlflow_store": MlflowResource(
                home=str(settings.home),
                tracking_uri=os.environ.get("MLFLOW_TRACKING_URI", ""),
                artifact_root=os.environ.get("MLFLOW_ARTIFACT_ROOT", ""),
            ),
        },
    )


defs = build_definitions()
