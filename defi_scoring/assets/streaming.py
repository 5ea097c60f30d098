"""`kafka_scored_ranges`: one partition per Kafka offset range, scored and published by a sensor run."""

import dagster as dg

from defi_scoring.assets.partitions import kafka_offset_ranges
from defi_scoring.core.ensemble_config import load_ensemble_config
from defi_scoring.core.model_scoring import score_with_model
from defi_scoring.core.scoring_config import load_scoring_config
from defi_scoring.resources.kafka import KafkaResource
from defi_scoring.resources.mlflow_store import MlflowResource
from defi_scoring.resources.score_store import ScoreStoreResource
from defi_scoring.streaming.client import OffsetRange
from defi_scoring.streaming.range_scoring import process_range
from defi_scoring.streaming.store_wait import store_wait_seconds, waiting_for_store


class RangeScoringConfig(dg.Config):
    force: bool = False
    """Rescore a range that was already processed (default: republish its stored outputs)."""
    use_champion: bool = True


@dg.asset(
    partitions_def=kafka_offset_ranges,
    group_name="streaming",
    kinds={"kafka", "python"},
    description="Reads exactly one offset range of the input topic, scores the touched wallets with their stored "
    "history and the champion model, publishes success/failure/alert messages keyed by wallet and "
    "persists the new state. Re-running a range republishes the same outputs.",
)
def kafka_scored_ranges(
    context: dg.AssetExecutionContext,
    config: RangeScoringConfig,
    kafka: KafkaResource,
    score_store: ScoreStoreResource,
    mlflow_store: MlflowResource,
) -> dg.MaterializeResult:
    offsets = OffsetRange.parse(context.partition_key)
    model = None
    if config.use_champion:
        store, name = mlflow_store.store, load_ensemble_config().registered_model_name
        model = lambda behaviour: score_with_model(behaviour, store, name)
    result = waiting_for_store(
        lambda: process_range(
            kafka.settings(), offsets, score_store.store, context.run_id, load_scoring_config(), model, config.force
        ),
        store_wait_seconds(),
        context.log.warning,
    )
    context.log.info(
        "%s: %d messages → %d success, %d failure, %d alerts%s",
        offsets.key,
        result.messages,
        result.successes,
        result.failures,
        result.alerts,
        " (replayed)" if result.replayed else "",
    )
    return dg.MaterializeResult(
        metadata={
            "messages": result.messages,
            "successes": result.successes,
            "failures": result.failures,
            "alerts": result.alerts,
            "wallets": result.wallets,
            "replayed": result.replayed,
            "seconds": dg.MetadataValue.float(round(result.seconds, 3)),
            "model_version": result.model_version or "none",
            "stage_seconds": dg.MetadataValue.json(result.stage_seconds),
        }
    )
