"""How well risk probabilities separate labelled wallets: metrics with bootstrap intervals, calibration.

Pure (numpy/scikit-learn); the `evaluate` CLI and the real-data bench print what this returns.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, brier_score_loss, f1_score, roc_auc_score, roc_curve

METRICS = ("roc_auc", "pr_auc", "f1", "ks", "brier")


def point_metrics(y: np.ndarray, p: np.ndarray, threshold: float) -> dict[str, float]:
    fpr, tpr, _ = roc_curve(y, p)
    return {
        "roc_auc": float(roc_auc_score(y, p)),
        "pr_auc": float(average_precision_score(y, p)),
        "f1": float(f1_score(y, p >= threshold)),
        "ks": float(np.max(tpr - fpr)),
        "brier": float(brier_score_loss(y, p)),
    }


def bootstrap_metrics(
    y: np.ndarray, p: np.ndarray, threshold: float, rounds: int = 500, seed: int = 0
) -> dict[str, dict[str, float]]:
    """Each metric with a 95% percentile interval over `rounds` resamples of the wallets (stratified,
    so every resample has both classes)."""
    y, p = np.asarray(y), np.asarray(p, dtype=float)
    rng = np.random.default_rng(seed)
    positives, negatives = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    samples = {m: [] for m in METRICS}
    for _ in range(rounds):
        rows = np.r_[rng.choice(positives, len(positives)), rng.choice(negatives, len(negatives))]
        for name, value in point_metrics(y[rows], p[rows], threshold).items():
            samples[name].append(value)
    point = point_metrics(y, p, threshold)
    return {
        m: {
            "value": point[m],
            "low": float(np.percentile(samples[m], 2.5)),
            "high": float(np.percentile(samples[m], 97.5)),
        }
        for m in METRICS
    }


def calibration_table(y: np.ndarray, p: np.ndarray, bins: int = 10) -> pd.DataFrame:
    """Per probability decile: wallets, mean predicted risk, observed risky share."""
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    frame = pd.DataFrame({"bin": which, "p": p, "y": y})
    table = frame.groupby("bin").agg(wallets=("y", "size"), mean_predicted=("p", "mean"), observed=("y", "mean"))
    table.index = [f"{edges[i]:.1f}–{edges[i + 1]:.1f}" for i in table.index]
    return table


def evaluate_labelled(table: pd.DataFrame, threshold: float, rounds: int = 500) -> dict:
    """Scored wallets joined with `is_risky` labels → the champion's metrics with intervals, how the
    hybrid score separates the classes, and a calibration table (as JSON-ready values).

    `table` needs `is_risky`, `ml_prediction_score` (100 = safe, so risk = 1 − score/100) and
    `hybrid_score`; raises ValueError when the labels do not cover both classes."""
    if table["is_risky"].nunique() < 2:
        raise ValueError(f"the labels cover {len(table)} scored wallets but only one class")
    y = table["is_risky"].to_numpy()
    p = risk_of(table)
    hybrid_risk = (100 - table["hybrid_score"].to_numpy(float)) / 100
    return {
        "wallets": len(table),
        "risky": int(y.sum()),
        "threshold": threshold,
        "ensemble": bootstrap_metrics(y, p, threshold, rounds=rounds),
        "hybrid": {
            "roc_auc_of_100_minus_score": point_metrics(y, hybrid_risk, 0.5)["roc_auc"],
            "mean_score_risky": float(table["hybrid_score"][y == 1].mean()),
            "mean_score_normal": float(table["hybrid_score"][y == 0].mean()),
        },
        "calibration": calibration_table(y, p).reset_index(names="predicted").to_dict(orient="records"),
    }


def risk_of(table: pd.DataFrame) -> np.ndarray:
    """The champion's risk probability from the scored table's ML prediction score."""
    return 1 - table["ml_prediction_score"].to_numpy(float) / 100
