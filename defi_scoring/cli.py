"""The `defi-scoring` command: generate data, score files, land batches, run the demo, open the UI."""

from __future__ import annotations

import os
import shutil
import sys
import time
from dataclasses import replace
from pathlib import Path

import click
import orjson
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from defi_scoring.config import Settings, ensure_dagster_home

console = Console(stderr=True)


def _progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=console, transient=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Wallet reputation and risk scoring for DeFi.

    Data lives under $DEFI_SCORING_HOME (default ./.defi_scoring); the Dagster instance under
    $DAGSTER_HOME (default $DEFI_SCORING_HOME/dagster), so the UI shows what the CLI ran.
    """


@main.command()
@click.option("--wallets", "n_wallets", default=10_000, show_default=True, help="Number of wallets.")
@click.option("--seed", default=42, show_default=True, help="Random seed (same seed, same data).")
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), default=Path("wallets.jsonl"),
              show_default=True, help="JSONL file of wallet-transactions messages.")
@click.option("--labels", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="CSV of wallet_address, archetype, is_risky, cluster_id [default: OUTPUT with .labels.csv].")
@click.option("--bad-fraction", default=0.0, show_default=True, type=click.FloatRange(0, 1),
              help="Share of messages to corrupt on purpose (to see failure records).")
def generate(n_wallets: int, seed: int, output: Path, labels: Path | None, bad_fraction: float) -> None:
    """Generate synthetic wallets (9 archetypes, benign and risky) as JSONL messages plus labels."""
    stats = _generate(n_wallets, seed, output, labels or output.with_suffix(".labels.csv"), bad_fraction)
    console.print(f"wrote {stats['wallets']:,} wallets / {stats['transactions']:,} transactions "
                  f"({stats['bad_lines']} corrupted lines) to [bold]{output}[/]")


def _generate(n_wallets: int, seed: int, output: Path, labels: Path, bad_fraction: float) -> dict[str, int]:
    from defi_scoring.core.synthetic import generate_wallets, write_dataset

    with _progress() as progress:
        task = progress.add_task("generating wallets", total=n_wallets)
        data = generate_wallets(n_wallets, seed=seed)
        progress.update(task, description="writing messages")
        return write_dataset(data, output, labels, bad_fraction=bad_fraction, seed=seed,
                             progress=lambda i: progress.update(task, completed=i))


@main.command()
@click.option("--input", "input_path", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="JSONL file, one wallet-transactions message per line.")
@click.option("--output", "output_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="JSONL file to write: one success or failure message per input line, same order.")
@click.option("--as-of", type=int, default=None, help="Unix seconds to score at [default: now].")
@click.option("--model/--no-model", "use_model", default=True, show_default=True,
              help="Apply the champion model from MLflow (MLFLOW_TRACKING_URI or the embedded store) if one exists.")
@click.option("--scoring-config", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Scoring YAML [default: models/scoring.yaml].")
def score(input_path: Path, output_path: Path, as_of: int | None, use_model: bool,
          scoring_config: Path | None) -> None:
    """Score a JSONL file: reference zscore and categories plus the hybrid score, confidence, risk level,
    breakdown, reasons, patterns and alerts (one output line per input line, same order)."""
    from defi_scoring.core.batch_scoring import score_raw_messages
    from defi_scoring.core.scoring_config import load_scoring_config

    with open(input_path, "rb") as handle:
        lines = [line.rstrip(b"\r\n") for line in handle]
    model = _champion_scorer(Settings.from_env()) if use_model else None
    with console.status(f"scoring {len(lines):,} messages …"):
        scored = score_raw_messages(lines, as_of=as_of, config=load_scoring_config(scoring_config), model=model)
    messages = scored.messages()
    with open(output_path, "wb") as out:
        for message in messages:
            out.write(orjson.dumps(message) + b"\n")
    failed = len(scored.batch.rejections)
    console.print(f"scored {len(messages) - failed:,} messages, {failed:,} failures → [bold]{output_path}[/] "
                  f"({scored.seconds:.2f}s); {scored.wallets.model_note}")
    _print_risk_levels(scored.wallets.table)


def _champion_scorer(settings: Settings):
    """features → ModelScores with the champion of the configured MLflow store (None-safe)."""
    from defi_scoring.core.ensemble_config import load_ensemble_config
    from defi_scoring.core.model_registry import MlflowStore, embedded_store
    from defi_scoring.core.model_scoring import score_with_model

    store = embedded_store(settings.home)
    if os.environ.get("MLFLOW_TRACKING_URI"):
        store = MlflowStore(os.environ["MLFLOW_TRACKING_URI"], store.artifact_root, store.experiment_name)
    name = load_ensemble_config().registered_model_name
    return lambda features: score_with_model(features, store, name)


def _print_risk_levels(table) -> None:
    if table.empty:
        return
    counts = table["risk_level"].value_counts()
    t = Table(title="Wallets by risk level")
    for column in ("risk level", "wallets", "mean hybrid score", ""):
        t.add_column(column, justify="right" if column.startswith(("wallets", "mean")) else "left")
    means = table.groupby("risk_level")["hybrid_score"].mean()
    for level, count in counts.items():
        t.add_row(level, f"{count:,}", f"{means[level]:.1f}", "█" * int(count / counts.max() * 30))
    console.print(t)


@main.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--key", default=None, help="Batch (partition) key [default: the file name without extension].")
@click.option("--as-of", type=int, default=None, help="Unix seconds the scores are computed at [default: now].")
def land(file: Path, key: str | None, as_of: int | None) -> None:
    """Land a JSONL file as a new batch and materialise the asset graph on the Dagster instance."""
    _land_and_materialise(Settings.from_env(), file, key, as_of)


def _land_and_materialise(settings: Settings, file: Path, key: str | None, as_of: int | None) -> str:
    from dagster import DagsterInstance

    from defi_scoring.assets.partitions import transaction_batch_partitions
    from defi_scoring.resources.data_home import batch_key_for

    key = batch_key_for(Path(key or file.stem))
    ensure_dagster_home(settings)
    settings.landing_dir.mkdir(parents=True, exist_ok=True)
    target = settings.landing_dir / f"{key}.jsonl"
    if file.resolve() != target.resolve():
        shutil.copyfile(file, target)
    with DagsterInstance.get() as instance:
        instance.add_dynamic_partitions(transaction_batch_partitions.name, [key])
    _run_jobs(settings, [("ingest_batch", {"partition_key": key}), _score_step(as_of)])
    return key


def _score_step(as_of: int | None) -> tuple[str, dict]:
    return ("score_wallets", {"run_config": {"ops": {"wallet_features": {"config": {"as_of": as_of}}}}})


def _run_jobs(settings: Settings, steps: list[tuple[str, dict]]) -> None:
    """Run jobs in-process on the project's Dagster instance, with a spinner; stop at the first failure."""
    from dagster import DagsterInstance

    from defi_scoring.definitions import build_definitions
    from defi_scoring.streaming.driver import QUIET

    defs = build_definitions(settings)
    with DagsterInstance.get() as instance:
        for job_name, kwargs in steps:
            with console.status(f"running {job_name} …"):
                config = {**kwargs.pop("run_config", {}), **QUIET}
                result = defs.resolve_job_def(job_name).execute_in_process(instance=instance, run_config=config,
                                                                           **kwargs)
            if not result.success:
                raise click.ClickException(f"Dagster run {result.run_id} of {job_name} failed; "
                                           f"open the UI (defi-scoring ui) to see its logs.")
            console.print(f"[green]✓[/] {job_name} run {result.run_id[:8]}")


