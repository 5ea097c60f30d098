"""Child processes that never outlive their parent, and SIGTERM handled like Ctrl-C.

`defi-scoring broker` and `defi-scoring ui` start servers as child processes. A service manager stops
them with SIGTERM (or SIGKILL after a grace period); without this, Python dies on SIGTERM without
running its cleanup and the children keep running, holding their ports.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time

_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """`preexec_fn` for Popen (Linux): the child gets SIGTERM when its parent dies, even by SIGKILL."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def terminate_like_interrupt() -> None:
    """SIGTERM, SIGHUP and SIGINT raise KeyboardInterrupt in the main thread, so `finally` blocks run.

    SIGINT too: a command started in the background by a script inherits SIGINT ignored, and would
    otherwise not stop on it at all."""

    def interrupt(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, interrupt)


def stop_process_group(process: subprocess.Popen, grace_s: float = 15.0) -> None:
    """SIGTERM to the child's whole process group (it was started with start_new_session), then SIGKILL
    to whatever is left after the grace period."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def run_until_stopped(command: list[str], on_stop=None) -> int:
    """Run a server command in its own process group until it exits or this process gets Ctrl-C,
    SIGTERM or SIGHUP; then stop the group (the server and everything it started)."""
    terminate_like_interrupt()
    process = subprocess.Popen(command, start_new_session=True)
    try:
        return process.wait()
    except KeyboardInterrupt:
        if on_stop is not None:
            on_stop()
        return 0
    finally:
        stop_process_group(process)


def freeze_long_lived_objects() -> None:
    """Move every object alive now (imported modules, the loaded model) out of the garbage
    collector's reach: a full collection otherwise walks the ~440,000 objects that Dagster, MLflow,
    pandas and the model libraries leave behind, a 150–190 ms pause in the middle of a request or
    a run (seen at the API's p99). In a process that forks, it also keeps the children from writing
    to (and so copying) the pages those objects live on."""
    import gc

    gc.collect()
    gc.freeze()
