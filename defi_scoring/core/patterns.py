"""Manipulation pattern detectors, vectorised over all wallets at once.

Each detector gives every wallet a confidence 0–1 (how sure we are the pattern is there), a
detected flag, a risk score (the configured risk × (0.5 + 0.5 × confidence)) and evidence columns. Detections with
confidence above `patterns.min_confidence` count; the wallet's pattern risk is the confidence-weighted
mean of the counted risk scores (CONTRACTS.md §5). Cross-wallet detectors (sybil clusters,
pump-and-dump, the pool side of rug pulls) use group counts and running sums over sorted keys, never
all-pairs comparison.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from defi_scoring.core.cross_wallet import DumpEvents, PumpTotals, local_expected_and_in_window, stable_hash
from defi_scoring.core.features import (
    SECONDS_PER_HOUR,
    _codes,
    rows_of,
    rows_with,
    seconds_to_next_withdraw,
    stacked,
    value_kinds,
    wallet_positions,
)
from defi_scoring.core.frame_columns import column, floats, frame_of
from defi_scoring.core.scoring_config import PatternsConfig

PATTERNS = ["wash_trading", "mev_bot", "sybil_cluster", "rug_pull", "pump_and_dump", "fan_in_collector"]

EXPLANATIONS = {
    "wash_trading": "trades back and forth in one pair with repeated sizes at a regular interval "
    "({round_trip_share:.0%} round trips, {repeated_size_share:.0%} repeated sizes, "
    "gap variation {gap_cv:.2f}, {num_swaps:.0f} swaps)",
    "mev_bot": "{same_block_share:.0%} of its swaps follow the previous one within a block, "
    "{round_trip_share:.0%} are immediate reversals, {tx_per_active_day:.0f} transactions per active day",
    "sybil_cluster": "replays the same action/pool sequence as {peer_wallets_same_fingerprint:.0f} other wallets "
    "starting within 3 hours of it",
    "rug_pull": "deposited ${total_deposit_usd:,.0f} and withdrew {withdraw_ratio:.0%} of it within "
    "{exit_hours:.1f} hours, from a pool where it held {rug_pool_share:.0%} of the "
    "${rug_pool_liquidity_usd:,.0f} of liquidity while {rug_pool_other_wallets:.0f} other wallets traded "
    "in it or provided liquidity",
    "pump_and_dump": "bought {pump_token} and sold it {pump_dump_hours:.1f} hours later, as did "
    "{pump_buyers:.0f} wallets in the same window (usual: {pump_expected_buyers:.1f})",
    "fan_in_collector": "received from {fan_in:.0f} addresses and sent to {fan_out:.0f} "
    "(typical receipt ${received_median_usd:,.0f})",
}
EVIDENCE = {
    "wash_trading": ["round_trip_share", "repeated_size_share", "gap_cv", "num_swaps"],
    "mev_bot": ["same_block_share", "round_trip_share", "tx_per_active_day", "num_swaps"],
    "sybil_cluster": ["peer_wallets_same_fingerprint", "transaction_count"],
    "rug_pull": [
        "total_deposit_usd",
        "withdraw_ratio",
        "exit_hours",
        "rug_pool_id",
        "rug_pool_share",
        "rug_pool_liquidity_usd",
        "rug_pool_other_wallets",
    ],
    "pump_and_dump": ["pump_token", "pump_buyers", "pump_expected_buyers", "pump_dump_hours"],
    "fan_in_collector": ["fan_in", "fan_out", "received_median_usd", "repeated_amount_share"],
}


def _clip01(x: np.ndarray) -> np.ndarray:
    return np.clip(x, 0.0, 1.0)


def _col(frame: pd.DataFrame, name: str) -> np.ndarray:
    return floats(frame, name)


def wash_trading(w: pd.DataFrame, cfg: PatternsConfig) -> np.ndarray:
    regular = 1 - _clip01(_col(w, "gap_cv") / 0.5)
    score = 0.4 * _col(w, "round_trip_share") + 0.35 * _col(w, "repeated_size_share") + 0.25 * regular
    return np.where(_col(w, "num_swaps") >= cfg.wash_trading.min_swaps, score, 0.0)


def mev_bot(w: pd.DataFrame, cfg: PatternsConfig) -> np.ndarray:
    score = (
        0.55 * _clip01(_col(w, "same_block_share") / 0.4)
        + 0.25 * _clip01(_col(w, "round_trip_share") / 0.4)
        + 0.2 * _clip01(_col(w, "tx_per_active_day") / 20)
    )
    return np.where(_col(w, "num_swaps") >= cfg.mev_bot.min_swaps, score, 0.0)


def sybil_cluster(w: pd.DataFrame, cfg: PatternsConfig) -> np.ndarray:
    peers = _col(w, "peer_wallets_same_fingerprint")
    eligible = (_col(w, "transaction_count") >= cfg.sybil_cluster.min_transactions) & (
        peers >= cfg.sybil_cluster.min_peers
    )
    return np.where(eligible, _clip01(0.5 + 0.1 * peers), 0.0)


def rug_pull_eligible(w: pd.DataFrame, cfg: PatternsConfig, hours: np.ndarray) -> np.ndarray:
    """The wallet's own side of a rug pull: a large deposit mostly withdrawn soon after.
    hours: per wallet, the fastest deposit → next withdraw, in hours."""
    c = cfg.rug_pull
    deposit, ratio = _col(w, "total_deposit_usd"), _col(w, "withdraw_ratio")
    return (deposit >= c.min_deposit_usd) & (ratio >= c.min_withdraw_ratio) & (hours <= c.max_exit_hours)


def rug_pull(w: pd.DataFrame, cfg: PatternsConfig, hours: np.ndarray, pools: dict[str, np.ndarray]) -> np.ndarray:
    """A quick round trip is only a rug pull when the liquidity it pulled dominated a pool others used:
    `pools` (rug_pull_pools) says whether the wallet has such a pull and its share of that pool."""
    c = cfg.rug_pull
    deposit, ratio = _col(w, "total_deposit_usd"), _col(w, "withdraw_ratio")
    eligible = rug_pull_eligible(w, cfg, hours) & pools["rug_pool_pulled"]
    score = (
        0.4
        + 0.15 * _clip01((ratio - c.min_withdraw_ratio) / (1 - c.min_withdraw_ratio))
        + 0.15 * _clip01(1 - hours / c.max_exit_hours)
        + 0.1 * _clip01(np.log10(np.maximum(deposit, 1) / c.min_deposit_usd) / 1.5)
        + 0.2 * _clip01((pools["rug_pool_share"] - c.min_pool_share) / (1 - c.min_pool_share + 1e-9))
    )
    return np.where(eligible, score, 0.0)


_OPEN_END = (1 << 33) - 1  # the "last time" of a wallet still holding liquidity in a pool at the end
_TS = 33  # bits of a timestamp in a packed (pool, time) key


def _running_sums(values: np.ndarray, group: np.ndarray) -> np.ndarray:
    """Cumulative sum of `values` restarting at each new `group` (rows grouped contiguously): one
    cumsum, each group's first value offset by the previous group's total (so the running total stays
    the size of one group's, not of the whole population's). Integers sum exactly, in any order."""
    shifted = values.copy() if values.dtype.kind == "i" else values.astype(float)
    if len(shifted) == 0:
        return shifted
    starts = np.flatnonzero(np.r_[True, group[1:] != group[:-1]])
    shifted[starts[1:]] -= np.add.reduceat(shifted, starts)[:-1]
    return np.cumsum(shifted)


@dataclass
class PoolTotals:
    """What the rug-pull detector compares a withdrawal with, for a set of wallets: every change in the
    liquidity a wallet holds in a pool, and each (pool, wallet)'s first and last transaction in the pool
    (last = _OPEN_END while it still holds liquidity). Totals of disjoint wallet sets add up (rows are
    concatenated), so partitions of a population can be scored against the whole, as with PumpTotals.
    Pools are keyed by the stable 64-bit hash of their id (8 bytes a row, the same in every partition)."""

    liquidity: pd.DataFrame  # pool (hash), ts, cents (change in liquidity held, in whole cents)
    spans: pd.DataFrame  # pool (hash), first, last

    def __add__(self, other: PoolTotals) -> PoolTotals:
        return PoolTotals(
            pd.concat([self.liquidity, other.liquidity], ignore_index=True),
            pd.concat([self.spans, other.spans], ignore_index=True),
        )

    @staticmethod
    def empty() -> PoolTotals:
        return PoolTotals(
            pd.DataFrame({"pool": np.zeros(0, np.uint64), "ts": np.zeros(0, np.int64), "cents": np.zeros(0, np.int64)}),
            pd.DataFrame(
                {"pool": np.zeros(0, np.uint64), "first": np.zeros(0, np.int64), "last": np.zeros(0, np.int64)}
            ),
        )


PoolRows = Callable[[np.ndarray], PoolTotals]  # uint64 pool hashes → the population's rows of those pools


@dataclass
class _PoolActivity:
    """Per pool, from the DEX rows of the wallets at hand (pools as codes into `names`). Amounts in whole
    cents: integer sums are exact in any order, so partitions summed equal one process to the cent."""

    names: np.ndarray  # pool names
    # LP rows ordered by (pool, wallet, time; deposits first within a second): pair = pool · n + wallet
    pair: np.ndarray
    pool: np.ndarray
    wallet: np.ndarray
    ts: np.ndarray
    is_withdraw: np.ndarray
    held_before: np.ndarray  # cents the pair holds before the row (deposits − withdrawals so far, >= 0)
    held_after: np.ndarray
    opened: np.ndarray  # when the position the row belongs to was opened (a deposit onto nothing held)
    # one row per (pool, wallet) with any DEX row there
    span_pool: np.ndarray
    first: np.ndarray
    last: np.ndarray


def _group_starts(keys: np.ndarray) -> np.ndarray:
    """True where a run of equal (sorted) keys begins."""
    return np.r_[True, keys[1:] != keys[:-1]][: len(keys)]


def _pool_activity(transactions: pd.DataFrame, wallets: pd.Index, keep_pools=None) -> _PoolActivity | None:
    """The LP positions and pool spans of these wallets. keep_pools(wallet, pool, kind, usable, pool
    count) → bool per pool code: only those pools are read (None: every pool)."""
    tx: pd.DataFrame | dict = transactions
    if "protocol_type" in transactions.columns:
        is_dex = rows_with(transactions, "protocol_type", "dexes")
        if not is_dex.all():
            tx = rows_of(transactions, is_dex, ["wallet", "timestamp", "action", "pool_id", "amount_usd"])
    wallet = wallet_positions(tx["wallet"], wallets)
    pool, names = _codes(tx["pool_id"])
    kind = value_kinds(tx["action"], ["swap", "deposit", "withdraw"])
    usable = (wallet >= 0) & (pool >= 0) & (kind < 3)
    if keep_pools is not None:
        wanted = keep_pools(wallet, pool, kind, usable, len(names))
        if not wanted.any():
            return None
        usable &= wanted[np.maximum(pool, 0)]
    rows = np.flatnonzero(usable)
    n = np.int64(max(len(wallets), 1))
    wallet, pool, kind = wallet[rows], pool[rows], kind[rows]
    ts = tx["timestamp"].to_numpy(np.int64)[rows]
    cents = np.round(np.nan_to_num(tx["amount_usd"].to_numpy(np.float64)[rows]) * 100).astype(np.int64)

    lp = np.flatnonzero(kind > 0)
    lp = lp[np.lexsort((ts[lp] * 4 + kind[lp], pool[lp] * n + wallet[lp]))]  # deposits first within a second
    pair, t, k = pool[lp] * n + wallet[lp], ts[lp], kind[lp]
    signed = np.where(k == 1, cents[lp], -cents[lp])
    net = _running_sums(signed, pair)
    held_after = np.maximum(net, 0)
    held_before = np.maximum(net - signed, 0)
    new_pair = _group_starts(pair)
    position = np.arange(len(lp))
    pair_start = np.maximum.accumulate(np.where(new_pair, position, 0))
    opening = np.maximum.accumulate(np.where((k == 1) & (held_before == 0), position, -1))
    opened = np.where(opening >= pair_start, t[np.maximum(opening, 0)], t)
    last_of_pair = np.r_[new_pair[1:], True][: len(pair)]
    holding = pair[last_of_pair][held_after[last_of_pair] > 0]

    every = pool * n + wallet
    order = np.argsort(every)  # (one key: several times faster than sorting by pair and time)
    keys, times = every[order], ts[order]
    starts = np.flatnonzero(_group_starts(keys))
    span_pairs = keys[starts]
    first = np.minimum.reduceat(times, starts) if len(starts) else times[:0]
    last = np.maximum.reduceat(times, starts) if len(starts) else times[:0]
    last[np.isin(span_pairs, holding, assume_unique=True)] = _OPEN_END
    return _PoolActivity(
        np.asarray(names, dtype=object),
        pair,
        pool[lp],
        wallet[lp],
        t,
        k == 2,
        held_before,
        held_after,
        opened,
        span_pairs // n,
        first,
        last,
    )


def pool_totals(transactions: pd.DataFrame, wallets: pd.Index) -> PoolTotals:
    """These wallets' contribution to the population-wide pool totals (PoolTotals)."""
    activity = _pool_activity(transactions, wallets)
    if activity is None or not len(activity.span_pool):
        return PoolTotals.empty()
    hashes = stable_hash(activity.names)
    return PoolTotals(
        pd.DataFrame(
            {"pool": hashes[activity.pool], "ts": activity.ts, "cents": activity.held_after - activity.held_before}
        ),
        pd.DataFrame({"pool": hashes[activity.span_pool], "first": activity.first, "last": activity.last}),
    )


