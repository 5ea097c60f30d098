"""Landed batches' Parquet files: written chunk by chunk, read as one deduplicated transaction table;
and input transactions tables (Parquet, Arrow IPC; core/transaction_table.py) read a record batch at a time.

Shared by the data home (all batches in one process) and the cluster engine (one wallet partition's
pieces of every batch): the same order and the same deduplication give the same rows.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from defi_scoring.core.normalise import NormalisedBatch
from defi_scoring.core.table_decode import TableSchemaError, conform
from defi_scoring.core.transaction_table import TABLE_SCHEMA

# Rows per table handed to the decoder: each is decoded and freed before the next is read, so the
# file's own columns are never in memory whole (docs/columnar_input.md, "Size and memory").
TABLE_BATCH_ROWS = 131_072


def _is_parquet(path: Path) -> bool:
    return path.suffix.lower() in (".parquet", ".pq")


def _open_ipc(path: Path):
    """An Arrow IPC file (Feather v2) reader, or a stream reader for a file holding the stream format."""
    try:
        return pa.ipc.open_file(pa.memory_map(str(path)))
    except pa.ArrowInvalid:
        return pa.ipc.open_stream(pa.memory_map(str(path)))


def _columns_of(schema: pa.Schema) -> list[str]:
    """TABLE_SCHEMA's columns the file has, after checking that it is a transactions table at all."""
    conform(schema.empty_table())  # raises TableSchemaError: a missing required column, a type that cannot convert
    return [name for name in TABLE_SCHEMA.names if name in schema.names]


def table_file_schema(path: Path | str) -> pa.Schema:
    """The schema of a transactions table file, read from its footer or header only (the landing scan
    and `land` refuse a file that is not one before any run). Raises TableSchemaError."""
    path = Path(path)
    try:
        schema = pq.read_schema(str(path)) if _is_parquet(path) else _open_ipc(path).schema
    except (pa.ArrowException, OSError) as error:
        raise TableSchemaError(f"{path.name} is not a readable {_kind(path)} file: {error}") from None
    _columns_of(schema)
    return schema


def table_file_rows(path: Path | str) -> int:
    """Rows of a transactions table file, from its metadata (an Arrow stream is read through)."""
    path = Path(path)
    try:
        if _is_parquet(path):
            return pq.ParquetFile(str(path)).metadata.num_rows
        reader = _open_ipc(path)
        if isinstance(reader, pa.ipc.RecordBatchFileReader):
            return sum(reader.get_batch(i).num_rows for i in range(reader.num_record_batches))
        return sum(batch.num_rows for batch in reader)
    except (pa.ArrowException, OSError) as error:
        raise TableSchemaError(f"{path.name} is not a readable {_kind(path)} file: {error}") from None


def _kind(path: Path) -> str:
    return "Parquet" if _is_parquet(path) else "Arrow IPC"


def read_table_file(path: Path | str, batch_rows: int | None = None, dictionaries: bool = True) -> Iterator[pa.Table]:
    """A transactions table file (Parquet or Arrow IPC) as tables of at most `batch_rows` rows (default
    TABLE_BATCH_ROWS) with only TABLE_SCHEMA's columns, read one record batch at a time: the file is never
    held whole. At least one table (empty for an empty file), so that its schema is checked. Raises
    TableSchemaError for a file that cannot be read or is not a transactions table.

    `dictionaries`: repeated string columns are read as Parquet's own dictionaries (the decoder checks
    each distinct value once), except `wallet_address`, always plain: a dictionary's order is not the
    order of first appearance the messages follow, and it may hold unused values (pandas categories)."""
    path, batch_rows = Path(path), batch_rows or TABLE_BATCH_ROWS
    try:
        if _is_parquet(path):
            schema = pq.read_schema(str(path))
            columns = _columns_of(schema)
            repeated = [name for name in columns if name not in _PLAIN and _is_text(schema.field(name).type)]
            # pre_buffer off: pages are read as the batches need them, not a whole row group up front
            source = pq.ParquetFile(str(path), pre_buffer=False, read_dictionary=repeated if dictionaries else None)
            batches = source.iter_batches(batch_size=batch_rows, columns=columns, use_threads=True)
            empty = source.schema_arrow.empty_table().select(columns)
        else:
            reader = _open_ipc(path)
            columns = _columns_of(reader.schema)
            batches = _sliced(reader, batch_rows)
            empty = reader.schema.empty_table().select(columns)
        read_any = False
        for batch in batches:
            read_any = True
            yield _plain(pa.Table.from_batches([batch]).select(columns), everything=not dictionaries)
        if not read_any:
            yield _plain(empty, everything=not dictionaries)
    except (pa.ArrowException, OSError) as error:
        raise TableSchemaError(f"{path.name} is not a readable {_kind(path)} file: {error}") from None


_PLAIN = ("wallet_address", "document_id")  # never read as dictionaries (document_id: nearly all distinct)


def _is_text(kind: pa.DataType) -> bool:
    return pa.types.is_string(kind) or pa.types.is_large_string(kind)


def _plain(table: pa.Table, everything: bool) -> pa.Table:
    """The table with `wallet_address` (every column: `everything`) decoded from a dictionary."""
    for i, field in enumerate(table.schema):
        if pa.types.is_dictionary(field.type) and (everything or field.name == "wallet_address"):
            table = table.set_column(i, field.name, table.column(i).cast(field.type.value_type))
    return table


def _sliced(reader, batch_rows: int) -> Iterator[pa.RecordBatch]:
    """An IPC file's record batches, each cut into zero-copy slices of at most `batch_rows` rows."""
    batches = (
        (reader.get_batch(i) for i in range(reader.num_record_batches))
        if isinstance(reader, pa.ipc.RecordBatchFileReader)
        else reader
    )
    for batch in batches:
        for start in range(0, batch.num_rows, batch_rows):
            yield batch.slice(start, batch_rows)


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
