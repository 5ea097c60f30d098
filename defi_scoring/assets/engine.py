"""`engine: local | dask` for the batch assets: where the per-wallet work runs."""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

import dagster as dg

from defi_scoring.resources.dask import DaskResource
from defi_scoring.resources.data_home import DataHomeResource

Engine = Literal["local", "dask"]
ENGINE_DOC = "local: this process; dask: the `dask` resource's cluster, wallets partitioned by hash (same output)."


@contextmanager
def cluster_partitions(context: dg.AssetExecutionContext, data_home: DataHomeResource, dask: DaskResource) -> Iterator:
    """(client, wallet-partitioned batches) for one asset's work; the partitions are removed after it."""
    from defi_scoring.distributed.engine import partition_batches

    with dask.get_client() as client:
        batches = partition_batches(
            client, data_home.batch_files(), data_home.work_dir(context.run_id), dask.partition_rows
        )
        context.log.info("%d wallet partitions (split in %.1fs)", batches.partitions, batches.seconds)
        try:
            yield client, batches
        finally:
            batches.cleanup()