def _empty_pools(n: int) -> dict[str, np.ndarray]:
    return {
        "rug_pool_id": np.full(n, "", dtype=object),
        "rug_pool_share": np.zeros(n),
        "rug_pool_liquidity_usd": np.zeros(n),
        "rug_pool_other_wallets": np.zeros(n),
        "rug_pool_pulled": np.zeros(n, dtype=bool),
    }


def rug_pull_pools(
    transactions: pd.DataFrame,
    wallets: pd.Index,
    cfg: PatternsConfig,
    eligible: np.ndarray,
    totals: PoolTotals | PoolRows | None = None,
) -> dict[str, np.ndarray]:
    """Per wallet, the population's side of its strongest withdrawal: the pool, the wallet's share of
    that pool's liquidity then, the pool's liquidity, and how many other wallets used the pool while the
    wallet's position was open. `rug_pool_pulled`: a withdrawal that qualifies (share ≥ min_pool_share,
    position ≥ min_deposit_usd, ≥ min_other_wallets others, within max_exit_hours of opening).

    Liquidity a wallet holds in a pool = its deposits minus withdrawals there so far, floored at 0 (a
    withdraw of liquidity deposited before the data began counts nothing). At a withdrawal at time t:
    the wallet's position before it, plus what the other wallets hold at the end of second t. Others =
    wallets whose time in the pool (first to last transaction; to the end for an LP still holding)
    overlaps [position opened, t]. Only eligible wallets' withdrawals are examined, and only their pools
    read; sorts, running sums and binary searches over the population, no per-wallet or per-pool loop.
    `totals`: the population's PoolTotals when these wallets are one partition of it, or a function
    giving them for the pools asked for (PoolRows: a store's index); None: the population is these."""
    c = cfg.rug_pull
    n = len(wallets)
    out = _empty_pools(n)
    if not eligible.any() or (totals is None and n - 1 < c.min_other_wallets):  # alone: nobody to pull from
        return out

    def pools_pulled_from(wallet, pool, kind, usable, n_pools):
        pulls = usable & (kind == 2)
        pulls[pulls] = eligible[wallet[pulls]]
        wanted = np.zeros(n_pools, dtype=bool)
        wanted[pool[pulls]] = True
        return wanted

    own = _pool_activity(transactions, wallets, pools_pulled_from)
    if own is None:
        return out
    if totals is None:  # the population is these wallets
        codes = own.pool
        liquidity = (own.pool, own.ts, own.held_after - own.held_before)
        spans = (own.span_pool, own.first, own.last)
    else:  # the population's totals, for the pools these wallets pulled from, in one code space with them
        hashes = stable_hash(own.names)
        wanted = np.unique(hashes[own.pool])
        if callable(totals):  # a store's index: read only these pools
            totals = totals(wanted)
        lq = totals.liquidity[np.isin(totals.liquidity["pool"].to_numpy(np.uint64), wanted)]
        sp = totals.spans[np.isin(totals.spans["pool"].to_numpy(np.uint64), wanted)]
        codes = np.searchsorted(wanted, hashes[own.pool])
        liquidity = (
            np.searchsorted(wanted, lq["pool"].to_numpy(np.uint64)),
            lq["ts"].to_numpy(np.int64),
            lq["cents"].to_numpy(np.int64),
        )
        spans = (
            np.searchsorted(wanted, sp["pool"].to_numpy(np.uint64)),
            sp["first"].to_numpy(np.int64),
            sp["last"].to_numpy(np.int64),
        )

    wd = np.flatnonzero(own.is_withdraw & eligible[own.wallet])
    base = codes[wd].astype(np.int64) << _TS
    t, opened, position = own.ts[wd], own.opened[wd], own.held_before[wd]
    # everyone's liquidity at the end of second t (running sums per pool over (pool, time) keys) …
    keys = (liquidity[0].astype(np.int64) << _TS) | liquidity[1]
    order = np.argsort(keys, kind="stable")
    keys, held = keys[order], _running_sums(liquidity[2][order], keys[order] >> _TS)
    at = np.searchsorted(keys, base | t, side="right") - 1
    everyone = np.where((at >= 0) & ((keys[np.maximum(at, 0)] >> _TS) == (base >> _TS)), held[np.maximum(at, 0)], 0)
    # … minus the wallet's own at the end of second t: its last LP row of that second (rows by pair, time)
    run_ends = np.r_[(own.pair[1:] != own.pair[:-1]) | (own.ts[1:] != own.ts[:-1]), True]
    run_end = np.flatnonzero(run_ends)[np.cumsum(np.r_[True, run_ends[:-1]]) - 1]
    mine = own.held_after[run_end[wd]]
    liquidity_then = position + np.maximum(everyone - mine, 0)  # cents
    share = np.divide(position, liquidity_then, out=np.zeros(len(wd)), where=liquidity_then > 0)
    # other wallets whose time in the pool overlaps the position: started by t, not ended before it opened
    firsts = np.sort((spans[0].astype(np.int64) << _TS) | spans[1])
    lasts = np.sort((spans[0].astype(np.int64) << _TS) | spans[2])
    started = np.searchsorted(firsts, base | t, side="right") - np.searchsorted(firsts, base, side="left")
    ended = np.searchsorted(lasts, base | opened, side="left") - np.searchsorted(lasts, base, side="left")
    others = (started - ended - 1).astype(float)  # the wallet's own time in the pool overlaps its position
    qualifies = (
        (share >= c.min_pool_share)
        & (position >= c.min_deposit_usd * 100)
        & (others >= c.min_other_wallets)
        & ((t - opened) <= c.max_exit_hours * SECONDS_PER_HOUR)
    )
    # per wallet, its strongest withdrawal: a qualifying one first, then the largest share, the largest
    # position, the earliest (a total order: the same pick whatever order the rows came in)
    wallet = own.wallet[wd]
    ranked = np.lexsort((-t, position, share, qualifies, wallet))
    best = ranked[np.r_[wallet[ranked][1:] != wallet[ranked][:-1], True]]
    rows = wallet[best]
    out["rug_pool_id"][rows] = own.names[own.pool[wd][best]]
    out["rug_pool_share"][rows] = share[best]
    out["rug_pool_liquidity_usd"][rows] = liquidity_then[best] / 100
    out["rug_pool_other_wallets"][rows] = others[best]
    out["rug_pool_pulled"][rows] = qualifies[best]
    return out


