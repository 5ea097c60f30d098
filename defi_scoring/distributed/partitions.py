"""Wallet partitions: every transaction of a wallet in one partition, chosen by a hash of the wallet.

Batches are split on the workers into one Parquet piece per (batch chunk, partition) under a work
folder that every worker can read (the data home on one machine; a shared volume or object store
mount on a cluster). Only file names travel through the scheduler, never transactions.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from defi_scoring.core.cross_wallet import stable_hash


def wallet_partition(wallets: pd.Series, partitions: int) -> np.ndarray:
    """Partition number of each wallet address: the same in every process and for every batch."""
    if isinstance(wallets.dtype, pd.CategoricalDtype):  # hash the distinct wallets only
        per_category = stable_hash(wallets.cat.categories.to_numpy()) % np.uint64(partitions)
        return per_category.astype(np.int64)[wallets.cat.codes.to_numpy()]
    return (stable_hash(wallets.to_numpy()) % np.uint64(partitions)).astype(np.int64)


def split_batch(source: str, out_dir: str, partitions: int, chunk_rows: int) -> list[tuple[int, str]]:
    """Split one batch file into per-partition pieces, `chunk_rows` rows in memory at a time.
    Returns (partition, piece path) for every piece written."""
    pieces: list[tuple[int, str]] = []
    batch_name = Path(source).parent.name
    for chunk_number, record_batch in enumerate(pq.ParquetFile(source).iter_batches(batch_size=chunk_rows)):
        frame = record_batch.to_pandas()
        pieces += write_pieces(frame, Path(out_dir), partitions, f"{batch_name}-{chunk_number:05d}")
    return pieces


def write_pieces(frame: pd.DataFrame, out_dir: Path, partitions: int, name: str) -> list[tuple[int, str]]:
    """Rows of `frame` (with a `wallet` column) as `out_dir/part-NNNNN/<name>.parquet`, one file per
    partition that has rows. Returns (partition, path) for every piece written."""
    part = wallet_partition(frame["wallet"], partitions)
    order = np.argsort(part, kind="stable")
    bounds = np.searchsorted(part[order], np.arange(partitions + 1))
    pieces = []
    for p in range(partitions):
        rows = order[bounds[p] : bounds[p + 1]]
        if len(rows) == 0:
            continue
        folder = out_dir / f"part-{p:05d}"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{name}.parquet"
        _compact_categories(frame.iloc[rows]).to_parquet(path, index=False)
        pieces.append((p, str(path)))
    return pieces


def _compact_categories(piece: pd.DataFrame, keep_below: int = 1_000) -> pd.DataFrame:
    """The piece without the categories it does not use (wallet, counterparty): otherwise every piece
    writes the whole batch's dictionary, and a thousand pieces write it a thousand times."""
    large = [
        c for c, t in piece.dtypes.items() if isinstance(t, pd.CategoricalDtype) and len(t.categories) >= keep_below
    ]
    return piece.assign(**{c: piece[c].cat.remove_unused_categories() for c in large}) if large else piece


def group_pieces(pieces: list[list[tuple[int, str]]], partitions: int) -> list[list[str]]:
    """Piece files per partition, in batch then chunk order (the order a single process reads)."""
    out: list[list[str]] = [[] for _ in range(partitions)]
    for per_batch in pieces:
        for partition, path in per_batch:
            out[partition].append(path)
    return out


def partition_count(rows: int, partition_rows: int, workers: int) -> int:
    """Enough partitions for `partition_rows` transactions each, and at least two per worker."""
    return max(2 * workers, -(-rows // max(partition_rows, 1)))
