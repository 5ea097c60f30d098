"""A bounded soak of the deployed path: streaming at a steady rate with the API under light load.

Starts on a fresh data home: the embedded broker, `defi-scoring ui` (stock `dagster dev` with the
shipped dagster.yaml: daemon, code server, webserver, warm run worker) and `defi-scoring serve`.
Produces --rate messages/s for --minutes (each wallet's newest 1–3 transactions; the store holds the
older ones), while a client calls GET /health and POST /api/v1/score once a second. Every minute it
samples the RSS and open file descriptors of every long-running process, the size of the score store
and the Dagster instance, the run count and the answers so far (one JSON line per minute on stderr).
At the end it prints one JSON line with the samples and the accounting: input = success + failure,
and no message answered twice in the store.

  python bench/soak.py [--minutes 10] [--rate 100]
"""

import argparse
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
from _common import newest_transaction_lines, produce_at_rate  # bench/ helpers (scripts run from this folder)
from bench_daemon import _free_port, _wait


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        todo += children.get(current, [])
    return out


def _process(pid: int) -> dict | None:
    try:
        status = (Path(f"/proc/{pid}/status")).read_text()
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()[:80]
        rss_kb = int(next(line for line in status.splitlines() if line.startswith("VmRSS")).split()[1])
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except (OSError, StopIteration):
        return None
    return {"pid": pid, "command": command, "rss_mb": round(rss_kb / 1024, 1), "fds": fds}


def _size_mb(paths: list[Path]) -> float:
    total = 0
    for path in paths:
        files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()] if path.exists() else []
        total += sum(p.stat().st_size for p in files)
    return round(total / 1e6, 1)


def _api_load(base: str, body: bytes, stop: threading.Event, stats: dict) -> None:
    with httpx.Client(base_url=base, timeout=10) as client:
        while not stop.is_set():
            for call in (lambda: client.get("/health"), lambda: client.post("/api/v1/score", content=body)):
                try:
                    ok = call().status_code == 200
                except httpx.HTTPError:
                    ok = False
                stats["ok" if ok else "failed"] += 1
            stop.wait(1.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    from defi_scoring.process_hygiene import terminate_like_interrupt

    terminate_like_interrupt()
    home = Path(tempfile.mkdtemp(prefix="soak-"))
    os.environ["DEFI_SCORING_HOME"] = str(home)
    os.environ["DAGSTER_HOME"] = str(home / "dagster")
    import sqlalchemy as sa
    from dagster import DagsterInstance, RunsFilter

    from defi_scoring.config import Settings, ensure_dagster_home
    from defi_scoring.streaming.answers import AnswerCounter
    from defi_scoring.streaming.broker import EmbeddedBroker
    from defi_scoring.streaming.client import ensure_topics, producer
    from defi_scoring.streaming.settings import KafkaSettings

    count = int(args.rate * args.minutes * 60)
    lines = newest_transaction_lines(count + 1, args.seed, Settings.from_env().store_url)
    api_body, lines = lines[0], lines[1:]
    ensure_dagster_home(Settings.from_env())
    bin_dir = Path(sys.executable).parent
    samples, api_stats = [], {"ok": 0, "failed": 0}
    with EmbeddedBroker(log_path=home / "broker.log") as broker:
        os.environ["KAFKA_BOOTSTRAP_SERVERS"] = broker.bootstrap_servers
        kafka = KafkaSettings.from_env()
        ensure_topics(kafka, [kafka.input_topic])
        ensure_topics(kafka, kafka.output_topics)
        api_port = _free_port()
        logs = {name: open(home / f"{name}.log", "wb") for name in ("ui", "api")}  # noqa: SIM115
        ui = subprocess.Popen(
            [str(bin_dir / "defi-scoring"), "ui", "--port", str(_free_port())],
            stdout=logs["ui"],
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        api = subprocess.Popen(
            [str(bin_dir / "defi-scoring"), "serve", "--port", str(api_port), "--no-access-log"],
            stdout=logs["api"],
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        answered = AnswerCounter(kafka, [kafka.success_topic, kafka.failure_topic])
        stop = threading.Event()
        try:
            warm = producer(kafka)
            warm.send(kafka.input_topic, key=b"warm-up", value=lines[0]).get(30)
            warm.close()
            _wait(lambda: answered() >= 1, 300, "the warm-up answer")
            base = f"http://127.0.0.1:{api_port}"
            _wait(lambda: httpx.get(f"{base}/health", timeout=5).status_code == 200, 120, "the API")
            threading.Thread(target=_api_load, args=(base, api_body, stop, api_stats), daemon=True).start()
            sender = multiprocessing.get_context("spawn").Process(
                target=produce_at_rate, args=(broker.bootstrap_servers, kafka.input_topic, lines, args.rate)
            )
            started = time.monotonic()
            sender.start()
            with DagsterInstance.get() as instance:

                def sample(minute: float) -> None:
                    roots = (ui.pid, api.pid, broker.process.pid)
                    processes = [p for root in roots for pid in _descendants(root) if (p := _process(pid))]
                    taken = {
                        "minute": round(minute, 1),
                        "answered": answered(),
                        "runs": instance.get_runs_count(RunsFilter(job_name="kafka_scoring")),
                        "store_mb": _size_mb([home / "scores.db", home / "scores.db-wal"]),
                        "dagster_home_mb": _size_mb([home / "dagster"]),
                        "rss_mb_total": round(sum(p["rss_mb"] for p in processes), 1),
                        "fds_total": sum(p["fds"] for p in processes),
                        "processes": processes,
                        "api_calls": dict(api_stats),
                    }
                    samples.append(taken)
                    print(json.dumps({k: v for k, v in taken.items() if k != "processes"}), file=sys.stderr)

                minute = 0
                while answered() < len(lines) + 1 and time.monotonic() - started < args.minutes * 60 + 300:
                    if time.monotonic() - started >= minute * 60:
                        sample(minute)
                        minute += 1
                    time.sleep(1)
                sample((time.monotonic() - started) / 60)
            sender.join()
        finally:
            stop.set()
            answered.close()
            for process in (ui, api):
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(timeout=60)
    engine = sa.create_engine(Settings.from_env().store_url)
    with engine.connect() as conn:
        stream_events = conn.execute(sa.text("SELECT count(*) FROM score_events WHERE source = 'stream'")).scalar()
        ranges = conn.execute(sa.text("SELECT count(*) FROM processed_ranges")).scalar()
    first, last = samples[0], samples[-1]
    print(
        json.dumps(
            {
                "minutes": args.minutes,
                "rate": args.rate,
                "messages": len(lines) + 1,
                "answered": answered.count,
                "stream_score_events": stream_events,
                "duplicates_in_store": stream_events - (len(lines) + 1),
                "processed_ranges": ranges,
                "api_calls": api_stats,
                "rss_mb_first_last": [first["rss_mb_total"], last["rss_mb_total"]],
                "fds_first_last": [first["fds_total"], last["fds_total"]],
                "store_mb_first_last": [first["store_mb"], last["store_mb"]],
                "dagster_home_mb_first_last": [first["dagster_home_mb"], last["dagster_home_mb"]],
                "per_minute": [{k: v for k, v in s.items() if k != "processes"} for s in samples],
                "processes_first": first["processes"],
                "processes_last": last["processes"],
                "home": str(home),
            }
        )
    )


if __name__ == "__main__":
    main()
