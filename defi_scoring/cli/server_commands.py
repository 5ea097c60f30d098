"""`serve`, `mlflow-ui` and `ui`: the REST API, the MLflow UI and the Dagster UI on the data home."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from defi_scoring.cli.console import console
from defi_scoring.config import Settings, ensure_dagster_home


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True)
@click.option(
    "--workers",
    default=1,
    show_default=True,
    help="uvicorn worker processes; each loads the model and config once, /metrics aggregates them all.",
)
@click.option("--access-log/--no-access-log", default=True, show_default=True, help="One JSON line per request.")
def serve(host: str, port: int, workers: int, access_log: bool) -> None:
    """Start the REST API (FastAPI + uvicorn): scores from the store, POST scoring (dynamically batched),
    batch scoring, Prometheus /metrics, admin; OpenAPI docs at /docs."""
    import shutil

    import uvicorn

    settings = Settings.from_env()
    settings.home.mkdir(parents=True, exist_ok=True)
    if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Each worker is a process: its metrics go to files here, and /metrics adds them up.
        folder = settings.home / "api" / "prometheus"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(folder)
    if not access_log:
        os.environ["DEFI_SCORING_API_ACCESS_LOG"] = "0"  # read by every worker process
    console.print(
        f"API on [bold]http://{host}:{port}[/]  (docs: http://{host}:{port}/docs; {workers} worker(s); store: "
        f"{settings.store_url})"
    )
    uvicorn.run(
        "defi_scoring.api.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="warning",
        access_log=False,  # ours is structured and carries the request id
    )


@click.command(name="mlflow-ui")
@click.option("--port", default=5000, show_default=True)
def mlflow_ui(port: int) -> None:
    """Start the MLflow UI on the embedded store under the data home (or MLFLOW_TRACKING_URI)."""
    from defi_scoring.core.model_registry import embedded_store

    store = embedded_store(Settings.from_env().home)
    uri = os.environ.get("MLFLOW_TRACKING_URI") or store.tracking_uri
    console.print(f"MLflow store: {uri}")
    from defi_scoring.process_hygiene import run_until_stopped

    mlflow = Path(sys.executable).parent / "mlflow"
    command = [str(mlflow), "ui", "--backend-store-uri", uri, "--default-artifact-root", store.artifact_root]
    run_until_stopped([*command, "--port", str(port)])


@click.command()
@click.option("--port", default=3000, show_default=True)
def ui(port: int) -> None:
    """Start the Dagster UI on the project's instance (DAGSTER_HOME); Ctrl-C or SIGTERM stops it with the
    webserver, daemon and code server it started."""
    from defi_scoring.process_hygiene import run_until_stopped

    path = ensure_dagster_home(Settings.from_env())
    console.print(f"DAGSTER_HOME={path}")
    dagster = Path(sys.executable).parent / "dagster"
    run_until_stopped(
        [str(dagster), "dev", "-m", "defi_scoring.definitions", "-p", str(port)],
        on_stop=lambda: console.print("stopping the Dagster UI and the processes it started …"),
    )
