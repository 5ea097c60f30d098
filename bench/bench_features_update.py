"""wallet_features after a small second batch: incremental update vs full recompute. One JSON line.

Usage: python bench/bench_features_update.py [--wallets N] [--seed S] [--touch-share 0.01]

A fresh data home gets a first batch of N generated wallets (landed and featured through the Dagster
jobs, not timed), then a second batch that adds one swap to --touch-share of the wallets and as many
new wallets. Timed: materialising `wallet_features` (real Dagster execution) incrementally — only the
touched wallets recomputed — and then with `incremental: false` over the same batches; the two tables
are compared.
"""

import json
import os
import tempfile
import time
from pathlib import Path

import dagster as dg
import numpy as np
import orjson
import pandas as pd
from _common import bench_parser, lines_for  # bench/ helper (scripts run from this folder)


def main() -> None:
    parser = bench_parser(__doc__)
    parser.add_argument("--touch-share", type=float, default=0.01)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="bench-features-"))
    os.environ["DEFI_SCORING_HOME"] = str(home)
    from defi_scoring.assets.partitions import transaction_batch_partitions
    from defi_scoring.config import Settings
    from defi_scoring.core.synthetic import DEFAULT_END_TIME
    from defi_scoring.definitions import build_definitions

    _, lines = lines_for(args)
    rng = np.random.default_rng(args.seed)
    wallets = sorted({orjson.loads(line)["wallet_address"].lower() for line in lines})
    touched = rng.choice(wallets, size=max(1, int(len(wallets) * args.touch_share)), replace=False)
    second = [
        orjson.dumps(
            {
                "wallet_address": wallet,
                "data": [
                    {
                        "protocolType": "dexes",
                        "transactions": [
                            {
                                "document_id": f"bench-second-{i}",
                                "action": "swap",
                                "timestamp": DEFAULT_END_TIME - 3600,
                                "poolId": "0xbench",
                                "tokenIn": {"amountUSD": 100.0, "symbol": "USDC"},
                                "tokenOut": {"amountUSD": 99.5, "symbol": "WETH"},
                            }
                        ],
                    }
                ],
            }
        )
        for i, wallet in enumerate(touched)
    ]
    args.wallets, args.seed = len(touched), args.seed + 1
    second += lines_for(args)[1]  # as many new wallets
    landing = home / "landing"
    landing.mkdir(parents=True)
    (landing / "b1.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    (landing / "b2.jsonl").write_bytes(b"\n".join(second) + b"\n")

    defs = build_definitions(Settings(home=home))
    everything = defs.resolve_implicit_global_asset_job_def()

    def features(as_of: int, incremental: bool) -> tuple[float, dict]:
        started = time.perf_counter()
        result = everything.execute_in_process(
            instance=instance,
            asset_selection=[dg.AssetKey("wallet_features")],
            run_config={"ops": {"wallet_features": {"config": {"as_of": as_of, "incremental": incremental}}}},
        )
        seconds = time.perf_counter() - started
        return seconds, result.asset_materializations_for_node("wallet_features")[0].metadata

    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(transaction_batch_partitions.name, ["b1", "b2"])
        ingest = defs.resolve_job_def("ingest_batch")
        assert ingest.execute_in_process(instance=instance, partition_key="b1").success
        first_seconds, _ = features(DEFAULT_END_TIME, True)
        assert ingest.execute_in_process(instance=instance, partition_key="b2").success
        incremental_seconds, meta = features(DEFAULT_END_TIME + 86_400, True)
        incremental = pd.read_parquet(home / "tables" / "wallet_features.parquet")
        full_seconds, full_meta = features(DEFAULT_END_TIME + 86_400, False)
        full = pd.read_parquet(home / "tables" / "wallet_features.parquet")
    exact = [c for c in full.columns if c != "avg_holding_time_days"]
    print(
        json.dumps(
            {
                "wallets": int(full_meta["wallets"].value),
                "transactions": int(full_meta["transactions"].value),
                "first_batch_full_seconds": round(first_seconds, 2),
                "second_batch_touched_wallets": int(meta["recomputed_wallets"].value),
                "second_batch_transactions_read": int(meta["transactions"].value),
                "incremental_seconds": round(incremental_seconds, 2),
                "full_recompute_seconds": round(full_seconds, 2),
                "update": meta["update"].value,
                "tables_equal": bool(
                    incremental.index.equals(full.index)
                    and incremental[exact].equals(full[exact])
                    and np.allclose(incremental["avg_holding_time_days"], full["avg_holding_time_days"], rtol=1e-12)
                ),
            }
        )
    )


if __name__ == "__main__":
    main()
