"""The two population-wide signals, split so that they can be summed over partitions of wallets.

Every other feature of a wallet reads only that wallet's transactions. Two read the others:

- sybil fingerprints: how many other wallets replay the same (action, pool) sequence starting within
  3 hours (`peer_counts` over every wallet's `sequence_fingerprints`);
- pump-and-dump windows: how many wallets bought and dumped a token in the same window, against that
  token's usual rate (`PumpTotals`, whose counts add up over partitions).

In one process both are computed from the transactions at hand (`signals=None` everywhere). On a
cluster (`defi_scoring.distributed`) each partition contributes its fingerprints and its totals, the
totals are added up and the peer counts computed per fingerprint, and both are joined back: the
result is the single-process one exactly. Fingerprints hash the action and pool *names* (not codes
local to one call), so a sequence has the same digest in every partition.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from defi_scoring.core.features import rows_of, rows_with
from defi_scoring.core.sequence_stats import wallet_time_order

if TYPE_CHECKING:
    from defi_scoring.core.patterns import PoolRows, PoolTotals

FINGERPRINT_WINDOW_S = 6 * 3600
_HASH_KEY = "defi-scoring-fp1"  # 16 characters: a fixed key keeps digests stable across processes


def stable_hash(values: np.ndarray) -> np.ndarray:
    """uint64 hash of each string, the same in every process and partition."""
    return pd.util.hash_array(np.asarray(values, dtype=object), hash_key=_HASH_KEY, categorize=True)


def sequence_fingerprints(
    wallet: np.ndarray, ts: np.ndarray, action: np.ndarray, pool: np.ndarray, index: pd.Index
) -> pd.DataFrame:
    """digest, length and start of each wallet's (action, pool) sequence; rows sorted by (wallet, ts).

    wallet: positions in `index`; action, pool: the names. A polynomial hash (uint64 wraps, which is
    what we want) per wallet; only wallets with rows get a fingerprint."""
    if len(wallet) == 0:
        return pd.DataFrame({"digest": np.zeros(0, np.uint64), "length": 0, "start": 0}, index=index[:0])
    starts = np.r_[0, np.flatnonzero(wallet[1:] != wallet[:-1]) + 1]
    lengths = np.diff(np.r_[starts, len(wallet)])
    position = np.arange(len(wallet)) - np.repeat(starts, lengths)
    with np.errstate(over="ignore"):
        token = stable_hash(action) * np.uint64(1_000_003) + stable_hash(pool)
        power = np.ones(max(int(position.max()) + 1, 1), dtype=np.uint64)
        for i in range(1, len(power)):
            power[i] = power[i - 1] * np.uint64(0x100000001B3)
        weighted = (token + np.uint64(1)) * power[position]
    digest = np.add.reduceat(weighted, starts)
    present = wallet[starts]
    return pd.DataFrame(
        {"digest": digest, "length": lengths.astype(np.int64), "start": ts[starts].astype(np.int64)},
        index=index[present],
    )


def peer_counts(fingerprints: pd.DataFrame) -> pd.Series:
    """Per wallet: other wallets with the same sequence (digest and length) whose first transaction is
    within half a window either side. A sliding window, not calendar buckets: no boundary splits a
    farm, and a time shift moves nothing. Linear in wallets: one sort, two binary searches."""
    if fingerprints.empty:
        return pd.Series(np.zeros(0), index=fingerprints.index, name="peer_wallets_same_fingerprint")
    group = fingerprints.groupby(["digest", "length"], sort=False).ngroup().to_numpy(np.int64)
    keys = (group << 33) | fingerprints["start"].to_numpy(np.int64)
    ordered = np.sort(keys)
    half = FINGERPRINT_WINDOW_S // 2
    sizes = np.searchsorted(ordered, keys + half, side="right") - np.searchsorted(ordered, keys - half, side="left")
    return pd.Series((sizes - 1).astype(float), index=fingerprints.index, name="peer_wallets_same_fingerprint")


@dataclass
class DumpEvents:
    """Buys of a token that the same wallet sold again within `dump_hours` (one row per buy)."""

    wallet: np.ndarray  # positions in the wallet index
    token: np.ndarray  # names
    ts: np.ndarray
    seconds: np.ndarray  # buy → next sell


_SMALL_TOTALS = 4_096  # up to this many keys, expected_and_in_window looks them up in dictionaries


@dataclass
class PumpTotals:
    """What the pump-and-dump detector compares a wallet with: swap time span, buy-and-dumps per token
    and distinct wallets per (grid, token, window). Sums (and min/max) over disjoint wallet sets."""

    swap_ts_min: int | None
    swap_ts_max: int | None
    dumps_per_token: pd.Series  # token → buy-and-dumps
    wallets_per_window: pd.Series  # (grid, token, bucket) → distinct wallets

    @staticmethod
    def of(events: DumpEvents, swap_ts: np.ndarray, window: int) -> PumpTotals:
        """The totals of one set of wallets (their dump events and all their swap timestamps)."""
        dumps = pd.Series(events.token).value_counts(sort=False)
        per_window = []
        for grid, offset in enumerate((0, window // 2)):
            key = pd.DataFrame(
                {"grid": grid, "token": events.token, "bucket": (events.ts + offset) // window, "wallet": events.wallet}
            )
            per_window.append(key.drop_duplicates().groupby(["grid", "token", "bucket"], sort=False).size())
        return PumpTotals(
            int(swap_ts.min()) if len(swap_ts) else None,
            int(swap_ts.max()) if len(swap_ts) else None,
            dumps.rename_axis("token"),
            pd.concat(per_window) if per_window else pd.Series(dtype=np.int64),
        )

    def __add__(self, other: PumpTotals) -> PumpTotals:
        """Totals of two disjoint sets of wallets (each wallet lives in exactly one partition)."""

        def bound(fn, a, b):
            return b if a is None else a if b is None else fn(a, b)

        def total(a: pd.Series, b: pd.Series) -> pd.Series:
            if a.empty or b.empty:  # an empty side has no index levels to align on
                return b if a.empty else a
            return a.add(b, fill_value=0).astype(np.int64)

        return PumpTotals(
            bound(min, self.swap_ts_min, other.swap_ts_min),
            bound(max, self.swap_ts_max, other.swap_ts_max),
            total(self.dumps_per_token, other.dumps_per_token),
            total(self.wallets_per_window, other.wallets_per_window),
        )

    @staticmethod
    def empty() -> PumpTotals:
        return PumpTotals(None, None, pd.Series(dtype=np.int64), pd.Series(dtype=np.int64))

    def expected_and_in_window(self, events: DumpEvents, window: int) -> tuple[np.ndarray, np.ndarray]:
        """Per event: the token's usual buy-and-dumps per window, and the most wallets seen buying
        and dumping it in the event's window on either grid."""
        span = max(int(self.swap_ts_max - self.swap_ts_min), window)
        if len(self.wallets_per_window) <= _SMALL_TOTALS and len(self.dumps_per_token) <= _SMALL_TOTALS:
            return self._looked_up(events, window, span)
        expected = self.dumps_per_token.reindex(events.token).to_numpy(np.int64) * window / span
        in_window = np.zeros(len(events.ts))
        for grid, offset in enumerate((0, window // 2)):
            keys = pd.MultiIndex.from_arrays(
                [np.full(len(events.ts), grid), events.token, (events.ts + offset) // window]
            )
            in_window = np.maximum(in_window, self.wallets_per_window.reindex(keys).to_numpy(float))
        return expected, in_window

    def _looked_up(self, events: DumpEvents, window: int, span: int) -> tuple[np.ndarray, np.ndarray]:
        """expected_and_in_window through dictionaries: the totals a store view reads for a few wallets
        are small, and building MultiIndexes to align them cost more than the whole detector."""
        per_token = dict(zip(self.dumps_per_token.index.tolist(), self.dumps_per_token.tolist()))
        per_window = dict(zip(self.wallets_per_window.index.tolist(), self.wallets_per_window.tolist()))
        tokens = events.token.tolist() if isinstance(events.token, np.ndarray) else list(events.token)
        expected = np.array([per_token.get(t, 0) for t in tokens], dtype=np.int64) * window / span
        in_window = np.zeros(len(tokens))
        for grid, offset in enumerate((0, window // 2)):
            buckets = ((events.ts + offset) // window).tolist()
            counts = [per_window.get((grid, t, b), np.nan) for t, b in zip(tokens, buckets)]
            in_window = np.maximum(in_window, np.array(counts, dtype=float))
        return expected, in_window


@dataclass
class CrossWalletSignals:
    """Population-wide inputs for one partition's scoring: None means "from these transactions alone"."""

    peers: pd.Series | None = None  # wallet → peer_wallets_same_fingerprint (every wallet of the population)
    pump: PumpTotals | None = None
    pools: PoolTotals | PoolRows | None = None  # rug-pull pool totals, or a function of pools giving them


def dex_fingerprints(transactions: pd.DataFrame) -> pd.DataFrame:
    """`sequence_fingerprints` of every wallet with DEX rows, indexed by wallet address; rows are
    ordered by (wallet, time) with ties in input order, as `model_features` orders them."""
    tx = transactions
    if "protocol_type" in tx.columns:  # a column at a time (a frame's row filter copies the whole table)
        is_dex = rows_with(tx, "protocol_type", "dexes")
        tx = tx if is_dex.all() else rows_of(tx, is_dex, ["wallet", "timestamp", "action", "pool_id"])
    codes, wallets = pd.factorize(tx["wallet"], sort=False)
    ts = tx["timestamp"].to_numpy(np.int64)
    order = wallet_time_order(codes.astype(np.int64), ts)
    return sequence_fingerprints(
        codes[order].astype(np.int64),
        ts[order],
        tx["action"].astype(object).to_numpy()[order],
        tx["pool_id"].astype(object).to_numpy()[order],
        pd.Index(np.asarray(wallets, dtype=object)),
    )


def local_expected_and_in_window(events: DumpEvents, swap_ts: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """`PumpTotals.of(events, swap_ts, window).expected_and_in_window(events, window)`, the same
    arrays, for a population that is all in one place: integer keys and sorts instead of pandas
    group-bys and a MultiIndex lookup (~5 ms of fixed cost, a sixth of scoring a few wallets)."""
    token, _ = pd.factorize(events.token)
    span = max(int(int(swap_ts.max()) - int(swap_ts.min())), window)
    expected = np.bincount(token)[token].astype(np.int64) * window / span
    in_window = np.zeros(len(events.ts))
    wallets = int(events.wallet.max()) + 1
    for offset in (0, window // 2):
        bucket = (events.ts + offset) // window
        bucket = bucket - bucket.min()
        buckets = int(bucket.max()) + 1
        if (int(token.max()) + 1) * buckets * wallets >= 2**62:  # keys would not fit: the general path
            return PumpTotals.of(events, swap_ts, window).expected_and_in_window(events, window)
        key = token.astype(np.int64) * buckets + bucket
        distinct = np.unique(key * wallets + events.wallet)  # one row per (token, bucket, wallet)
        keys, wallets_per_key = np.unique(distinct // wallets, return_counts=True)
        in_window = np.maximum(in_window, wallets_per_key[np.searchsorted(keys, key)].astype(float))
    return expected, in_window