@main.command()
@click.option("--wallets", "n_wallets", default=5_000, show_default=True, help="Number of demo wallets.")
@click.option("--seed", default=42, show_default=True)
def demo(n_wallets: int, seed: int) -> None:
    """End to end on embedded defaults: generate → land a batch → materialise → train → summary."""
    import pandas as pd

    from defi_scoring.core.summary import describe, extremes, tag_counts, zscore_distribution
    from defi_scoring.core.synthetic import DEFAULT_END_TIME

    settings = Settings.from_env()
    started = time.perf_counter()
    batch_file = settings.home / "generated" / f"demo-seed{seed}-{n_wallets}.jsonl"
    labels_file = batch_file.with_suffix(".labels.csv")
    stats = _generate(n_wallets, seed, batch_file, labels_file, bad_fraction=0.01)
    console.print(f"[green]✓[/] generated {stats['wallets']:,} wallets, {stats['transactions']:,} transactions, "
                  f"{stats['bad_lines']} deliberately corrupted messages")
    key = _land_and_materialise(settings, batch_file, None, as_of=DEFAULT_END_TIME)
    (settings.home / "labels").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(labels_file, settings.home / "labels" / labels_file.name)
    training = _train(settings)
    if training is not None:  # rescore so the hybrid scores carry the new champion's adjustment
        _run_jobs(settings, [_score_step(DEFAULT_END_TIME)])

    rejections = pd.read_parquet(settings.batches_dir / key / "rejections.parquet")
    scores = pd.read_parquet(settings.tables_dir / "reference_scores.parquet")
    labels = pd.read_csv(labels_file)
    labels.index = labels["wallet_address"].str.lower()
    out = Console()
    summary = describe(scores)
    head = Table(title="Batch", show_header=False)
    for name, value in [("batch key", key), ("wallets scored", f"{summary['wallets']:,}"),
                        ("failed messages", f"{len(rejections):,}"),
                        ("zscore p10 / p50 / p90", f"{summary['zscore_p10']:.1f} / {summary['zscore_p50']:.1f} / "
                                                   f"{summary['zscore_p90']:.1f}"),
                        ("elapsed", f"{time.perf_counter() - started:.1f}s")]:
        head.add_row(name, str(value))
    out.print(head)
    if len(rejections):
        failures = Table(title="Failures by reason (first words)")
        failures.add_column("error")
        failures.add_column("messages", justify="right")
        for reason, count in rejections["error"].str.slice(0, 70).value_counts().items():
            failures.add_row(reason, str(count))
        out.print(failures)
    dist = Table(title="zscore distribution (0–920)")
    for column in ("zscore", "wallets", "share", ""):
        dist.add_column(column, justify="right" if column in ("wallets", "share") else "left")
    table = zscore_distribution(scores)
    peak = max(int(table["wallets"].max()), 1)
    for row in table.itertuples(index=False):
        dist.add_row(row.zscore, f"{row.wallets:,}", f"{row.share:.1%}", "█" * int(row.wallets / peak * 40))
    out.print(dist)
    by_type = scores.join(labels[["archetype", "is_risky"]]).groupby("archetype")["zscore"].agg(["count", "mean"])
    arche = Table(title="Mean zscore by (synthetic) archetype")
    for column in ("archetype", "wallets", "mean zscore"):
        arche.add_column(column)
    for name, row in by_type.sort_values("mean", ascending=False).iterrows():
        arche.add_row(name, f"{int(row['count']):,}", f"{row['mean']:.1f}")
    out.print(arche)
    top, bottom = extremes(scores)
    for title, frame in (("Top wallets", top), ("Bottom wallets", bottom)):
        t = Table(title=title)
        for column in ("wallet", "zscore", "lp", "swap"):
            t.add_column(column)
        for wallet, row in frame.iterrows():
            t.add_row(wallet, f"{row['zscore']:.2f}", f"{row['lp_score']:.1f}", f"{row['swap_score']:.1f}")
        out.print(t)
    out.print(f"Top tags: {', '.join(f'{k} ({v:,})' for k, v in tag_counts(scores).head(6).items())}")
    if training is not None:
        models = Table(title=f"Ensemble on the time-based holdout — registered version {training['version']}, "
                             f"champion {training['champion']}")
        names = ("roc_auc", "pr_auc", "ks", "brier", "f1", "log_loss")
        models.add_column("model")
        for name in names:
            models.add_column(name, justify="right")
        for model_name, values in training["metrics"].items():
            models.add_row(model_name, *(f"{values[n]:.4f}" for n in names))
        out.print(models)
        out.print("Compare versions in the MLflow UI:  [bold]defi-scoring mlflow-ui[/]")
    _print_hybrid_summary(out, pd.read_parquet(settings.tables_dir / "scored_wallets.parquet"), labels)
    _stream_demo(out, settings, seed)
    out.print("\nServe the scores over HTTP:  [bold]defi-scoring serve[/]  → http://127.0.0.1:8000/docs "
              "(GET /api/v1/wallets/{address}, POST /api/v1/score, /health, /stats)")
    out.print(f"\nOpen the Dagster UI on this instance:\n  [bold]DAGSTER_HOME={settings.dagster_home} "
              f"{Path(sys.executable).parent / 'dagster'} dev -w workspace.yaml[/]   (or: make ui)")


