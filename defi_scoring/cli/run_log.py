"""Quiet CLI runs: third-party logs and Dagster's event stream go to a log file, the terminal shows one
line per step with a progress bar.

The Dagster instance keeps every run's events (the UI shows them); each finished run's events are also
appended to the log file, so nothing is lost by keeping the terminal readable.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from datetime import datetime
from pathlib import Path

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from defi_scoring.cli.console import console

# The console logger of in-process runs prints warnings and errors only; DEBUG/INFO events stay in the instance.
QUIET_RUN_CONFIG = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}

_log_file: Path | None = None


def send_logs_to_file(home: Path) -> Path:
    """Route Python logging (MLflow, alembic, warnings) to a file under the data home; returns its path."""
    global _log_file
    if _log_file is not None:
        return _log_file
    folder = home / "logs"
    folder.mkdir(parents=True, exist_ok=True)
    _log_file = folder / f"defi-scoring-{datetime.now():%Y%m%d-%H%M%S}.log"
    handler = logging.FileHandler(_log_file, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    import mlflow  # noqa: F401 — configures its own stderr handler on import; replaced below

    for name in ("", "mlflow", "alembic", "py.warnings"):
        logger = logging.getLogger(name)
        logger.handlers = [handler]
        logger.propagate = False
        if name in ("", "py.warnings"):
            logger.setLevel(logging.INFO)
    logging.captureWarnings(True)
    return _log_file


def _append_run_events(instance, run_id: str) -> None:
    if _log_file is None:
        return
    with open(_log_file, "a", encoding="utf-8") as out:
        for record in instance.all_logs(run_id):
            level = logging.getLevelName(record.level)
            step = f" {record.step_key}" if record.step_key else ""
            out.write(
                f"{datetime.fromtimestamp(record.timestamp):%Y-%m-%d %H:%M:%S} {level} dagster "
                f"{record.job_name} {run_id[:8]}{step}: {record.message or record.user_message}\n"
            )


def execute_job(defs, instance, job_name: str, label: str, **kwargs):
    """Run a job in-process with a progress bar of finished steps; its events go to the log file."""
    job = defs.resolve_job_def(job_name)
    run_config = {**kwargs.pop("run_config", {}), **QUIET_RUN_CONFIG}
    before = {r.run_id for r in instance.get_runs(limit=20)}
    outcome: dict = {}

    def target() -> None:
        try:
            outcome["result"] = job.execute_in_process(instance=instance, run_config=run_config, **kwargs)
        except BaseException as exc:
            outcome["error"] = exc

    worker = threading.Thread(target=target, daemon=True)
    total = max(len(job.graph.node_defs), 1)
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("steps"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    ) as progress:
        task = progress.add_task(label, total=total)
        worker.start()
        while worker.is_alive():
            worker.join(0.3)
            run = next((r for r in instance.get_runs(limit=5) if r.run_id not in before), None)
            if run is None:
                continue
            done, latest = _step_progress(instance, run.run_id)
            progress.update(task, completed=min(done, total), description=f"{label}{latest}")
    if "error" in outcome:
        raise outcome["error"]
    result = outcome["result"]
    _append_run_events(instance, result.run_id)
    return result


def _step_progress(instance, run_id: str) -> tuple[int, str]:
    """(finished steps, ': <latest message>') from the run's event log."""
    done, latest = 0, ""
    for record in instance.all_logs(run_id):
        event = record.dagster_event
        if event is not None and event.event_type_value in ("STEP_SUCCESS", "STEP_FAILURE"):
            done += 1
        elif event is None and record.user_message:
            latest = f": {record.user_message[:60]}"
    return done, latest


def elapsed(started: float) -> str:
    return f"{time.perf_counter() - started:.1f}s"
