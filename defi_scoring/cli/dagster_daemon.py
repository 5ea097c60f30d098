"""The stock Dagster daemon for the CLI's own streaming runs: `dagster-daemon run` on the project's
instance (the shipped dagster.yaml, its queued coordinator and warm run launcher) and definitions —
the same processes a deployment runs, not an imitation of them."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from defi_scoring.config import Settings, ensure_dagster_home
from defi_scoring.process_hygiene import stop_process_group


@contextmanager
def stock_daemon(settings: Settings, log_path: Path) -> Iterator[subprocess.Popen]:
    """The daemon (and the code server it starts) while the block runs; stopped with all its children
    after it. Its output goes to `log_path`: a person reads the CLI's tables, not the daemon's events."""
    ensure_dagster_home(settings)
    daemon = Path(sys.executable).parent / "dagster-daemon"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [str(daemon), "run", "-m", "defi_scoring.definitions"],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # stopped as a group: the code server and run workers with it
        )
        try:
            yield process
        finally:
            stop_process_group(process, grace_s=30)
