"""Landed batches' Parquet files: written chunk by chunk, read as one deduplicated transaction table.

Shared by the data home (all batches in one process) and the cluster engine (one wallet partition's
pieces of every batch): the same order and the same deduplication give the same rows.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from defi_scoring.core.normalise import NormalisedBatch


def read_transactions(files: Sequence[Path | str], wallets: Sequence[str] | None = None) -> pd.DataFrame:
    """Transactions of `files`, deduplicated by (wallet, document_id), the earliest batch's row kept.

    With `wallets`, only their rows, read a row group at a time (memory for those rows only).
    """
    if not files:
        return pd.DataFrame()
    if wallets is None:
        tables = [_wide_dictionaries(pq.read_table(str(f))) for f in files]
    else:
        wanted = pa.array(list(wallets), type=pa.string())
        tables = [_wide_dictionaries(_rows_of(Path(f), wanted)) for f in files]
    frame = pa.concat_tables(tables, promote_options="permissive").unify_dictionaries().to_pandas()
    frame = frame.sort_values(["batch_key"], kind="stable")
    return frame.drop_duplicates(["wallet", "document_id"], keep="first").reset_index(drop=True)


def _rows_of(path: Path, wallets: pa.Array) -> pa.Table:
    parquet = pq.ParquetFile(str(path))
    pieces = []
    for group in range(parquet.num_row_groups):
        table = parquet.read_row_group(group)
        pieces.append(table.filter(pc.is_in(table.column("wallet"), value_set=wallets)))
    return pa.concat_tables(pieces) if pieces else parquet.schema_arrow.empty_table()


def wallets_in_order(files: Sequence[Path | str]) -> pd.Index:
    """Distinct wallets of `files` in order of first appearance (the row order of the features of
    `read_transactions(files)`), reading only the wallet column."""
    ordered = sorted(files, key=lambda f: Path(f).parent.name)  # batch-key order, as read_transactions sorts
    seen = [pc.unique(pq.read_table(str(f), columns=["wallet"]).column("wallet")) for f in ordered]
    values = [
        chunk.dictionary.take(chunk.indices) if pa.types.is_dictionary(chunk.type) else chunk
        for column in seen
        for chunk in (column.chunks if isinstance(column, pa.ChunkedArray) else [column])
    ]
    if not values:
        return pd.Index([], dtype=object, name="wallet")
    return pd.Index(
        pd.unique(pa.concat_arrays([v.cast(pa.string()) for v in values]).to_numpy(zero_copy_only=False)),
        dtype=object,
        name="wallet",
    )


def _wide_dictionaries(table: pa.Table) -> pa.Table:
    """Categorical columns with 32-bit codes: pandas writes int8 codes for a small batch and int16 for
    a larger one, and tables with different code widths do not concatenate."""
    fields = [
        pa.field(f.name, pa.dictionary(pa.int32(), f.type.value_type)) if pa.types.is_dictionary(f.type) else f
        for f in table.schema
    ]
    return table.cast(pa.schema(fields, metadata=table.schema.metadata))


class BatchWriter:
    """One landed batch written chunk by chunk: transactions as Parquet row groups of one file, the
    rejected messages (message indexes counted from the file's first line) and the summed counts."""

    def __init__(self, folder: Path, batch_key: str) -> None:
        self.folder, self.batch_key = folder, batch_key
        self.counts: Counter = Counter()
        self.wallets: set[str] = set()
        self.rejections: list[pd.DataFrame] = []
        self._writer: pq.ParquetWriter | None = None
        self.columns: pd.DataFrame | None = None  # no rows: the transactions' columns and dtypes
        folder.mkdir(parents=True, exist_ok=True)

    def add(self, batch: NormalisedBatch, offset: int) -> None:
        """A chunk's normalised batch whose first message is line `offset` of the file."""
        self.counts.update(batch.counts)
        rejections = batch.rejections_frame()
        self.rejections.append(rejections.assign(message_index=rejections["message_index"] + offset))
        transactions = batch.transactions
        if self.columns is None or (self._writer is None and not transactions.empty):
            self.columns = transactions.head(0)
        if transactions.empty:
            return
        self.wallets.update(transactions["wallet"].astype(object).unique().tolist())
        frame = transactions.assign(
            batch_key=self.batch_key, message_index=transactions["message_index"].to_numpy(np.int64) + offset
        )
        table = _wide_dictionaries(pa.Table.from_pandas(frame, preserve_index=False))
        if self._writer is None:
            self._writer = pq.ParquetWriter(self.folder / "transactions.parquet", table.schema)
        self._writer.write_table(table.cast(self._writer.schema))

    def close(self) -> pd.DataFrame:
        """Finish the files; returns the rejections frame (also written as rejections.parquet)."""
        if self._writer is not None:
            self._writer.close()
        else:  # no chunk had a transaction: an empty table with the normalised columns
            empty = self.columns if self.columns is not None else pd.DataFrame({"wallet": [], "document_id": []})
            empty.assign(batch_key=self.batch_key).to_parquet(self.folder / "transactions.parquet", index=False)
        rejections = (
            pd.concat(self.rejections, ignore_index=True)
            if self.rejections
            else pd.DataFrame(columns=["message_index", "wallet_address", "error", "categories"])
        )
        rejections.assign(batch_key=self.batch_key).to_parquet(self.folder / "rejections.parquet", index=False)
        return rejections
