"""`broker` and `produce`: the embedded Kafka-protocol broker and a producer of input messages."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import click
import orjson
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from defi_scoring.cli.console import console


@click.command()
@click.option("--port", default=9092, show_default=True, help="Port of the embedded broker (0: a free one).")
@click.option("--partitions", default=1, show_default=True, help="Partitions of the input topic.")
def broker(port: int, partitions: int) -> None:
    """Start the embedded Kafka-protocol broker (Tansu, in memory) and create the topics; Ctrl-C or SIGTERM
    stops it (and the broker process with it)."""
    from defi_scoring.process_hygiene import terminate_like_interrupt
    from defi_scoring.streaming.broker import EmbeddedBroker, free_port

    terminate_like_interrupt()
    from defi_scoring.streaming.client import ensure_topics
    from defi_scoring.streaming.settings import KafkaSettings

    running = EmbeddedBroker(port or free_port()).start()
    try:  # from here on, any stop (Ctrl-C, SIGTERM, an error) takes the broker process down
        settings = replace(KafkaSettings.from_env(), bootstrap_servers=running.bootstrap_servers)
        ensure_topics(settings, [settings.input_topic], partitions)
        ensure_topics(settings, settings.output_topics)
        console.print(
            f"[green]✓[/] broker on [bold]{running.bootstrap_servers}[/] (in memory: topics vanish when it "
            f"stops); topics {settings.input_topic} ({partitions} partition(s)), "
            f"{', '.join(settings.output_topics)}"
        )
        console.print(
            f"  export KAFKA_BOOTSTRAP_SERVERS={running.bootstrap_servers}   # then: defi-scoring produce, "
            f"make ui (the kafka_scoring_sensor starts when this is set)"
        )
        running.process.wait()
    except KeyboardInterrupt:
        pass
    finally:
        running.stop()


@click.command()
@click.option("--count", default=1_000, show_default=True, help="Generated wallets to send (ignored with --input).")
@click.option(
    "--input",
    "input_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="JSONL file: send each line as one message instead of generating.",
)
@click.option("--seed", default=7, show_default=True)
@click.option("--rate", default=0.0, show_default=True, help="Messages per second (0: as fast as possible).")
@click.option(
    "--compression", type=click.Choice(["none", "gzip", "lz4", "snappy", "zstd"]), default="none", show_default=True
)
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
    sent = send_lines(settings, lines, rate, None if compression == "none" else compression, producer)
    console.print(f"[green]✓[/] sent {sent:,} messages to {settings.input_topic} on {settings.bootstrap_servers}")


def message_key(line: bytes) -> bytes:
    try:
        return str(orjson.loads(line).get("wallet_address") or "").encode()
    except (orjson.JSONDecodeError, AttributeError):
        return b""


def send_lines(settings, lines: list[bytes], rate: float, compression: str | None, make_producer) -> int:
    sender = make_producer(settings, compression_type=compression)
    started = time.perf_counter()
    with Progress(
        TextColumn("producing"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
    ) as progress:
        task = progress.add_task("produce", total=len(lines))
        futures = []
        for i, line in enumerate(lines):
            if rate > 0:
                delay = started + i / rate - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
            futures.append(sender.send(settings.input_topic, key=message_key(line), value=line))
            if i % 200 == 0:
                progress.update(task, completed=i)
        sender.flush()
        for future in futures:
            future.get(timeout=30)
        progress.update(task, completed=len(lines))
    sender.close()
    return len(lines)
