"""The container deployment (Dockerfile, compose.yaml, deploy/) checked without a container engine: the
service graph and its environment statically, then the image's entry points started as plain processes
against the local PostgreSQL, with the deploy/ instance configuration."""

import contextlib
import os
import re
import shutil
import subprocess
import sys
import time
from graphlib import TopologicalSorter
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
import yaml

from defi_scoring.core.config_files import packaged_default
from defi_scoring.streaming.broker import free_port
from defi_scoring_tests.test_score_store import POSTGRES_SKIP, POSTGRES_URL

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
COMPOSE = yaml.safe_load((ROOT / "compose.yaml").read_text())
OURS = {name: s for name, s in COMPOSE["services"].items() if s.get("image", "").startswith("defi-scoring")}


def test_compose_service_graph_is_complete_and_acyclic():
    services = COMPOSE["services"]
    assert set(OURS) == {"mlflow", "code-server", "webserver", "daemon", "api"}
    assert {"postgres", "kafka"} <= set(services)
    graph = {name: set(s.get("depends_on", {})) for name, s in services.items()}
    for name, needs in graph.items():
        assert needs <= set(services), (name, needs - set(services))
    order = list(TopologicalSorter(graph).static_order())  # raises CycleError on a cycle
    assert order.index("postgres") < order.index("code-server") < order.index("webserver")
    published = [p.split(":")[0] for s in services.values() for p in s.get("ports", [])]
    assert len(published) == len(set(published)) and set(published) == {"3000", "5000", "8000"}
    # The webserver and daemon reach the code server where it listens.
    workspace = yaml.safe_load((ROOT / "deploy" / "workspace.yaml").read_text())["load_from"][0]["grpc_server"]
    assert workspace["host"] == "code-server" and f"-p {workspace['port']}" in OURS["code-server"]["command"]


def test_every_command_is_an_installed_entry_point_and_every_variable_is_documented():
    for name, service in OURS.items():
        program = service["command"].split()[0]
        assert (BIN / program).exists(), f"{name}: {program} is not installed by the package"
    documented = (ROOT / "docs" / "production.md").read_text()
    for variable in OURS["api"]["environment"]:
        assert f"`{variable}" in documented, f"{variable} is not in docs/production.md"


def test_no_secret_is_written_down():
    text = (ROOT / "compose.yaml").read_text()
    for match in re.finditer(r"://[^:/@\s]+:([^@\s]+)@", text):
        assert match.group(1).startswith("${POSTGRES_PASSWORD"), match.group(0)
    assert "${POSTGRES_PASSWORD:?" in text  # compose refuses to start without it


def test_dockerfile_installs_the_wheel_and_runs_as_a_user():
    lines = [line.strip() for line in (ROOT / "Dockerfile").read_text().splitlines() if line.strip()]
    assert all(line.endswith("-slim") or " AS " in line for line in lines if line.startswith("FROM "))
    assert any(("pip install" in line and ".whl" in line) or "${wheel}" in line for line in lines)
    user = [i for i, line in enumerate(lines) if line.startswith("USER ")]
    assert (
        user
        and lines[user[-1]] != "USER root"
        and user[-1] > max(i for i, line in enumerate(lines) if "pip install" in line)
    )
    for line in lines:
        if line.startswith("COPY ") and "--from" not in line:
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), source
    shipped = yaml.safe_load(packaged_default("dagster.yaml"))
    deployed = yaml.safe_load((ROOT / "deploy" / "dagster.yaml").read_text())
    for section in ("run_coordinator", "run_launcher", "run_monitoring", "run_retries"):  # same run behaviour
        assert deployed[section] == shipped[section], section


def _database(name: str) -> str:
    admin = sa.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        if not conn.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :d"), {"d": name}).first():
            conn.execute(sa.text(f"CREATE DATABASE {name}"))
    admin.dispose()
    return sa.engine.make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)


