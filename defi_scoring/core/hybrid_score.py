"""The hybrid reputation score (CONTRACTS.md §5), for all wallets at once.

factors → dimensions (confidence-weighted means, neutral 50 when nothing is known) → base score →
ML adjustment (only when the ensemble is confident; capped at ±15) and anomaly penalty → final
0–100, confidence, risk level and signed contributions. Contributions are exact: the base score is
50 plus the sum of the factor contributions, the final score adds the ML terms (before clamping).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from defi_scoring.core.factors import FACTORS
from defi_scoring.core.frame_columns import FrameColumns, column, frame_of
from defi_scoring.core.scoring_config import ScoringConfig

NEUTRAL_SCORE = 50.0
FALLBACK_CONFIDENCE = 0.1
INSUFFICIENT_HISTORY = "insufficient_history"


@dataclass
class FactorOutcome:
    score: np.ndarray
    confidence: np.ndarray
    failed: np.ndarray  # bool per wallet: this wallet got the neutral fallback
    error: str | None = None


@dataclass
class HybridResult:
    table: pd.DataFrame  # per wallet: factor_*/dimension_* columns, base_score, ml_*, hybrid_score, …
    contributions: pd.DataFrame  # per wallet × factor: signed points relative to the neutral 50
    factor_errors: dict[str, str] = field(default_factory=dict)


def evaluate_factors(
    names: list[str], wallet_table: pd.DataFrame | FrameColumns, config: ScoringConfig | None = None
) -> list[FactorOutcome]:
    """Run each factor; a factor that raises, or returns NaN for some wallets, yields the neutral
    fallback (50, confidence 0.1) for those wallets instead of failing them. Factors read columns
    (`table[name]` as an array) and the row count, so the table may be a FrameColumns view. The
    checks and clipping run once over all factors' stacked results (not ~14 calls per factor)."""
    n = len(wallet_table)
    if not names:
        return []
    raw_scores, raw_confidences, errors = [], [], []
    raised = np.zeros(len(names), dtype=bool)
    for k, name in enumerate(names):
        try:
            factor = FACTORS[name]
            score, confidence = (
                factor.compute(wallet_table, config.anchors[name]) if factor.anchored else factor.compute(wallet_table)
            )
            score = np.asarray(score, dtype=float).reshape(n)
            confidence = np.asarray(confidence, dtype=float).reshape(n)
            errors.append(None)
        except Exception as exc:
            score, confidence = np.full(n, np.nan), np.full(n, np.nan)
            raised[k] = True
            errors.append(f"factor {name} failed: {type(exc).__name__}: {exc}")
        raw_scores.append(score)
        raw_confidences.append(confidence)
    scores, confidences = np.stack(raw_scores), np.stack(raw_confidences)
    failed = ~(np.isfinite(scores) & np.isfinite(confidences))
    scores = np.where(failed, NEUTRAL_SCORE, np.clip(scores, 0, 100))
    confidences = np.where(failed, FALLBACK_CONFIDENCE, np.clip(confidences, 0, 1))
    partly = failed.any(axis=1) & ~raised
    return [
        FactorOutcome(
            scores[k],
            confidences[k],
            failed[k],
            f"factor {name} could not be computed for this wallet" if partly[k] else errors[k],
        )
        for k, name in enumerate(names)
    ]


def evaluate_factor(
    name: str, wallet_table: pd.DataFrame | FrameColumns, config: ScoringConfig | None = None
) -> FactorOutcome:
    """One factor's outcome (see `evaluate_factors`)."""
    return evaluate_factors([name], wallet_table, config)[0]


