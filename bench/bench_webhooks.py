"""Webhook delivery bench (issue 35): prints one JSON line.

1. Dispatcher throughput: N deliveries queued in a fresh SQLite store, `defi-scoring dispatch` (as
   installed) sends them to a fast local receiver (a raw asyncio HTTP/1.1 server in its own process);
   deliveries per second between the first and the last arrival.
2. Score-to-delivery latency with the API under load: `defi-scoring serve` (as installed, its built-in
   dispatcher) on a fresh data home, a subscription watching W generated wallets, C concurrent clients
   POSTing them to /api/v1/score one message each; the receiver records when each wallet's `scored`
   delivery arrived. p50/p95 from the POST's answer (the score is stored) and from the request's start.

    python bench/bench_webhooks.py [--deliveries 20000] [--wallets 600] [--clients 4]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import orjson

RECEIVER = r"""
import asyncio, signal, sys, time
out = open(sys.argv[2], "w", buffering=1 << 16)
state = {"n": 0, "first": None, "last": None}
async def handle(reader, writer):
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            size = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    size = int(line[15:])
            body = await reader.readexactly(size) if size else b""
            now = time.time()
            state["n"] += 1
            state["first"] = state["first"] or now
            state["last"] = now
            if len(sys.argv) > 3:  # record which delivery arrived when
                out.write(f"{now:.6f} " + body.decode() + "\n")
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    writer.close()
async def main():
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    server = await asyncio.start_server(handle, "127.0.0.1", int(sys.argv[1]), backlog=1024)
    print("ready", flush=True)
    async with server:
        await stop.wait()
    out.write(f"# {state['n']} {state['first']} {state['last']}\n")
    out.close()
