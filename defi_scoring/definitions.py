"""The one Definitions object of the project (`defi-scoring ui`, `dagster dev -w workspace.yaml` or `dg dev`).

Asset values pass through the default `io_manager` (resources/parquet_io.py): DataFrames as Parquet in
the data home's `tables/`, model versions as JSON beside them.
"""

import os

import dagster as dg

from defi_scoring.assets import reference_scores, scored_wallets, transaction_batches, wallet_features
from defi_scoring.assets.daily_scores import daily_rescoring_job, daily_rescoring_schedule, daily_wallet_scores
from defi_scoring.assets.evaluation import model_evaluation
from defi_scoring.assets.exposure import EXPOSURE_ASSETS, EXPOSURE_JOBS, EXPOSURE_SENSORS
from defi_scoring.assets.freshness import champion_is_fresh, scored_wallets_is_fresh
from defi_scoring.assets.streaming import kafka_scored_ranges
from defi_scoring.assets.training import challenger_beats_champion, champion_model, ensemble_model, training_set
from defi_scoring.config import Settings
from defi_scoring.jobs import (
    data_freshness_job,
    ingest_batch_job,
    kafka_scoring_job,
    score_wallets_job,
    train_model_job,
)
from defi_scoring.resources.dask import DaskResource
from defi_scoring.resources.data_home import DataHomeResource
from defi_scoring.resources.kafka import KafkaResource
from defi_scoring.resources.mlflow_store import MlflowResource
from defi_scoring.resources.parquet_io import DataHomeIOManager
from defi_scoring.resources.score_store import ScoreStoreResource
from defi_scoring.retention import streaming_retention
from defi_scoring.schedules import freshness_schedule, retention_schedule, retraining_schedule
from defi_scoring.sensors import automation_sensor, kafka_range_failed, kafka_scoring_sensor, landing_folder_sensor
from defi_scoring.streaming.settings import KafkaSettings

# Assets whose results are published outside the asset graph, each with where. An asset that no other
# asset or asset check reads (a leaf) must be one of them (test_lineage keeps it so); every other asset
# is an input or a dependency of another.
PUBLISHED_OUTPUTS: dict[str, str] = {
    "scored_wallets": "each wallet's latest score in the score store the API serves, and "
    "tables/scored_wallets.parquet (defi-scoring demo)",
    "reference_scores": "tables/reference_scores.parquet, the CONTRACTS.md §4 reference table (defi-scoring demo); "
    "also read by scored_wallets' zscore_matches_reference check",
    "model_evaluation": "an MLflow evaluation run of the promoted champion (metrics, plots) on its LoggedModel",
    "kafka_scored_ranges": "success, failure and alert messages on the output topics, and the score store",
    "daily_wallet_scores": "score events with source `daily` in the score store",
    "exposure_rescoring": "score events with source `exposure` in the score store (wallets a list change reached)",
}


def _secret(variable: str, default: str):
    """A value that may carry credentials: read through dg.EnvVar when set, so the UI shows only its name."""
    return dg.EnvVar(variable) if os.environ.get(variable) else default


def build_definitions(settings: Settings | None = None) -> dg.Definitions:
    settings = settings or Settings.from_env()
    data_home = DataHomeResource(home=str(settings.home))
    return dg.Definitions(
        assets=[
            transaction_batches,
            wallet_features,
            reference_scores,
            scored_wallets,
            training_set,
            ensemble_model,
            champion_model,
            model_evaluation,
            kafka_scored_ranges,
            daily_wallet_scores,
            *EXPOSURE_ASSETS,
        ],
        asset_checks=[challenger_beats_champion, scored_wallets_is_fresh, champion_is_fresh],
        jobs=[
            ingest_batch_job,
            score_wallets_job,
            train_model_job,
            kafka_scoring_job,
            data_freshness_job,
            streaming_retention,
            daily_rescoring_job,
            *EXPOSURE_JOBS,
        ],
        schedules=[retraining_schedule, freshness_schedule, retention_schedule, daily_rescoring_schedule],
        sensors=[
            landing_folder_sensor,
            kafka_scoring_sensor,
            kafka_range_failed,
            automation_sensor,
            *EXPOSURE_SENSORS,
        ],
        resources={
            "data_home": data_home,
            "io_manager": DataHomeIOManager(data_home=data_home),
            "kafka": KafkaResource.from_settings(KafkaSettings.from_env()),
            "score_store": ScoreStoreResource(url=_secret("DEFI_SCORING_STORE_URL", settings.store_url)),
            "dask": DaskResource(
                scheduler_address=_secret("DASK_SCHEDULER_ADDRESS", ""),
                n_workers=int(os.environ.get("DEFI_SCORING_DASK_WORKERS", "2")),
                memory_limit=os.environ.get("DEFI_SCORING_DASK_MEMORY_LIMIT", "4GiB"),
            ),
            "mlflow_store": MlflowResource(
                home=str(settings.home),
                tracking_uri=_secret("MLFLOW_TRACKING_URI", ""),
                artifact_root=os.environ.get("MLFLOW_ARTIFACT_ROOT", ""),
            ),
        },
    )


defs = build_definitions()
