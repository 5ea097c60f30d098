"""Test helper: drive the Kafka sensor and its runs from the test process, as the Dagster daemon would.

Tests only (the demo, the benches and deployments run the stock daemon): evaluate `kafka_scoring_sensor` with the
instance's cursor handling, register the dynamic partitions it asks for, and execute each requested
run with `execute_in_process` (the in-process executor the job declares) — here, or in worker
processes that stay warm between runs.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import time
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg

from defi_scoring.assets.partitions import kafka_offset_ranges
from defi_scoring.config import Settings
from defi_scoring.streaming.client import OffsetRange

QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}  # the run's events stay in the instance


_worker_defs: dict[str, dg.Definitions] = {}


def _definitions(home: str) -> dg.Definitions:
    from defi_scoring.definitions import build_definitions

    if home not in _worker_defs:
        _worker_defs[home] = build_definitions(Settings(home=Path(home)))
    return _worker_defs[home]


def _warm(home: str) -> int:
    """In a worker process: import the code, open the stores, load the champion and score a few
    generated wallets (nothing is stored) now, not in the first run — as a running daemon's
    workers would have."""
    import orjson

    from defi_scoring.core.batch_scoring import score_raw_messages
    from defi_scoring.core.ensemble_config import load_ensemble_config
    from defi_scoring.core.model_scoring import ChampionUnloadable, load_champion
    from defi_scoring.core.synthetic import generate_wallets, iter_messages

    defs = _definitions(home)
    defs.resolve_job_def("kafka_scoring")
    defs.resources["score_store"].store.ping()
    with contextlib.suppress(ChampionUnloadable):  # the runs then say why, and score without it
        load_champion(defs.resources["mlflow_store"].store, load_ensemble_config().registered_model_name)
    score_raw_messages([orjson.dumps(m) for m in iter_messages(generate_wallets(50, seed=0))]).encoded()
    return os.getpid()


def _run_chain(instance_ref: dg.InstanceRef, home: str, requests: list[tuple[str, dict[str, str]]]) -> list[dict]:
    """In a worker process: execute (partition key, tags) runs of one Kafka partition, in offset order."""
    job = _definitions(home).resolve_job_def("kafka_scoring")
    out = []
    with dg.DagsterInstance.from_ref(instance_ref) as instance:
        for key, tags in requests:
            started, cpu = time.perf_counter(), time.process_time()
            result = job.execute_in_process(
                instance=instance,
                partition_key=key,
                run_config=QUIET,
                tags={"dagster/sensor_name": "kafka_scoring_sensor", **tags},
            )
            meta = result.asset_materializations_for_node("kafka_scored_ranges")[0].metadata
            out.append(
                {
                    "key": key,
                    "success": result.success,
                    "messages": meta["messages"].value,
                    "seconds": meta["seconds"].value,
                    "run_seconds": time.perf_counter() - started,
                    "cpu_seconds": time.process_time() - cpu,
                    "stages": meta["stage_seconds"].value if "stage_seconds" in meta else {},
                }
            )
    return out


@dataclass
class SensorDriver:
    """workers=1: each tick executes its runs here, one after another, before returning.

    workers>1: like the daemon with the default dagster.yaml — the tick only queues its runs and
    returns the runs that finished meanwhile; each Kafka partition's ranges run in order in one
    worker process (partition p → worker p mod workers), different partitions in parallel, and
    the sensor keeps ticking while runs execute.
    """

    defs: dg.Definitions
    instance: dg.DagsterInstance
    cursor: str | None = None
    runs: list = field(default_factory=list)
    workers: int = 1
    home: Path | None = None
    _pools: dict[int, ProcessPoolExecutor] = field(default_factory=dict)
    _pending: list[Future] = field(default_factory=list)

    def _pool(self, slot: int) -> ProcessPoolExecutor:
        if slot not in self._pools:  # one process per slot: its queue keeps a partition's ranges in order
            self._pools[slot] = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
        return self._pools[slot]

    @property
    def _home(self) -> str:
        return str(self.home or Settings.from_env().home)

    def warm_up(self) -> None:
        """Start the worker processes and load the code in each, as a running daemon already has."""
        if self.workers > 1:
            for future in [self._pool(slot).submit(_warm, self._home) for slot in range(self.workers)]:
                future.result()

    def close(self) -> None:
        for pool in self._pools.values():
            pool.shutdown()

    def tick(self) -> list:
        """One sensor evaluation. workers=1: the runs it requested, executed ([] when there was
        nothing new). workers>1: {key, success, messages, seconds, run_seconds, cpu_seconds, stages} of the runs
        that finished since the last call."""
        sensor = self.defs.resolve_sensor_def("kafka_scoring_sensor")
        context = dg.build_sensor_context(
            instance=self.instance,
            cursor=self.cursor,
            resources={"kafka": self.defs.resources["kafka"], "data_home": self.defs.resources["data_home"]},
        )
        result = sensor(context)
        requests: list[dg.RunRequest] = []
        if isinstance(result, dg.SensorResult):
            for request in result.dynamic_partitions_requests:
                self.instance.add_dynamic_partitions(kafka_offset_ranges.name, list(request.partition_keys))
            self.cursor = result.cursor
            requests = list(result.run_requests or [])
        if self.workers > 1:
            self._queue(requests)
            return self._finished()
        job = self.defs.resolve_job_def("kafka_scoring")
        done = [
            job.execute_in_process(
                instance=self.instance,
                partition_key=r.partition_key,
                run_config=QUIET,
                tags={"dagster/sensor_name": "kafka_scoring_sensor", **r.tags},
            )
            for r in requests
        ]
        self.runs.extend(done)
        return done

    def _queue(self, requests: list[dg.RunRequest]) -> None:
        chains: dict[int, list[tuple[str, dict[str, str]]]] = {}
        for request in requests:
            partition = OffsetRange.parse(request.partition_key).partition
            chains.setdefault(partition % self.workers, []).append((request.partition_key, dict(request.tags)))
        ref = self.instance.get_ref()
        self._pending += [self._pool(slot).submit(_run_chain, ref, self._home, keys) for slot, keys in chains.items()]

    def _finished(self, wait: bool = False) -> list[dict[str, Any]]:
        ready = [f for f in self._pending if wait or f.done()]
        self._pending = [f for f in self._pending if f not in ready]
        done = [run for future in ready for run in future.result()]
        self.runs.extend(done)
        return done

    def drain(self) -> list[dict[str, Any]]:
        """Wait for every queued run (workers>1)."""
        return self._finished(wait=True)
