"""The reference score of CONTRACTS.md §4: LP score, swap score, zscore and tags, column-wise.

These formulas must match an existing deployment to 1e-9; they are code, not configuration.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from defi_scoring.core.frame_columns import frame_of, side_by_side

LP_WEIGHT, SWAP_WEIGHT = 0.6, 0.4
TAG_COLUMNS = ["tag_lp_size", "tag_holding", "tag_trader_size", "tag_trader_frequency", "tag_breadth"]


def lp_score(f: pd.DataFrame) -> np.ndarray:
    return (
        np.minimum(f["total_deposit_usd"].to_numpy() / 10_000 * 300, 300)
        + np.minimum(f["num_deposits"].to_numpy() * 20.0, 200)
        + np.maximum(0.0, (1 - f["withdraw_ratio"].to_numpy()) * 250)
        + np.minimum(f["avg_holding_time_days"].to_numpy() / 30 * 150, 150)
        + np.minimum(f["unique_pools"].to_numpy() * 20.0, 100)
    )


def swap_score(f: pd.DataFrame) -> np.ndarray:
    return (
        np.minimum(f["total_swap_volume_usd"].to_numpy() / 50_000 * 250, 250)
        + np.minimum(f["num_swaps"].to_numpy() * 10.0, 200)
        + f["token_diversity_score"].to_numpy()
        + f["swap_frequency_score"].to_numpy()
        + np.minimum(f["unique_pools_swapped"].to_numpy() * 25.0, 100)
    )


def _tiered(values: np.ndarray, bounds_and_labels: list[tuple[float, str]]) -> np.ndarray:
    """First label whose bound the value strictly exceeds, else None."""
    conditions = [values > bound for bound, _ in bounds_and_labels]
    return np.select(conditions, [label for _, label in bounds_and_labels], default=None).astype(object)


def reference_tags(f: pd.DataFrame) -> pd.DataFrame:
    """One column per tag family (None where the family does not apply); see `tags_as_lists`."""
    deposits = f["total_deposit_usd"].to_numpy()
    diversity = f["token_diversity_score"].to_numpy()
    return frame_of(
        {
            "tag_lp_size": _tiered(
                deposits, [(100_000, "Whale LP"), (10_000, "Large LP"), (1_000, "Medium LP"), (0, "Small LP")]
            ),
            "tag_holding": _tiered(
                f["avg_holding_time_days"].to_numpy(),
                [(90, "Long-term Holder"), (30, "Medium-term Holder"), (0, "Short-term Holder")],
            ),
            "tag_trader_size": _tiered(
                f["total_swap_volume_usd"].to_numpy(),
                [(500_000, "Whale Trader"), (50_000, "Large Trader"), (5_000, "Active Trader"), (0, "Casual Trader")],
            ),
            "tag_trader_frequency": _tiered(
                f["num_swaps"].to_numpy(), [(100, "High Frequency Trader"), (20, "Regular Trader")]
            ),
            "tag_breadth": np.select(
                [diversity > 100, f["unique_pools"].to_numpy() > 3],
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
    columns = [scores[c].to_numpy() for c in TAG_COLUMNS]
    return [[t for t in row if t is not None] for row in zip(*columns)]
