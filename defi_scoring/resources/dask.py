"""The Dask cluster the batch assets use with `engine: dask` (docs/scale_out.md)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg
from pydantic import Field


class DaskResource(dg.ConfigurableResource):
    """An existing scheduler (`scheduler_address`, from DASK_SCHEDULER_ADDRESS) or, by default, a
    local cluster of worker *processes* started for the run and stopped after it."""

    scheduler_address: str = ""
    """tcp://host:8786 of a running scheduler (Kubernetes, YARN, SSH, dask-scheduler); empty: local cluster."""
    n_workers: int = Field(default=2, ge=1)
    """Worker processes of the local cluster."""
    threads_per_worker: int = Field(default=1, ge=1)
    """Threads per local worker; the core is NumPy/pandas, so processes scale better than threads."""
    memory_limit: str = "4GiB"
    """Per local worker; Dask spills to disk at 60% and restarts a worker past 95%."""
    partition_rows: int = Field(default=250_000, ge=1_000)
    """Transactions per wallet partition (at least two partitions per worker)."""

    @contextmanager
    def get_client(self) -> Iterator:
        from distributed import Client, LocalCluster

        if self.scheduler_address:
            with Client(self.scheduler_address) as client:
                yield client
            return
        with (
            LocalCluster(
                n_workers=self.n_workers,
                threads_per_worker=self.threads_per_worker,
                memory_limit=self.memory_limit,
                processes=True,
                dashboard_address=None,
            ) as cluster,
            Client(cluster) as client,
        ):
            yield client
