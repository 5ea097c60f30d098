"""The reference score of CONTRACTS.md §4: LP score, swap score, zscore and tags, column-wise.

These formulas must match an existing deployment to 1e-9; they are code, not configuration.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from defi_scoring.core.frame_columns import column, frame_of, side_by_side

LP_WEIGHT, SWAP_WEIGHT = 0.6, 0.4
TAG_COLUMNS = ["tag_lp_size", "tag_holding", "tag_trader_size", "tag_trader_frequency", "tag_breadth"]


def lp_score(f: pd.DataFrame) -> np.ndarray:
    return (
        np.minimum(column(f, "total_deposit_usd") / 10_000 * 300, 300)
        + np.minimum(column(f, "num_deposits") * 20.0, 200)
        + np.maximum(0.0, (1 - column(f, "withdraw_ratio")) * 250)
        + np.minimum(column(f, "avg_holding_time_days") / 30 * 150, 150)
        + np.minimum(column(f, "unique_pools") * 20.0, 100)
    )


def swap_score(f: pd.DataFrame) -> np.ndarray:
    return (
        np.minimum(column(f, "total_swap_volume_usd") / 50_000 * 250, 250)
        + np.minimum(column(f, "num_swaps") * 10.0, 200)
        + column(f, "token_diversity_score")
        + column(f, "swap_frequency_score")
        + np.minimum(column(f, "unique_pools_swapped") * 25.0, 100)
    )


def _tiered(values: np.ndarray, bounds_and_labels: list[tuple[float, str]]) -> np.ndarray:
    """First label whose bound the value strictly exceeds, else None."""
    conditions = [values > bound for bound, _ in bounds_and_labels]
    return np.select(conditions, [label for _, label in bounds_and_labels], default=None).astype(object)


def reference_tags(f: pd.DataFrame) -> pd.DataFrame:
    """One column per tag family (None where the family does not apply); see `tags_as_lists`."""
    deposits = column(f, "total_deposit_usd")
    diversity = column(f, "token_diversity_score")
    return frame_of(
        {
            "tag_lp_size": _tiered(
                deposits, [(100_000, "Whale LP"), (10_000, "Large LP"), (1_000, "Medium LP"), (0, "Small LP")]
            ),
            "tag_holding": _tiered(
                column(f, "avg_holding_time_days"),
                [(90, "Long-term Holder"), (30, "Medium-term Holder"), (0, "Short-term Holder")],
            ),
            "tag_trader_size": _tiered(
                column(f, "total_swap_volume_usd"),
                [(500_000, "Whale Trader"), (50_000, "Large Trader"), (5_000, "Active Trader"), (0, "Casual Trader")],
            ),
            "tag_trader_frequency": _tiered(
                column(f, "num_swaps"), [(100, "High Frequency Trader"), (20, "Regular Trader")]
            ),
            "tag_breadth": np.select(
                [diversity > 100, column(f, "unique_pools") > 3],
                ["Diversified Trader", "Multi-Pool LP"],
                default=None,
            ).astype(object),
        },
        f.index,
    )


def reference_scores(features: pd.DataFrame) -> pd.DataFrame:
    """Per wallet: lp_score, swap_score, zscore and the tag columns."""
    lp, swap = lp_score(features), swap_score(features)
    scores = frame_of(
        {"lp_score": lp, "swap_score": swap, "zscore": LP_WEIGHT * lp + SWAP_WEIGHT * swap}, features.index
    )
    return side_by_side([scores, reference_tags(features)])


def tags_as_lists(scores: pd.DataFrame) -> list[list[str]]:
    """Tag columns → one ordered list per wallet (only when building output messages)."""
    columns = [np.asarray(column(scores, c)) for c in TAG_COLUMNS]
    return [[t for t in row if t is not None] for row in zip(*columns)]
