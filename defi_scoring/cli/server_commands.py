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
@click.option("--workers", default=1, show_default=True, help="uvicorn worker processes.")
def serve(host: str, port: int, workers: int) -> None:
    """Start the REST API (FastAPI + uvicorn): scores from the store, POST scoring, admin; docs at /docs."""
    import uvicorn

    console.print(
        f"API on [bold]http://{host}:{port}[/]  (docs: http://{host}:{port}/docs; store: "
        f"{Settings.from_env().store_url})"
    )
    uvicorn.run(
        "defi_scoring.api.app:create_app", factory=True, host=host, port=port, workers=workers, log_level="warning"
    )


@click.command(name="mlflow-ui")
@click.option("--port", default=5000, show_default=True)
def mlflow_ui(port: int) -> None:
    """Start the MLflow UI on the embedded store under the data home (or MLFLOW_TRACKING_URI)."""
    from defi_scoring.core.model_registry import embedded_store

    store = embedded_store(Settings.from_env().home)
    uri = os.environ.get("MLFLOW_TRACKING_URI") or store.tracking_uri
    console.print(f"MLflow store: {uri}")
    mlflow = Path(sys.executable).parent / "mlflow"
    os.execv(
        str(mlflow),
        [
            str(mlflow),
            "ui",
            "--backend-store-uri",
            uri,
            "--default-artifact-root",
            store.artifact_root,
            "--port",
            str(port),
        ],
    )


@click.command()
@click.option("--port", default=3000, show_default=True)
def ui(port: int) -> None:
    """Start the Dagster UI on the project's instance (DAGSTER_HOME)."""
    path = ensure_dagster_home(Settings.from_env())
    console.print(f"DAGSTER_HOME={path}")
    dagster = Path(sys.executable).parent / "dagster"
    os.execv(str(dagster), [str(dagster), "dev", "-m", "defi_scoring.definitions", "-p", str(port)])
