"""`daily_wallet_scores`: every stored wallet re-scored as of the end of each day.

A wallet's score is a function of its stored history, scored by default at its own newest
transaction; a wallet that stops trading would keep its score for ever. The daily partition passes
its date as the explicit as-of (the end of that UTC day) through the scoring service, so inactivity
still moves a score (open deposits keep being held, the score-drop alert compares with yesterday),
and a backfill of past days scores each wallet on the transactions it had by then.
"""

import time
from datetime import UTC, datetime, timedelta

import dagster as dg
import numpy as np

from defi_scoring.assets.metadata import frame_table
from defi_scoring.core.ensemble_config import load_ensemble_config
from defi_scoring.core.model_scoring import score_with_model
from defi_scoring.core.scoring_config import load_scoring_config
from defi_scoring.core.summary import risk_level_markdown
from defi_scoring.resources.mlflow_store import MlflowResource
from defi_scoring.resources.score_store import ScoreStoreResource
from defi_scoring.service.scoring_service import ScoringService

daily_partitions = dg.DailyPartitionsDefinition(start_date="2024-01-01", timezone="UTC")


def end_of_day(partition_key: str) -> int:
    """The last second of the partition's UTC day."""
    day = datetime.strptime(partition_key, "%Y-%m-%d").replace(tzinfo=UTC)
    return int((day + timedelta(days=1)).timestamp()) - 1


@dg.asset(
    partitions_def=daily_partitions,
    group_name="scoring",
    kinds={"python", "sql"},
    description="Every stored wallet re-scored as of the end of the partition's day (its transactions up to "
    "then), recorded in the score store with source `daily`.",
)
def daily_wallet_scores(
    context: dg.AssetExecutionContext, score_store: ScoreStoreResource, mlflow_store: MlflowResource
) -> dg.MaterializeResult:
    as_of = end_of_day(context.partition_key)
    store, name = mlflow_store.store, load_ensemble_config().registered_model_name
    config = load_scoring_config()
    service = ScoringService(score_store.store, config, lambda behaviour: score_with_model(behaviour, store, name))
    started = time.perf_counter()
    wallets = score_store.store.stored_wallets()
    scores, _ = service.score_stored(wallets, source="daily", run_id=context.run_id, as_of=as_of, until=as_of)
    table = scores.table
    context.log.info(
        "re-scored %d wallets as of %s in %.1fs", len(table), context.partition_key, time.perf_counter() - started
    )
    levels = [band.name for band in config.risk_levels] + ["insufficient_history"]
    hybrid = table["hybrid_score"].to_numpy() if len(table) else np.zeros(0)
    return dg.MaterializeResult(
        metadata={
            "wallets": dg.MetadataValue.int(len(table)),
            "as_of": dg.MetadataValue.timestamp(float(as_of)),
            "hybrid_score_mean": dg.MetadataValue.float(float(hybrid.mean()) if len(hybrid) else 0.0),
            "risk_levels": dg.MetadataValue.md(risk_level_markdown(table, levels)) if len(table) else "none",
            "lowest_scored": frame_table(
                table.sort_values("hybrid_score").head(10)[["hybrid_score", "risk_level"]],
                index_name="wallet",
                digits=2,
            ),
        }
    )


daily_rescoring_job = dg.define_asset_job(
    "daily_rescoring", selection=[daily_wallet_scores], partitions_def=daily_partitions
)
daily_rescoring_schedule = dg.build_schedule_from_partitioned_job(
    daily_rescoring_job,
    hour_of_day=0,
    minute_of_hour=30,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Yesterday's partition of daily_wallet_scores: every stored wallet re-scored as of midnight.",
)
