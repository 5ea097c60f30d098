"""Where asset data lives: Parquet files under the data home (DEFI_SCORING_HOME)."""

from pathlib import Path

import dagster as dg
import pandas as pd

from defi_scoring.batch_files import read_transactions
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

    def write_batch(self, batch_key: str, transactions: pd.DataFrame, rejections: pd.DataFrame) -> Path:
        out = self.batch_dir(batch_key)
        out.mkdir(parents=True, exist_ok=True)
        transactions.assign(batch_key=batch_key).to_parquet(out / "transactions.parquet", index=False)
        rejections.assign(batch_key=batch_key).to_parquet(out / "rejections.parquet", index=False)
        return out

    def read_all_transactions(self) -> pd.DataFrame:
        """Every landed batch's transactions, deduplicated by (wallet, document_id) across batches."""
        return read_transactions(self.batch_files())

    def batch_files(self) -> list[Path]:
        """Every landed batch's transactions file, in batch-key order."""
        return sorted(self.settings.batches_dir.glob("*/transactions.parquet"))

    def write_table(self, name: str, frame: pd.DataFrame) -> Path:
        self.settings.tables_dir.mkdir(parents=True, exist_ok=True)
        path = self.settings.tables_dir / f"{name}.parquet"
        frame.to_parquet(path)
        return path

    def table_exists(self, name: str) -> bool:
        return (self.settings.tables_dir / f"{name}.parquet").exists()

    def read_table(self, name: str, columns: list[str] | None = None) -> pd.DataFrame:
        return pd.read_parquet(self.settings.tables_dir / f"{name}.parquet", columns=columns)