def _stream_demo(out: Console, settings: Settings, seed: int, wallets: int = 500) -> None:
    """Streaming part of the demo: embedded broker → produce → sensor-driven runs → output topics."""
    import numpy as np
    from dagster import DagsterInstance

    from defi_scoring.core.synthetic import corrupt, generate_wallets, iter_messages
    from defi_scoring.definitions import build_definitions
    from defi_scoring.streaming.broker import EmbeddedBroker
    from defi_scoring.streaming.client import ensure_topics, producer, read_topic
    from defi_scoring.streaming.driver import SensorDriver, latencies_s
    from defi_scoring.streaming.settings import KafkaSettings

    messages = list(iter_messages(generate_wallets(wallets, seed=seed + 1)))
    lines = [orjson.dumps(m) for m in messages] + [corrupt(m, k) for m, k in
                                                  zip(messages, ("truncated_json", "invalid_wallet", "timestamp_ms"))]
    with EmbeddedBroker(log_path=settings.home / "broker.log") as broker:
        os.environ["KAFKA_BOOTSTRAP_SERVERS"] = broker.bootstrap_servers
        kafka = KafkaSettings.from_env()
        ensure_topics(kafka, [kafka.input_topic, *kafka.output_topics])
        console.print(f"[green]✓[/] embedded Kafka broker on {broker.bootstrap_servers}")
        _send(kafka, lines, 0, None, producer)
        defs = build_definitions(settings)
        with DagsterInstance.get() as instance, console.status("sensor-driven scoring runs …"):
            driver = SensorDriver(defs, instance)
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                if not driver.tick() and driver.runs:
                    break
        topics = {t: read_topic(kafka, t) for t in (kafka.input_topic, *kafka.output_topics)}
    del os.environ["KAFKA_BOOTSTRAP_SERVERS"]
    summary = Table(title=f"Streaming: {len(driver.runs)} sensor-driven run(s) of kafka_scoring")
    for column in ("topic", "messages", "example"):
        summary.add_column(column, overflow="fold")
    for topic, records in topics.items():
        example = records[-1].value[:110].decode(errors="replace") + "…" if records else ""
        summary.add_row(topic, f"{len(records):,}", example)
    out.print(summary)
    answered = topics[kafka.success_topic] + topics[kafka.failure_topic]
    lat = np.array(latencies_s(topics[kafka.input_topic], answered)) if answered else np.zeros(1)
    accounted = "all" if len(answered) == len(lines) else "NOT all"
    out.print(f"{accounted} {len(lines):,} input messages accounted for ({len(topics[kafka.success_topic]):,} success"
              f" + {len(topics[kafka.failure_topic]):,} failure); latency produce → output p50 "
              f"{np.percentile(lat, 50):.2f}s, p95 {np.percentile(lat, 95):.2f}s")


