"""Transactions → one scored row per wallet: reference score, patterns, hybrid score, reasons, alerts.

The single entry point behind the `scored_wallets` asset, the sensor runs, the API and the CLI.
The champion model is passed in as a function (features → ModelScores) so this module stays free of
MLflow and can run without any model at all.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import pandas as pd

from defi_scoring.core.alerts import alert_columns, alerts_of
from defi_scoring.core.factors import explain
from defi_scoring.core.features import reference_features
from defi_scoring.core.hybrid_score import hybrid_scores
from defi_scoring.core.model_features import model_features
from defi_scoring.core.model_scoring import ModelScores, no_model
from defi_scoring.core.patterns import detect_patterns, pattern_records
from defi_scoring.core.reasons import factor_reason_columns, model_reason_columns, reasons_of
from defi_scoring.core.reference_score import reference_scores, tags_as_lists
from defi_scoring.core.scoring_config import ScoringConfig, default_scoring_config

ModelFn = Callable[[pd.DataFrame], ModelScores]

@dataclass
class WalletScores:
    table: pd.DataFrame  # index: lower-cased wallet address
    model_version: str | None
    model_note: str
    config: ScoringConfig
    factor_errors: dict[str, str] = field(default_factory=dict)


def score_wallet_table(transactions: pd.DataFrame, as_of: float, config: ScoringConfig | None = None,
                       model: ModelFn | None = None, previous_scores: pd.Series | None = None) -> WalletScores:
    """Score every wallet in `transactions` (normalised, see core.normalise) at `as_of`.

    model: champion scorer (None → no ML adjustment, "ML analysis unavailable").
    previous_scores: each wallet's last hybrid score, for the score-drop alert.
    """
    config = config or default_scoring_config()
    reference = reference_features(transactions, as_of)
    table = reference.join(reference_scores(reference))
    behaviour = model_features(transactions, as_of, reference=reference)
    table = table.join(behaviour[[c for c in behaviour.columns if c not in table.columns]])
    table = table.join(detect_patterns(table, transactions, config.patterns))

    scores = model(behaviour) if model is not None else no_model("no model store configured")
    hybrid = hybrid_scores(table, config, scores.predictions)
    table = table.join(hybrid.table)
    table = table.join(factor_reason_columns(hybrid.contributions, table, config.reasons.top_factors))
    table = table.join(model_reason_columns(scores.contributions, table.index, config.reasons.top_model_features))
    table = table.join(alert_columns(table, config.alerts, previous_scores))
    table["tags"] = tags_as_lists(table)
    table["model_version"] = scores.model_version
    return WalletScores(table, scores.model_version, scores.note, config, hybrid.factor_errors)


def _round(value: Any, digits: int = 4) -> Any:
    """JSON-friendly number: rounded, None for missing/NaN/inf (math.isfinite: ~10× cheaper than numpy's
    on Python floats, and this runs ~40 times per message)."""
    return round(float(value), digits) if value is not None and math.isfinite(value) else None


def hybrid_fields(row: dict[str, Any], scores: WalletScores) -> dict[str, Any]:
    """The additive success-message fields (CONTRACTS.md §2) of one wallet's row."""
    config = scores.config
    breakdown = {}
    for dim_name, dim in config.dimensions.items():
        factors = {}
        for f, weight in dim.factors.items():
            failed = bool(row[f"factor_{f}_failed"])
            factors[f] = {
                "score": _round(row[f"factor_{f}_score"], 2),
                "confidence": _round(row[f"factor_{f}_confidence"], 3),
                "weight": weight,
                "explanation": scores.factor_errors.get(f, "factor failed") + " (neutral fallback)" if failed
                else explain(f, row),
            }
        breakdown[dim_name] = {"score": _round(row[f"dimension_{dim_name}_score"], 2),
                               "confidence": _round(row[f"dimension_{dim_name}_confidence"], 3),
                               "weight": dim.weight, "factors": factors}
    return {
        "hybrid_score": _round(row["hybrid_score"], 2),
        "confidence": _round(row["confidence"], 3),
        "risk_level": row["risk_level"],
        "thin_history": bool(row["thin_history"]),
        "base_score": _round(row["base_score"], 2),
        "breakdown": breakdown,
        "ml": {
            "available": scores.model_version is not None,
            "model_version": scores.model_version,
            "note": scores.model_note,
            "prediction_score": _round(row["ml_prediction_score"], 2),
            "confidence": _round(row["ml_confidence"], 3),
            "anomaly_score": _round(row["anomaly_score"], 3),
            "adjustment": _round(row["ml_adjustment"], 2),
            "anomaly_penalty": _round(row["anomaly_penalty"], 2),
        },
        "reasons": reasons_of(row),
        "patterns": pattern_records(row),
        "alerts": alerts_of(row, config.alerts),
        "model_version": scores.model_version,
    }
