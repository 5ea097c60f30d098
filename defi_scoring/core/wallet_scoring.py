"""Transactions → one scored row per wallet: reference score, patterns, hybrid score, reasons, alerts.

The single entry point behind the `scored_wallets` asset, the sensor runs, the API and the CLI.
The champion model is passed in as a function (features → ModelScores) so this module stays free of
MLflow and can run without any model at all.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from defi_scoring.core.alerts import alert_columns
from defi_scoring.core.cross_wallet import CrossWalletSignals
from defi_scoring.core.exposure import EXPOSURE_COLUMNS, no_exposure
from defi_scoring.core.features import reference_features
from defi_scoring.core.frame_columns import column, frame_of, side_by_side, without_columns
from defi_scoring.core.hybrid_score import hybrid_scores
from defi_scoring.core.lending_features import lending_summary
from defi_scoring.core.model_features import model_features
from defi_scoring.core.model_scoring import ModelScores, no_model
from defi_scoring.core.patterns import detect_patterns
from defi_scoring.core.reasons import factor_reason_columns, model_reason_columns
from defi_scoring.core.reference_score import reference_scores, tags_as_lists
from defi_scoring.core.scoring_config import ScoringConfig, default_scoring_config
from defi_scoring.core.transfer_features import transfer_summary

ModelFn = Callable[[pd.DataFrame], ModelScores]


@dataclass
class WalletScores:
    table: pd.DataFrame  # index: lower-cased wallet address
    model_version: str | None
    model_note: str
    config: ScoringConfig
    factor_errors: dict[str, str] = field(default_factory=dict)


def score_wallet_table(
    transactions: pd.DataFrame,
    as_of: float | None,
    config: ScoringConfig | None = None,
    model: ModelFn | None = None,
    previous_scores: pd.Series | None = None,
    signals: CrossWalletSignals | None = None,
    exposure: pd.DataFrame | None = None,
) -> WalletScores:
    """Score every wallet in `transactions` (normalised, see core.normalise) at `as_of` (unix s; None:
    each wallet at its own newest transaction, the reproducible default). The table's `as_of` column
    says which time each wallet was scored at (its messages' `timestamp`).

    model: champion scorer (None → no ML adjustment, "ML analysis unavailable").
    previous_scores: each wallet's last hybrid score, for the score-drop alert.
    signals: population-wide sybil and pump-and-dump counts when `transactions` are one partition of
    the wallets (defi_scoring.distributed); None: the population is `transactions`.
    exposure: per-wallet exposure columns (core.exposure.exposure_table, index = wallet); None or a
    wallet missing from it: not exposed (the score is the behaviour's alone). Never a model feature.
    """
    signals = signals or CrossWalletSignals()
    config = config or default_scoring_config()
    reference = reference_features(transactions, as_of)
    behaviour = model_features(transactions, as_of, reference=reference, peers=signals.peers)
    scored = reference_scores(reference)
    own = set(reference.columns) | set(scored.columns)
    table = _widened(
        reference,
        scored,
        without_columns(behaviour, own),
        transfer_summary(behaviour),
        lending_summary(behaviour),
        longevity(reference, behaviour),
        exposure_columns(exposure, reference.index),
    )
    table = _widened(table, detect_patterns(table, transactions, config.patterns, signals.pump, signals.pools))

    scores = model(behaviour) if model is not None else no_model("no model store configured")
    hybrid = hybrid_scores(table, config, scores.predictions)
    table = _widened(table, hybrid.table)
    table = _widened(  # none of these reads another's columns
        table,
        factor_reason_columns(hybrid.contributions, table, config.reasons.top_factors),
        model_reason_columns(scores.contributions, table.index, config.reasons.top_model_features),
        alert_columns(table, config.alerts, previous_scores, config.exposure),
        frame_of(
            {
                "tags": np.fromiter(tags_as_lists(table), dtype=object, count=len(table)),
                "model_version": np.full(len(table), scores.model_version, dtype=object),
                "as_of": scored_at(reference, as_of),
            },
            table.index,
        ),
    )
    return WalletScores(table, scores.model_version, scores.note, config, hybrid.factor_errors)


def scored_at(reference: pd.DataFrame, as_of: float | None) -> np.ndarray:
    """Per wallet, the unix second it is scored at: `as_of`, or its newest transaction."""
    if as_of is None:
        return np.asarray(column(reference, "last_timestamp"), dtype=np.int64)
    return np.full(len(reference), int(as_of), dtype=np.int64)


def exposure_columns(exposure: pd.DataFrame | None, index: pd.Index) -> pd.DataFrame:
    """The exposure columns for these wallets: `exposure`'s rows, no exposure where it has none."""
    if exposure is None or exposure.empty:
        return no_exposure(index)
    rows = exposure[EXPOSURE_COLUMNS]
    if rows.index.equals(index):
        return rows
    missing = index.difference(rows.index)
    if len(missing):
        rows = pd.concat([rows[rows.index.isin(index)], no_exposure(missing)])
    return rows.reindex(index)


def longevity(reference: pd.DataFrame, behaviour: pd.DataFrame) -> pd.DataFrame:
    """Span and active days over every protocol type (the §4 account_age_days covers DEX rows only)."""
    return frame_of(
        {
            "activity_span_days": (column(reference, "last_timestamp") - column(reference, "first_timestamp")) / 86_400,
            "activity_days": np.maximum(
                column(behaviour, "active_days"), np.expm1(column(behaviour, "transfer_active_days_log"))
            ),
        },
        reference.index,
    )


def _widened(table: pd.DataFrame, *parts: pd.DataFrame) -> pd.DataFrame:
    """`table` with the columns of `parts` (rows of `table.index`, as a left join gives) in one
    concatenation: a join per part copied the whole widening table each time, a fixed cost that
    dominated scoring a single wallet."""
    aligned = [p if p.index.equals(table.index) else p.reindex(table.index) for p in parts]
    widened = side_by_side([table, *aligned])
    names = widened.columns.tolist()
    if len(set(names)) < len(names):  # (a set: Index.has_duplicates hashes anew for every new index)
        raise ValueError(f"columns computed twice: {sorted({c for c in names if names.count(c) > 1})}")
    return widened
