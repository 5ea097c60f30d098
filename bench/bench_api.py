"""REST API latency and throughput under concurrent load on loopback, driven by a native load generator.

Starts `defi-scoring serve` (the installed entry point; --workers, default 1) on a throwaway data home
whose SQLite store holds --wallets scored wallets, then with `wrk` (Debian: `apt-get install wrk`;
without it the bench falls back to an httpx client and says so, and the figures then include the
generator's own CPU):
- GET /api/v1/wallets/{address} for random stored wallets, --seconds at --concurrency connections;
- POST /api/v1/score with 20-transaction wallet messages, same load;
- POST /api/v1/score one request at a time (sequential latency);
- POST /api/v1/score/batch of --batch wallets (wallets per second).
With --arrow, POST /api/v1/score/batch from --batch-clients concurrent client processes (httpx, pre-built
bodies of --batch wallets, for --batch-seconds each):
- Arrow transactions tables (core/transaction_table.py) of the same wallet mix, answered in Arrow;
- the same wallets as JSON lines (application/x-ndjson), answered in JSON;
- heavy wallets: transfers-only wallets with at least --heavy-transfers transfers, cut to that many.
Each with the CPU per wallet of the server (its process tree) and of the clients, and the cores that
anything else on the machine kept busy meanwhile (`*_other_cores`: the figures are only comparable
when it is near 0).
Prints one JSON line (latencies in ms, throughput in requests/s or wallets/s).

  python bench/bench_api.py [--wallets 10000] [--seconds 10] [--concurrency 16] [--workers 1] [--batch 1000]
                            [--arrow [--batch-only] [--batch-clients 4] [--batch-seconds 15] [--heavy-transfers 75]]
"""

import argparse
import asyncio
import json
import multiprocessing
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
import pyarrow as pa
import pyarrow.ipc

from defi_scoring.core.batch_scoring import score_raw_messages
from defi_scoring.core.synthetic import generate_wallets, iter_messages
from defi_scoring.core.transaction_table import ARROW_STREAM_MEDIA_TYPE, table_from_messages
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


def _arrow_stream(messages: list[dict]) -> tuple[bytes, int]:
    """An Arrow IPC stream of the messages' transactions table, and its row (transaction) count."""
    table = table_from_messages(messages)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes(), table.num_rows


def _heavy_messages(n: int, transfers: int, seed: int) -> list[dict]:
    """n transfers-only wallets with `transfers` transfers each (wallets with fewer are skipped)."""
    out: list[dict] = []
    drawn = 4 * n
    while len(out) < n:
        for message in iter_messages(generate_wallets(drawn, seed=seed, protocol_types={"transfers"})):
            txs = message["data"][0]["transactions"]
            if len(txs) >= transfers:
                message["data"][0]["transactions"] = txs[:transfers]
                out.append(message)
        out, drawn, seed = out[:n], drawn * 2, seed + 1
    return out


