"""Group reductions over transactions sorted by (wallet code, time), shared by the feature modules.

Every function takes integer wallet codes (0..n-1) and returns one value per wallet; none loops over
wallets. Only time differences are used, never timestamps themselves, so the results do not move
when every time is shifted by a constant.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from defi_scoring.core.features import SECONDS_PER_DAY, seconds_to_next_withdraw, sorted_unique, unique_inverse_counts

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
    owner = pairs // width
    total = np.bincount(owner, weights=counts, minlength=n)
    share = counts / total[owner]
    top = np.zeros(n)
    np.maximum.at(top, owner, share)
    return top, np.bincount(owner, weights=share**2, minlength=n)


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
    np.minimum.at(first, codes, ts)
    day = (ts - first[codes]) // int(SECONDS_PER_DAY)
    width = int(day.max()) + 1
    pairs = sorted_unique(codes * width + day)
    return np.bincount(pairs // width, minlength=n).astype(float)


def group_quantile(codes: np.ndarray, values: np.ndarray, n: int, q: float) -> np.ndarray:
    """Per-wallet quantile (lower value at the q position, 0 for wallets without rows): one lexsort."""
    if not len(values):
        return np.zeros(n)
    order = np.lexsort((values, codes))
    sorted_codes, sorted_values = codes[order], values[order]
    count = np.bincount(sorted_codes, minlength=n)
    start = np.r_[0, np.cumsum(count)[:-1]]
    has = count > 0
    out = np.zeros(n)
    out[has] = sorted_values[start[has] + np.floor(q * (count[has] - 1)).astype(np.int64)]
    return out


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