def fan_in_collector(w: pd.DataFrame, cfg: PatternsConfig) -> np.ndarray:
    """Many senders, few recipients: the shape of phishing and scam collection addresses."""
    c = cfg.fan_in_collector
    senders, ratio = _col(w, "fan_in"), _col(w, "fan_in_out_log_ratio")
    eligible = (senders >= c.min_senders) & (ratio >= c.min_fan_ratio)
    score = (
        0.6
        + 0.2 * _clip01(np.log(np.maximum(senders, 1) / c.min_senders) / np.log(10))
        + 0.2 * _clip01((ratio - c.min_fan_ratio) / 2)
    )
    return np.where(eligible, score, 0.0)


def dump_events(transactions: pd.DataFrame, wallets: pd.Index, cfg: PatternsConfig) -> tuple[DumpEvents, np.ndarray]:
    """Each wallet's buys of a token that it sold again within `dump_hours`, plus the timestamps of
    all swaps (the population's time span). The next sell of the same token comes from one binary
    search over packed (wallet·token, time) keys. Reads only each wallet's own transactions."""
    none = DumpEvents(np.zeros(0, np.int64), np.zeros(0, object), np.zeros(0, np.int64), np.zeros(0))
    tx = transactions[(transactions["action"] == "swap").to_numpy()]
    if tx.empty:
        return none, np.zeros(0, np.int64)
    wallet = wallet_positions(tx["wallet"], wallets)
    ts = tx["timestamp"].to_numpy(np.int64)
    tokens, names = _codes(stacked(tx["token_b_symbol"], tx["token_a_symbol"]))
    bought, sold = tokens[: len(tx)], tokens[len(tx) :]
    n_tokens = np.int64(max(len(names), 1))
    b, s = bought >= 0, sold >= 0
    b_wallet, b_token, b_ts = wallet[b], bought[b], ts[b]
    seconds, found = seconds_to_next_withdraw(
        b_wallet * n_tokens + b_token, b_ts, wallet[s] * n_tokens + sold[s], ts[s]
    )
    dumped = found & (seconds <= cfg.pump_and_dump.dump_hours * SECONDS_PER_HOUR)
    if not dumped.any():
        return none, ts
    token_names = np.asarray(names, dtype=object)[b_token[dumped]]
    return DumpEvents(b_wallet[dumped], token_names, b_ts[dumped], seconds[dumped]), ts


