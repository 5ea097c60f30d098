"""Counterparty exposure: screening throughput and re-screening after a list change (issue 36).

Usage: python bench/bench_exposure.py [--transactions 2000000] [--list 100000] [--stored 100000] [--change 1000]

1. Screening: `--transactions` generated transfers of 20,000 wallets (counterparties from a pool of a
   million addresses) screened against a `--list`-address list (1% of it among the counterparties):
   core.exposure.exposure_table, direct + ownership only, and with indirect exposure at 1 and 2 hops
   through the file's wallets. The list is prepared once (KnownList), as a long-running process does.
2. Re-screening: a SQLite score store in a temporary folder holding `--stored` wallets of 10 transfers
   each (70% with other stored wallets, 30% with 200,000 outside addresses), their counterparty index
   and a `--list` list; then `--change` addresses change (half added, half removed): the import, the
   stored wallets the change reaches (store.wallets_reaching) and their re-scoring through
   ScoringService.score_stored (which computes their exposure in the same transaction), each timed.
Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from defi_scoring.core.exposure import exposure_table
from defi_scoring.core.known_list import KnownList
from defi_scoring.core.normalise import normalise_tables
from defi_scoring.core.scoring_config import default_scoring_config

CATEGORIES = np.array(["phishing", "exploit", "sanctioned", "scam", "mixer", "other-risk", "benign-context"])
WEIGHTS = np.array([0.45, 0.05, 0.01, 0.02, 0.02, 0.1, 0.35])


def addresses(rng: np.random.Generator, n: int) -> np.ndarray:
    raw = rng.bytes(20 * n).hex()
    return np.array(["0x" + raw[i : i + 40] for i in range(0, 40 * n, 40)], dtype=object)


def transfers(rng, wallets: np.ndarray, parties: np.ndarray, per_wallet: int) -> pd.DataFrame:
    """A transactions table → normalised transactions (the layout every door stores)."""
    n = len(wallets) * per_wallet
    wallet = np.repeat(wallets, per_wallet)
    table = pa.table(
        {
            "wallet_address": wallet,
            "protocol_type": np.full(n, "transfers", dtype=object),
            "document_id": np.tile(np.array([str(i) for i in range(per_wallet)], dtype=object), len(wallets)),
            "action": np.where(rng.random(n) < 0.5, "send", "receive").astype(object),
            "timestamp": 1_600_000_000 + rng.integers(0, 10**7, n),
            "counterparty": parties,
            "token_address": np.full(n, "native", dtype=object),
            "token_symbol": np.full(n, "ETH", dtype=object),
            "token_amount": rng.exponential(1.0, n),
            "token_usd": rng.exponential(2000.0, n),
        }
    )
    return normalise_tables([table]).transactions


def known_rows(rng, listed: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "address": listed,
            "category": rng.choice(CATEGORIES, size=len(listed), p=WEIGHTS),
            "source": "bench",
            "label": "",
        }
    )


def screening(args, rng, config) -> dict:
    wallets = addresses(rng, 20_000)
    pool = addresses(rng, 1_000_000)
    per_wallet = args.transactions // len(wallets)
    tx = transfers(rng, wallets, rng.choice(pool, size=len(wallets) * per_wallet), per_wallet)
    hits = rng.choice(pool, size=args.list // 100, replace=False)
    listed = np.concatenate([addresses(rng, args.list - len(hits)), hits])
    started = time.perf_counter()
    known = KnownList.of(known_rows(rng, listed), config.exposure)
    prepare = time.perf_counter() - started
    direct_only = config.model_copy(update={"exposure": config.exposure.model_copy(update={"max_hops": 0})})
    exposure_table(tx.iloc[:1000], known, direct_only)  # warm-up (imports, first calls)
    timings = {}
    for name, cfg in (("direct", direct_only), ("with_indirect", config)):
        best = float("inf")
        for _ in range(3):
            started = time.perf_counter()
            table = exposure_table(tx, known, cfg)
            best = min(best, time.perf_counter() - started)
        timings[name] = (best, int((table["exposure_score"] > 0).sum()))
    return {
        "transactions": len(tx),
        "wallets": len(wallets),
        "list_addresses": len(known.addresses),
        "list_prepare_s": round(prepare, 3),
        "direct_s": round(timings["direct"][0], 3),
        "direct_tx_per_s": round(len(tx) / timings["direct"][0]),
        "with_indirect_s": round(timings["with_indirect"][0], 3),
        "with_indirect_tx_per_s": round(len(tx) / timings["with_indirect"][0]),
        "wallets_exposed": timings["with_indirect"][1],
    }


def rescreening(args, rng, config) -> dict:
    from defi_scoring.score_store import ScoreStore
    from defi_scoring.service.scoring_service import ScoringService

    per_wallet = 10
    stored = addresses(rng, args.stored)
    outside = addresses(rng, 200_000)
    n = args.stored * per_wallet
    inside = rng.random(n) < 0.7
    parties = np.where(inside, rng.choice(stored, n), rng.choice(outside, n))
    owner = np.repeat(stored, per_wallet)
    parties = np.where(parties == owner, rng.choice(outside, n), parties)
    with tempfile.TemporaryDirectory() as folder:
        store = ScoreStore(f"sqlite:///{Path(folder) / 'scores.db'}")
        service = ScoringService(store, config)
        started = time.perf_counter()
        for i in range(0, args.stored, 20_000):  # appended as the doors do, in batches
            chunk = slice(i * per_wallet, (i + 20_000) * per_wallet)
            tx = transfers(rng, stored[i : i + 20_000], parties[chunk], per_wallet)
            wallets = service.append(tx)
            with store.transaction() as conn:
                store.update_counterparty_index(tx, wallets, conn)
        setup = time.perf_counter() - started
        listed = np.concatenate([rng.choice(outside, args.list // 2, replace=False), addresses(rng, args.list // 2)])
        rows = known_rows(rng, listed)
        store.import_known_addresses(rows)
        half = args.change // 2
        added = pd.DataFrame(
            {
                "address": rng.choice(outside[~pd.Index(outside).isin(listed)], half, replace=False),
                "category": "exploit",
                "source": "bench",
                "label": "",
            }
        )
        removed = rows[rows["address"].isin(set(outside))].iloc[:half].assign(removed=True)
        change = pd.concat([added.assign(removed=False), removed], ignore_index=True)
        timings = {}
        started = time.perf_counter()
        outcome = store.import_known_addresses(change)
        timings["import_s"] = time.perf_counter() - started
        started = time.perf_counter()
        reached = store.wallets_reaching(outcome.changed_addresses, config.exposure)
        timings["reach_s"] = time.perf_counter() - started
        started = time.perf_counter()  # the service computes their exposure as it re-scores them
        scores, _ = service.score_stored(reached, source="exposure", run_id="bench")
        timings["rescore_s"] = time.perf_counter() - started
        store.engine.dispose()
    exposure = scores.table if "exposure_score" in scores.table.columns else None
    total = timings["import_s"] + timings["reach_s"] + timings["rescore_s"]
    return {
        "stored_wallets": args.stored,
        "stored_transactions": n,
        "setup_s": round(setup, 1),
        "list_addresses": args.list,
        "changed_addresses": len(outcome.changed_addresses),
        "wallets_reached": len(reached),
        "wallets_exposed": int((exposure["exposure_score"] > 0).sum()) if exposure is not None else 0,
        **{k: round(v, 2) for k, v in timings.items()},
        "total_s": round(total, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--transactions", type=int, default=2_000_000)
    parser.add_argument("--list", type=int, default=100_000)
    parser.add_argument("--stored", type=int, default=100_000)
    parser.add_argument("--change", type=int, default=1_000)
    args = parser.parse_args()
    rng = np.random.default_rng(7)
    config = default_scoring_config()
    result = {"screening": screening(args, rng, config), "rescreening": rescreening(args, rng, config)}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
