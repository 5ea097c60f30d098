"""Each wallet's contribution to the cross-wallet signals, as rows of the population index tables.

The core computes contributions per set of wallets (they add up over disjoint sets: see
core.cross_wallet and distributed.engine); the index needs them per wallet, so that a wallet's rows can
be replaced when its history grows. Fingerprints and dump events carry their wallet already; pool
totals do not, so they are computed with every (wallet, pool) pair standing for a pool of its own —
each pair's positions and span are then exactly its rows in the real pool — and mapped back.
Rows are plain column arrays: a request appends one wallet, and a DataFrame per table cost more than
computing the rows.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from defi_scoring.core.cross_wallet import dex_fingerprints, stable_hash
from defi_scoring.core.features import SECONDS_PER_HOUR, wallet_positions
from defi_scoring.core.patterns import dump_events, pool_totals
from defi_scoring.core.scoring_config import PatternsConfig

Columns = dict[str, np.ndarray]  # column name → values, all of one length
_POOL_COLUMNS = ["wallet", "timestamp", "action", "pool_id", "amount_usd", "protocol_type"]


def signed(hashes: np.ndarray) -> np.ndarray:
    """uint64 hashes as int64 (the databases' integers are signed); `unsigned` undoes it."""
    return np.asarray(hashes, dtype=np.uint64).view(np.int64)


def unsigned(values) -> np.ndarray:
    return np.asarray(values, dtype=np.int64).view(np.uint64)


def row_tuples(columns: Columns) -> list[tuple]:
    """The rows as tuples of Python values (what the drivers take)."""
    return list(zip(*(values.tolist() for values in columns.values())))


def contribution_rows(merged: pd.DataFrame, wallets: Sequence[str], patterns: PatternsConfig) -> dict[str, Columns]:
    """Table name → the index rows of `wallets`, from their full histories in `merged` (other wallets'
    rows are ignored)."""
    index = pd.Index(list(wallets), dtype=object)
    position = wallet_positions(merged["wallet"], index)
    tx = merged if (position >= 0).all() else merged[position >= 0]
    position = position[position >= 0]
    names = index.to_numpy(object)
    fp = dex_fingerprints(tx) if len(tx) else None
    rows = {
        "population_fingerprints": {
            "wallet": np.zeros(0, object) if fp is None else fp.index.to_numpy(object),
            "digest": signed(np.zeros(0, np.uint64) if fp is None else fp["digest"].to_numpy()),
            "length": np.zeros(0, np.int64) if fp is None else fp["length"].to_numpy(np.int64),
            "start": np.zeros(0, np.int64) if fp is None else fp["start"].to_numpy(np.int64),
        }
    }
    # A wallet without swaps has no pump rows, one without pool rows no liquidity rows: skipping the
    # computation spares a one-wallet append most of its cost (an ordinary transfer wallet).
    has_swaps = len(tx) and bool((tx["action"] == "swap").to_numpy().any())
    rows.update(_pump(tx, position, index, patterns) if has_swaps else _no_rows(_PUMP_TABLES))
    has_pools = len(tx) and bool(tx["pool_id"].notna().to_numpy().any())
    rows.update(_pools(tx, position, names) if has_pools else _no_rows(_POOL_TABLES))
    return rows


_PUMP_TABLES = {
    "population_swaps": ("wallet", "ts_min", "ts_max"),
    "population_dumps": ("wallet", "token", "dumps"),
    "population_windows": ("wallet", "grid", "token", "bucket"),
}
_POOL_TABLES = {
    "population_liquidity": ("wallet", "seq", "pool", "ts", "cents"),
    "population_pool_spans": ("wallet", "pool", "first_seen", "last_seen"),
}


def _no_rows(tables: dict[str, tuple[str, ...]]) -> dict[str, Columns]:
    return {
        name: {c: np.zeros(0, object if c in ("wallet", "token") else np.int64) for c in cols}
        for name, cols in tables.items()
    }


def _pump(tx: pd.DataFrame, position: np.ndarray, index: pd.Index, patterns: PatternsConfig) -> dict[str, Columns]:
    """Buy-and-dumps per (wallet, token), distinct (wallet, grid, token, bucket) windows on the two
    grids of PumpTotals.of, and each wallet's swap time span."""
    names = index.to_numpy(object)
    swap = (tx["action"] == "swap").to_numpy()
    wallet, ts = position[swap], tx["timestamp"].to_numpy(np.int64)[swap]
    order = np.lexsort((ts, wallet))
    wallet, ts = wallet[order], ts[order]
    first = np.r_[True, wallet[1:] != wallet[:-1]][: len(wallet)]
    last = np.r_[wallet[1:] != wallet[:-1], True][: len(wallet)]
    swaps = {"wallet": names[wallet[first]], "ts_min": ts[first], "ts_max": ts[last]}

    events, _ = dump_events(tx, index, patterns)
    token, tokens = pd.factorize(np.asarray(events.token, dtype=object))
    tokens = np.asarray(tokens, dtype=object).astype(str).astype(object)
    pairs, dumps = np.unique(np.stack([events.wallet, token], axis=1).reshape(-1, 2), axis=0, return_counts=True)
    window = int(patterns.pump_and_dump.window_hours * SECONDS_PER_HOUR)
    keys = np.concatenate(
        [
            np.stack([events.wallet, np.full(len(token), grid), token, (events.ts + offset) // window], axis=1)
            for grid, offset in enumerate((0, window // 2))
        ]
    ).reshape(-1, 4)
    keys = np.unique(keys, axis=0)
    return {
        "population_swaps": swaps,
        "population_dumps": {"wallet": names[pairs[:, 0]], "token": tokens[pairs[:, 1]], "dumps": dumps},
        "population_windows": {
            "wallet": names[keys[:, 0]],
            "grid": keys[:, 1],
            "token": tokens[keys[:, 2]],
            "bucket": keys[:, 3],
        },
    }


def _pools(tx: pd.DataFrame, position: np.ndarray, names: np.ndarray) -> dict[str, Columns]:
    """pool_totals per wallet: (wallet, pool) pairs as pools of their own, mapped back to the real pool."""
    if len(names) == 1:  # one wallet (an API request): its pools are the pairs already
        return _one_wallet_pools(tx, names)
    pool, pool_names = pd.factorize(tx["pool_id"])
    width = np.int64(max(len(pool_names), 1))
    pairs, code = np.unique(np.where(pool >= 0, position * width + pool, -1), return_inverse=True)
    if len(pairs) and pairs[0] < 0:  # rows without a pool stay without one
        pairs, code = pairs[1:], code - 1
    labels = pairs.astype(str).astype(object)
    frame = pd.DataFrame({c: tx[c].array for c in _POOL_COLUMNS if c in tx.columns and c != "pool_id"})
    frame["pool_id"] = pd.Categorical.from_codes(code, categories=pd.Index(labels, dtype=object))
    totals = pool_totals(frame, pd.Index(names, dtype=object))
    pair_of, pool_hashes = pd.Index(stable_hash(labels)), stable_hash(np.asarray(pool_names, dtype=object))

    def owned(table: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """(wallet, real pool as int64 hash) of each row of a pair-keyed table."""
        pair = pairs[pair_of.get_indexer(table["pool"].to_numpy(np.uint64))]
        return pair // width, signed(pool_hashes[pair % width])

    wallet, lq_pool = owned(totals.liquidity)
    order = np.argsort(wallet, kind="stable")
    seq = np.empty(len(wallet), dtype=np.int64)  # each row's number among its wallet's rows
    starts = np.r_[True, wallet[order][1:] != wallet[order][:-1]][: len(wallet)]
    seq[order] = np.arange(len(wallet)) - np.maximum.accumulate(np.where(starts, np.arange(len(wallet)), 0))
    sp_wallet, sp_pool = owned(totals.spans)
    return {
        "population_liquidity": {
            "wallet": names[wallet],
            "seq": seq,
            "pool": lq_pool,
            "ts": totals.liquidity["ts"].to_numpy(np.int64),
            "cents": totals.liquidity["cents"].to_numpy(np.int64),
        },
        "population_pool_spans": {
            "wallet": names[sp_wallet],
            "pool": sp_pool,
            "first_seen": totals.spans["first"].to_numpy(np.int64),
            "last_seen": totals.spans["last"].to_numpy(np.int64),
        },
    }


def _one_wallet_pools(tx: pd.DataFrame, names: np.ndarray) -> dict[str, Columns]:
    """`_pools` of a single wallet: pool_totals as they are (the remapping costs twice the totals)."""
    totals = pool_totals(tx, pd.Index(names, dtype=object))
    lq, sp = totals.liquidity, totals.spans
    n_lq, n_sp = len(lq), len(sp)
    return {
        "population_liquidity": {
            "wallet": np.repeat(names, n_lq),
            "seq": np.arange(n_lq, dtype=np.int64),
            "pool": signed(lq["pool"].to_numpy(np.uint64)),
            "ts": lq["ts"].to_numpy(np.int64),
            "cents": lq["cents"].to_numpy(np.int64),
        },
        "population_pool_spans": {
            "wallet": np.repeat(names, n_sp),
            "pool": signed(sp["pool"].to_numpy(np.uint64)),
            "first_seen": sp["first"].to_numpy(np.int64),
            "last_seen": sp["last"].to_numpy(np.int64),
        },
    }
