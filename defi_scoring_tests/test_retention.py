"""Retention of the streaming path: old ranges go (runs, partitions, stored outputs), recent ones and
ranges still in flight stay; old score events go, wallets' latest scores stay. Real Dagster instance,
real SQLite store, the job executed as the schedule would."""

import time

import dagster as dg
import sqlalchemy as sa
from dagster._core.storage.dagster_run import DagsterRun, DagsterRunStatus
from dagster._core.utils import make_new_run_id

from defi_scoring.assets.partitions import kafka_offset_ranges
from defi_scoring.config import Settings
from defi_scoring.resources.score_store import ScoreStoreResource
from defi_scoring.retention import DAY, streaming_retention
from defi_scoring.score_store import ScoreStore


def _ranges(instance, store, keys, status=DagsterRunStatus.SUCCESS):
    instance.add_dynamic_partitions(kafka_offset_ranges.name, keys)
    for key in keys:
        instance.add_run(
            DagsterRun(job_name="kafka_scoring", run_id=make_new_run_id(), status=status, tags={"kafka/range": key})
        )
        with store.transaction() as conn:
            store.save_range(key, [("wallet-scores-success", "0xabc", b"{}")], conn)
    store.record_messages([{"wallet_address": f"0x{k:040x}", "zscore": "1.0"} for k in range(len(keys))], "r", "stream")


def test_old_ranges_and_events_are_pruned_recent_and_running_ones_kept(tmp_home):
    store_url = Settings(home=tmp_home).store_url
    store = ScoreStore(store_url)
    with dg.instance_for_test() as instance:
        old = [f"in.0.{i * 10}-{i * 10 + 9}" for i in range(40)]
        _ranges(instance, store, old)
        _ranges(instance, store, ["in.0.400-409"], status=DagsterRunStatus.STARTED)  # old but still running
        time.sleep(1.2)
        cutoff = time.time()
        time.sleep(1.2)
        recent = [f"in.0.{i * 10}-{i * 10 + 9}" for i in range(41, 46)]
        _ranges(instance, store, recent)

        days = (time.time() - cutoff) / DAY
        result = streaming_retention.execute_in_process(
            instance=instance,
            resources={"score_store": ScoreStoreResource(url=store_url)},
            run_config={
                "ops": {
                    "prune_streaming_history": {
                        "config": {"range_retention_days": days, "event_retention_days": days, "keep_latest_ranges": 3}
                    }
                }
            },
        )
        assert result.success
        output = next(e for e in result.all_events if e.event_type_value == "STEP_OUTPUT")
        counts = {k: v.value for k, v in output.event_specific_data.metadata.items() if k.endswith("_deleted")}
        assert counts == {
            "runs_deleted": 40,
            "partitions_deleted": 40,
            "processed_ranges_deleted": 40,
            "score_events_deleted": 41,
        }
        remaining = {r.tags["kafka/range"] for r in instance.get_runs(dg.RunsFilter(job_name="kafka_scoring"))}
        assert remaining == {*recent, "in.0.400-409"}
        assert set(instance.get_dynamic_partitions(kafka_offset_ranges.name)) == {*recent, "in.0.400-409"}
    with sa.create_engine(store_url).connect() as conn:
        kept = {k for (k,) in conn.execute(sa.text("SELECT range_key FROM processed_ranges"))}
        assert kept == {*recent, "in.0.400-409"}  # the running range's stored outputs are not touched
        assert conn.execute(sa.text("SELECT count(*) FROM score_events")).scalar() == len(recent)
        assert conn.execute(sa.text("SELECT count(*) FROM wallet_scores")).scalar() > 0  # latest scores stay