def _wait_http(url: str, process: subprocess.Popen, timeout: float = 90) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, f"{process.args[0]} exited with {process.returncode}"
        with contextlib.suppress(httpx.HTTPError):
            response = httpx.get(url, timeout=2)
            if response.status_code == 200:
                return response
        time.sleep(0.5)
    raise AssertionError(f"{url} did not answer within {timeout}s")


@pytest.mark.skipif(POSTGRES_SKIP is not None, reason=POSTGRES_SKIP or "")
def test_entry_points_start_as_plain_processes_on_postgres(tmp_path):
    """What compose would start, minus the containers: MLflow server, code server, webserver, daemon, API."""
    pg = lambda db, driver: _database(db).replace("postgresql+psycopg://", f"postgresql+{driver}://")
    dagster_home = tmp_path / "dagster"
    dagster_home.mkdir()
    shutil.copy(ROOT / "deploy" / "dagster.yaml", dagster_home / "dagster.yaml")
    grpc_port, web_port, mlflow_port, api_port = (free_port() for _ in range(4))
    (tmp_path / "workspace.yaml").write_text(
        (ROOT / "deploy" / "workspace.yaml")
        .read_text()
        .replace("code-server", "127.0.0.1")
        .replace("4000", str(grpc_port))
    )
    env = {
        **os.environ,
        "DAGSTER_HOME": str(dagster_home),
        "DEFI_SCORING_HOME": str(tmp_path / "home"),
        "DAGSTER_PG_URL": pg("defi_scoring_deploy_dagster", "psycopg2"),
        "DEFI_SCORING_STORE_URL": pg("defi_scoring_deploy_scores", "psycopg"),
        "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{mlflow_port}",
        "MLFLOW_ARTIFACT_ROOT": "mlflow-artifacts:/",
    }
    env.pop("KAFKA_BOOTSTRAP_SERVERS", None)
    commands = {
        "mlflow": f"mlflow server --host 127.0.0.1 --port {mlflow_port} --backend-store-uri "
        f"{pg('defi_scoring_deploy_mlflow', 'psycopg2')} --artifacts-destination {tmp_path / 'mlartifacts'}",
        "code-server": f"dagster api grpc -m defi_scoring.definitions -h 127.0.0.1 -p {grpc_port}",
        "webserver": f"dagster-webserver -h 127.0.0.1 -p {web_port} -w {tmp_path / 'workspace.yaml'}",
        "daemon": f"dagster-daemon run -w {tmp_path / 'workspace.yaml'}",
        "api": f"defi-scoring serve --host 127.0.0.1 --port {api_port}",
    }
    processes = {}
    try:
        for name, command in commands.items():
            program, *args = command.split()
            log = open(tmp_path / f"{name}.log", "wb")  # noqa: SIM115 — closed with the process below
            processes[name] = subprocess.Popen([str(BIN / program), *args], env=env, stdout=log, stderr=log)
            if name == "mlflow":
                _wait_http(f"http://127.0.0.1:{mlflow_port}/health", processes[name])
            if name == "code-server":
                deadline = time.monotonic() + 90
                while subprocess.run(
                    [str(BIN / "dagster"), "api", "grpc-health-check", "-p", str(grpc_port)], capture_output=True
                ).returncode:
                    assert time.monotonic() < deadline and processes[name].poll() is None, "code server not serving"
                    time.sleep(1)
        _wait_http(f"http://127.0.0.1:{web_port}/server_info", processes["webserver"])
        query = "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus } } } }"
        entries = httpx.post(f"http://127.0.0.1:{web_port}/graphql", json={"query": query}, timeout=30).json()
        assert entries["data"]["workspaceOrError"]["locationEntries"] == [
            {"name": "defi_scoring", "loadStatus": "LOADED"}
        ]
        health = _wait_http(f"http://127.0.0.1:{api_port}/health", processes["api"]).json()
        assert health["components"]["store"]["status"] == "ok"
        assert processes["daemon"].poll() is None
    finally:
        for process in processes.values():
            process.terminate()
        for name, process in processes.items():
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
            print(name, (tmp_path / f"{name}.log").read_text()[-2000:])
