"""REST API latency and throughput under concurrent load on loopback.

Starts `defi-scoring serve` (uvicorn, one worker) on a throwaway data home whose SQLite store holds
--wallets scored wallets, then runs --concurrency async clients:
- GET /api/v1/wallets/{address} for random stored wallets, --requests requests;
- POST /api/v1/score with a 20-transaction wallet message, --posts requests.
Prints one JSON line (latencies in ms, throughput in requests/s).

  python bench/bench_api.py [--wallets 10000] [--requests 5000] [--posts 500] [--concurrency 16]
"""

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import orjson

from defi_scoring.core.batch_scoring import score_raw_messages
from defi_scoring.core.synthetic import generate_wallets, iter_messages
from defi_scoring.score_store import ScoreStore
from defi_scoring.streaming.broker import free_port


async def _load(base: str, requests: list[tuple[str, str, bytes | None]], concurrency: int) -> tuple[list, float]:
    latencies: list[float] = []
    queue = list(reversed(requests))

    async def worker(client: httpx.AsyncClient) -> None:
        while queue:
            method, path, body = queue.pop()
            started = time.perf_counter()
            response = await client.request(method, path, content=body)
            latencies.append((time.perf_counter() - started) * 1000)
            if response.status_code != 200:
                raise RuntimeError(f"{method} {path} → {response.status_code}: {response.text[:200]}")

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:
        started = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        return latencies, time.perf_counter() - started


def _twenty_tx_messages(n: int, seed: int) -> list[bytes]:
    out = []
    for message in iter_messages(generate_wallets(n * 6, seed=seed)):
        txs = message["data"][0]["transactions"]
        if len(txs) >= 20:
            message["data"][0]["transactions"] = txs[:20]
            out.append(orjson.dumps(message))
        if len(out) == n:
            break
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--wallets", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=5_000)
    parser.add_argument("--posts", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="bench-api-"))
    lines = [orjson.dumps(m) for m in iter_messages(generate_wallets(args.wallets, seed=args.seed))]
    messages = score_raw_messages(lines, as_of=1_735_689_600).messages()
    ScoreStore(f"sqlite:///{home / 'scores.db'}").record_messages(messages, run_id="bench", source="batch")
    addresses = [m["wallet_address"] for m in messages if "zscore" in m]

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "MLFLOW_"))}
    env["DEFI_SCORING_HOME"] = str(home)
    server = subprocess.Popen(
        [sys.executable, "-m", "defi_scoring.cli", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                httpx.get(f"{base}/", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.2)
        rng = random.Random(args.seed)
        gets = [("GET", f"/api/v1/wallets/{rng.choice(addresses)}", None) for _ in range(args.requests)]
        bodies = _twenty_tx_messages(50, args.seed + 1)
        posts = [("POST", "/api/v1/score", bodies[i % len(bodies)]) for i in range(args.posts)]
        asyncio.run(_load(base, gets[:200] + posts[:20], 4))  # warm-up (imports, caches)
        get_lat, get_s = asyncio.run(_load(base, gets, args.concurrency))
        post_lat, post_s = asyncio.run(_load(base, posts, args.concurrency))
        post_single, _ = asyncio.run(_load(base, posts[:100], 1))
    finally:
        server.terminate()
        server.wait(10)
    print(
        json.dumps(
            {
                "stored_wallets": len(addresses),
                "concurrency": args.concurrency,
                "get_requests": len(get_lat),
                "get_p50_ms": round(float(np.percentile(get_lat, 50)), 2),
                "get_p95_ms": round(float(np.percentile(get_lat, 95)), 2),
                "get_rps": round(len(get_lat) / get_s),
                "post_requests": len(post_lat),
                "post_p50_ms": round(float(np.percentile(post_lat, 50)), 2),
                "post_p95_ms": round(float(np.percentile(post_lat, 95)), 2),
                "post_rps": round(len(post_lat) / post_s, 1),
                "post_sequential_p50_ms": round(float(np.percentile(post_single, 50)), 2),
                "post_sequential_p95_ms": round(float(np.percentile(post_single, 95)), 2),
            }
        )
    )


if __name__ == "__main__":
    main()
