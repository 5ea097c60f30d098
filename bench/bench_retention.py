"""Retention on a streaming history of many ranges: how long the prune takes and that growth is bounded.

Simulates --ranges finished range runs (each a dynamic partition, a run, a stored range output and a
score event) on a fresh SQLite Dagster instance and score store, the oldest --old of them before a
cutoff, then runs the `streaming_retention` job as its schedule would and prints one JSON line:
counts before and after, seconds to simulate and to prune, and the size of the instance and store.

  python bench/bench_retention.py [--ranges 50000] [--old 45000]
"""

import argparse
import json
import os
import tempfile
import time
from pathlib import Path


def _size_mb(path: Path) -> float:
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    return round(sum(p.stat().st_size for p in files) / 1e6, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ranges", type=int, default=50_000)
    parser.add_argument("--old", type=int, default=45_000)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="bench-retention-"))
    os.environ["DEFI_SCORING_HOME"] = str(home)
    os.environ["DAGSTER_HOME"] = str(home / "dagster")

    import dagster as dg
    from dagster._core.storage.dagster_run import DagsterRun, DagsterRunStatus
    from dagster._core.utils import make_new_run_id

    from defi_scoring.assets.partitions import kafka_offset_ranges
    from defi_scoring.config import Settings, ensure_dagster_home
    from defi_scoring.resources.score_store import ScoreStoreResource
    from defi_scoring.retention import DAY, streaming_retention
    from defi_scoring.score_store import ScoreStore

    ensure_dagster_home(Settings.from_env())
    store_url = Settings.from_env().store_url
    store = ScoreStore(store_url)

    def simulate(instance, first: int, count: int) -> None:
        keys = [f"wallet-transactions.0.{i * 100}-{i * 100 + 99}" for i in range(first, first + count)]
        instance.add_dynamic_partitions(kafka_offset_ranges.name, keys)
        for key in keys:
            instance.add_run(
                DagsterRun(
                    job_name="kafka_scoring",
                    run_id=make_new_run_id(),
                    status=DagsterRunStatus.SUCCESS,
                    tags={"kafka/range": key},
                )
            )
        with store.transaction() as conn:
            for key in keys:
                store.save_range(key, [("wallet-scores-success", "0x" + "a" * 40, b"{}" * 200)], conn)
        store.record_messages([{"wallet_address": f"0x{i:040x}", "zscore": "1"} for i in range(count)], "r", "stream")

    with dg.DagsterInstance.get() as instance:
        started = time.perf_counter()
        simulate(instance, 0, args.old)
        time.sleep(1.1)
        cutoff = time.time()
        time.sleep(1.1)
        simulate(instance, args.old, args.ranges - args.old)
        simulated_s = time.perf_counter() - started
        before = {
            "runs": instance.get_runs_count(dg.RunsFilter(job_name="kafka_scoring")),
            "partitions": len(instance.get_dynamic_partitions(kafka_offset_ranges.name)),
        }
        size_before = {"instance_mb": _size_mb(home / "dagster"), "store_mb": _size_mb(home / "scores.db")}
        days = (time.time() - cutoff) / DAY
        started = time.perf_counter()
        result = streaming_retention.execute_in_process(
            instance=instance,
            resources={"score_store": ScoreStoreResource(url=store_url)},
            run_config={
                "ops": {
                    "prune_streaming_history": {"config": {"range_retention_days": days, "event_retention_days": days}}
                }
            },
        )
        prune_s = time.perf_counter() - started
        after = {
            "runs": instance.get_runs_count(dg.RunsFilter(job_name="kafka_scoring")),
            "partitions": len(instance.get_dynamic_partitions(kafka_offset_ranges.name)),
        }
    output = next(e for e in result.all_events if e.event_type_value == "STEP_OUTPUT")
    print(
        json.dumps(
            {
                "ranges": args.ranges,
                "old_ranges": args.old,
                "before": before,
                "after": after,
                "deleted": {k: v.value for k, v in output.event_specific_data.metadata.items() if k != "seconds"},
                "simulate_seconds": round(simulated_s, 1),
                "prune_seconds": round(prune_s, 1),
                "size_before": size_before,
                "size_after": {"instance_mb": _size_mb(home / "dagster"), "store_mb": _size_mb(home / "scores.db")},
            }
        )
    )


if __name__ == "__main__":
    main()
