"""Per-wallet features of `lending` rows (CONTRACTS.md §1b), for all wallets at once.

Borrowers who keep collateral well above their debt, repay on a regular rhythm and are never
liquidated behave differently from wallets that borrow to the limit, get liquidated, or deposit and
borrow and vanish. Like the transfer features: differences of times and counts only, group
reductions over one sort by (wallet, time).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from defi_scoring.core.features import SECONDS_PER_DAY, _codes, rows_of, rows_with, wallet_positions
from defi_scoring.core.frame_columns import floats, frame_of, zeros_frame
from defi_scoring.core.sequence_stats import (
    distinct_count,
    gap_stats,
    group_sum,
    safe_ratio,
    seconds_to_next,
    wallet_time_order,
)

LENDING_FEATURES = [
    "lending_count_log",
    "log_supplied_usd",
    "log_borrowed_usd",
    "borrow_to_supply_ratio",
    "repay_to_borrow_ratio",
    "withdraw_to_supply_ratio",
    "liquidations",
    "liquidated_usd_log",
    "lending_protocols",
    "repay_gap_cv",
    "borrow_to_repay_days_log",
    "unrepaid_borrow_share",
    "lending_span_days_log",
]
ACTION_COLUMNS = {
    "deposit": "supplied",
    "withdraw": "withdrawn",
    "borrow": "borrowed",
    "repay": "repaid",
    "liquidation": "liquidated",
}


def lending_features(transactions: pd.DataFrame, wallets: pd.Index) -> pd.DataFrame:
    """One row per wallet of `wallets` with the columns of LENDING_FEATURES; zeros without lending."""
    n = len(wallets)
    if "protocol_type" not in transactions.columns:
        return zeros_frame(wallets, LENDING_FEATURES)
    rows = rows_with(transactions, "protocol_type", "lending")
    if not rows.any():
        return zeros_frame(wallets, LENDING_FEATURES)
    columns = ["wallet", "timestamp", "action", "amount_usd", "protocol"]
    tx = transactions if rows.all() else rows_of(transactions, rows, columns)  # (all: no copy)
    wallet = wallet_positions(tx["wallet"], wallets)
    ts = tx["timestamp"].to_numpy(np.int64)
    order = wallet_time_order(wallet, ts)
    wallet, ts = wallet[order], ts[order]
    action = tx["action"].astype(object).to_numpy()[order]
    usd = tx["amount_usd"].to_numpy(float)[order]
    protocol, _ = _codes(tx["protocol"])
    protocol = protocol[order]

    count = np.bincount(wallet, minlength=n).astype(float)
    totals = {name: group_sum(wallet[action == a], usd[action == a], n) for a, name in ACTION_COLUMNS.items()}
    liquidations = np.bincount(wallet[action == "liquidation"], minlength=n).astype(float)
    is_borrow, is_repay = action == "borrow", action == "repay"
    repay_gaps = gap_stats(wallet[is_repay], ts[is_repay], n)
    seconds, found = seconds_to_next(wallet[is_borrow], ts[is_borrow], wallet[is_repay], ts[is_repay])
    b_wallet = wallet[is_borrow]
    borrows = np.bincount(b_wallet, minlength=n).astype(float)
    repaid_days = group_sum(b_wallet[found], np.log1p(seconds[found] / SECONDS_PER_DAY), n)
    first, last = np.full(n, np.iinfo(np.int64).max), np.zeros(n, dtype=np.int64)
    np.minimum.at(first, wallet, ts)
    np.maximum.at(last, wallet, ts)
    span = np.where(count > 0, last - first, 0)

    out = {
        "lending_count_log": np.log1p(count),
        "log_supplied_usd": np.log1p(totals["supplied"]),
        "log_borrowed_usd": np.log1p(totals["borrowed"]),
        "borrow_to_supply_ratio": np.clip(
            safe_ratio(totals["borrowed"], totals["supplied"], empty=np.where(totals["borrowed"] > 0, 2.0, 0.0)), 0, 2
        ),
        "repay_to_borrow_ratio": np.clip(safe_ratio(totals["repaid"], totals["borrowed"]), 0, 2),
        "withdraw_to_supply_ratio": np.clip(safe_ratio(totals["withdrawn"], totals["supplied"]), 0, 2),
        "liquidations": liquidations,
        "liquidated_usd_log": np.log1p(totals["liquidated"]),
        "lending_protocols": distinct_count(wallet, protocol, n),
        "repay_gap_cv": repay_gaps.cv,
        "borrow_to_repay_days_log": safe_ratio(repaid_days, np.bincount(b_wallet[found], minlength=n).astype(float)),
        "unrepaid_borrow_share": safe_ratio(np.bincount(b_wallet[~found], minlength=n).astype(float), borrows),
        "lending_span_days_log": np.log1p(span / SECONDS_PER_DAY),
    }
    return frame_of({name: out[name] for name in LENDING_FEATURES}, wallets)


def lending_summary(features: pd.DataFrame) -> pd.DataFrame:
    """Plain (not log-scaled) lending quantities for messages and factor explanations."""
    return frame_of(
        {
            "lending_count": np.rint(np.expm1(floats(features, "lending_count_log"))).astype(np.int64),
            "supplied_usd": np.expm1(floats(features, "log_supplied_usd")),
            "borrowed_usd": np.expm1(floats(features, "log_borrowed_usd")),
            "liquidated_usd": np.expm1(floats(features, "liquidated_usd_log")),
        },
        index=features.index,
    )
