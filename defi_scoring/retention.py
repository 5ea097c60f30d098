"""Retention for streaming: what a Kafka range leaves behind does not grow without bound.

Every offset range becomes a dynamic partition, one or more `kafka_scoring` runs (with their event
logs), a `processed_ranges` row (the range's outputs, for idempotent replays) and one score event per
message. At a 5-s sensor tick that is ~17,000 ranges a day. The `prune_streaming_history` job (daily
schedule, on by default) removes, for ranges older than `range_retention_days`, the finished runs,
their partitions and their stored outputs, always keeping the newest `keep_latest_ranges`; and score
events older than `event_retention_days` (the wallet's latest score itself is kept: `wallet_scores`).
A pruned range cannot be replayed from the store any more, which is why only finished, old ranges go.
"""

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import sqlalchemy as sa
from dagster._core.storage.dagster_run import FINISHED_STATUSES, NOT_FINISHED_STATUSES
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage

from defi_scoring.assets.partitions import kafka_offset_ranges
from defi_scoring.resources.score_store import ScoreStoreResource
from defi_scoring.score_store import ScoreStore, processed_ranges, score_events

DAY = 86_400
RANGE_JOB = "kafka_scoring"


@dataclass
class Pruned:
    runs: int = 0
    partitions: int = 0
    processed_ranges: int = 0
    score_events: int = 0


def newest_ranges(instance: dg.DagsterInstance, n: int) -> set[str]:
    """The range keys of the newest `n` range runs: kept whatever their age."""
    runs = instance.get_runs(dg.RunsFilter(job_name=RANGE_JOB), limit=n) if n > 0 else []
    return {r.tags["kafka/range"] for r in runs if "kafka/range" in r.tags}


def ranges_in_flight(instance: dg.DagsterInstance) -> set[str]:
    """Range keys with a run that has not finished (queued, starting, started, canceling)."""
    runs = instance.get_runs(dg.RunsFilter(job_name=RANGE_JOB, statuses=list(NOT_FINISHED_STATUSES)))
    return {r.tags["kafka/range"] for r in runs if "kafka/range" in r.tags}


def delete_runs(instance: dg.DagsterInstance, run_ids: list[str], chunk: int = 500) -> None:
    """`instance.delete_run` for many runs. On the default SQLite storage each run's events live in a
    file of their own (`<run_id>.db`), which deleting the events leaves behind: there the events are
    removed from the index in chunks and the run's file is deleted, which frees the disk and is ~50×
    faster than opening every run's file to empty it."""
    storage = instance.event_log_storage
    if not isinstance(storage, SqliteEventLogStorage):
        for run_id in run_ids:
            instance.delete_run(run_id)
        return
    for start in range(0, len(run_ids), chunk):
        part = run_ids[start : start + chunk]
        with storage.index_connection() as conn:
            for run_id in part:
                storage.delete_events_for_run(conn, run_id)
        for run_id in part:
            instance.run_storage.delete_run(run_id)
            shard = Path(storage.path_for_shard(run_id))
            for path in (shard, shard.with_name(shard.name + "-wal"), shard.with_name(shard.name + "-shm")):
                path.unlink(missing_ok=True)


def prune_range_runs(instance: dg.DagsterInstance, older_than: float, keep: set[str], page: int = 1_000) -> Pruned:
    """Delete finished range runs created before `older_than` (unix s) and the partitions of their
    ranges, except the ranges in `keep` and ranges that still have a run in flight."""
    old = dg.RunsFilter(
        job_name=RANGE_JOB,
        created_before=datetime.fromtimestamp(older_than, tz=UTC),
        statuses=list(FINISHED_STATUSES),
    )
    doomed, cursor = [], None
    while batch := instance.get_runs(old, cursor=cursor, limit=page):
        cursor = batch[-1].run_id
        doomed += [(r.run_id, r.tags.get("kafka/range")) for r in batch if r.tags.get("kafka/range") not in keep]
    delete_runs(instance, [run_id for run_id, _ in doomed])
    in_flight = ranges_in_flight(instance)
    existing = set(instance.get_dynamic_partitions(kafka_offset_ranges.name))
    keys = sorted({key for _, key in doomed if key in existing and key not in in_flight})
    for key in keys:
        instance.delete_dynamic_partition(kafka_offset_ranges.name, key)
    return Pruned(runs=len(doomed), partitions=len(keys))


def prune_store(store: ScoreStore, ranges_older_than: float, events_older_than: float, keep: set[str]) -> Pruned:
    """Delete stored range outputs and score events older than the cutoffs (unix s)."""
    with store.transaction() as conn:
        old_ranges = sa.delete(processed_ranges).where(processed_ranges.c.recorded_at < ranges_older_than)
        if keep:
            old_ranges = old_ranges.where(processed_ranges.c.range_key.not_in(sorted(keep)))
        ranges = conn.execute(old_ranges).rowcount
        events = conn.execute(sa.delete(score_events).where(score_events.c.recorded_at < events_older_than)).rowcount
    return Pruned(processed_ranges=ranges, score_events=events)


class RetentionConfig(dg.Config):
    range_retention_days: float = 7.0
    """Ranges (runs, partitions, stored outputs) older than this are removed."""
    event_retention_days: float = 90.0
    """Score events (the per-wallet scoring history of the API) older than this are removed."""
    keep_latest_ranges: int = 100
    """The newest ranges are kept whatever their age."""


@dg.op(description="Remove old Kafka range runs, their partitions, stored outputs and old score events.")
def prune_streaming_history(
    context: dg.OpExecutionContext, config: RetentionConfig, score_store: ScoreStoreResource
) -> dg.Output:
    now = time.time()
    started = time.perf_counter()
    kept = newest_ranges(context.instance, config.keep_latest_ranges) | ranges_in_flight(context.instance)
    runs = prune_range_runs(context.instance, now - config.range_retention_days * DAY, kept)
    store = prune_store(
        score_store.store, now - config.range_retention_days * DAY, now - config.event_retention_days * DAY, kept
    )
    counts = {
        "runs_deleted": runs.runs,
        "partitions_deleted": runs.partitions,
        "processed_ranges_deleted": store.processed_ranges,
        "score_events_deleted": store.score_events,
    }
    context.log.info("pruned %s in %.1fs", counts, time.perf_counter() - started)
    return dg.Output(None, metadata={**counts, "seconds": round(time.perf_counter() - started, 2)})


@dg.job(description="Retention of the streaming path's runs, partitions and store rows (defi_scoring/retention.py).")
def streaming_retention():
    prune_streaming_history()
