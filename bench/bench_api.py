"""REST API latency and throughput under concurrent load on loopback, driven by a native load generator.

Starts `defi-scoring serve` (the installed entry point; --workers, default 1) on a throwaway data home
whose SQLite store holds --wallets scored wallets, then with `wrk` (Debian: `apt-get install wrk`;
without it the bench falls back to an httpx client and says so, and the figures then include the
generator's own CPU):
- GET /api/v1/wallets/{address} for random stored wallets, --seconds at --concurrency connections;
- POST /api/v1/score with 20-transaction wallet messages, same load;
- POST /api/v1/score one request at a time (sequential latency);
- POST /api/v1/score/batch of --batch wallets (wallets per second).
Prints one JSON line (latencies in ms, throughput in requests/s or wallets/s).

  python bench/bench_api.py [--wallets 10000] [--seconds 10] [--concurrency 16] [--workers 1] [--batch 1000]
"""

import argparse
import asyncio
import json
import os
import random
import shutil
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

# wrk script: requests from a file (one "METHOD PATH" or a JSON body per line), latency percentiles and
# non-2xx answers printed as one JSON line when done.
WRK_SCRIPT = """
local lines, i, bad = {}, 0, 0
local method, path = os.getenv("BENCH_METHOD"), os.getenv("BENCH_PATH")
for line in io.lines(os.getenv("BENCH_FILE")) do lines[#lines + 1] = line end
request = function()
  i = i % #lines + 1
  if method == "GET" then return wrk.format("GET", lines[i]) end
  return wrk.format("POST", path, {["Content-Type"] = "application/json"}, lines[i])
end
response = function(status, headers, body) if status >= 300 then bad = bad + 1 end end
done = function(summary, latency, requests)
  io.write(string.format('{"requests": %d, "seconds": %.3f, "p50_ms": %.3f, "p95_ms": %.3f, "p99_ms": %.3f, '
    .. '"errors": %d, "socket_errors": %d}\\n', summary.requests, summary.duration / 1e6,
    latency:percentile(50) / 1000, latency:percentile(95) / 1000, latency:percentile(99) / 1000,
    bad, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
"""


def _wrk(base: str, method: str, path: str, lines: list[bytes], seconds: int, connections: int, folder: Path) -> dict:
    data = folder / f"wrk-{method}-{connections}.txt"
    data.write_bytes(b"\n".join(lines) + b"\n")
    script = folder / "bench.lua"
    script.write_text(WRK_SCRIPT)
    env = {**os.environ, "BENCH_METHOD": method, "BENCH_PATH": path, "BENCH_FILE": str(data)}
    out = subprocess.run(
        ["wrk", "-t", "1", "-c", str(connections), "-d", f"{seconds}s", "-s", str(script), "--timeout", "10s", base],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    result = json.loads(out.strip().splitlines()[-1])
    if result["errors"] or result["socket_errors"]:
        raise RuntimeError(f"{method} {path}: {result['errors']} non-2xx, {result['socket_errors']} socket errors")
    return {**result, "rps": result["requests"] / result["seconds"]}


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


def _httpx_figures(base: str, requests: list, concurrency: int) -> dict:
    latencies, seconds = asyncio.run(_load(base, requests, concurrency))
    return {
        "requests": len(latencies),
        "p50_ms": float(np.percentile(latencies, 50)),
        "p95_ms": float(np.percentile(latencies, 95)),
        "rps": len(latencies) / seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--wallets", type=int, default=10_000)
    parser.add_argument("--seconds", type=int, default=10, help="duration of each wrk load")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--batch", type=int, default=1_000, help="wallets per POST /api/v1/score/batch")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="bench-api-"))
    lines = [orjson.dumps(m) for m in iter_messages(generate_wallets(args.wallets, seed=args.seed))]
    messages = score_raw_messages(lines, as_of=1_735_689_600).messages()
    ScoreStore(f"sqlite:///{home / 'scores.db'}").record_messages(messages, run_id="bench", source="batch")
    addresses = [m["wallet_address"] for m in messages if "zscore" in m]
    native = shutil.which("wrk") is not None
    if not native:
        print(
            "warning: wrk not found (apt-get install wrk); falling back to httpx, whose CPU competes with the "
            "server's: the figures understate the service",
            file=sys.stderr,
        )

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "MLFLOW_", "DEFI_SCORING_"))}
    env["DEFI_SCORING_HOME"] = str(home)
    env["DEFI_SCORING_API_MAX_BATCH"] = str(max(args.batch, 1000))
    entry_point = Path(sys.executable).parent / "defi-scoring"
    server = subprocess.Popen(
        [str(entry_point), "serve", "--port", str(port), "--workers", str(args.workers)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    rng = random.Random(args.seed)
    paths = [f"/api/v1/wallets/{rng.choice(addresses)}".encode() for _ in range(5_000)]
    bodies = _twenty_tx_messages(200, args.seed + 1)
    batch_body = b"[" + b",".join(lines[: args.batch]) + b"]"
    try:
        for _ in range(300):
            try:
                httpx.get(f"{base}/", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.2)
        with httpx.Client(base_url=base, timeout=120) as client:  # warm-up: imports, caches, first batch
            for body in bodies[:20]:
                client.post("/api/v1/score", content=body)
            client.post("/api/v1/score/batch", content=batch_body)
        if native:
            get = _wrk(base, "GET", "", paths, args.seconds, args.concurrency, home)
            post = _wrk(base, "POST", "/api/v1/score", bodies, args.seconds, args.concurrency, home)
            sequential = _wrk(base, "POST", "/api/v1/score", bodies, max(args.seconds // 2, 3), 1, home)
        else:
            get = _httpx_figures(base, [("GET", p.decode(), None) for p in paths], args.concurrency)
            post = _httpx_figures(base, [("POST", "/api/v1/score", b) for b in bodies * 3], args.concurrency)
            sequential = _httpx_figures(base, [("POST", "/api/v1/score", b) for b in bodies[:100]], 1)
        batch_seconds = []
        with httpx.Client(base_url=base, timeout=300) as client:
            for _ in range(5):
                started = time.perf_counter()
                response = client.post("/api/v1/score/batch", content=batch_body)
                batch_seconds.append(time.perf_counter() - started)
                assert response.status_code == 200 and len(response.json()) == args.batch, response.text[:300]
    finally:
        server.terminate()
        server.wait(10)
    print(
        json.dumps(
            {
                "load_generator": "wrk" if native else "httpx",
                "workers": args.workers,
                "stored_wallets": len(addresses),
                "concurrency": args.concurrency,
                "get_requests": get["requests"],
                "get_p50_ms": round(get["p50_ms"], 2),
                "get_p95_ms": round(get["p95_ms"], 2),
                "get_rps": round(get["rps"]),
                "post_requests": post["requests"],
                "post_p50_ms": round(post["p50_ms"], 2),
                "post_p95_ms": round(post["p95_ms"], 2),
                "post_rps": round(post["rps"], 1),
                "post_sequential_p50_ms": round(sequential["p50_ms"], 2),
                "post_sequential_p95_ms": round(sequential["p95_ms"], 2),
                "post_batch_wallets": args.batch,
                "post_batch_wallets_per_s": round(args.batch / float(np.median(batch_seconds))),
            }
        )
    )


if __name__ == "__main__":
    main()