def pump_totals(transactions: pd.DataFrame, wallets: pd.Index, cfg: PatternsConfig) -> PumpTotals:
    """These wallets' contribution to the population-wide pump-and-dump counts."""
    events, swap_ts = dump_events(transactions, wallets, cfg)
    return PumpTotals.of(events, swap_ts, int(cfg.pump_and_dump.window_hours * SECONDS_PER_HOUR))


def pump_and_dump_evidence(
    transactions: pd.DataFrame, wallets: pd.Index, cfg: PatternsConfig, totals: PumpTotals | None = None
) -> pd.DataFrame:
    """Per wallet: a buy of one token that it sold again within `dump_hours` ("buy-and-dump"), made
    together with many other wallets doing the same in one window — many more than that token's
    usual rate of buy-and-dumps per window.

    Counting buy-and-dumps (not plain buys) keeps the baseline low for busy tokens, so the detector
    does not go blind as the population grows. Wallets are counted per (token, window) on two grids
    offset by half a window, so a burst straddling a boundary is still seen whole on one of them.
    `totals`: the population's counts (core.cross_wallet) when these wallets are one partition of it.
    """
    c = cfg.pump_and_dump
    n = len(wallets)
    out = frame_of(
        {
            "pump_confidence": np.zeros(n),
            "pump_buyers": np.zeros(n),
            "pump_expected_buyers": np.zeros(n),
            "pump_dump_hours": np.full(n, np.nan),
            "pump_token": np.full(n, "", dtype=object),
        },
        wallets,
    )
    # A window never holds more wallets than have buy-and-dumps: with fewer than min_wallets of them
    # (a request of a few wallets), nothing can be hit and the search is skipped.
    if totals is None and n < c.min_wallets:
        return out
    events, swap_ts = dump_events(transactions, wallets, cfg)
    if len(events.ts) == 0 or (totals is None and len(np.unique(events.wallet)) < c.min_wallets):
        return out
    window = int(c.window_hours * SECONDS_PER_HOUR)
    if totals is None:
        expected, wallets_in_window = local_expected_and_in_window(events, swap_ts, window)
    else:
        expected, wallets_in_window = totals.expected_and_in_window(events, window)
    threshold = np.maximum(c.min_wallets, c.lift * expected)
    hit = wallets_in_window >= threshold
    if not hit.any():
        return out
    confidence = (
        0.55
        + 0.25 * _clip01(wallets_in_window[hit] / (2 * threshold[hit]))
        + 0.2 * _clip01(1 - events.seconds[hit] / (c.dump_hours * SECONDS_PER_HOUR))
    )
    hit_wallet = events.wallet[hit]
    order = np.lexsort((confidence, hit_wallet))  # per wallet, its strongest event last
    pick = order[np.r_[hit_wallet[order][1:] != hit_wallet[order][:-1], True]]
    rows = hit_wallet[pick]
    out.iloc[rows, out.columns.get_loc("pump_confidence")] = confidence[pick]
    out.iloc[rows, out.columns.get_loc("pump_buyers")] = wallets_in_window[hit][pick]
    out.iloc[rows, out.columns.get_loc("pump_expected_buyers")] = expected[hit][pick]
    out.iloc[rows, out.columns.get_loc("pump_dump_hours")] = events.seconds[hit][pick] / SECONDS_PER_HOUR
    out.iloc[rows, out.columns.get_loc("pump_token")] = events.token[hit][pick]
    return out


