"""Scheduled retraining (cron from ensemble.yaml, overridable with DEFI_SCORING_RETRAIN_CRON), hourly
freshness checks and daily streaming retention."""

import os

import dagster as dg

from defi_scoring.core.ensemble_config import load_ensemble_config
from defi_scoring.jobs import data_freshness_job, train_model_job
from defi_scoring.retention import streaming_retention

retraining_schedule = dg.ScheduleDefinition(
    name="weekly_retraining",
    job=train_model_job,
    cron_schedule=os.environ.get("DEFI_SCORING_RETRAIN_CRON") or load_ensemble_config().retrain_cron,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Retrain the ensemble on all landed batches; promotion only if the challenger wins.",
)

freshness_schedule = dg.ScheduleDefinition(
    name="hourly_freshness_checks",
    job=data_freshness_job,
    cron_schedule="17 * * * *",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Are scored_wallets and the champion model fresh enough (limits in data_checks.yaml)?",
)

retention_schedule = dg.ScheduleDefinition(
    name="daily_streaming_retention",
    job=streaming_retention,
    cron_schedule="23 4 * * *",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Prune Kafka ranges older than 7 days and score events older than 90 (configurable per run).",
)
