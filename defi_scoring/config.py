"""Settings from the environment, with embedded defaults (no Dagster import: core and CLI use it)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from defi_scoring.core.config_files import packaged_default


@dataclass(frozen=True)
class Settings:
    home: Path

    @classmethod
    def from_env(cls) -> Settings:
        return cls(home=Path(os.environ.get("DEFI_SCORING_HOME", ".defi_scoring")).expanduser().resolve())

    @property
    def landing_dir(self) -> Path:
        """Drop JSONL files here; the landing sensor turns each into a `transaction_batches` partition."""
        return self.home / "landing"

    @property
    def batches_dir(self) -> Path:
        return self.home / "batches"

    @property
    def tables_dir(self) -> Path:
        return self.home / "tables"

    @property
    def store_url(self) -> str:
        """Score store (SQLAlchemy URL): DEFI_SCORING_STORE_URL, else SQLite under the data home."""
        return os.environ.get("DEFI_SCORING_STORE_URL") or f"sqlite:///{self.home / 'scores.db'}"

    @property
    def dagster_home(self) -> Path:
        return Path(os.environ.get("DAGSTER_HOME") or self.home / "dagster").expanduser().resolve()


def ensure_dagster_home(settings: Settings) -> Path:
    """Point DAGSTER_HOME at the data home (unless set) so the UI sees the CLI's runs."""
    path = settings.dagster_home
    path.mkdir(parents=True, exist_ok=True)
    config = path / "dagster.yaml"
    if not config.exists() or not config.read_text().strip():
        config.write_text(packaged_default("dagster.yaml"))
    os.environ["DAGSTER_HOME"] = str(path)
    return path
