"""Streaming through the deployed path: the stock Dagster daemon, code server and webserver.

Starts, on a fresh data home with the shipped instance configuration (defi_scoring/defaults/
dagster.yaml): the embedded broker, then `defi-scoring ui` (`dagster dev`: webserver, daemon, code
server — what `make ui` runs). The daemon evaluates kafka_scoring_sensor, queues a run per offset
range and launches it with the shipped run launcher. One warm-up message is answered before the clock
starts (a running deployment is warm); then messages are produced at --rate per second from a
separate process, and latency is read from Kafka record timestamps (input record → its output).

  python bench/bench_daemon.py [--messages 24000] [--rate 200] [--partitions 1] [--backlog] [--champion 5000]

Messages carry each wallet's newest 1–3 transactions and the score store holds the older ones
(bench/_common.py). --backlog stops the sensor after the warm-up, produces everything, starts the sensor again and times
the drain from that moment to the last output record.

--champion N trains a champion on N generated wallets first (`defi-scoring generate/land/train`), so
the runs score with the ensemble as a deployment with a registered model does.

Prints one JSON line: mode, offered_per_s, messages, answered, wallets_per_s, latency percentiles,
runs, run_seconds_p50 (start → end of a run) and queue_seconds_p50 (created → started).
"""

import argparse
import json
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import orjson
from _common import newest_transaction_lines, produce_at_rate  # bench/ helpers (scripts run from this folder)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _sensor(action: str) -> None:
    """`dagster sensor start|stop kafka_scoring_sensor` on the running deployment's instance."""
    command = [str(Path(sys.executable).parent / "dagster"), "sensor", action, "kafka_scoring_sensor"]
    subprocess.run([*command, "-m", "defi_scoring.definitions"], check=True, capture_output=True, timeout=120)


def _train_champion(home: Path, wallets: int, seed: int) -> None:
    """generate → land → train with the installed CLI, as a user would before streaming (not timed)."""
    cli = str(Path(sys.executable).parent / "defi-scoring")
    batch = home / "champion-batch.jsonl"
    for command in (
        ["generate", "--wallets", str(wallets), "--seed", str(seed), "--output", str(batch)],
        ["land", str(batch)],
        ["train", "--labels", str(batch.with_suffix(".labels.csv"))],
    ):
        subprocess.run([cli, *command], check=True, capture_output=True, timeout=1800)


