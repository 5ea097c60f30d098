"""The warm run worker behind `WarmRunLauncher`: imports the project once, then forks one child per run.

A Dagster run started the stock way is a new Python process that imports Dagster, pandas, the
model libraries and this project again (seconds of CPU on a small machine) before it scores a
Kafka range that takes a fraction of that. This process pays the imports (and loads the champion
model) once; each run is an `os.fork()` of it that executes the run exactly as `dagster api
execute_run` does, in its own session so that signals meant for the worker do not reach runs.

Protocol (one JSON object per line): requests `{"run_id", "instance_ref"}` on stdin, answers
`{"ready", "pid"}` once warm, then `{"run_id", "pid"}` per forked run on the original stdout. Anything
else written to stdout (libraries, runs) goes to stderr, so it cannot corrupt the answers.
"""

from __future__ import annotations

import json
import os
import select
import signal
import sys
import time
import traceback

CHAMPION_REFRESH_SECONDS = 30.0
# The launcher starts this worker with OMP_NUM_THREADS=1 and the value the run should have in RUN_OMP_ENV.
# Why: loading the champion runs OpenMP code (XGBoost, LightGBM); with more than one thread that leaves
# libgomp's thread pool in this process, and a pool does not survive os.fork() — the run's first
# parallel region (the champion's predict) would wait forever for threads that do not exist. With one
# thread no pool is ever made here; each forked run then gets its threads back (`_restore_openmp`).
RUN_OMP_ENV = "DEFI_SCORING_RUN_OMP_NUM_THREADS"


def _warm_up() -> None:
    """Import what a run imports, and load the champion into the per-process model cache."""
    import dagster._cli.api  # noqa: F401  (the body of `dagster api execute_run`)

    import defi_scoring.definitions  # noqa: F401  (assets, resources, pandas, pyarrow, polars, kafka)
    from defi_scoring.core import ensemble_pyfunc  # noqa: F401  (xgboost, lightgbm, scikit-learn)

    _refresh_champion()


def _refresh_champion() -> None:
    """Load (or reload after a promotion) the champion, so forked runs find it in memory."""
    try:
        from defi_scoring.config import Settings
        from defi_scoring.core.ensemble_config import load_ensemble_config
        from defi_scoring.core.model_registry import configured_store
        from defi_scoring.core.model_scoring import load_champion

        store = configured_store(Settings.from_env().home)
        load_champion(store, load_ensemble_config().registered_model_name)
    except Exception as exc:  # no store yet, MLflow down: runs load the model themselves
        print(f"run worker: champion not preloaded ({exc})", file=sys.stderr)


def _restore_openmp() -> None:
    """In the forked child: the OpenMP threads a run started the stock way would have (see RUN_OMP_ENV)."""
    wanted = os.environ.pop(RUN_OMP_ENV, "")
    if wanted:
        os.environ["OMP_NUM_THREADS"] = wanted
    else:
        os.environ.pop("OMP_NUM_THREADS", None)
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=int(wanted) if wanted.isdigit() else os.cpu_count(), user_api="openmp")


def _run_child(request: dict) -> None:
    """In the forked child: execute the run like `dagster api execute_run`, then exit."""
    code = 1
    try:
        _restore_openmp()
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # the run's own subprocesses are waited for normally
        os.setsid()
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        from dagster import DagsterInstance
        from dagster._cli.api import _execute_run_command_body
        from dagster._core.instance.ref import InstanceRef
        from dagster._serdes import deserialize_value

        ref = deserialize_value(request["instance_ref"], InstanceRef)
        with DagsterInstance.from_ref(ref) as instance:
            _execute_run_command_body(request["run_id"], instance, lambda _event: None, set_exit_code_on_failure=False)
        code = 0
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def main() -> None:
    answers = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    from defi_scoring.process_hygiene import die_with_parent, freeze_long_lived_objects

    die_with_parent()  # the daemon stops → this worker stops (runs in flight finish on their own)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # finished runs are reaped by the kernel
    _warm_up()
    freeze_long_lived_objects()
    answers.write(json.dumps({"ready": True, "pid": os.getpid()}) + "\n")
    refreshed, pending = time.monotonic(), b""
    while True:
        if b"\n" not in pending:
            readable, _, _ = select.select([0], [], [], CHAMPION_REFRESH_SECONDS)
            if not readable:
                _refresh_champion()
                refreshed = time.monotonic()
                continue
            chunk = os.read(0, 1 << 16)
            if not chunk:
                return  # the launcher closed the pipe
            pending += chunk
            continue
        line, pending = pending.split(b"\n", 1)
        request = json.loads(line)
        if time.monotonic() - refreshed > CHAMPION_REFRESH_SECONDS:
            _refresh_champion()
            refreshed = time.monotonic()
        pid = os.fork()
        if pid == 0:
            _run_child(request)
        answers.write(json.dumps({"run_id": request["run_id"], "pid": pid}) + "\n")


if __name__ == "__main__":
    main()
