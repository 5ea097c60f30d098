"""Column-wise helpers shared by the synthetic generators: rows are grouped by wallet, in order."""

from __future__ import annotations

import numpy as np

DAY = 86_400


def positions(counts: np.ndarray) -> np.ndarray:
    """Each row's position within its wallet."""
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    return np.arange(int(counts.sum())) - np.repeat(starts, counts)


def within_wallet_cumsum(counts: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Cumulative sum of `values` restarting at each wallet."""
    total = np.cumsum(values)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    before = np.where(starts > 0, total[np.maximum(starts - 1, 0)], 0.0)
    return total - np.repeat(before, counts)


def times_from_gaps(start: np.ndarray, counts: np.ndarray, gaps: np.ndarray) -> np.ndarray:
    """Timestamps: each wallet's start plus its running sum of gaps (the first row's gap ignored)."""
    gaps = np.where(positions(counts) == 0, 0.0, gaps)
    return (np.repeat(start, counts) + within_wallet_cumsum(counts, gaps)).astype(np.int64)


def address_pool(rng: np.random.Generator, n: int) -> np.ndarray:
    """`n` fresh lower-case addresses."""
    return np.array(["0x" + rng.bytes(20).hex() for _ in range(n)], dtype=object)


def first_seen(rng: np.random.Generator, n: int, end_time: int) -> np.ndarray:
    """First activity uniform over the two years before `end_time`, whatever the archetype, so a
    time-based holdout sees the same mix as training. Later transactions past `end_time` are cut."""
    return end_time - rng.uniform(7 * DAY, 730 * DAY, n)
