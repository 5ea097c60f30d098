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


_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3
REUSED_BLOCK_BYTES = 32 * 1024 * 1024  # glibc's largest heap block: larger ones are always mmapped


def reuse_freed_memory() -> None:
    """glibc malloc: keep freed blocks up to 32 MB (a column of 4M rows) in the process for the next
    array to reuse, instead of returning each to the kernel and faulting fresh pages in again.

    The column-wise batch path allocates and frees hundreds of such temporaries. On this project's
    2-core VMs a fresh page costs ~40x the arithmetic done on it (60 ms for a new 34 MB array, 1.4 ms
    to compute into one already touched); keeping freed blocks took the 100k-wallet bench's normalised
    → scores from 1.56-1.68 s to 1.43-1.51 s (three alternating pairs), peak memory +0.7%. Memory
    still goes back where the code asks (malloc_trim after each decoded chunk). No-op off glibc, and
    with DEFI_SCORING_MALLOC_REUSE=0."""
    if not sys.platform.startswith("linux") or os.environ.get("DEFI_SCORING_MALLOC_REUSE", "1") == "0":
        return
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(_M_MMAP_THRESHOLD, REUSED_BLOCK_BYTES)
        libc.mallopt(_M_TRIM_THRESHOLD, 2**31 - 1)  # a C int; the default trims the heap top at 128 KB
        libc.mallopt(_M_TOP_PAD, 2 * REUSED_BLOCK_BYTES)