def _print_hybrid_summary(out: Console, scored, labels) -> None:
    """Hybrid score by archetype, risk levels and the lowest-scored wallets with their top reason."""
    from defi_scoring.core.patterns import PATTERNS

    joined = scored.join(labels[["archetype"]])
    version = scored["model_version"].dropna().unique()
    t = Table(title="Hybrid score by (synthetic) archetype — model version "
                    f"{version[0] if len(version) else 'none (no ML adjustment)'}")
    for column in ("archetype", "wallets", "mean score", "mean confidence", "patterns found", "main pattern"):
        t.add_column(column, justify="left" if column in ("archetype", "main pattern") else "right")
    grouped = joined.groupby("archetype")
    for name, group in sorted(grouped, key=lambda kv: -kv[1]["hybrid_score"].mean()):
        counts = {p: int(group[f"{p}_counted"].sum()) for p in PATTERNS}
        main = max(counts, key=counts.get)
        t.add_row(name, f"{len(group):,}", f"{group['hybrid_score'].mean():.1f}", f"{group['confidence'].mean():.2f}",
                  f"{(group['patterns_detected'] > 0).mean():.0%}", main if counts[main] else "—")
    out.print(t)
    _print_risk_levels(scored)
    worst = Table(title="Lowest hybrid scores and why")
    for column in ("wallet", "score", "risk level", "top reason"):
        worst.add_column(column)
    for wallet, row in scored.sort_values("hybrid_score").head(5).iterrows():
        worst.add_row(wallet, f"{row['hybrid_score']:.1f}", row["risk_level"], str(row["reason_1_text"]))
    out.print(worst)


