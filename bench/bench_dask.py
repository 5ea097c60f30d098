"""Scale-out: the same generated wallets scored in one process and on a local Dask cluster.

Prints one JSON line: wallets, transactions, seconds per engine (the cluster's split into
partitioning and scoring), whether both give the same table, and the peak memory of each worker
process and of the single process. Generation and landing are not timed.

Usage: python bench/bench_dask.py [--wallets N] [--workers 2] [--memory-limit 1.5GiB]
                                  [--partition-rows 250000] [--compare all|sample|none]

`--wallets 310000` lands ≥ 8 million transactions (about 26 per wallet), generated in chunks of
40,000 wallets so that generation itself stays small; the cross-wallet groups of each chunk
(sybil farms, pump-and-dump bursts) are spread over every partition by the wallet hash.
"""

import argparse
import json
import multiprocessing
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
from distributed import Client, LocalCluster

from defi_scoring.batch_files import read_transactions
from defi_scoring.core.normalise import normalise_messages
from defi_scoring.core.scoring_config import default_scoring_config
from defi_scoring.core.synthetic import generate_wallets, iter_messages
from defi_scoring.core.wallet_scoring import score_wallet_table
from defi_scoring.distributed.engine import partition_batches
from defi_scoring.distributed.jobs import score_on_cluster

CHUNK_WALLETS = 40_000


def land(n_wallets: int, folder: Path) -> tuple[list[Path], int, int]:
    """Generated wallets as normalised batch files (one per chunk); returns files, transactions, as_of."""
    files, transactions, as_of = [], 0, 0
    for chunk, start in enumerate(range(0, n_wallets, CHUNK_WALLETS)):
        data = generate_wallets(min(CHUNK_WALLETS, n_wallets - start), seed=1000 + chunk)
        batch = normalise_messages(iter_messages(data))
        path = folder / f"chunk-{chunk:03d}" / "transactions.parquet"
        path.parent.mkdir(parents=True)
        batch.transactions.assign(batch_key=path.parent.name).to_parquet(path, index=False)
        files.append(path)
        transactions += len(batch.transactions)
        as_of = max(as_of, int(batch.transactions["timestamp"].max()))
        print(f"landed chunk {chunk}: {transactions:,} transactions", flush=True, file=sys.stderr)
    return files, transactions, as_of


def _score_locally(files: list[Path], as_of: int, out: str, queue) -> None:
    started = time.perf_counter()
    table = score_wallet_table(read_transactions(files), as_of).table
    seconds = time.perf_counter() - started
    table.to_parquet(out)
    queue.put((seconds, _peak_rss()))


def score_locally(files: list[Path], as_of: int, out: Path) -> tuple[float, int]:
    """One process, as the local engine runs it; in a child process so that its peak RSS is its own."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    child = context.Process(target=_score_locally, args=(files, as_of, str(out), queue))
    child.start()
    result = queue.get()
    child.join()
    return result


def _peak_rss() -> int:
    """This process's peak resident memory (VmHWM: unlike ru_maxrss it does not carry over a fork/exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--wallets", type=int, default=20_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--memory-limit", default="1.5GiB")
    parser.add_argument("--partition-rows", type=int, default=250_000)
    parser.add_argument("--compare", choices=["all", "sample", "none"], default="all")
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="bench_dask-"))
    files, transactions, as_of = land(args.wallets, folder / "batches")
    with (
        LocalCluster(
            n_workers=args.workers,
            threads_per_worker=1,
            memory_limit=args.memory_limit,
            processes=True,
            dashboard_address=None,
        ) as cluster,
        Client(cluster) as client,
    ):
        client.run(lambda: __import__("defi_scoring.core.wallet_scoring"))  # imports are not the engine's cost
        started = time.perf_counter()
        batches = partition_batches(client, files, folder / "work", args.partition_rows)
        partitioned = time.perf_counter()
        parts = score_on_cluster(client, batches, as_of, default_scoring_config(), None, folder / "cluster.parquet")
        cluster_seconds = time.perf_counter() - started
        worker_peaks = sorted(client.run(_peak_rss).values())
    result = {
        "wallets": sum(p.wallets for p in parts),
        "transactions": transactions,
        "workers": args.workers,
        "memory_limit": args.memory_limit,
        "partitions": batches.partitions,
        "cluster_seconds": round(cluster_seconds, 2),
        "cluster_partition_seconds": round(partitioned - started, 2),
        "cluster_score_seconds": round(cluster_seconds - (partitioned - started), 2),
        "worker_peak_rss_mb": [round(p / 2**20) for p in worker_peaks],
    }
    if args.compare != "none":
        local_seconds, local_peak = score_locally(files, as_of, folder / "local.parquet")
        local = pd.read_parquet(folder / "local.parquet")
        if args.compare == "sample":
            local = local.sample(n=min(20_000, len(local)), random_state=0)
        remote = pd.read_parquet(folder / "cluster.parquet").drop(columns=["as_of"]).reindex(local.index)
        try:
            pd.testing.assert_frame_equal(remote, local, check_dtype=False, check_categorical=False)
            equal = True
        except AssertionError:
            equal = False
        result |= {
            "local_seconds": round(local_seconds, 2),
            "local_peak_rss_mb": round(local_peak / 2**20),
            "cluster_overhead": round(cluster_seconds / local_seconds, 2),
            "compared_wallets": len(local),
            "equal": equal,
        }
    shutil.rmtree(folder, ignore_errors=True)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
