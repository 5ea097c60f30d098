"""Streaming: produce at a fixed rate, drive kafka_scoring_sensor + its runs as the daemon would.

Starts the embedded broker and a throwaway data home (SQLite score store, temporary Dagster
instance), produces generated messages from a separate process at --rate messages/s, and ticks the
sensor every --interval seconds, queueing each requested run to warm worker processes, until every
message is answered. Latency is the Kafka timestamp of the output record minus that of the input record.

  python bench/bench_stream.py [--messages 30000] [--rate 6000] [--interval 2] [--partitions 2] [--workers 2]
                               [--full-history] [--backlog]

Messages carry each wallet's newest 1–3 transactions, and the score store already holds the older
ones (seeded before the clock starts, as earlier runs would have left it): every run merges the
touched wallets' whole history, so the scoring work is that of the full history. --full-history sends
every wallet's whole history in its message instead (~13 KB each) and starts from an empty store.
--backlog produces everything before the clock starts and measures how fast the runs drain it: the
scoring capacity without the load generator (kafka-python, ~0.1 ms of CPU per send) competing for
the two cores; latencies are then time spent waiting in the backlog and are not reported.

With --workers > 1 (the default) the runs go to worker processes: one Kafka partition's ranges in
order in one process, different partitions in parallel; --workers 1 executes them in this process.

Prints one JSON line: throughput, latency percentiles, and the CPU spent per message by the run
processes (Dagster included), the broker and the load generator — what the machine's cores must cover.
"""

import argparse
import json
import multiprocessing
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import orjson
from _common import newest_transaction_lines  # bench/ helper (scripts run from this folder)