def _train(settings: Settings) -> dict | None:
    """Run the train_model job; returns the holdout metrics of every member and the ensemble."""
    from dagster import DagsterInstance

    from defi_scoring.core.ensemble_config import load_ensemble_config
    from defi_scoring.core.model_registry import CHAMPION, alias_version, embedded_store
    from defi_scoring.definitions import build_definitions

    defs = build_definitions(settings)
    with DagsterInstance.get() as instance, console.status("training the ensemble (MLflow run) …"):
        result = defs.resolve_job_def("train_model").execute_in_process(instance=instance, raise_on_error=False)
    materialised = result.asset_materializations_for_node("ensemble_model")
    if not materialised:
        console.print("[yellow]no model trained[/] (no labels under the data home's labels/ folder?)")
        return None
    meta = materialised[0].metadata
    store = embedded_store(settings.home)
    run = store.client().get_run(meta["mlflow_run_id"].value)
    metrics: dict[str, dict[str, float]] = {}
    for key, value in run.data.metrics.items():
        model_name, _, metric = key.partition(".")
        if metric != "train_seconds":
            metrics.setdefault(model_name, {})[metric] = value
    name = load_ensemble_config().registered_model_name
    console.print(f"[green]✓[/] train_model run {result.run_id[:8]}: version {meta['model_version'].value}")
    return {"version": meta["model_version"].value, "champion": alias_version(store, name, CHAMPION),
            "metrics": dict(sorted(metrics.items(), key=lambda kv: kv[0] != "ensemble"))}


@main.command()
@click.option("--port", default=9092, show_default=True, help="Port of the embedded broker (0: a free one).")
@click.option("--partitions", default=1, show_default=True, help="Partitions of the input topic.")
def broker(port: int, partitions: int) -> None:
    """Start the embedded Kafka-protocol broker (Tansu, in memory) and create the topics; Ctrl-C stops it."""
    from defi_scoring.streaming.broker import EmbeddedBroker, free_port
    from defi_scoring.streaming.client import ensure_topics
    from defi_scoring.streaming.settings import KafkaSettings

    running = EmbeddedBroker(port or free_port()).start()
    settings = replace(KafkaSettings.from_env(), bootstrap_servers=running.bootstrap_servers)
    ensure_topics(settings, [settings.input_topic], partitions)
    ensure_topics(settings, settings.output_topics)
    console.print(f"[green]✓[/] broker on [bold]{running.bootstrap_servers}[/] (in memory: topics vanish when it "
                  f"stops); topics {settings.input_topic} ({partitions} partition(s)), "
                  f"{', '.join(settings.output_topics)}")
    console.print(f"  export KAFKA_BOOTSTRAP_SERVERS={running.bootstrap_servers}   # then: defi-scoring produce, "
                  f"make ui (the kafka_scoring_sensor starts when this is set)")
    try:
        running.process.wait()
    except KeyboardInterrupt:
        pass
    finally:
        running.stop()


