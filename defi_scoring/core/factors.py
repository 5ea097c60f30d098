"""Scoring factors: each maps the wallet table to a score 0–100 and a confidence 0–1 for every wallet.

A factor is one vectorised function over columns (no per-wallet loop) plus an explanation template
filled from the same columns when a person needs to read it. `scoring.yaml` picks factors by
name and weights them; the engine in `hybrid_score.py` handles failures (neutral fallback).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Factor:
    compute: Callable[..., tuple[np.ndarray, np.ndarray]]
    explanation: str  # str.format template over the wallet table's columns
    description: str
    anchored: bool = False  # compute(frame, anchor): calibrated on labelled accounts (scoring.yaml `anchors`)


@dataclass(frozen=True)
class AnchoredMetric:
    """A factor that maps one feature linearly from its `bad` anchor (score 0) to its `good` anchor
    (score 100). The anchors are the medians of the risky and the normal labelled accounts, so the
    direction and the scale come from data (`bench/calibrate_factors.py`), not from intuition."""

    feature: str
    evidence: str  # count column behind the feature (confidence grows with it)
    full_at: float

    def __call__(self, f: pd.DataFrame, anchor) -> tuple[np.ndarray, np.ndarray]:
        x = _col(f, self.feature)
        span = anchor.good - anchor.bad
        score = 100 * np.clip((x - anchor.bad) / span, 0, 1) if span else np.full(len(f), 50.0)
        count = _col(f, self.evidence)
        return score, np.where(count > 0, _evidence(count, self.full_at), 0.0)


def _col(frame, name: str) -> np.ndarray:
    """A column as floats, of a DataFrame or a core.frame_columns.FrameColumns view."""
    return np.asarray(frame[name], dtype=float)


def _log_scale(value: np.ndarray, low: float, high: float) -> np.ndarray:
    """0 at `low` USD (or below), 100 at `high` (or above), linear in log10 between."""
    return np.clip((np.log10(np.maximum(value, 1e-9)) - np.log10(low)) / (np.log10(high) - np.log10(low)), 0, 1) * 100


def _evidence(count: np.ndarray, full_at: float) -> np.ndarray:
    """Confidence that grows with the number of observations behind a factor (0 with none)."""
    return np.clip(count / full_at, 0, 1) * 0.9 + np.where(count > 0, 0.1, 0.0)


def lp_capital(f: pd.DataFrame):
    deposits = _col(f, "num_deposits")
    return _log_scale(_col(f, "total_deposit_usd"), 100, 1_000_000), _evidence(deposits, 3)


def lp_retention(f: pd.DataFrame):
    deposits = _col(f, "num_deposits")
    return 100 * (1 - np.clip(_col(f, "withdraw_ratio"), 0, 1)), _evidence(deposits, 3)


def lp_holding_time(f: pd.DataFrame):
    deposits = _col(f, "num_deposits")
    days = _col(f, "avg_holding_time_days")
    return np.clip(np.log1p(np.maximum(days, 0)) / np.log1p(180), 0, 1) * 100, _evidence(deposits, 3)


def trade_volume(f: pd.DataFrame):
    swaps = _col(f, "num_swaps")
    return _log_scale(_col(f, "total_swap_volume_usd"), 100, 5_000_000), _evidence(swaps, 10)


def trade_diversity(f: pd.DataFrame):
    swaps = _col(f, "num_swaps")
    tokens = _col(f, "token_diversity_score") / 150
    pools = np.clip(_col(f, "unique_pools_swapped") / 8, 0, 1)
    return 100 * (0.6 * tokens + 0.4 * pools), _evidence(swaps, 10)


def trade_cadence(f: pd.DataFrame):
    """Humans trade irregularly; bots trade in the same block or like a metronome."""
    swaps = _col(f, "num_swaps")
    same_block = _col(f, "same_block_share")
    regularity = np.clip(_col(f, "gap_cv") / 0.5, 0, 1)
    score = 100 * (1 - same_block) * (0.2 + 0.8 * regularity)
    return score, np.where(swaps >= 3, _evidence(swaps, 10), 0.0)


def account_age(f: pd.DataFrame):
    """Over every protocol type (a transfers-only wallet has a history too)."""
    tx = _col(f, "transaction_count")
    return np.clip(np.log1p(_col(f, "activity_span_days")) / np.log1p(365), 0, 1) * 100, _evidence(tx, 5)


def active_days(f: pd.DataFrame):
    tx = _col(f, "transaction_count")
    return np.clip(np.log2(1 + _col(f, "activity_days")) / np.log2(31), 0, 1) * 100, _evidence(tx, 5)


def pattern_integrity(f: pd.DataFrame):
    """100 − the confidence-weighted risk of the counted pattern detections (see patterns.py)."""
    risk = _col(f, "pattern_risk")
    tx = _col(f, "transaction_count")
    detected = _col(f, "patterns_detected") > 0
    return 100 - risk, np.where(detected, 1.0, _evidence(tx, 15))


def independence(f: pd.DataFrame):
    peers = _col(f, "peer_wallets_same_fingerprint")
    tx = _col(f, "transaction_count")
    # No peers is the normal case and is already covered by pattern_integrity: only lockstep counts.
    return 100 * np.exp(-peers / 3), np.where((tx >= 3) & (peers > 0), _evidence(tx, 10), 0.0)


def size_naturalness(f: pd.DataFrame):
    swaps = _col(f, "num_swaps")
    return 100 * (1 - np.clip(_col(f, "repeated_size_share"), 0, 1)), np.where(swaps >= 3, _evidence(swaps, 10), 0.0)


def counterparty_exposure(f: pd.DataFrame):
    """100 − the exposure score (core/exposure.py); no weight without exposure: not being on a list
    is no evidence of good behaviour. The hybrid score adds it as its own dimension (scoring.yaml
    `exposure`), never as an ML feature."""
    return 100 - np.clip(_col(f, "exposure_score"), 0, 100), _col(f, "exposure_confidence")


def _transfer(feature: str) -> AnchoredMetric:
    return AnchoredMetric(feature, "transfer_count", 10)


def _lending(feature: str) -> AnchoredMetric:
    return AnchoredMetric(feature, "lending_count", 5)


FACTORS: dict[str, Factor] = {
    "lp_capital": Factor(
        lp_capital,
        "Deposited ${total_deposit_usd:,.0f} as liquidity",
        "Size of the liquidity committed, log scale ($100 → 0, $1M → 100).",
    ),
    "lp_retention": Factor(
        lp_retention, "Withdrew {withdraw_ratio:.0%} of what it deposited", "Share of deposits still in the pools."
    ),
    "lp_holding_time": Factor(
        lp_holding_time,
        "Kept liquidity {avg_holding_time_days:.1f} days on average",
        "Average time from a deposit to the next withdraw (180 days → 100).",
    ),
    "trade_volume": Factor(
        trade_volume, "Swapped ${total_swap_volume_usd:,.0f} in total", "Swap volume, log scale ($100 → 0, $5M → 100)."
    ),
    "trade_diversity": Factor(
        trade_diversity,
        "Traded a token-diversity score of {token_diversity_score:.0f} across {unique_pools_swapped:.0f} pools",
        "Tokens and pools traded.",
    ),
    "trade_cadence": Factor(
        trade_cadence,
        "{same_block_share:.0%} of its transactions came within a block of "
        "the previous one (gap variation {gap_cv:.2f})",
        "Irregular, human cadence scores high; same-block or metronome trading low.",
    ),
    "account_age": Factor(
        account_age,
        "Has been active for {activity_span_days:.0f} days",
        "First to last transaction, log scale (a year → 100).",
    ),
    "active_days": Factor(
        active_days, "Was active on {activity_days:.0f} distinct days", "Distinct days with activity (30 → 100)."
    ),
    "pattern_integrity": Factor(
        pattern_integrity, "{pattern_summary}", "100 minus the risk of the manipulation patterns detected."
    ),
    "independence": Factor(
        independence,
        "{peer_wallets_same_fingerprint:.0f} other wallets replay the same action/pool sequence",
        "Penalises wallets that move in lockstep with others.",
    ),
    "size_naturalness": Factor(
        size_naturalness,
        "{repeated_size_share:.0%} of its swaps repeat the previous size",
        "Penalises repeated identical trade sizes.",
    ),
    "counterparty_exposure": Factor(
        counterparty_exposure,
        "{exposure_reason}",
        "Links to addresses on known-address lists (sanctioned, exploit, phishing, …), by severity.",
    ),
    # transfers (CONTRACTS.md §1b): anchored on labelled accounts
    "receipt_size": Factor(
        _transfer("log_median_received_usd"),
        "Typical receipt ${received_median_usd:,.0f} (${received_usd:,.0f} received in all)",
        "Median USD value of what it receives.",
        True,
    ),
    "sender_concentration": Factor(
        _transfer("sender_top_share"),
        "{sender_top_share:.0%} of its receipts come from its most frequent sender ({fan_in:.0f} senders)",
        "Regular counterparties vs. many one-off senders.",
        True,
    ),
    "fan_in_balance": Factor(
        _transfer("fan_in_out_log_ratio"),
        "Receives from {fan_in:.0f} addresses, sends to {fan_out:.0f}",
        "Collector wallets receive from many and send to few.",
        True,
    ),
    "forwarding_habit": Factor(
        _transfer("sweep_share_1h"),
        "Forwarded {sweep_share_1h:.0%} of receipts within an hour",
        "How promptly received funds move on.",
        True,
    ),
    "amount_precision": Factor(
        _transfer("fine_value_share"),
        "{fine_value_share:.0%} of its amounts have more than 3 decimals",
        "Exact, computed amounts vs. typed round ones.",
        True,
    ),
    "repeated_amounts": Factor(
        _transfer("repeated_amount_share"),
        "{repeated_amount_share:.0%} of its transfers repeat an amount it already moved",
        "The same amount over and over.",
        True,
    ),
    "first_send_delay": Factor(
        _transfer("first_send_delay_hours_log"),
        "First sent funds {first_send_delay_hours:.1f} hours after its first receipt",
        "Time from first receipt to first send.",
        True,
    ),
    # lending (CONTRACTS.md §1b): anchors set by hand until labelled lending accounts exist (scoring.yaml)
    "liquidation_history": Factor(
        _lending("liquidations"),
        "Liquidated {liquidations:.0f} times (${liquidated_usd:,.0f} of collateral)",
        "Liquidations suffered.",
        True,
    ),
    "debt_repayment": Factor(
        _lending("repay_to_borrow_ratio"),
        "Repaid {repay_to_borrow_ratio:.0%} of what it borrowed",
        "Share of borrowed value repaid.",
        True,
    ),
    "leverage": Factor(
        _lending("borrow_to_supply_ratio"),
        "Borrowed {borrow_to_supply_ratio:.0%} of the value it supplied",
        "Debt against collateral supplied.",
        True,
    ),
}
