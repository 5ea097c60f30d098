"""Sensors: landing folder (each new JSONL or table file → a batch) and Kafka (each new offset range → a run)."""

import contextlib
import json
import os

import dagster as dg
from kafka.errors import KafkaError

from defi_scoring.assets.partitions import kafka_offset_ranges, transaction_batch_partitions
from defi_scoring.jobs import ingest_batch_job, kafka_scoring_job
from defi_scoring.landing import scan_landing
from defi_scoring.resources.data_home import DataHomeResource
from defi_scoring.resources.kafka import KafkaResource
from defi_scoring.resources.score_store import ScoreStoreResource
from defi_scoring.streaming.client import OffsetRange, plan_ranges
from defi_scoring.streaming.offset_resets import record_resets
from defi_scoring.streaming.range_failures import answer_failed_range
from defi_scoring.streaming.settings import KafkaSettings


@dg.sensor(job=ingest_batch_job, minimum_interval_seconds=15, default_status=dg.DefaultSensorStatus.RUNNING)
def landing_folder_sensor(context: dg.SensorEvaluationContext, data_home: DataHomeResource) -> dg.SensorResult:
    landing = data_home.settings.landing_dir
    landing.mkdir(parents=True, exist_ok=True)
    scan = scan_landing(landing, set(context.instance.get_dynamic_partitions(transaction_batch_partitions.name)))
    for path, reason in scan.rejected:
        context.log.warning("landing file rejected, moved to %s: %s", path, reason)
    if scan.waiting:
        context.log.info(
            "%d file(s) still being written (modified in the last seconds): %s",
            len(scan.waiting),
            ", ".join(p.name for p in scan.waiting),
        )
    new_keys = [key for key, _ in scan.ready]
    if not new_keys:
        reasons = [f"{len(scan.waiting)} still being written"] if scan.waiting else []
        reasons += [f"{len(scan.rejected)} rejected (see landing/rejected/)"] if scan.rejected else []
        return dg.SkipReason("no new batch" + (f": {', '.join(reasons)}" if reasons else ""))
    return dg.SensorResult(
        run_requests=[dg.RunRequest(partition_key=k, run_key=k) for k in new_keys],
        dynamic_partitions_requests=[transaction_batch_partitions.build_add_request(new_keys)] if new_keys else [],
    )


@dg.sensor(
    job=kafka_scoring_job,
    minimum_interval_seconds=KafkaSettings.from_env().sensor_interval_seconds,
    # On by default only where a broker is configured, so a plain `dagster dev` does not log errors every tick.
    default_status=dg.DefaultSensorStatus.RUNNING
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    else dg.DefaultSensorStatus.STOPPED,
    description="Turns new messages on the input topic into offset ranges: one dynamic partition and one run each.",
)
def kafka_scoring_sensor(context: dg.SensorEvaluationContext, kafka: KafkaResource, data_home: DataHomeResource):
    """Cursor: {topic: {partition: next offset}}; it moves only over ranges that got a run request."""
    cursor = json.loads(context.cursor) if context.cursor else {}
    settings = kafka.settings()
    try:
        ranges, new_cursor, resets = plan_ranges(settings, cursor)
    except KafkaError as exc:
        return dg.SkipReason(
            f"Kafka at {settings.bootstrap_servers} not reachable ({type(exc).__name__}: {exc}); "
            f"start one with `defi-scoring broker` or set KAFKA_BOOTSTRAP_SERVERS."
        )
    for reset in resets:
        context.log.warning(reset.describe())
    if resets:
        record_resets(data_home.settings.home, resets)  # /health shows the last one
    if not ranges and resets:  # say so where the UI shows it, and keep the moved cursor
        return dg.SensorResult(skip_reason="; ".join(r.describe() for r in resets), cursor=json.dumps(new_cursor))
    if not ranges:
        return dg.SkipReason(f"no new messages on {settings.input_topic}")
    keys = [r.key for r in ranges]
    # kafka/partition: the default dagster.yaml limits runs per tag value to 1, so one partition's
    # ranges are scored in offset order while different partitions run in parallel.
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(
                run_key=r.key,
                partition_key=r.key,
                tags={"kafka/range": r.key, "kafka/partition": f"{r.topic}.{r.partition}"},
            )
            for r in ranges
        ],
        dynamic_partitions_requests=[kafka_offset_ranges.build_add_request(keys)],
        cursor=json.dumps(new_cursor),
    )


# The eager automation conditions of wallet_features, reference_scores and scored_wallets need an
# automation sensor; Dagster's default one starts stopped, so this one ships running.
automation_sensor = dg.AutomationConditionSensorDefinition(
    "scores_follow_new_batches",
    target=dg.AssetSelection.assets("wallet_features", "reference_scores", "scored_wallets"),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
    description="Rescore every wallet after a new batch lands (the eager conditions of the scoring assets).",
)


@dg.run_failure_sensor(
    monitored_jobs=[kafka_scoring_job],
    default_status=dg.DefaultSensorStatus.RUNNING
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    else dg.DefaultSensorStatus.STOPPED,
    description="When the last retry of a Kafka range run fails, answers every record of the range on the "
    "failure topic, so that success + failure = input still holds.",
)
def kafka_range_failed(context: dg.RunFailureSensorContext, kafka: KafkaResource, score_store: ScoreStoreResource):
    from dagster._daemon.auto_run_reexecution.auto_run_reexecution import should_retry

    run = context.dagster_run
    key = run.tags.get("kafka/range")
    if key is None:
        return dg.SkipReason(f"run {run.run_id} is not a range run")
    if should_retry(context.instance.get_run_by_id(run.run_id) or run, context.instance):
        return dg.SkipReason(f"{key}: run {run.run_id[:8]} failed and will be retried")
    errors = [
        e.event_specific_data.error.message.strip() for e in context.get_step_failure_events() if e.event_specific_data
    ]
    error = errors[0] if errors else (context.failure_event.message or "the run failed")
    store = None
    with contextlib.suppress(Exception):
        store = score_store.store
    published, replayed = answer_failed_range(kafka.settings(), OffsetRange.parse(key), error[:500], store)
    context.log.warning(
        "%s: every attempt failed (%s); %d %s published",
        key,
        error[:200],
        published,
        "stored outputs" if replayed else "failure records",
    )