@main.command()
@click.option("--count", default=1_000, show_default=True, help="Generated wallets to send (ignored with --input).")
@click.option("--input", "input_path", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="JSONL file: send each line as one message instead of generating.")
@click.option("--seed", default=7, show_default=True)
@click.option("--rate", default=0.0, show_default=True, help="Messages per second (0: as fast as possible).")
@click.option("--compression", type=click.Choice(["none", "gzip", "lz4", "snappy", "zstd"]), default="none",
              show_default=True)
def produce(count: int, input_path: Path | None, seed: int, rate: float, compression: str) -> None:
    """Send wallet-transactions messages to the input topic (KAFKA_BOOTSTRAP_SERVERS), keyed by wallet."""
    from defi_scoring.streaming.client import producer
    from defi_scoring.streaming.settings import KafkaSettings

    settings = KafkaSettings.from_env()
    if input_path is not None:
        lines = [line.rstrip(b"\r\n") for line in input_path.open("rb") if line.strip()]
    else:
        from defi_scoring.core.synthetic import generate_wallets, iter_messages

        lines = [orjson.dumps(m) for m in iter_messages(generate_wallets(count, seed=seed))]
    sent = _send(settings, lines, rate, None if compression == "none" else compression, producer)
    console.print(f"[green]✓[/] sent {sent:,} messages to {settings.input_topic} on {settings.bootstrap_servers}")


def _message_key(line: bytes) -> bytes:
    try:
        return str(orjson.loads(line).get("wallet_address") or "").encode()
    except (orjson.JSONDecodeError, AttributeError):
        return b""


def _send(settings, lines: list[bytes], rate: float, compression: str | None, make_producer) -> int:
    sender = make_producer(settings, compression_type=compression)
    started = time.perf_counter()
    with Progress(TextColumn("producing"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console) as progress:
        task = progress.add_task("produce", total=len(lines))
        futures = []
        for i, line in enumerate(lines):
            if rate > 0:
                delay = started + i / rate - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
            futures.append(sender.send(settings.input_topic, key=_message_key(line), value=line))
            if i % 200 == 0:
                progress.update(task, completed=i)
        sender.flush()
        for future in futures:
            future.get(timeout=30)
        progress.update(task, completed=len(lines))
    sender.close()
    return len(lines)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True)
@click.option("--workers", default=1, show_default=True, help="uvicorn worker processes.")
def serve(host: str, port: int, workers: int) -> None:
    """Start the REST API (FastAPI + uvicorn): scores from the store, POST scoring, admin; docs at /docs."""
    import uvicorn

    console.print(f"API on [bold]http://{host}:{port}[/]  (docs: http://{host}:{port}/docs; store: "
                  f"{Settings.from_env().store_url})")
    uvicorn.run("defi_scoring.api.app:create_app", factory=True, host=host, port=port, workers=workers,
                log_level="warning")


@main.command(name="mlflow-ui")
@click.option("--port", default=5000, show_default=True)
def mlflow_ui(port: int) -> None:
    """Start the MLflow UI on the embedded store under the data home (or MLFLOW_TRACKING_URI)."""
    from defi_scoring.core.model_registry import embedded_store

    store = embedded_store(Settings.from_env().home)
    uri = os.environ.get("MLFLOW_TRACKING_URI") or store.tracking_uri
    console.print(f"MLflow store: {uri}")
    mlflow = Path(sys.executable).parent / "mlflow"
    os.execv(str(mlflow), [str(mlflow), "ui", "--backend-store-uri", uri, "--default-artifact-root",
                           store.artifact_root, "--port", str(port)])


@main.command()
@click.option("--port", default=3000, show_default=True)
def ui(port: int) -> None:
    """Start the Dagster UI on the project's instance (DAGSTER_HOME)."""
    path = ensure_dagster_home(Settings.from_env())
    console.print(f"DAGSTER_HOME={path}")
    dagster = Path(sys.executable).parent / "dagster"
    os.execv(str(dagster), [str(dagster), "dev", "-m", "defi_scoring.definitions", "-p", str(port)])



from defi_scoring.cli_evaluate import evaluate  # noqa: E402 — its own module; registered here

main.add_command(evaluate)


if __name__ == "__main__":
    main()
