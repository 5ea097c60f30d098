"""The model card logged with every trained ensemble: what it is, what it was trained on, how it scored."""

from __future__ import annotations

from typing import Any

from defi_scoring.core.ensemble_config import EnsembleConfig


def model_card(config: EnsembleConfig, metrics: dict[str, dict[str, float]], data_info: dict[str, Any]) -> str:
    rows = "\n".join(
        f"| {name} | "
        + " | ".join(f"{m[k]:.4f}" for k in ("roc_auc", "pr_auc", "ks", "brier", "f1", "log_loss"))
        + " |"
        for name, m in metrics.items()
    )
    info = "\n".join(f"- {k}: {v}" for k, v in data_info.items())
    weights = ", ".join(f"{m.name} {m.weight}" for m in config.classifiers)
    return f"""# Model card — {config.registered_model_name}

Weighted-vote ensemble of wallet-risk classifiers ({weights}); an IsolationForest feeds the anomaly
score. Output: risk probability (1 = risky), member probabilities, ensemble confidence, anomaly score.

## Data
{info}

## Holdout metrics (threshold {config.decision_threshold})
| model | ROC-AUC | PR-AUC | KS | Brier | F1 | log-loss |
|---|---|---|---|---|---|---|
{rows}

## Caveats
- Trained on the labels it was given; with the generator's labels, the archetypes are synthetic and
  cleaner than real wallets, so these metrics overstate real-world quality.
- The holdout is a fixed share of the labelled accounts (stratified, chosen by a hash of the address);
  wallets of a behaviour absent from training (a new attack pattern) are not covered.
- Probabilities are not recalibrated; use the calibration plot before reading them as frequencies.
"""
