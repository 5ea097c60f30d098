"""Reading landed batches' Parquet files as one deduplicated transaction table.

Shared by the data home (all batches in one process) and the cluster engine (one wallet partition's
pieces of every batch): the same order and the same deduplication give the same rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq


def read_transactions(files: Sequence[Path | str]) -> pd.DataFrame:
    """Transactions of `files`, deduplicated by (wallet, document_id), the earliest batch's row kept."""
    if not files:
        return pd.DataFrame()
    tables = [_wide_dictionaries(pq.read_table(str(f))) for f in files]
    frame = pa.concat_tables(tables, promote_options="permissive").unify_dictionaries().to_pandas()
    frame = frame.sort_values(["batch_key"], kind="stable")
    return frame.drop_duplicates(["wallet", "document_id"], keep="first").reset_index(drop=True)


def _wide_dictionaries(table: pa.Table) -> pa.Table:
    """Categorical columns with 32-bit codes: pandas writes int8 codes for a small batch and int16 for
    a larger one, and tables with different code widths do not concatenate."""
    fields = [
        pa.field(f.name, pa.dictionary(pa.int32(), f.type.value_type)) if pa.types.is_dictionary(f.type) else f
        for f in table.schema
    ]
    return table.cast(pa.schema(fields, metadata=table.schema.metadata))
