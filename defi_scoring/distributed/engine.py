"""Batch features, scoring and training features on a Dask cluster, equal to the single process.

The plan of one run (tasks on the workers, only small objects through the scheduler):

1. split: each batch file → one Parquet piece per wallet partition (`partitions.split_batch`);
2. contribute: per partition, every wallet's sequence fingerprint (bucketed by digest) and the
   partition's pump-and-dump totals (`core.cross_wallet`);
3. aggregate: per digest bucket, the peer counts of its wallets, sent back per wallet partition;
   the pump totals added up in a tree;
4. apply: per partition, the unchanged core with those population-wide signals joined back.

Steps 2–3 shuffle ~40 bytes per DEX wallet and a few counts per (token, window); the transactions
never leave their partition's files.
"""

from __future__ import annotations

import operator
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from distributed import Client, Future

from defi_scoring.batch_files import read_transactions
from defi_scoring.core.cross_wallet import CrossWalletSignals, PumpTotals, dex_fingerprints, peer_counts
from defi_scoring.core.patterns import PoolTotals, pool_totals, pump_totals
from defi_scoring.core.scoring_config import PatternsConfig
from defi_scoring.distributed.partitions import group_pieces, partition_count, split_batch, wallet_partition

PartitionFn = Callable[[int, pd.DataFrame, CrossWalletSignals], Any]


@dataclass
class PartitionedBatches:
    """The run's transactions, split into wallet partitions under `work_dir`."""

    work_dir: Path
    pieces: list[list[str]]  # files per partition
    seconds: float
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def partitions(self) -> int:
        return len(self.pieces)

    def cleanup(self) -> None:
        shutil.rmtree(self.work_dir, ignore_errors=True)


def partition_batches(
    client: Client, batch_files: list[Path], work_dir: Path, partition_rows: int, chunk_rows: int = 100_000
) -> PartitionedBatches:
    """Split every batch file into wallet partitions on the workers."""
    import pyarrow.parquet as pq

    started = time.perf_counter()
    rows = sum(pq.ParquetFile(str(f)).metadata.num_rows for f in batch_files)
    workers = max(len(client.scheduler_info(n_workers=-1)["workers"]), 1)
    partitions = partition_count(rows, partition_rows, workers)
    shutil.rmtree(work_dir, ignore_errors=True)
    work_dir.mkdir(parents=True)
    futures = [
        client.submit(split_batch, str(f), str(work_dir), partitions, chunk_rows, pure=False) for f in batch_files
    ]
    pieces = group_pieces(client.gather(futures), partitions)
    return PartitionedBatches(work_dir, pieces, time.perf_counter() - started)


def _contribute(
    pieces: list[str], patterns: PatternsConfig, buckets: int
) -> tuple[list[pd.DataFrame], tuple[PumpTotals, PoolTotals]]:
    transactions = read_transactions(pieces)
    if transactions.empty:
        return [pd.DataFrame()] * buckets, (PumpTotals.empty(), PoolTotals.empty())
    fingerprints = dex_fingerprints(transactions)
    bucket = (fingerprints["digest"].to_numpy() % np.uint64(buckets)).astype(np.int64)
    wallets = pd.Index(pd.unique(transactions["wallet"]))
    totals = (pump_totals(transactions, wallets, patterns), pool_totals(transactions, wallets))
    return [fingerprints[bucket == b] for b in range(buckets)], totals


def _add_totals(a: tuple, b: tuple) -> tuple:
    return tuple(x + y for x, y in zip(a, b))


def _peers_by_partition(fingerprint_pieces: list[pd.DataFrame], partitions: int) -> list[pd.Series]:
    """Peer counts of one digest bucket's wallets, split by the wallets' partitions."""
    pieces = [p for p in fingerprint_pieces if len(p)]
    if not pieces:
        return [pd.Series(dtype=float)] * partitions
    peers = peer_counts(pd.concat(pieces))
    part = wallet_partition(pd.Series(peers.index), partitions)
    return [peers[part == p] for p in range(partitions)]


def _apply(
    index: int, pieces: list[str], fn: PartitionFn, peer_parts: list[pd.Series] | None, totals: tuple | None
) -> Any:
    transactions = read_transactions(pieces)
    peers = None if peer_parts is None else pd.concat([p for p in peer_parts if len(p)] or [pd.Series(dtype=float)])
    return fn(index, transactions, CrossWalletSignals(peers, *(totals or (None, None))))


def cross_wallet_signals(
    client: Client, batches: PartitionedBatches, patterns: PatternsConfig
) -> tuple[list[list[Future]], Future]:
    """Futures of the population-wide signals: per partition, its peer-count pieces; the pump totals."""
    n = batches.partitions
    workers = max(len(client.scheduler_info(n_workers=-1)["workers"]), 1)
    buckets = min(n, 2 * workers)  # the shuffle makes 2 × partitions × buckets small tasks
    contributions = [client.submit(_contribute, pieces, patterns, buckets, pure=False) for pieces in batches.pieces]
    fingerprints = [client.submit(operator.getitem, c, 0) for c in contributions]
    totals = [client.submit(operator.getitem, c, 1) for c in contributions]
    while len(totals) > 1:  # tree reduction: log2(partitions) rounds of pairwise sums
        pairs = [client.submit(_add_totals, a, b) for a, b in zip(totals[::2], totals[1::2])]
        totals = pairs + ([totals[-1]] if len(totals) % 2 else [])
    bucket_pieces = [[client.submit(operator.getitem, f, b) for f in fingerprints] for b in range(buckets)]
    per_bucket = [client.submit(_peers_by_partition, pieces, n, pure=False) for pieces in bucket_pieces]
    peers = [[client.submit(operator.getitem, bucket, p) for bucket in per_bucket] for p in range(n)]
    return peers, totals[0]


def map_partitions(
    client: Client, batches: PartitionedBatches, fn: PartitionFn, patterns: PatternsConfig | None = None
) -> list[Any]:
    """fn(partition number, its transactions, the population's signals) on every partition, results in
    partition order. Without `patterns` no cross-wallet signals are computed (features that need none)."""
    started = time.perf_counter()
    peers: list[Any] = [None] * batches.partitions
    pump = None
    if patterns is not None:
        peers, pump = cross_wallet_signals(client, batches, patterns)
    futures = [
        client.submit(_apply, i, pieces, fn, peers[i], pump, pure=False) for i, pieces in enumerate(batches.pieces)
    ]
    results = client.gather(futures)
    batches.timings["apply_seconds"] = time.perf_counter() - started
    return results