asyncio.run(main())
"""


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_receiver(log: Path, record: bool) -> tuple[subprocess.Popen, str]:
    port = free_port()
    args = [sys.executable, "-c", RECEIVER, str(port), str(log)] + (["record"] if record else [])
    process = subprocess.Popen(args, stdout=subprocess.PIPE)
    assert process.stdout.readline().strip() == b"ready"
    return process, f"http://127.0.0.1:{port}/hook"


def stop_receiver(process: subprocess.Popen, log: Path) -> tuple[int, float, float, list[str]]:
    process.send_signal(signal.SIGTERM)
    process.wait(30)
    lines = log.read_text().splitlines()
    _, n, first, last = lines[-1].split()
    return int(n), float(first), float(last), lines[:-1]


def cli() -> str:
    return str(Path(sys.executable).with_name("defi-scoring"))


def throughput(deliveries: int, workdir: Path) -> dict:
    from defi_scoring.score_store import ScoreStore

    url = f"sqlite:///{workdir / 'throughput.db'}"
    store = ScoreStore(url)
    log = workdir / "throughput.log"
    receiver, hook = start_receiver(log, record=False)
    wallets = [f"0x{i:040x}" for i in range(deliveries)]
    store.create_subscription(owner=None, url=hook, events=["snapshot"], wallets=wallets)  # N snapshots queued
    env = {**os.environ, "DEFI_SCORING_WEBHOOK_ALLOW": "127.0.0.1"}  # the default concurrency (128 in flight)
    dispatcher = subprocess.Popen([cli(), "dispatch", "--store-url", url], env=env, stderr=subprocess.DEVNULL)
    started = time.time()
    try:
        while store.webhook_status()["pending"] > 0 and time.time() - started < 300:
            time.sleep(0.2)
        while time.time() - started < 300:  # the last outcomes recorded
            with store.engine.connect() as conn:
                left = conn.exec_driver_sql("SELECT count(*) FROM webhook_deliveries WHERE status != 'delivered'")
                if left.scalar() == 0:
                    break
            time.sleep(0.1)
    finally:
        dispatcher.send_signal(signal.SIGTERM)
        dispatcher.wait(30)
    n, first, last, _ = stop_receiver(receiver, log)
    return {
        "deliveries": deliveries,
        "received": n,
        "deliveries_per_s": round(n / max(last - first, 1e-9)),
        "seconds": round(last - first, 2),
    }


def latency(wallet_count: int, clients: int, workdir: Path) -> dict:
    from defi_scoring.core.synthetic import generate_wallets, iter_messages

    lines = [orjson.dumps(m) for m in iter_messages(generate_wallets(wallet_count, seed=35))]
    wallets = [orjson.loads(line)["wallet_address"].lower() for line in lines]
    log = workdir / "latency.log"
    receiver, hook = start_receiver(log, record=True)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "MLFLOW_", "DEFI_SCORING_"))}
    env.update(
        DEFI_SCORING_HOME=str(workdir / "home"),
        DAGSTER_HOME=str(workdir / "home" / "dagster"),
        DEFI_SCORING_ADMIN_KEY="bench",
        DEFI_SCORING_WEBHOOK_ALLOW="127.0.0.1",
    )
    server = subprocess.Popen(
        [cli(), "serve", "--port", str(port), "--no-access-log"], env=env, stdout=subprocess.DEVNULL
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while True:
            try:
                if httpx.get(base + "/", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                if time.time() > deadline:
                    raise
                time.sleep(0.2)
        with httpx.Client(base_url=base, timeout=60) as client:
            made = client.post(
                "/api/v1/subscriptions",
                json={"url": hook, "wallets": wallets, "events": ["scored"]},
                headers={"X-API-Key": "bench"},
            )
            made.raise_for_status()
        sent: dict[str, tuple[float, float]] = {}
        chunks = [lines[i::clients] for i in range(clients)]

        def post_all(part: list[bytes]) -> None:
            with httpx.Client(base_url=base, timeout=60) as client:
                for line in part:
                    start = time.time()
                    answer = client.post("/api/v1/score", content=line)
                    answer.raise_for_status()
                    sent[answer.json()["wallet_address"].lower()] = (start, time.time())

        load_started = time.time()
        threads = [threading.Thread(target=post_all, args=(part,)) for part in chunks]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        load_s = time.time() - load_started
        time.sleep(3)  # the last deliveries
        with httpx.Client(base_url=base, timeout=10) as client:
            health = client.get("/api/v1/health").json()["components"]["webhooks"]
    finally:
        server.terminate()
        server.wait(30)
    _, _, _, arrivals = stop_receiver(receiver, log)
    arrived: dict[str, float] = {}
    for line in arrivals:
        at, body = line.split(" ", 1)
        payload = orjson.loads(body)
        if payload["type"] == "scored":
            arrived.setdefault(payload["wallet_address"], float(at))
    from_answer = np.array([arrived[w] - sent[w][1] for w in sent if w in arrived])
    from_request = np.array([arrived[w] - sent[w][0] for w in sent if w in arrived])
    return {
        "wallets": wallet_count,
        "clients": clients,
        "scores_per_s": round(len(sent) / load_s, 1),
        "delivered": len(from_answer),
        "score_to_delivery_p50_s": round(float(np.percentile(from_answer, 50)), 3),
        "score_to_delivery_p95_s": round(float(np.percentile(from_answer, 95)), 3),
        "request_to_delivery_p95_s": round(float(np.percentile(from_request, 95)), 3),
        "health_webhooks": {k: health.get(k) for k in ("status", "dispatcher", "pending", "failed", "dead")},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--deliveries", type=int, default=20_000)
    parser.add_argument("--wallets", type=int, default=600)
    parser.add_argument("--clients", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench_webhooks_") as folder:
        workdir = Path(folder)
        result = {
            "bench": "webhooks",
            "cpus": os.cpu_count(),
            "load_average_1m": round(os.getloadavg()[0], 2),
            "dispatcher": throughput(args.deliveries, workdir),
            "api_under_load": latency(args.wallets, args.clients, workdir),
        }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
