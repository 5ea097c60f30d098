"""The one Definitions object of the project (`dagster dev -w workspace.yaml` or `dg dev`)."""

import dagster as dg

from defi_scoring.assets import reference_scores, transaction_batches, wallet_features
from defi_scoring.config import Settings
from defi_scoring.jobs import ingest_batch_job, score_wallets_job
from defi_scoring.resources.data_home import DataHomeResource
from defi_scoring.sensors import landing_folder_sensor


def build_definitions(settings: Settings | None = None) -> dg.Definitions:
    settings = settings or Settings.from_env()
    return dg.Definitions(
        assets=[transaction_batches, wallet_features, reference_scores],
        jobs=[ingest_batch_job, score_wallets_job],
        sensors=[landing_folder_sensor],
        resources={"data_home": DataHomeResource(home=str(settings.home))},
    )


defs = build_definitions()
