"""`broker` and `ui` stop everything they started on SIGTERM and SIGINT; the broker's process never
outlives the command, even when the command is SIGKILLed."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from defi_scoring.streaming.broker import free_port

CLI = [sys.executable, "-m", "defi_scoring.cli"]


def _descendants(pid: int) -> set[int]:
    found, frontier = set(), [pid]
    while frontier:
        parent = frontier.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            children = (task / "children").read_text().split() if (task / "children").exists() else []
            for child in map(int, children):
                if child not in found:
                    found.add(child)
                    frontier.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


def _wait_for(check, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"{what} within {timeout}s")


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _env(tmp_path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "MLFLOW_", "DEFI_SCORING_", "DAGSTER_"))}
    return {**env, "DEFI_SCORING_HOME": str(tmp_path / "home")}


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL])
def test_broker_takes_its_broker_process_down(tmp_path, stop):
    port = free_port()
    command = subprocess.Popen(
        [*CLI, "broker", "--port", str(port)], env=_env(tmp_path), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        _wait_for(lambda: _port_open(port) and _descendants(command.pid), 60, "the broker did not listen")
        children = _descendants(command.pid)
        command.send_signal(stop)
        command.wait(timeout=30)
        _wait_for(lambda: not any(_alive(c) for c in children), 15, f"broker processes survived {stop.name}")
        assert not _port_open(port)
    finally:
        if command.poll() is None:
            command.kill()


def test_ui_stops_dagster_dev_and_everything_it_started(tmp_path):
    port = free_port()
    command = subprocess.Popen(
        [*CLI, "ui", "--port", str(port)],
        env=_env(tmp_path),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=tmp_path,
    )
    try:

        def serving() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/server_info", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        _wait_for(serving, 120, "the Dagster UI did not answer")
        started = _descendants(command.pid)
        assert len(started) >= 2  # dagster dev and at least the webserver
        command.send_signal(signal.SIGTERM)
        command.wait(timeout=40)
        _wait_for(lambda: not any(_alive(p) for p in started), 20, "Dagster processes survived SIGTERM")
        assert not _port_open(port)
    finally:
        if command.poll() is None:
            command.kill()


_RETAINED = """
import numpy as np, defi_scoring  # the package's import sets malloc up
def rss():
    return int(next(l for l in open("/proc/self/status") if l.startswith("VmRSS")).split()[1]) * 1024
before = rss()
arrays = [np.ones(2_000_000) for _ in range(20)]  # 20 x 16 MB, each freed below
del arrays
print(rss() - before)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc")
def test_freed_column_sized_blocks_stay_for_reuse_unless_turned_off():
    """With the package imported, freed 16 MB blocks stay in the process (the next array reuses their
    pages); DEFI_SCORING_MALLOC_REUSE=0 gives them back to the kernel as glibc does by default."""

    def retained(setting: str) -> int:
        env = {**os.environ, "DEFI_SCORING_MALLOC_REUSE": setting}
        out = subprocess.run([sys.executable, "-c", _RETAINED], env=env, capture_output=True, text=True, check=True)
        return int(out.stdout.strip())

    kept, returned = retained("1"), retained("0")
    assert kept > 200e6, kept  # most of the 320 MB freed
    assert returned < kept - 150e6, (kept, returned)