def _tree_cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) used so far by a process and its descendants (Linux /proc): the
    server's share of the machine during a load, whatever its worker count."""
    ticks = os.sysconf("SC_CLK_TCK")
    total, pending = 0.0, [pid]
    while pending:
        current = pending.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / ticks
            for task in Path(f"/proc/{current}/task").iterdir():
                pending += [int(child) for child in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


def _machine_busy_seconds() -> float:
    """CPU seconds the whole machine has been busy (all cores, /proc/stat): what else ran during a load."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _batch_client(base: str, files: list[tuple], headers: dict, start_at: float, seconds: float, results) -> None:
    """One client process: posts its pre-built bodies (file, wallets, transactions) in turn from `start_at`
    until `seconds` have passed; reports (wallets, transactions, request latencies, end time). Answers are
    checked by their result count."""
    bodies = [(Path(f).read_bytes(), n_wallets, n_transactions) for f, n_wallets, n_transactions in files]
    arrow = headers.get("Accept") == ARROW_STREAM_MEDIA_TYPE
    wallets = transactions = 0
    latencies = []
    with httpx.Client(base_url=base, timeout=600) as client:
        time.sleep(max(0.0, start_at - time.time()))
        cpu, i = time.process_time(), 0
        while time.time() - start_at < seconds:
            body, n_wallets, n_transactions = bodies[i % len(bodies)]
            started = time.perf_counter()
            response = client.post("/api/v1/score/batch", content=body, headers=headers)
            latencies.append((time.perf_counter() - started) * 1000)
            if response.status_code != 200:
                raise RuntimeError(f"score/batch → {response.status_code}: {response.text[:300]}")
            answered = (
                pa.ipc.open_stream(response.content).read_all().num_rows
                if arrow
                else response.content.count(b'{"wallet_address":')
            )
            if answered != n_wallets:
                raise RuntimeError(f"score/batch answered {answered} results for {n_wallets} wallets")
            wallets, transactions, i = wallets + n_wallets, transactions + n_transactions, i + 1
    results.put((wallets, transactions, latencies, time.time(), time.process_time() - cpu))


def _concurrent_batches(
    base: str,
    bodies: list[tuple[bytes, int, int]],
    headers: dict,
    clients: int,
    seconds: float,
    folder: Path,
    server_pid: int,
) -> dict:
    """Throughput of `clients` processes posting the bodies (body, wallets, transactions) at once, and
    the CPU per wallet the server and the clients used meanwhile."""
    files = []
    for i, (body, n_wallets, n_transactions) in enumerate(bodies):
        path = folder / f"batch-{i}.body"
        path.write_bytes(body)
        files.append((str(path), n_wallets, n_transactions))
    context = multiprocessing.get_context("spawn")  # clients start clean: no copy of this process's data
    results = context.Queue()
    start_at = time.time() + 8.0  # after every client has imported and read its bodies
    processes = [
        context.Process(
            target=_batch_client,
            args=(base, files[k:] + files[:k], headers, start_at, seconds, results),
        )
        for k in range(clients)
    ]
    for process in processes:
        process.start()
    time.sleep(max(0.0, start_at - time.time()))
    server_cpu, busy = _tree_cpu_seconds(server_pid), _machine_busy_seconds()
    reports = [results.get(timeout=seconds + 900) for _ in processes]
    server_cpu, busy = _tree_cpu_seconds(server_pid) - server_cpu, _machine_busy_seconds() - busy
    for process in processes:
        process.join(60)
        if process.exitcode:
            raise RuntimeError(f"a batch client failed (exit code {process.exitcode})")
    elapsed = max(r[3] for r in reports) - start_at
    latencies = [ms for r in reports for ms in r[2]]
    wallets = sum(r[0] for r in reports)
    client_cpu = sum(r[4] for r in reports)
    return {
        "requests": len(latencies),
        "wallets_per_s": wallets / elapsed,
        "transactions_per_s": sum(r[1] for r in reports) / elapsed,
        "p50_ms": float(np.percentile(latencies, 50)),
        "server_cpu_us_per_wallet": server_cpu * 1e6 / wallets,
        "client_cpu_us_per_wallet": client_cpu * 1e6 / wallets,
        # cores busy with anything but this server and these clients (another job on the machine)
        "other_cores": max(0.0, busy - server_cpu - client_cpu) / elapsed,
    }


def _arrow_figures(base: str, args: argparse.Namespace, lines: list[bytes], folder: Path, server_pid: int) -> dict:
    """Arrow tables, JSON lines of the same wallets, and heavy transfer wallets, from concurrent clients."""
    n, clients = args.batch, args.batch_clients
    groups = [lines[k * n : (k + 1) * n] for k in range(clients) if len(lines) >= (k + 1) * n] or [lines[:n]]
    arrow, ndjson = [], []
    for group in groups:
        body, n_transactions = _arrow_stream([orjson.loads(line) for line in group])
        arrow.append((body, len(group), n_transactions))
        ndjson.append((b"\n".join(group), len(group), n_transactions))
    heavy_messages = _heavy_messages(n * len(groups), args.heavy_transfers, args.seed + 7)
    heavy = []
    for k in range(len(groups)):
        body, n_transactions = _arrow_stream(heavy_messages[k * n : (k + 1) * n])
        heavy.append((body, n, n_transactions))
    to_arrow = {"Content-Type": ARROW_STREAM_MEDIA_TYPE, "Accept": ARROW_STREAM_MEDIA_TYPE}
    to_json = {"Content-Type": "application/x-ndjson"}
    seconds = args.batch_seconds
    with httpx.Client(base_url=base, timeout=300) as client:  # warm-up of the Arrow path
        client.post("/api/v1/score/batch", content=arrow[0][0], headers=to_arrow)
    loads = {
        "arrow_batch": _concurrent_batches(base, arrow, to_arrow, clients, seconds, folder, server_pid),
        "json_batch": _concurrent_batches(base, ndjson, to_json, clients, seconds, folder, server_pid),
        "arrow_heavy": _concurrent_batches(base, heavy, to_arrow, clients, seconds, folder, server_pid),
    }
    mix, as_json, heavy_figures = loads.values()
    cpu = {
        f"{name}_{side}_cpu_us_per_wallet": round(figures[f"{side}_cpu_us_per_wallet"], 1)
        for name, figures in loads.items()
        for side in ("server", "client")
    }
    cpu.update({f"{name}_other_cores": round(figures["other_cores"], 2) for name, figures in loads.items()})
    return {
        "batch_clients": clients,
        "batch_bodies": len(groups),
        "arrow_batch_body_mb": round(np.mean([len(b) for b, _, _ in arrow]) / 1e6, 2),
        "arrow_batch_requests": mix["requests"],
        "arrow_batch_p50_ms": round(mix["p50_ms"], 1),
        "arrow_batch_wallets_per_s": round(mix["wallets_per_s"]),
        "arrow_batch_transfers_per_s": round(mix["transactions_per_s"]),
        "json_batch_requests": as_json["requests"],
        "json_batch_p50_ms": round(as_json["p50_ms"], 1),
        "json_batch_wallets_per_s": round(as_json["wallets_per_s"]),
        "json_batch_transfers_per_s": round(as_json["transactions_per_s"]),
        "arrow_heavy_transfers_per_wallet": args.heavy_transfers,
        "arrow_heavy_requests": heavy_figures["requests"],
        "arrow_heavy_p50_ms": round(heavy_figures["p50_ms"], 1),
        "arrow_heavy_wallets_per_s": round(heavy_figures["wallets_per_s"]),
        "arrow_heavy_transfers_per_s": round(heavy_figures["transactions_per_s"]),
        **cpu,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--wallets", type=int, default=10_000)
    parser.add_argument("--seconds", type=int, default=10, help="duration of each wrk load")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--batch", type=int, default=1_000, help="wallets per POST /api/v1/score/batch")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--arrow", action="store_true", help="also score/batch from concurrent clients: Arrow vs JSON")
    parser.add_argument("--batch-only", action="store_true", help="with --arrow: skip the GET and POST /score loads")
    parser.add_argument("--batch-clients", type=int, default=4, help="concurrent client processes of --arrow")
    parser.add_argument("--batch-seconds", type=float, default=15.0, help="duration of each --arrow load")
    parser.add_argument("--heavy-transfers", type=int, default=75, help="transfers per wallet of the heavy load")
    args = parser.parse_args()
    args.batch_only = args.batch_only and args.arrow

    home = Path(tempfile.mkdtemp(prefix="bench-api-"))
    lines = [orjson.dumps(m) for m in iter_messages(generate_wallets(args.wallets, seed=args.seed))]
    messages = score_raw_messages(lines, as_of=1_735_689_600).messages()
    ScoreStore(f"sqlite:///{home / 'scores.db'}").record_messages(messages, run_id="bench", source="batch")
    addresses = [m["wallet_address"] for m in messages if "zscore" in m]
    native = shutil.which("wrk") is not None
    if not native and not args.batch_only:
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
        figures: dict = {}
        if args.batch_only:
            pass
        elif native:
            get = _wrk(base, "GET", "", paths, args.seconds, args.concurrency, home)
            post = _wrk(base, "POST", "/api/v1/score", bodies, args.seconds, args.concurrency, home)
            sequential = _wrk(base, "POST", "/api/v1/score", bodies, max(args.seconds // 2, 3), 1, home)
        else:
            get = _httpx_figures(base, [("GET", p.decode(), None) for p in paths], args.concurrency)
            post = _httpx_figures(base, [("POST", "/api/v1/score", b) for b in bodies * 3], args.concurrency)
            sequential = _httpx_figures(base, [("POST", "/api/v1/score", b) for b in bodies[:100]], 1)
        if not args.batch_only:
            figures = {
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
            }
        else:
            figures = {"workers": args.workers, "stored_wallets": len(addresses)}
        batch_seconds = []
        with httpx.Client(base_url=base, timeout=300) as client:
            for _ in range(5):
                started = time.perf_counter()
                response = client.post("/api/v1/score/batch", content=batch_body)
                batch_seconds.append(time.perf_counter() - started)
                assert response.status_code == 200 and len(response.json()) == args.batch, response.text[:300]
        figures["post_batch_wallets"] = args.batch
        figures["post_batch_wallets_per_s"] = round(args.batch / float(np.median(batch_seconds)))
        if args.arrow:
            figures.update(_arrow_figures(base, args, lines, home, server.pid))
    finally:
        server.terminate()
        server.wait(10)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
