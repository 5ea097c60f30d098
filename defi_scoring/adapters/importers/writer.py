"""The importers' output: transfer rows in TABLE_SCHEMA, valued with the price table, written to Parquet.

Why: one place builds rows with exactly the schema every door of the scoring takes
(`defi_scoring.core.transaction_table`); rows are buffered into large row groups, and the file appears
under its name only when the import succeeded.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from defi_scoring.adapters.importers.prices import PriceTable
from defi_scoring.core.transaction_table import TABLE_SCHEMA

ROW_GROUP_ROWS = 256_000


def transfer_rows(n: int, **columns) -> pa.Table:
    """`n` rows of `protocol_type` "transfers": the given columns (Arrow, numpy, or one text for all rows),
    the others null."""
    columns["protocol_type"] = "transfers"
    arrays = []
    for f in TABLE_SCHEMA:
        value = columns.get(f.name)
        if isinstance(value, str):
            value = pc.fill_null(pa.nulls(n, pa.string()), value)
        if value is None:
            arrays.append(pa.nulls(n, f.type))
            continue
        if isinstance(value, pa.ChunkedArray):
            value = value.combine_chunks()
        if isinstance(value, np.ndarray) and value.dtype.kind == "f":  # NaN = unknown = null
            value = pa.array(value, f.type, mask=np.isnan(value))
        arrays.append(value.cast(f.type) if isinstance(value, pa.Array) else pa.array(value, f.type))
    return pa.Table.from_arrays(arrays, schema=TABLE_SCHEMA)


class TableWriter:
    """Appends row tables to OUT (Parquet, TABLE_SCHEMA) through OUT.partial, renamed on `close`."""

    def __init__(self, output: Path, prices: PriceTable | None = None) -> None:
        self.output = Path(output)
        self.partial = self.output.with_name(self.output.name + ".partial")
        self.prices = prices
        self.rows = 0
        self.valued = 0
        self._buffer: list[pa.Table] = []
        self._buffered = 0
        self._writer: pq.ParquetWriter | None = None

    def write(self, table: pa.Table) -> None:
        if not table.num_rows:
            return
        if self.prices is not None:
            usd = self.prices.usd(table)
            self.valued += int(np.count_nonzero(~np.isnan(usd)))
            table = table.set_column(
                TABLE_SCHEMA.get_field_index("token_usd"), "token_usd", pa.array(usd, mask=np.isnan(usd))
            )
        self.rows += table.num_rows
        self._buffer.append(table)
        self._buffered += table.num_rows
        if self._buffered >= ROW_GROUP_ROWS:
            self._flush()

    def _flush(self) -> None:
        if self._writer is None:
            self.output.parent.mkdir(parents=True, exist_ok=True)
            self._writer = pq.ParquetWriter(self.partial, TABLE_SCHEMA, compression="zstd")
        if self._buffer:
            self._writer.write_table(pa.concat_tables(self._buffer), row_group_size=ROW_GROUP_ROWS)
        self._buffer, self._buffered = [], 0

    def close(self) -> None:
        """Write what is buffered (an empty table when there is nothing) and give the file its name."""
        self._flush()
        self._writer.close()
        os.replace(self.partial, self.output)

    def abort(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self.partial.unlink(missing_ok=True)
