"""Scored wallets → success messages (CONTRACTS.md §2 plus the additive hybrid fields), column-wise.

Why column-wise: a message holds ~60 numbers and ~15 sentences. Rounding, formatting and checking
them one wallet at a time cost ~0.3 ms per message, more than scoring the wallet. Here every number
column is rounded once with numpy, every sentence template is filled once per column, and the
per-wallet loop only assembles the dictionaries. Patterns and alerts are built only for the wallets
that have some.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from defi_scoring.core.alerts import alerts_of
from defi_scoring.core.factors import FACTORS
from defi_scoring.core.features import LP_FEATURES, SWAP_FEATURES
from defi_scoring.core.patterns import EVIDENCE, EXPLANATIONS, PATTERNS
from defi_scoring.core.reasons import sign_points
from defi_scoring.core.templates import format_rows

INT_FEATURES = {"num_deposits", "num_withdraws", "unique_pools", "num_swaps", "unique_pools_swapped"}
MIN_REASON_POINTS = 0.05


def success_messages(table: pd.DataFrame, addresses: list[str], scores: Any, as_of: int,
                     processing_ms: int) -> list[dict[str, Any]]:
    """One message per row of `table` (rows of WalletScores.table, in the order of `addresses`, the
    wallet addresses as received)."""
    n = len(table)
    if n == 0:
        return []
    config = scores.config
    num = _Numbers(table)
    zscores = [f"{z:.18f}" for z in table["zscore"].to_numpy(float).tolist()]
    lp_features = _feature_rows(table, LP_FEATURES)
    swap_features = _feature_rows(table, SWAP_FEATURES)
    lp_score, swap_score = num.plain("lp_score"), num.plain("swap_score")
    lp_count = table["lp_transaction_count"].to_numpy(np.int64).tolist()
    swap_count = table["num_swaps"].to_numpy(np.int64).tolist()
    tags = table["tags"].tolist()
    risk_level = table["risk_level"].astype(object).tolist()
    thin = table["thin_history"].to_numpy(bool).tolist()

    dimensions = []  # (name, weight, score, confidence, [(factor, weight, score, confidence, explanation)])
    for dim_name, dim in config.dimensions.items():
        factors = []
        for f, weight in dim.factors.items():
            explanation = format_rows(FACTORS[f].explanation, table, FACTORS[f].description)
            failed = table[f"factor_{f}_failed"].to_numpy(bool)
            if failed.any():
                error = scores.factor_errors.get(f, "factor failed") + " (neutral fallback)"
                for i in np.flatnonzero(failed).tolist():
                    explanation[i] = error
            factors.append((f, weight, num.round(f"factor_{f}_score", 2), num.round(f"factor_{f}_confidence", 3),
                            explanation))
        dimensions.append((dim_name, dim.weight, num.round(f"dimension_{dim_name}_score", 2),
                           num.round(f"dimension_{dim_name}_confidence", 3), factors))

    ml_columns = [("prediction_score", num.round("ml_prediction_score", 2)), ("confidence", num.round("ml_confidence", 3)),
                  ("anomaly_score", num.round("anomaly_score", 3)), ("adjustment", num.round("ml_adjustment", 2)),
                  ("anomaly_penalty", num.round("anomaly_penalty", 2))]
    available, version, note = scores.model_version is not None, scores.model_version, scores.model_note
    hybrid, confidence, base = num.round("hybrid_score", 2), num.round("confidence", 3), num.round("base_score", 2)
    reasons = reason_lists(table)
    patterns = pattern_lists(table)
    alerts = alert_lists(table, config.alerts)

    out = []
    for i in range(n):
        breakdown = {}
        for dim_name, dim_weight, dim_score, dim_conf, factors in dimensions:
            breakdown[dim_name] = {
                "score": dim_score[i], "confidence": dim_conf[i], "weight": dim_weight,
                "factors": {f: {"score": s[i], "confidence": c[i], "weight": w, "explanation": e[i]}
                            for f, w, s, c, e in factors},
            }
        ml = {"available": available, "model_version": version, "note": note}
        for key, values in ml_columns:
            ml[key] = values[i]
        out.append({
            "wallet_address": addresses[i],
            "zscore": zscores[i],
            "timestamp": as_of,
            "processing_time_ms": processing_ms,
            "categories": [
                {"category": "liquidity_provision", "score": lp_score[i], "transaction_count": lp_count[i],
                 "features": lp_features[i]},
                {"category": "trading", "score": swap_score[i], "transaction_count": swap_count[i],
                 "features": swap_features[i]},
            ],
            "tags": list(tags[i]),
            "hybrid_score": hybrid[i],
            "confidence": confidence[i],
            "risk_level": risk_level[i],
            "thin_history": thin[i],
            "base_score": base[i],
            "breakdown": breakdown,
            "ml": ml,
            "reasons": reasons[i],
            "patterns": patterns[i],
            "alerts": alerts[i],
            "model_version": version,
        })
    return out


class _Numbers:
    """Number columns as JSON-ready Python lists: rounded once with numpy, NaN/inf → None."""

    def __init__(self, table: pd.DataFrame) -> None:
        self.table = table

    def round(self, column: str, digits: int) -> list:
        return _finite_or_none(np.round(self.table[column].to_numpy(float), digits))

    def plain(self, column: str) -> list:
        return _finite_or_none(self.table[column].to_numpy(float))


def _finite_or_none(values: np.ndarray) -> list:
    finite = np.isfinite(values)
    if finite.all():
        return values.tolist()
    out = values.astype(object)
    out[~finite] = None
    return out.tolist()


def _feature_rows(table: pd.DataFrame, names: list[str]) -> list[dict[str, float | int]]:
    columns = [table[c].to_numpy(np.int64 if c in INT_FEATURES else float).tolist() for c in names]
    return [dict(zip(names, values)) for values in zip(*columns)]


def reason_lists(table: pd.DataFrame, min_points: float = MIN_REASON_POINTS) -> list[list[dict]]:
    """Each wallet's reasons: its top factor contributions, then (with a champion) the ML adjustment,
    the anomaly penalty and the model's strongest features."""
    n = len(table)
    out: list[list[dict]] = [[] for _ in range(n)]
    slot = 1
    while f"reason_{slot}_text" in table.columns:
        points = table[f"reason_{slot}_points"].to_numpy(float)
        rounded = np.round(points, 2).tolist()
        texts = table[f"reason_{slot}_text"].tolist()
        factors = table[f"reason_{slot}_factor"].tolist()
        for i in np.flatnonzero(np.abs(np.nan_to_num(points)) >= min_points).tolist():
            out[i].append({"text": texts[i], "points": rounded[i], "source": "factor", "factor": factors[i]})
        slot += 1
    if "ml_adjustment" in table.columns:
        adjustment = table["ml_adjustment"].to_numpy(float)
        probability = (1 - table["ml_prediction_score"].to_numpy(float) / 100).tolist()
        rounded = np.round(adjustment, 2).tolist()
        for i in np.flatnonzero(np.nan_to_num(adjustment) != 0).tolist():
            out[i].append({"text": f"Ensemble risk probability {probability[i]:.2f} ({sign_points(adjustment[i])} points)",
                           "points": rounded[i], "source": "model", "factor": "ml_adjustment"})
    if "anomaly_penalty" in table.columns:
        penalty = table["anomaly_penalty"].to_numpy(float)
        anomaly = table["anomaly_score"].to_numpy(float).tolist()
        rounded = np.round(-penalty, 2).tolist()
        for i in np.flatnonzero(np.nan_to_num(penalty) != 0).tolist():
            out[i].append({"text": f"Behaviour more unusual than {anomaly[i]:.0%} of training wallets "
                                   f"({sign_points(-penalty[i])} points)",
                           "points": rounded[i], "source": "model", "factor": "anomaly_penalty"})
    slot = 1
    while f"model_reason_{slot}_feature" in table.columns:
        features = table[f"model_reason_{slot}_feature"].tolist()
        log_odds = table[f"model_reason_{slot}_log_odds"].to_numpy(float)
        rounded = np.round(log_odds, 4).tolist()
        values = {f: table[f].tolist() for f in set(features) if isinstance(f, str) and f in table.columns}
        for i in np.flatnonzero(~np.isnan(log_odds)).tolist():
            feature = features[i]
            if feature not in values:
                continue
            direction = "raises" if log_odds[i] > 0 else "lowers"
            out[i].append({"text": f"Model: {feature} = {values[feature][i]:.3g} {direction} the risk estimate",
                           "log_odds": rounded[i], "source": "model_feature", "factor": feature})
        slot += 1
    return out