def detect_patterns(
    wallet_table: pd.DataFrame,
    transactions: pd.DataFrame,
    cfg: PatternsConfig,
    pump: PumpTotals | None = None,
    pools: PoolTotals | None = None,
) -> pd.DataFrame:
    """Columns per pattern P: P_confidence, P_detected, P_counted, P_risk; plus pattern_risk (0–100),
    patterns_detected (counted detections) and the evidence columns (exit_hours, rug_pool_*, pump_*).
    `pump`, `pools`: population-wide pump-and-dump and pool totals when these wallets are one partition
    (core.cross_wallet; pool_totals summed over the partitions)."""
    w = wallet_table
    exit_hours = np.expm1(_col(w, "min_deposit_to_withdraw_hours_log"))
    pools = rug_pull_pools(transactions, w.index, cfg, rug_pull_eligible(w, cfg, exit_hours), pools)
    out: dict[str, np.ndarray] = {"exit_hours": exit_hours}
    out.update((name, values) for name, values in pools.items() if name != "rug_pool_pulled")
    pump = pump_and_dump_evidence(transactions, w.index, cfg, pump)
    confidences = {
        "wash_trading": wash_trading(w, cfg),
        "mev_bot": mev_bot(w, cfg),
        "sybil_cluster": sybil_cluster(w, cfg),
        "rug_pull": rug_pull(w, cfg, exit_hours, pools),
        "pump_and_dump": pump["pump_confidence"].to_numpy(),
        "fan_in_collector": fan_in_collector(w, cfg),
    }
    weighted_risk = np.zeros(len(w))
    weight = np.zeros(len(w))
    counted_total = np.zeros(len(w), dtype=np.int64)
    for name in PATTERNS:
        conf = confidences[name]
        risk = np.where(conf > 0, getattr(cfg, name).risk * (0.5 + 0.5 * conf), 0.0)
        counted = conf > cfg.min_confidence
        out[f"{name}_confidence"] = conf
        out[f"{name}_detected"] = conf >= 0.5
        out[f"{name}_counted"] = counted
        out[f"{name}_risk"] = risk
        weighted_risk += np.where(counted, conf * risk, 0.0)
        weight += np.where(counted, conf, 0.0)
        counted_total += counted
    out["pattern_risk"] = np.divide(weighted_risk, weight, out=np.zeros(len(w)), where=weight > 0)
    out["patterns_detected"] = counted_total
    out["pattern_summary"] = _summaries(out, len(w))
    out.update({name: np.asarray(column(pump, name)) for name in pump.columns if name != "pump_confidence"})
    return frame_of(out, w.index)


def _summary_texts() -> np.ndarray:
    """The summary of every combination of counted patterns (bit i: PATTERNS[i]), written once."""
    texts = []
    for combo in range(1 << len(PATTERNS)):
        found = [name.replace("_", " ") for i, name in enumerate(PATTERNS) if combo >> i & 1]
        texts.append("Detected " + ", ".join(found) if found else "No manipulation pattern detected")
    return np.asarray(texts, dtype=object)


_SUMMARY_TEXTS = _summary_texts()


def _summaries(out: dict[str, np.ndarray], n: int) -> np.ndarray:
    """A readable summary per wallet, via one lookup per combination of counted patterns."""
    bits = np.zeros(n, dtype=np.int64)
    for i, name in enumerate(PATTERNS):
        bits |= out[f"{name}_counted"].astype(np.int64) << i
    return _SUMMARY_TEXTS[bits]