def _produce(
    bootstrap: str, topic: str, lines: list[bytes], rate: float, partitions: int = 1, cpu_seconds=None
) -> None:
    """Send `lines` at `rate` per second, keyed by wallet. Keys and partitions (Kafka's murmur2, as the
    default partitioner would choose) are computed before the clock starts and the pacing sleeps once
    per 50 messages: kafka-python spends ~0.1 ms of CPU per send, and this load generator shares the
    machine's two cores with the system it measures."""
    from kafka.partitioner.default import murmur2

    from defi_scoring.streaming.client import producer
    from defi_scoring.streaming.settings import KafkaSettings

    keys = [orjson.loads(line)["wallet_address"].encode() for line in lines]
    targets = [(murmur2(key) & 0x7FFFFFFF) % partitions for key in keys]
    sender = producer(KafkaSettings(bootstrap_servers=bootstrap))
    started, cpu = time.perf_counter(), time.process_time()
    for i, (key, line, partition) in enumerate(zip(keys, lines, targets)):
        if i % 50 == 0:
            delay = started + i / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
        sender.send(topic, key=key, value=line, partition=partition)
    sender.flush()
    if cpu_seconds is not None:
        cpu_seconds.value = time.process_time() - cpu  # all threads, kafka-python's sender included
    sender.close()


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time a live process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=30_000)
    parser.add_argument("--rate", type=float, default=6_000)
    parser.add_argument("--interval", type=float, default=2.0, help="sensor minimum interval (s)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--partitions", type=int, default=2, help="partitions of the input topic")
    parser.add_argument("--workers", type=int, default=2, help="run processes (one partition's ranges stay in order)")
    parser.add_argument("--full-history", action="store_true", help="whole history in every message, empty store")
    parser.add_argument("--backlog", action="store_true", help="produce everything first, then time the drain")
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="bench-stream-"))
    os.environ["DEFI_SCORING_HOME"] = str(home)
    os.environ["DAGSTER_HOME"] = str(home / "dagster")
    from dagster import DagsterInstance

    from defi_scoring.config import Settings, ensure_dagster_home
    from defi_scoring.core.synthetic import generate_wallets, iter_messages
    from defi_scoring.definitions import build_definitions
    from defi_scoring.streaming.broker import EmbeddedBroker
    from defi_scoring.streaming.client import ensure_topics, read_topic
    from defi_scoring.streaming.driver import SensorDriver, latencies_s
    from defi_scoring.streaming.settings import KafkaSettings

    if args.full_history:
        lines = [orjson.dumps(m) for m in iter_messages(generate_wallets(args.messages, seed=args.seed))]
    else:
        lines = newest_transaction_lines(args.messages, args.seed, Settings.from_env().store_url)
    with EmbeddedBroker(log_path=home / "broker.log") as broker:
        os.environ["KAFKA_BOOTSTRAP_SERVERS"] = broker.bootstrap_servers
        kafka = KafkaSettings.from_env()
        ensure_topics(kafka, [kafka.input_topic], partitions=args.partitions)
        ensure_topics(kafka, kafka.output_topics)
        defs = build_definitions(Settings.from_env())
        with DagsterInstance.from_config(str(ensure_dagster_home(Settings.from_env()))) as instance:
            # create every storage's schema here, before worker processes open the same SQLite files
            instance.get_runs(limit=1), instance.all_instigator_state(), instance.get_latest_storage_id_by_partition

            driver = SensorDriver(defs, instance, workers=args.workers, home=home)
            driver.warm_up()
            producer_cpu = multiprocessing.get_context("spawn").Value("d", 0.0)
            producer = multiprocessing.get_context("spawn").Process(
                target=_produce,
                args=(
                    broker.bootstrap_servers,
                    kafka.input_topic,
                    lines,
                    float("inf") if args.backlog else args.rate,
                    args.partitions,
                    producer_cpu,
                ),
            )
            if args.backlog:
                producer.start()
                producer.join()
            started, started_wall = time.perf_counter(), time.time()
            broker_cpu = _cpu_seconds(broker.process.pid)
            if not args.backlog:
                producer.start()
            answered, run_seconds, run_cpu = 0, [], []
            while answered < len(lines) and time.perf_counter() - started < 600:
                tick = time.perf_counter()
                runs = driver.tick()
                if runs:
                    print(
                        f"t={tick - started:6.1f}s tick {time.perf_counter() - tick:5.2f}s, {len(runs)} runs done",
                        [(r["messages"], round(r["run_seconds"], 2), r["stages"]) for r in runs if isinstance(r, dict)],
                        file=sys.stderr,
                    )
                for run in runs:
                    if isinstance(run, dict):
                        answered += run["messages"]
                        run_seconds.append(run["seconds"])
                        run_cpu.append(run["cpu_seconds"])
                    else:
                        meta = run.asset_materializations_for_node("kafka_scored_ranges")[0].metadata
                        answered += meta["messages"].value
                        run_seconds.append(meta["seconds"].value)
                time.sleep(max(0.0, args.interval - (time.perf_counter() - tick)))
            for run in driver.drain():
                answered += run["messages"]
                run_seconds.append(run["seconds"])
                run_cpu.append(run["cpu_seconds"])
            elapsed = time.perf_counter() - started
            broker_cpu = _cpu_seconds(broker.process.pid) - broker_cpu
            if not args.backlog:
                producer.join()
            driver.close()
        inputs = read_topic(kafka, kafka.input_topic)
        outputs = read_topic(kafka, kafka.success_topic) + read_topic(kafka, kafka.failure_topic)
    lat = np.array(latencies_s(inputs, outputs))
    first_in = started_wall if args.backlog else min(r.timestamp for r in inputs) / 1000
    last_out = max(r.timestamp for r in outputs) / 1000
    print(
        json.dumps(
            {
                "messages": len(lines),
                "mode": ("full_history" if args.full_history else "new_transactions")
                + ("+backlog" if args.backlog else ""),
                "message_bytes_mean": round(sum(map(len, lines)) / len(lines)),
                "answered": len(outputs),
                "rate_target": None if args.backlog else args.rate,
                "runs": len(driver.runs),
                "partitions": args.partitions,
                "workers": args.workers,
                "sensor_interval_s": args.interval,
                "wallets_per_s": round(len(outputs) / (last_out - first_in)),
                "run_seconds_p50": round(float(np.percentile(run_seconds, 50)), 3),
                "run_seconds_max": round(float(max(run_seconds)), 3),
                **(
                    {"latency_p50_s": None, "latency_p95_s": None, "latency_p99_s": None}
                    if args.backlog
                    else {
                        "latency_p50_s": round(float(np.percentile(lat, 50)), 3),
                        "latency_p95_s": round(float(np.percentile(lat, 95)), 3),
                        "latency_p99_s": round(float(np.percentile(lat, 99)), 3),
                    }
                ),
                # CPU spent per answered message: by the run processes (Dagster included), and by the broker
                "run_cpu_ms_per_wallet": round(1000 * sum(run_cpu) / len(lines), 3) if run_cpu else None,
                "broker_cpu_ms_per_wallet": round(1000 * broker_cpu / len(lines), 3),
                "producer_cpu_ms_per_message": round(1000 * producer_cpu.value / len(lines), 3),
                "elapsed_s": round(elapsed, 1),
                "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            }
        )
    )


if __name__ == "__main__":
    main()
