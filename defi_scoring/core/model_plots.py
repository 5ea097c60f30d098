"""Pictures of model quality for MLflow: ROC, precision–recall, calibration and feature importance."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.calibration import calibration_curve
from sklearn.metrics import precision_recall_curve, roc_curve

from defi_scoring.core.ensemble import TrainedEnsemble


def quality_plots(
    y: np.ndarray, probabilities: dict[str, np.ndarray], folder: Path, subject: str = "holdout"
) -> list[Path]:
    """ROC, precision–recall and calibration curves of each named risk column, one PNG each."""
    paths = []
    for kind in ("roc", "pr", "calibration"):
        fig, ax = plt.subplots(figsize=(6, 5))
        for name, p in probabilities.items():
            if kind == "roc":
                fpr, tpr, _ = roc_curve(y, p)
                ax.plot(fpr, tpr, label=name)
                ax.set(xlabel="false positive rate", ylabel="true positive rate", title=f"ROC ({subject})")
            elif kind == "pr":
                precision, recall, _ = precision_recall_curve(y, p)
                ax.plot(recall, precision, label=name)
                ax.set(xlabel="recall", ylabel="precision", title=f"Precision–recall ({subject})")
            else:
                frac, mean = calibration_curve(y, p, n_bins=10, strategy="quantile")
                ax.plot(mean, frac, marker="o", label=name)
                ax.plot([0, 1], [0, 1], "k--", lw=0.8)
                ax.set(xlabel="predicted risk", ylabel="observed risky share", title=f"Calibration ({subject})")
        ax.legend(fontsize=8)
        path = folder / f"{kind}.png"
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths


def feature_importance(model: TrainedEnsemble) -> pd.DataFrame:
    """Normalised importances of the tree members that expose them, one column per member."""
    columns = {}
    for name, member in model.members.items():
        values = getattr(member, "feature_importances_", None)
        if values is not None:
            values = np.asarray(values, dtype=float)
            columns[name] = values / values.sum() if values.sum() > 0 else values
    frame = pd.DataFrame(columns, index=model.feature_names)
    frame["mean"] = frame.mean(axis=1)
    return frame.sort_values("mean", ascending=False)


def importance_plot(importance: pd.DataFrame, folder: Path) -> Path:
    top = importance["mean"].head(20).iloc[::-1]
    fig, ax = plt.subplots(figsize=(7, 6))
    ax.barh(top.index, top.to_numpy())
    ax.set(title="Feature importance (mean of tree members)", xlabel="share")
    fig.tight_layout()
    path = folder / "feature_importance.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