def weighted_mean(scores: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row-wise Σ w·s / Σ w (scores, weights: wallets × items); NEUTRAL_SCORE where Σ w = 0."""
    total = weights.sum(axis=1)
    mean = np.divide((scores * weights).sum(axis=1), total, out=np.full(len(scores), NEUTRAL_SCORE), where=total > 0)
    return mean, total


def risk_levels(score: np.ndarray, config: ScoringConfig) -> np.ndarray:
    conditions = [score >= band.min_score for band in config.risk_levels]
    return np.select(conditions, [band.name for band in config.risk_levels], default=config.risk_levels[-1].name)


def hybrid_scores(
    wallet_table: pd.DataFrame, config: ScoringConfig, model_predictions: pd.DataFrame | None = None
) -> HybridResult:
    """wallet_table: one row per wallet with the columns the configured factors read, plus
    `transaction_count`. model_predictions: the champion's risk_probability, confidence and
    anomaly_score per wallet (same index), or None when there is no champion."""
    n = len(wallet_table)
    columns = FrameColumns(wallet_table)  # the factors read ~40 columns: as arrays, taken at once
    out: dict[str, object] = {}  # columns, assembled into one DataFrame at the end (cheaper than inserts)
    contributions: dict[str, np.ndarray] = {}
    errors: dict[str, str] = {}
    dim_scores, dim_weights, dim_parts = [], [], []
    for dim_name, dim in config.dimensions.items():
        names = list(dim.factors)
        outcomes = evaluate_factors(names, columns, config)
        for f, o in zip(names, outcomes):
            out[f"factor_{f}_score"] = o.score
            out[f"factor_{f}_confidence"] = o.confidence
            out[f"factor_{f}_failed"] = o.failed
            if o.error:
                errors[f] = o.error
        s = np.column_stack([o.score for o in outcomes])
        w = np.column_stack([dim.factors[f] * o.confidence for f, o in zip(names, outcomes)])
        score, total = weighted_mean(s, w)
        confidence = total / max(sum(dim.factors.values()), 1e-12)
        out[f"dimension_{dim_name}_score"] = score
        out[f"dimension_{dim_name}_confidence"] = confidence
        dim_scores.append(score)
        dim_weights.append(dim.weight * confidence)
        # each factor's share of its dimension (0 where the dimension has no weight at all)
        shares = np.divide(w, total[:, None], out=np.zeros_like(w), where=total[:, None] > 0)
        dim_parts.append((names, s, shares))

    d_scores, d_weights = np.column_stack(dim_scores), np.column_stack(dim_weights)
    base, d_total = weighted_mean(d_scores, d_weights)
    d_shares = np.divide(d_weights, d_total[:, None], out=np.zeros_like(d_weights), where=d_total[:, None] > 0)
    for k, (names, s, shares) in enumerate(dim_parts):
        for j, f in enumerate(names):
            contributions[f] = d_shares[:, k] * shares[:, j] * (s[:, j] - NEUTRAL_SCORE)
    # the ML adjustment reads the behaviour base: the model must not argue against a list lookup
    exposed = _exposure_dimension(columns, config, out, base, d_total, contributions)
    screened = out.setdefault("base_score", base)
    completeness = d_total / max(sum(d.weight for d in config.dimensions.values()), 1e-12)

    ml = config.ml_adjustment
    # Rows the champion could not score (every member failed on them, core/ensemble.py) have NaN
    # predictions: no adjustment, no penalty; `coverage` (share of the members' weight that scored the
    # row) and `note` (what failed on it) say how far a row degraded, and lower its confidence.
    scored, degraded = np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
    coverage, note = np.zeros(n), np.full(n, "", dtype=object)
    if model_predictions is not None:
        predictions = model_predictions.reindex(wallet_table.index)
        prediction_score = (1 - predictions["risk_probability"].to_numpy(float)) * 100
        model_confidence = predictions["confidence"].to_numpy(float)
        anomaly = predictions["anomaly_score"].to_numpy(float)
        scored = np.isfinite(prediction_score) & np.isfinite(model_confidence)
        coverage = np.nan_to_num(predictions["coverage"].to_numpy(float)) if "coverage" in predictions else scored * 1.0
        if "note" in predictions:
            note = predictions["note"].fillna("").to_numpy(object)
        note = np.where(~scored & (note == ""), "no model prediction for this wallet", note)
        degraded = ~scored | (coverage < 1) | (note != "")
        gated = model_confidence > ml.confidence_gate  # NaN compares False: no adjustment
        adjustment = np.where(gated, np.clip((prediction_score - base) * ml.scale, -ml.cap, ml.cap), 0.0)
        penalty = np.where(anomaly > ml.anomaly_threshold, ml.anomaly_penalty, 0.0)
        out["ml_prediction_score"] = prediction_score
        out["ml_confidence"] = model_confidence
        out["anomaly_score"] = anomaly
    else:
        adjustment, penalty = np.zeros(n), np.zeros(n)
        model_confidence = None
        out["ml_prediction_score"] = np.nan
        out["ml_confidence"] = np.nan
        out["anomaly_score"] = np.nan
    out["ml_adjustment"] = adjustment
    out["anomaly_penalty"] = penalty
    out["hybrid_score"] = np.clip(screened + adjustment - penalty, 0, 100)
    out["ml_available"] = scored
    out["ml_degraded"] = degraded
    out["ml_note"] = note

    tx_count = columns.floats("transaction_count")
    history = np.clip(tx_count / 10, 0, 1)
    data_confidence = 0.5 * completeness + 0.5 * history
    if model_confidence is not None:
        m = ml.model_confidence_weight
        confidence = (1 - m) * data_confidence + m * model_confidence
        if degraded.any():  # the model's share counts in proportion to the members that scored the row
            partial = (1 - m) * data_confidence + m * np.nan_to_num(model_confidence) * coverage
            rules_only = data_confidence * ml.no_model_confidence_factor
            fallback = np.where(scored & (coverage > 0), partial, rules_only) * ml.degraded_confidence_factor
            confidence = np.where(degraded, fallback, confidence)
    else:
        confidence = data_confidence * ml.no_model_confidence_factor
    thin = tx_count < config.thin_history.min_transactions
    out["thin_history"] = thin
    out["confidence"] = np.where(thin, np.minimum(confidence, config.thin_history.confidence_cap), confidence)
    # A counted manipulation pattern is evidence enough: a two-transaction rug pull is not "unknown".
    flagged = (
        column(wallet_table, "patterns_detected") > 0
        if "patterns_detected" in wallet_table
        else np.zeros(n, dtype=bool)
    )
    if exposed:  # a strong link to a listed address is evidence too, however short the history
        flagged = flagged | (np.nan_to_num(columns.floats("exposure_score")) >= config.exposure.alert_score)
    out["risk_level"] = np.where(thin & ~flagged, INSUFFICIENT_HISTORY, risk_levels(out["hybrid_score"], config))
    if exposed:
        _apply_risk_floors(columns, config, out)
    return HybridResult(frame_of(out, wallet_table.index), frame_of(contributions, wallet_table.index), errors)


EXPOSURE_FACTOR = "counterparty_exposure"


def _exposure_dimension(
    columns: FrameColumns, config: ScoringConfig, out: dict, base: np.ndarray, total: np.ndarray, contributions: dict
) -> bool:
    """Exposure as one more dimension (core/exposure.py) that can only lower the score: its value is
    min(behaviour base, 100 − exposure score), weighted `exposure.weight` × confidence (1 with
    exposure, 0 without) against the behaviour dimensions' total weight. Its contribution is exactly
    what it moves the base score (the behaviour factors keep theirs), so contributions still add up.
    Reported in the message's `exposure` object, not in `breakdown`. Sets out["base_score"]; False
    (nothing set) when the table has no exposure columns or no wallet is exposed."""
    if "exposure_score" not in columns.columns:
        return False
    confidence = np.nan_to_num(columns.floats("exposure_confidence"))
    if not confidence.any():
        return False
    value = np.minimum(base, 100 - np.clip(np.nan_to_num(columns.floats("exposure_score")), 0, 100))
    weight = config.exposure.weight * confidence
    together = total + weight
    combined = np.divide(base * total + value * weight, together, out=base.copy(), where=together > 0)
    out["dimension_exposure_score"] = value
    out["dimension_exposure_confidence"] = confidence
    out["base_score"] = combined
    contributions[EXPOSURE_FACTOR] = combined - base
    return True


def _apply_risk_floors(columns: FrameColumns, config: ScoringConfig, out: dict) -> None:
    """A listed owner or a direct link may set a least risk level (scoring.yaml exposure.risk_floors):
    the level becomes at least the floor and the score is capped to the floor's band."""
    from defi_scoring.core.exposure import level_order

    floor = np.asarray(columns["exposure_risk_floor"], dtype=object)
    rows = np.flatnonzero(floor != "")
    if not len(rows):
        return
    order = level_order(config)
    caps = {
        band.name: (100.0 if k == 0 else config.risk_levels[k - 1].min_score - 0.01)
        for k, band in enumerate(config.risk_levels)
    }
    caps[config.exposure.critical_level] = config.exposure.critical_max_score
    rank = {name: k for k, name in enumerate(order)}
    score = out["hybrid_score"]
    level = out["risk_level"] = np.asarray(out["risk_level"], dtype=object).copy()
    for i in rows.tolist():
        wanted = floor[i]
        score[i] = min(score[i], caps[wanted])
        if rank.get(level[i], -1) < rank[wanted]:
            level[i] = wanted
