"""Drive the Kafka sensor and its runs in this process, as the Dagster daemon would.

Used by `defi-scoring demo` and `bench/bench_stream.py`: evaluate `kafka_scoring_sensor` with the
instance's cursor handling, register the dynamic partitions it asks for, and execute each requested
run with `execute_in_process` (the in-process executor the job declares).
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg

from defi_scoring.assets.partitions import kafka_offset_ranges
from defi_scoring.config import Settings


QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}  # the run's events stay in the instance


_worker_defs: dict[str, dg.Definitions] = {}


def _run_chain(instance_ref: dg.InstanceRef, home: str, keys: list[str]) -> list[dict[str, Any]]:
    """In a worker process: execute the ranges of one Kafka partition, in offset order."""
    from defi_scoring.definitions import build_definitions

    if home not in _worker_defs:
        _worker_defs[home] = build_definitions(Settings(home=Path(home)))
    job = _worker_defs[home].resolve_job_def("kafka_scoring")
    out = []
    with dg.DagsterInstance.from_ref(instance_ref) as instance:
        for key in keys:
            result = job.execute_in_process(instance=instance, partition_key=key, run_config=QUIET,
                                            tags={"dagster/sensor_name": "kafka_scoring_sensor"})
            meta = result.asset_materializations_for_node("kafka_scored_ranges")[0].metadata
            out.append({"key": key, "success": result.success, "messages": meta["messages"].value,
                        "seconds": meta["seconds"].value})
    return out


@dataclass
class SensorDriver:
    """workers=1: runs execute here, one after another. workers>1: like the daemon with the default
    dagster.yaml — each Kafka partition's ranges go, in order, to one of `workers` processes, and
    different partitions run in parallel."""

    defs: dg.Definitions
    instance: dg.DagsterInstance
    cursor: str | None = None
    runs: list = field(default_factory=list)
    workers: int = 1
    home: Path | None = None
    _pool: ProcessPoolExecutor | None = None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()

    def tick(self) -> list:
        """One sensor evaluation and the runs it requested; [] when there was nothing new.
        Returns execution results (workers=1) or {key, success, messages, seconds} dicts."""
        sensor = self.defs.resolve_sensor_def("kafka_scoring_sensor")
        context = dg.build_sensor_context(instance=self.instance, cursor=self.cursor,
                                          resources={"kafka": self.defs.resources["kafka"]})
        result = sensor(context)
        if not isinstance(result, dg.SensorResult):
            return []
        for request in result.dynamic_partitions_requests:
            self.instance.add_dynamic_partitions(kafka_offset_ranges.name, list(request.partition_keys))
        self.cursor = result.cursor
        if self.workers > 1:
            return self._tick_parallel(result.run_requests)
        job = self.defs.resolve_job_def("kafka_scoring")
        done = [job.execute_in_process(instance=self.instance, partition_key=r.partition_key, run_config=QUIET,
                                       tags={"dagster/sensor_name": "kafka_scoring_sensor", **r.tags})
                for r in result.run_requests]
        self.runs.extend(done)
        return done

    def _tick_parallel(self, requests: list[dg.RunRequest]) -> list[dict[str, Any]]:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"))
        chains: dict[str, list[str]] = {}
        for request in requests:
            chains.setdefault(request.tags.get("kafka/partition", ""), []).append(request.partition_key)
        home = str(self.home or Settings.from_env().home)
        futures = [self._pool.submit(_run_chain, self.instance.get_ref(), home, keys) for keys in chains.values()]
        done = [run for future in futures for run in future.result()]
        self.runs.extend(done)
        return done


def latencies_s(inputs: list, outputs: list) -> list[float]:
    """Seconds from each input record's timestamp to the first output record with the same key."""
    produced: dict[bytes, list[int]] = {}
    for record in inputs:
        produced.setdefault(record.key or b"", []).append(record.timestamp)
    out = []
    for record in sorted(outputs, key=lambda r: r.timestamp):
        times = produced.get(record.key or b"")
        if times:
            out.append((record.timestamp - times.pop(0)) / 1000)
    return out
