"""Alerts: high-risk patterns, score drops against the wallet's previous score, low confidence.

Each rule is one vectorised mask stored as columns of the scored table (alert_pattern,
alert_score_drop, alert_low_confidence, alert_count); `alerts_of` turns one wallet's columns into
records with a severity and a message when a message or an API answer is built.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from defi_scoring.core.frame_columns import SHORT_COLUMN, column, floats, frame_of
from defi_scoring.core.patterns import PATTERNS
from defi_scoring.core.scoring_config import AlertsConfig, ExposureConfig


def _previous_scores(previous_scores: pd.Series | None, wallets: pd.Index) -> np.ndarray:
    """Each wallet's previous score (NaN if none): `previous_scores.reindex(wallets)`, through a dict
    for the few wallets of an API call (a Series reindex costs ~0.1 ms whatever the size)."""
    if previous_scores is None:
        return np.full(len(wallets), np.nan)
    if len(wallets) <= SHORT_COLUMN and len(previous_scores) <= SHORT_COLUMN:
        known = dict(zip(previous_scores.index.tolist(), previous_scores.to_numpy(float).tolist()))
        if len(known) == len(previous_scores):  # (repeated labels: pandas' reindex refuses them, as before)
            return np.array([known.get(w, np.nan) for w in wallets.tolist()], dtype=float)
    return previous_scores.reindex(wallets).to_numpy(float)


def alert_columns(
    scored: pd.DataFrame,
    cfg: AlertsConfig,
    previous_scores: pd.Series | None = None,
    exposure: ExposureConfig | None = None,
) -> pd.DataFrame:
    """scored: hybrid_score, confidence, P_counted, P_risk per wallet (and the exposure columns, when
    screened). previous_scores: last known hybrid score by wallet (None: no history, so no score-drop
    alerts). exposure: raises an `exposure` alert at its alert_score or for a risk floor."""
    n = len(scored)
    worst_pattern = np.full(n, "", dtype=object)
    worst_risk = np.zeros(n)
    for name in PATTERNS:
        risk = np.where(np.asarray(column(scored, f"{name}_counted"), dtype=bool), floats(scored, f"{name}_risk"), 0.0)
        better = (risk >= cfg.high_risk_pattern_score) & (risk > worst_risk)
        worst_pattern[better] = name
        worst_risk = np.where(better, risk, worst_risk)
    score = floats(scored, "hybrid_score")
    previous = _previous_scores(previous_scores, scored.index)
    drop = previous - score
    dropped = np.nan_to_num(drop, nan=0.0) >= cfg.score_drop_points
    low = floats(scored, "confidence") < cfg.low_confidence
    exposed = np.zeros(n, dtype=bool)
    if exposure is not None and "exposure_score" in scored.columns:
        floor = np.asarray(column(scored, "exposure_risk_floor"), dtype=object)
        exposed = (np.nan_to_num(floats(scored, "exposure_score")) >= exposure.alert_score) | (floor != "")
    return frame_of(
        {
            "previous_score": previous,
            "alert_pattern": worst_pattern,
            "alert_pattern_risk": worst_risk,
            "alert_score_drop": np.where(dropped, drop, np.nan),
            "alert_low_confidence": low,
            "alert_exposure": exposed,
            "alert_count": (worst_pattern != "").astype(int) + dropped.astype(int) + low.astype(int) + exposed,
        },
        scored.index,
    )


def alerts_of(row: dict, cfg: AlertsConfig) -> list[dict]:
    """One wallet's alerts as records {type, severity, message, …}, most severe first."""
    severity = cfg.severities
    alerts = []
    if row.get("alert_exposure"):
        floor = row.get("exposure_risk_floor") or ""
        alerts.append(
            {
                "type": "exposure",
                "severity": severity.get("exposure", "critical") if floor else severity.get("exposure_link", "warning"),
                "exposure_score": round(float(row["exposure_score"]), 2),
                **({"risk_floor": floor} if floor else {}),
                "message": f"counterparty exposure {row['exposure_score']:.0f}: {row['exposure_reason']}",
            }
        )
    if row["alert_pattern"]:
        alerts.append(
            {
                "type": "high_risk_pattern",
                "severity": severity.get("high_risk_pattern", "critical"),
                "pattern": row["alert_pattern"],
                "message": f"{row['alert_pattern'].replace('_', ' ')} detected (risk {row['alert_pattern_risk']:.0f})",
            }
        )
    drop = row["alert_score_drop"]
    if drop == drop:  # not NaN
        alerts.append(
            {
                "type": "score_drop",
                "severity": severity.get("score_drop", "warning"),
                "previous_score": round(float(row["previous_score"]), 2),
                "score": round(float(row["hybrid_score"]), 2),
                "message": f"score fell {drop:.1f} points, from {row['previous_score']:.1f} "
                f"to {row['hybrid_score']:.1f}" + (f" ({row['exposure_reason']})" if row.get("alert_exposure") else ""),
            }
        )
    if row["alert_low_confidence"]:
        why = "too few transactions" if row["thin_history"] else "little evidence behind the factors or the model"
        alerts.append(
            {
                "type": "low_confidence",
                "severity": severity.get("low_confidence", "info"),
                "confidence": round(float(row["confidence"]), 3),
                "message": f"confidence {row['confidence']:.2f}: {why}",
            }
        )
    return alerts
