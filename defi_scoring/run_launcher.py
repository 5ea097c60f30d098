"""`WarmRunLauncher`: Dagster runs forked from a warm, pre-imported worker instead of a new process each.

The shipped `dagster.yaml` names it, so `make ui`, `dagster dev` and `dagster-daemon run` launch runs
this way. A Kafka range run then starts in milliseconds instead of the seconds a fresh interpreter
spends importing Dagster, pandas, the model libraries and this project (docs/streaming.md).

- The worker (`defi_scoring.run_worker`) is a child of the process that launches runs (the daemon),
  started on the first launch and again whenever it died or this package's code changed on disk (so
  a code reload in the UI is picked up by the next run).
- Each run is a forked child of the worker, tagged with its pid: run monitoring asks
  `check_run_worker_health`, so a run whose process was killed is marked failed and retried by the
  run-retry daemon (shipped `run_retries`).
- `terminate` sends the run process SIGINT, which Dagster turns into a clean cancellation.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dagster import _check as check
from dagster._core.errors import DagsterLaunchFailedError
from dagster._core.launcher.base import CheckRunHealthResult, LaunchRunContext, RunLauncher, WorkerStatus
from dagster._serdes import ConfigurableClass, serialize_value
from dagster._serdes.config_class import ConfigurableClassData

PID_TAG = "defi_scoring/run_pid"
PACKAGE_DIR = Path(__file__).resolve().parent
WORKER_START_TIMEOUT_SECONDS = 120.0


def _code_mtime() -> float:
    """Newest modification time of the package's Python files (a changed file means a new worker)."""
    return max((p.stat().st_mtime for p in PACKAGE_DIR.rglob("*.py")), default=0.0)


def _process_alive(pid: int) -> bool:
    """True while `pid` runs (a zombie counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state not in ("Z", "X")


class WarmRunLauncher(RunLauncher, ConfigurableClass):
    """Launches each run as a fork of one warm worker process (see module docstring)."""

    def __init__(self, inst_data: ConfigurableClassData | None = None):
        self._inst_data = inst_data
        self._lock = threading.Lock()
        self._worker: subprocess.Popen | None = None
        self._worker_code_mtime = 0.0
        super().__init__()

    @property
    def inst_data(self) -> ConfigurableClassData | None:
        return self._inst_data

    @classmethod
    def config_type(cls) -> dict:
        return {}

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData, config_value: Mapping[str, Any]) -> WarmRunLauncher:
        return cls(inst_data=inst_data)

    def _start_worker(self) -> subprocess.Popen:
        from defi_scoring.process_hygiene import die_with_parent
        from defi_scoring.run_worker import RUN_OMP_ENV

        worker = subprocess.Popen(
            [sys.executable, "-m", "defi_scoring.run_worker"],
            # one OpenMP thread in the worker, so that forked runs do not hang (run_worker.RUN_OMP_ENV)
            env={**os.environ, "OMP_NUM_THREADS": "1", RUN_OMP_ENV: os.environ.get("OMP_NUM_THREADS", "")},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            preexec_fn=die_with_parent,
        )
        ready = self._answer(worker)
        if not ready.get("ready"):
            raise DagsterLaunchFailedError(f"run worker did not start: {ready}")
        return worker

    @staticmethod
    def _answer(worker: subprocess.Popen) -> dict:
        assert worker.stdout is not None
        line = worker.stdout.readline()
        if not line:
            code = worker.wait(timeout=WORKER_START_TIMEOUT_SECONDS)
            raise DagsterLaunchFailedError(
                f"the warm run worker exited (code {code}); its traceback is on the daemon's stderr"
            )
        return json.loads(line)

    def _ready_worker(self) -> subprocess.Popen:
        code_mtime = _code_mtime()
        if self._worker is not None and (self._worker.poll() is not None or code_mtime > self._worker_code_mtime):
            self._stop_worker()
        if self._worker is None:
            self._worker_code_mtime = code_mtime
            self._worker = self._start_worker()
        return self._worker

    def launch_run(self, context: LaunchRunContext) -> None:
        run = context.dagster_run
        check.not_none(run.job_code_origin, "run has no code origin")
        request = {"run_id": run.run_id, "instance_ref": serialize_value(self._instance.get_ref())}
        with self._lock:
            for attempt in range(2):  # a worker that died since the last launch is replaced once
                worker = self._ready_worker()
                try:
                    assert worker.stdin is not None
                    worker.stdin.write((json.dumps(request) + "\n").encode())
                    worker.stdin.flush()
                    answer = self._answer(worker)
                    break
                except (BrokenPipeError, DagsterLaunchFailedError):
                    self._stop_worker()
                    if attempt:
                        raise
        self._instance.add_run_tags(run.run_id, {PID_TAG: str(answer["pid"])})
        self._instance.report_engine_event(
            f"Forked from the warm run worker (pid {answer['pid']}).", run, cls=self.__class__
        )

    def _pid(self, run_id: str) -> int | None:
        run = self._instance.get_run_by_id(run_id)
        value = run.tags.get(PID_TAG) if run else None
        return int(value) if value else None

    def terminate(self, run_id: str) -> bool:
        run = self._instance.get_run_by_id(run_id)
        if not run or run.is_finished:
            return False
        self._instance.report_run_canceling(run)
        pid = self._pid(run_id)
        if pid is None or not _process_alive(pid):
            return False
        os.kill(pid, signal.SIGINT)
        return True

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run) -> CheckRunHealthResult:
        pid = self._pid(run.run_id)
        if pid is None:
            return CheckRunHealthResult(WorkerStatus.UNKNOWN, "no run process recorded yet")
        if _process_alive(pid):
            return CheckRunHealthResult(WorkerStatus.RUNNING, run_worker_id=str(pid))
        return CheckRunHealthResult(
            WorkerStatus.FAILED, f"run process {pid} is gone (killed?) before the run finished", run_worker_id=str(pid)
        )

    def _stop_worker(self) -> None:
        worker, self._worker = self._worker, None
        if worker is None:
            return
        if worker.stdin is not None:
            worker.stdin.close()
        try:
            worker.wait(timeout=5)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
        if worker.stdout is not None:
            worker.stdout.close()

    def dispose(self) -> None:
        with self._lock:
            self._stop_worker()