def pattern_lists(table: pd.DataFrame) -> list[list[dict]]:
    """Each wallet's detected manipulation patterns as records (most wallets have none)."""
    out: list[list[dict]] = [[] for _ in range(len(table))]
    for name in PATTERNS:
        rows = np.flatnonzero(table[f"{name}_detected"].to_numpy(bool))
        if not len(rows):
            continue
        part = table.iloc[rows]
        explanation = format_rows(EXPLANATIONS[name], part, name.replace("_", " "))
        evidence = {k: (part[k].tolist() if part[k].dtype == object else np.round(part[k].to_numpy(float), 4).tolist())
                    for k in EVIDENCE[name]}
        counted = part[f"{name}_counted"].to_numpy(bool).tolist()
        confidence = np.round(part[f"{name}_confidence"].to_numpy(float), 4).tolist()
        risk = np.round(part[f"{name}_risk"].to_numpy(float), 2).tolist()
        for j, i in enumerate(rows.tolist()):
            out[i].append({"pattern": name, "detected": True, "counted": counted[j], "confidence": confidence[j],
                           "risk_score": risk[j], "explanation": explanation[j],
                           "evidence": {k: v[j] for k, v in evidence.items()}})
    return out


_ALERT_FIELDS = ["alert_pattern", "alert_pattern_risk", "alert_score_drop", "alert_low_confidence", "previous_score",
                 "hybrid_score", "thin_history", "confidence"]


def alert_lists(table: pd.DataFrame, cfg) -> list[list[dict]]:
    """Each wallet's alerts (core.alerts); built only for wallets with at least one."""
    out: list[list[dict]] = [[] for _ in range(len(table))]
    rows = np.flatnonzero(table["alert_count"].to_numpy(np.int64) > 0)
    if len(rows):
        part = table.iloc[rows][_ALERT_FIELDS]
        columns = [part[c].tolist() for c in _ALERT_FIELDS]
        for i, values in zip(rows.tolist(), zip(*columns)):
            out[i] = alerts_of(dict(zip(_ALERT_FIELDS, values)), cfg)
    return out

