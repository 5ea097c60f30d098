"""Settings from the environment, with embedded defaults (no Dagster import: core and CLI use it)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Settings:
    home: Path

    @classmethod
    def from_env(cls) -> "Settings":
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


# Runs of one Kafka partition must score their offset ranges in order (a wallet's later range needs the
# history the earlier one stored); runs of different partitions may go in parallel.
DEFAULT_DAGSTER_YAML = """\
run_coordinator:
  module: dagster._core.run_coordinator
  class: QueuedRunCoordinator
  config:
    tag_concurrency_limits:
      - key: kafka/partition
        value: {applyLimitPerUniqueValue: true}
        limit: 1
"""


def ensure_dagster_home(settings: Settings) -> Path:
    """Point DAGSTER_HOME at the data home (unless set) so the UI sees the CLI's runs."""
    path = settings.dagster_home
    path.mkdir(parents=True, exist_ok=True)
    config = path / "dagster.yaml"
    if not config.exists() or not config.read_text().strip():
        config.write_text(DEFAULT_DAGSTER_YAML)  # SQLite storage inside DAGSTER_HOME (the default)
    os.environ["DAGSTER_HOME"] = str(path)
    return path