def _wait(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.25)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=24_000)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--partitions", type=int, default=1)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--backlog", action="store_true", help="produce everything first, then time the drain")
    parser.add_argument("--timeout", type=float, default=900.0, help="give up after this many seconds")
    parser.add_argument(
        "--champion",
        type=int,
        default=0,
        metavar="WALLETS",
        help="first land and train a champion on this many generated wallets with the CLI (runs then score with it)",
    )
    args = parser.parse_args()
    from defi_scoring.process_hygiene import terminate_like_interrupt

    terminate_like_interrupt()  # SIGTERM too runs the `finally` that stops the UI and the broker
    home = Path(tempfile.mkdtemp(prefix="bench-daemon-"))
    os.environ["DEFI_SCORING_HOME"] = str(home)
    os.environ["DAGSTER_HOME"] = str(home / "dagster")
    from dagster import DagsterInstance, RunsFilter

    from defi_scoring.config import Settings, ensure_dagster_home
    from defi_scoring.streaming.answers import AnswerCounter, latencies_s
    from defi_scoring.streaming.broker import EmbeddedBroker
    from defi_scoring.streaming.client import ensure_topics, producer, read_topic
    from defi_scoring.streaming.settings import KafkaSettings

    if args.champion:
        _train_champion(home, args.champion, args.seed + 7)
    lines = newest_transaction_lines(args.messages + 1, args.seed, Settings.from_env().store_url)
    warm_up, lines = lines[0], lines[1:]
    ensure_dagster_home(Settings.from_env())

    with EmbeddedBroker(log_path=home / "broker.log") as broker:
        os.environ["KAFKA_BOOTSTRAP_SERVERS"] = broker.bootstrap_servers
        kafka = KafkaSettings.from_env()
        ensure_topics(kafka, [kafka.input_topic], partitions=args.partitions)
        ensure_topics(kafka, kafka.output_topics)
        outputs_topics = [kafka.success_topic, kafka.failure_topic]
        ui_log = open(home / "ui.log", "wb")  # noqa: SIM115 (closed below)
        ui = subprocess.Popen(
            [str(Path(sys.executable).parent / "defi-scoring"), "ui", "--port", str(_free_port())],
            stdout=ui_log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        answered = AnswerCounter(kafka, outputs_topics)
        try:
            # A running deployment is warm: one message is answered before the clock starts.
            warm = producer(kafka)
            warm.send(kafka.input_topic, key=orjson.loads(warm_up)["wallet_address"].encode(), value=warm_up).get(30)
            warm.close()
            _wait(lambda: answered() >= 1, 300, "the warm-up message's answer")
            total = len(lines) + 1
            rate = float("inf") if args.backlog else args.rate
            producer_process = multiprocessing.get_context("spawn").Process(
                target=produce_at_rate, args=(broker.bootstrap_servers, kafka.input_topic, lines, rate, args.partitions)
            )
            if args.backlog:  # the whole backlog is on the topic before the sensor looks again
                _sensor("stop")
                producer_process.start()
                producer_process.join()
                _sensor("start")
            started = time.time()
            if not args.backlog:
                producer_process.start()
            done = lambda: answered() >= total
            try:
                _wait(done, args.timeout, f"{total} answers")
            finally:
                producer_process.join()
            elapsed = time.time() - started
            inputs = read_topic(kafka, kafka.input_topic)
            outputs = [r for t in outputs_topics for r in read_topic(kafka, t)]
        finally:
            answered.close()
            os.killpg(ui.pid, signal.SIGTERM)
            ui.wait(timeout=60)
            ui_log.close()

    with DagsterInstance.get() as instance:
        records = instance.get_run_records(RunsFilter(job_name="kafka_scoring"))[:-1]  # newest first: not the warm-up
    run_seconds = [r.end_time - r.start_time for r in records if r.start_time and r.end_time]
    queue_seconds = [r.start_time - r.create_timestamp.timestamp() for r in records if r.start_time]
    key = orjson.loads(warm_up)["wallet_address"].encode()  # the warm-up is not part of the figures
    inputs = [r for r in inputs if r.key != key]
    outputs = [r for r in outputs if r.key != key]
    lat = np.array(latencies_s(inputs, outputs))
    first_in = started if args.backlog else min(r.timestamp for r in inputs) / 1000
    last_out = max(r.timestamp for r in outputs) / 1000
    percentile = lambda values, q: round(float(np.percentile(values, q)), 3) if len(values) else None
    print(
        json.dumps(
            {
                "mode": "daemon+backlog" if args.backlog else "daemon",
                "offered_per_s": None if args.backlog else args.rate,
                "messages": len(lines),
                "answered": len(outputs),
                "partitions": args.partitions,
                "wallets_per_s": round(len(outputs) / (last_out - first_in)),
                "latency_p50_s": None if args.backlog else percentile(lat, 50),
                "latency_p95_s": None if args.backlog else percentile(lat, 95),
                "latency_p99_s": None if args.backlog else percentile(lat, 99),
                "latency_max_s": None if args.backlog else percentile(lat, 100),
                "champion_wallets": args.champion or None,
                "runs": len(records),
                "run_seconds_p50": percentile(run_seconds, 50),
                "run_seconds_max": percentile(run_seconds, 100),
                "queue_seconds_p50": percentile(queue_seconds, 50),
                "queue_seconds_max": percentile(queue_seconds, 100),
                "elapsed_s": round(elapsed, 1),
                "home": str(home),
            }
        )
    )


if __name__ == "__main__":
    main()
