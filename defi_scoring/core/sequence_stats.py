"""Group reductions over transactions sorted by (wallet code, time), shared by the feature modules.

Every function takes integer wallet codes (0..n-1) and returns one value per wallet; none loops over
wallets. Only time differences are used, never timestamps themselves, so the results do not move
when every time is shifted by a constant.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from defi_scoring.core.features import (
    SECONDS_PER_DAY,
    is_sorted,
    seconds_to_next_withdraw,
    sorted_unique,
    unique_inverse_counts,
)

seconds_to_next = seconds_to_next_withdraw  # per event: seconds to the same key's next later event


def group_sum(codes: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    return np.bincount(codes, weights=values, minlength=n)


def safe_ratio(numerator: np.ndarray, denominator: np.ndarray, empty: float | np.ndarray = 0.0) -> np.ndarray:
    """numerator / denominator, `empty` where the denominator is 0."""
    out = np.broadcast_to(np.asarray(empty, dtype=float), np.shape(numerator)).copy()
    return np.divide(numerator, denominator, out=out, where=denominator > 0)


def distinct_count(codes: np.ndarray, items: np.ndarray, n: int) -> np.ndarray:
    """Distinct items (>= 0; -1 = missing) per wallet."""
    keep = items >= 0
    if not keep.any():
        return np.zeros(n)
    width = int(items.max()) + 1
    pairs = sorted_unique(codes[keep] * width + items[keep])
    return np.bincount(pairs // width, minlength=n).astype(float)


def share_of_top_and_hhi(codes: np.ndarray, items: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Per wallet: share of its most frequent item, and the Herfindahl index of item shares."""
    keep = items >= 0
    if not keep.any():
        return np.zeros(n), np.zeros(n)
    width = int(items.max()) + 1
    pairs, _, counts = unique_inverse_counts(codes[keep] * width + items[keep])
    return top_share_and_hhi(pairs // width, counts, n)


def top_share_and_hhi(owner: np.ndarray, counts: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """From distinct (wallet, item) pairs (`owner` = the pair's wallet, sorted) and their row counts:
    per wallet the share of its most frequent item and the Herfindahl index of item shares."""
    total = np.bincount(owner, weights=counts, minlength=n)
    share = counts / total[owner]
    top = np.zeros(n)
    np.maximum.at(top, owner, share)
    return top, np.bincount(owner, weights=share**2, minlength=n)


def wallet_time_order(codes: np.ndarray, ts: np.ndarray) -> np.ndarray:
    """np.lexsort((ts, codes)), the same permutation: one stable sort of a packed key, nearly free
    when the rows already come grouped by wallet in time order (as batches and messages do)."""
    if not len(codes):
        return np.arange(0)
    low, high = int(ts.min()), int(ts.max())
    width = high - low + 1
    if int(codes.max()) >= (np.iinfo(np.int64).max // width) or int(codes.min()) < 0:
        return np.lexsort((ts, codes))  # the key would overflow (or a wallet is unknown): sort both
    key = codes * width + (ts - low)
    if is_sorted(key):
        return np.arange(len(key))
    return np.argsort(key, kind="stable")


def run_starts(codes: np.ndarray) -> np.ndarray:
    """Positions where a run of equal codes begins (rows grouped by wallet: each wallet's first row)."""
    return np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])


def sorted_group_min_max(codes: np.ndarray, values: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-wallet minimum and maximum (0 for wallets without rows) of rows sorted by wallet: one pass
    over contiguous runs. The same values as group_quantile at q = 0 and 1 (a NaN is last in order)."""
    low, high = np.zeros(n), np.zeros(n)
    if not len(values):
        return low, high
    starts = run_starts(codes)
    low[codes[starts]] = np.fmin.reduceat(values, starts)
    high[codes[starts]] = np.maximum.reduceat(values, starts)
    return low, high


@dataclass
class GapStats:
    """Gaps between a wallet's consecutive transactions (rows sorted by wallet, then time)."""

    codes: np.ndarray  # wallet code of each gap
    gaps: np.ndarray  # seconds
    count: np.ndarray  # gaps per wallet
    mean: np.ndarray
    std: np.ndarray

    @property
    def cv(self) -> np.ndarray:
        return safe_ratio(self.std, self.mean)

    @property
    def burstiness(self) -> np.ndarray:
        """(σ − μ) / (σ + μ): −1 metronome, 0 random (Poisson), → 1 bursts separated by long pauses."""
        return safe_ratio(self.std - self.mean, self.std + self.mean)

    def share_within(self, seconds: float) -> np.ndarray:
        n = len(self.count)
        return safe_ratio(group_sum(self.codes, (self.gaps <= seconds).astype(float), n), self.count)


def gap_stats(codes: np.ndarray, ts: np.ndarray, n: int) -> GapStats:
    same = np.r_[False, codes[1:] == codes[:-1]][: len(codes)]
    gap_codes = codes[same]
    gaps = np.diff(ts)[same[1:]].astype(float) if len(ts) else np.zeros(0)
    count = np.bincount(gap_codes, minlength=n).astype(float)
    mean = safe_ratio(group_sum(gap_codes, gaps, n), count)
    square = safe_ratio(group_sum(gap_codes, gaps**2, n), count)
    return GapStats(gap_codes, gaps, count, mean, np.sqrt(np.maximum(square - mean**2, 0)))


def relative_active_days(codes: np.ndarray, ts: np.ndarray, n: int) -> np.ndarray:
    """Distinct 24-hour periods counted from each wallet's own first transaction (not calendar days,
    whose boundaries would move with a time shift)."""
    if not len(ts):
        return np.zeros(n)
    first = np.full(n, np.iinfo(np.int64).max, dtype=np.int64)
    if is_sorted(codes):  # rows grouped by wallet: one minimum per contiguous run (ufunc.at is slow)
        starts = run_starts(codes)
        first[codes[starts]] = np.minimum.reduceat(ts, starts)
    else:
        np.minimum.at(first, codes, ts)
    day = (ts - first[codes]) // int(SECONDS_PER_DAY)
    width = int(day.max()) + 1
    pairs = sorted_unique(codes * width + day)
    return np.bincount(pairs // width, minlength=n).astype(float)


def group_quantile(
    codes: np.ndarray, values: np.ndarray, n: int, q: float, ranks: np.ndarray | None = None
) -> np.ndarray:
    """Per-wallet quantile (lower value at the q position, 0 for wallets without rows).

    The values of each wallet in order, as np.lexsort((values, codes)) would give them, but from one
    sort of packed integer keys (wallet, value): non-negative integers (seconds) are their own key,
    other values go by their rank. `ranks` (value_ranks of a superset of the rows, subset like
    `values`) lets calls on parts of one column share the sort of the values."""
    if not len(values):
        return np.zeros(n)
    integral = ranks is None and _whole_non_negative(values)
    if integral:
        keys = values.astype(np.int64)
    else:
        ranks = value_ranks(values) if ranks is None else ranks
        keys = ranks
    width = int(keys.max()) + 1
    if int(codes.max()) >= np.iinfo(np.int64).max // width:  # the packed key would overflow
        order = np.lexsort((values, codes))
        sorted_codes, sorted_values = codes[order], values[order]
    else:
        key = np.sort(codes * width + keys)
        sorted_codes, sorted_keys = np.divmod(key, width)
        if integral:
            sorted_values = sorted_keys.astype(values.dtype)
        else:
            by_rank = np.empty(width, dtype=values.dtype)
            by_rank[ranks] = values
            sorted_values = by_rank[sorted_keys]
    count = np.bincount(sorted_codes, minlength=n)
    start = np.r_[0, np.cumsum(count)[:-1]]
    has = count > 0
    out = np.zeros(n)
    out[has] = sorted_values[start[has] + np.floor(q * (count[has] - 1)).astype(np.int64)]
    return out


def _whole_non_negative(values: np.ndarray) -> bool:
    """Integers ≥ 0 (of any dtype; floats exactly whole and below 2**53), e.g. gaps in seconds."""
    if values.dtype.kind in "iu":
        return int(values.min()) >= 0
    if values.dtype.kind != "f":
        return False
    low, high = values.min(), values.max()
    return bool(low >= 0 and high < 2**53 and (values == np.floor(values)).all())


def value_ranks(values: np.ndarray) -> np.ndarray:
    """Position of each value in a sort of them (NaN last, as in np.sort). Equal values may take their
    positions in any order: a quantile reads a value, and equal values are the same value."""
    ranks = np.empty(len(values), dtype=np.int64)
    ranks[np.argsort(values)] = np.arange(len(values))
    return ranks


def group_std(codes: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    count = np.bincount(codes, minlength=n).astype(float)
    mean = safe_ratio(group_sum(codes, values, n), count)
    square = safe_ratio(group_sum(codes, values**2, n), count)
    return np.sqrt(np.maximum(square - mean**2, 0))


def group_cumsum(codes: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Running sum within each wallet (rows sorted by wallet). Summed from each wallet's first row, not
    as one running total minus an offset: a wallet's value must not depend on the wallets before it
    (rounding), or a partition of the wallets would give other bits than the whole."""
    return pd.Series(values).groupby(codes, sort=False).cumsum().to_numpy()
