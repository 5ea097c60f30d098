"""`train`: labels in, a registered (and, if better, promoted) champion out — the bring-your-own-labels
path (README "Real data"), and the training step of the demo."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from defi_scoring.cli.console import console
from defi_scoring.cli.data_commands import ENGINE_HELP, ENGINES
from defi_scoring.cli.run_log import elapsed, execute_job, send_logs_to_file
from defi_scoring.config import Settings, ensure_dagster_home

METRIC_COLUMNS = ("roc_auc", "pr_auc", "ks", "brier", "f1", "log_loss")


@click.command()
@click.option(
    "--labels",
    "label_files",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="CSV with wallet_address,is_risky to copy into $DEFI_SCORING_HOME/labels/ first (repeatable).",
)
@click.option("--engine", type=click.Choice(ENGINES), default="local", show_default=True, help=ENGINE_HELP)
def train(label_files: tuple[Path, ...], engine: str) -> None:
    """Train the ensemble on the labelled wallets of every landed batch and register it in MLflow.

    Runs the `train_model` job (training_set → ensemble_model → champion_model → model_evaluation) on
    the project's Dagster instance: the new version becomes champion only if it beats the current one
    on the holdout accounts. Land the messages first (`defi-scoring land FILE`); labels are read from
    $DEFI_SCORING_HOME/labels/*.csv.
    """
    settings = Settings.from_env()
    labels_dir = settings.home / "labels"
    labels_dir.mkdir(parents=True, exist_ok=True)
    for file in label_files:
        shutil.copyfile(file, labels_dir / file.name)
    if not any(labels_dir.glob("*.csv")):
        raise click.ClickException(
            f"No labels under {labels_dir}. Pass --labels FILE.csv (columns wallet_address,is_risky)."
        )
    ensure_dagster_home(settings)
    console.print(f"logs: {send_logs_to_file(settings.home)}", soft_wrap=True)
    training = train_champion(settings, engine)
    if training is None:
        raise click.ClickException(
            "No model was trained: none of the labelled wallets is in a landed batch. "
            "Land their messages first: defi-scoring land MESSAGES.jsonl"
        )
    print_model_table(Console(), training)


def train_champion(settings: Settings, engine: str = "local") -> dict | None:
    """Run the train_model job; returns the registered version, the champion and the holdout metrics
    of every member and the ensemble (None when there was nothing to train on)."""
    from dagster import DagsterInstance

    from defi_scoring.core.ensemble_config import load_ensemble_config
    from defi_scoring.core.model_registry import CHAMPION, alias_version
    from defi_scoring.definitions import build_definitions

    defs = build_definitions(settings)
    started = time.perf_counter()
    with DagsterInstance.get() as instance:
        ops = {op: {"config": {"engine": engine}} for op in ("training_set", "ensemble_model")}
        result = execute_job(
            defs, instance, "train_model", "training the ensemble", raise_on_error=False, run_config={"ops": ops}
        )
    materialised = result.asset_materializations_for_node("ensemble_model")
    if not materialised:
        console.print("[yellow]no model trained[/] (no labels under the data home's labels/ folder?)")
        return None
    meta = materialised[0].metadata
    store = job_mlflow_store(defs)
    run = store.client().get_run(meta["mlflow_run_id"].value)
    metrics: dict[str, dict[str, float]] = {}
    for key, value in run.data.metrics.items():
        model_name, _, metric = key.partition(".")
        if metric != "train_seconds":
            metrics.setdefault(model_name, {})[metric] = value
    name = load_ensemble_config().registered_model_name
    console.print(
        f"[green]✓[/] train_model run {result.run_id[:8]}: registered version "
        f"{meta['model_version'].value} ({elapsed(started)})"
    )
    return {
        "version": meta["model_version"].value,
        "champion": alias_version(store, name, CHAMPION),
        "metrics": dict(sorted(metrics.items(), key=lambda kv: kv[0] != "ensemble")),
    }


def job_mlflow_store(defs):
    """The MLflow store the train_model job logged to: the definitions' resource (MLFLOW_TRACKING_URI
    when set, else the embedded store under the data home), not a second resolution of it."""
    return defs.resources["mlflow_store"].process_config_and_initialize().store


def print_model_table(out: Console, training: dict) -> None:
    models = Table(
        title=f"Ensemble on the holdout accounts — registered version {training['version']}, "
        f"champion {training['champion']}"
    )
    models.add_column("model")
    for name in METRIC_COLUMNS:
        models.add_column(name, justify="right")
    for model_name, values in training["metrics"].items():
        models.add_row(model_name, *(f"{values[n]:.4f}" if n in values else "—" for n in METRIC_COLUMNS))
    out.print(models)
    out.print("Compare versions in the MLflow UI:  [bold]defi-scoring mlflow-ui[/]")
