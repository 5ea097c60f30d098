"""Readable summaries of a scored table: score distribution, tags, top and bottom wallets."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pandas as pd

from defi_scoring.core.reference_score import TAG_COLUMNS

ZSCORE_BINS = [0, 100, 200, 300, 400, 500, 600, 700, 800, 920]


def zscore_distribution(scores: pd.DataFrame) -> pd.DataFrame:
    """Wallet counts per zscore band (the reachable range is 0–920)."""
    counts, _ = np.histogram(scores["zscore"].to_numpy(), bins=ZSCORE_BINS)
    total = max(int(counts.sum()), 1)
    labels = [f"{lo}–{hi}" for lo, hi in pairwise(ZSCORE_BINS)]
    return pd.DataFrame({"zscore": labels, "wallets": counts, "share": np.round(counts / total, 4)})


def distribution_markdown(scores: pd.DataFrame, width: int = 30) -> str:
    dist = zscore_distribution(scores)
    peak = max(int(dist["wallets"].max()), 1)
    lines = ["| zscore | wallets | share | |", "|---|---:|---:|---|"]
    for row in dist.itertuples(index=False):
        bar = "█" * round(row.wallets / peak * width)
        lines.append(f"| {row.zscore} | {row.wallets} | {row.share:.1%} | {bar} |")
    return "\n".join(lines)


def tag_counts(scores: pd.DataFrame) -> pd.Series:
    tags = pd.concat([scores[c] for c in TAG_COLUMNS if c in scores.columns]).dropna()
    return tags.value_counts()


def extremes(scores: pd.DataFrame, n: int = 5) -> tuple[pd.DataFrame, pd.DataFrame]:
    cols = ["zscore", "lp_score", "swap_score"]
    ordered = scores.sort_values("zscore", kind="stable")
    return ordered[cols].tail(n).iloc[::-1], ordered[cols].head(n)


def describe(scores: pd.DataFrame) -> dict[str, float]:
    z = scores["zscore"].to_numpy()
    if len(z) == 0:
        return {"wallets": 0}
    return {
        "wallets": len(z),
        "zscore_mean": float(z.mean()),
        "zscore_p10": float(np.percentile(z, 10)),
        "zscore_p50": float(np.percentile(z, 50)),
        "zscore_p90": float(np.percentile(z, 90)),
    }


def _bar_table(labels: list[str], counts: np.ndarray, header: str, width: int = 30) -> str:
    total = max(int(counts.sum()), 1)
    peak = max(int(counts.max()) if len(counts) else 1, 1)
    lines = [f"| {header} | wallets | share | |", "|---|---:|---:|---|"]
    for label, count in zip(labels, counts.tolist()):
        lines.append(f"| {label} | {count} | {count / total:.1%} | {'█' * round(count / peak * width)} |")
    return "\n".join(lines)


def risk_level_markdown(table: pd.DataFrame, order: list[str]) -> str:
    """Wallets per risk level, in band order (best first), with bars."""
    counts = table["risk_level"].value_counts()
    labels = [level for level in order if level in counts.index] + [lvl for lvl in counts.index if lvl not in order]
    return _bar_table(labels, counts.reindex(labels).to_numpy(), "risk level")


def hybrid_distribution_markdown(table: pd.DataFrame) -> str:
    """Wallets per 10-point band of the hybrid score."""
    bins = np.arange(0, 101, 10)
    counts, _ = np.histogram(table["hybrid_score"].to_numpy(), bins=bins)
    return _bar_table([f"{lo}–{lo + 10}" for lo in bins[:-1]], counts, "hybrid score")


def pattern_counts(table: pd.DataFrame, patterns: list[str]) -> pd.Series:
    """Counted detections per pattern."""
    return pd.Series({p: int(table[f"{p}_counted"].sum()) for p in patterns}, name="wallets")
