"""Reading landed batches' Parquet files as one deduplicated transaction table.

Shared by the data home (all batches in one process) and the cluster engine (one wallet partition's
pieces of every batch): the same order and the same deduplication give the same rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import pyarrow.dataset as ds


def read_transactions(files: Sequence[Path | str]) -> pd.DataFrame:
    """Transactions of `files`, deduplicated by (wallet, document_id), the earliest batch's row kept."""
    if not files:
        return pd.DataFrame()
    frame = ds.dataset([str(f) for f in files], format="parquet").to_table().to_pandas()
    frame = frame.sort_values(["batch_key"], kind="stable")
    return frame.drop_duplicates(["wallet", "document_id"], keep="first").reset_index(drop=True)
