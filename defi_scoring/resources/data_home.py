"""Where asset data lives: Parquet files under the data home (DEFI_SCORING_HOME)."""

import os
import shutil
from pathlib import Path

import dagster as dg
import pandas as pd

from defi_scoring.batch_files import BatchWriter, read_transactions
from defi_scoring.config import Settings


class DataHomeResource(dg.ConfigurableResource):
    """Files of the embedded deployment: landing JSONL, per-batch Parquet, per-wallet tables."""

    home: str

    @property
    def settings(self) -> Settings:
        return Settings(home=Path(self.home))

    def landing_file(self, batch_key: str) -> Path:
        return self.settings.landing_dir / f"{batch_key}.jsonl"

    def batch_dir(self, batch_key: str) -> Path:
        return self.settings.batches_dir / batch_key

    def batch_writer(self, batch_key: str) -> BatchWriter:
        """Writes `batches/<key>/transactions.parquet` (row group per chunk) and `rejections.parquet`."""
        return BatchWriter(self.batch_dir(batch_key), batch_key)

    def read_all_transactions(self) -> pd.DataFrame:
        """Every landed batch's transactions, deduplicated by (wallet, document_id) across batches."""
        return read_transactions(self.batch_files())

    def batch_files(self) -> list[Path]:
        """Every landed batch's transactions file, in batch-key order."""
        return sorted(self.settings.batches_dir.glob("*/transactions.parquet"))

    def table_path(self, name: str) -> Path:
        """`<name>.parquet`: one file (local engine) or a folder of parts, one per partition (dask)."""
        return self.settings.tables_dir / f"{name}.parquet"

    def write_table(self, name: str, frame: pd.DataFrame) -> Path:
        """Written beside the table and moved over it: a reader never sees half a file."""
        self.settings.tables_dir.mkdir(parents=True, exist_ok=True)
        path = self.table_path(name)
        tmp = path.with_name(f".{path.name}.tmp")
        frame.to_parquet(tmp)
        if path.is_dir():  # written by the dask engine before
            shutil.rmtree(path)
        os.replace(tmp, path)
        return path

    def table_exists(self, name: str) -> bool:
        return self.table_path(name).exists()

    def read_table(self, name: str, columns: list[str] | None = None) -> pd.DataFrame:
        return pd.read_parquet(self.table_path(name), columns=columns)

    def work_dir(self, run_id: str) -> Path:
        """Scratch space of one run (the cluster engine's wallet partitions); removed after it."""
        return self.settings.home / "work" / run_id
