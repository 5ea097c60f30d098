"""Model features: the reference features plus behavioural ones, for all wallets at once.

Three sources, one row per wallet: DEX behaviour (below), transfer behaviour
(`core.transfer_features`) and lending behaviour (`core.lending_features`); a wallet without one
kind of activity gets zeros for it. No feature reads a timestamp itself or the scoring time: only
differences between a wallet's own transactions, so a model cannot learn the era a wallet lived in.

Behavioural features look at the order of a wallet's transactions (cadence, bursts, round trips,
repeated sizes, deposit→withdraw speed), its concentration (pools, tokens) and one cross-wallet
signal: how many other wallets replay the same action/pool sequence in the same time window (sybil
farms). Everything is computed on one sort of the transactions by (wallet, time) with group
reductions; there is no per-wallet loop.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from defi_scoring.core.cross_wallet import peer_counts, sequence_fingerprints
from defi_scoring.core.features import (
    SECONDS_PER_HOUR,
    _codes,
    codes_in_common,
    reference_features,
    rows_of,
    rows_with,
    seconds_to_next_withdraw,
    wallet_positions,
)
from defi_scoring.core.frame_columns import column, floats, frame_of, side_by_side, zeros_frame
from defi_scoring.core.lending_features import LENDING_FEATURES, lending_features
from defi_scoring.core.sequence_stats import relative_active_days, safe_ratio, share_of_top_and_hhi, wallet_time_order
from defi_scoring.core.transfer_features import TRANSFER_FEATURES, transfer_features

NO_WITHDRAW_HOURS = 24.0 * 365  # "never withdrew" as a large, finite number of hours

DEX_FEATURES = [
    # reference features (log-scaled where heavy-tailed)
    # (not avg_holding_time_days: an open deposit is held "until as_of", which reads the scoring time)
    "log_total_deposit_usd",
    "log_total_withdraw_usd",
    "num_deposits",
    "num_withdraws",
    "withdraw_ratio",
    "account_age_days",
    "unique_pools",
    "log_total_swap_volume_usd",
    "num_swaps",
    "unique_pools_swapped",
    "log_avg_swap_size_usd",
    "token_diversity_score",
    "swap_frequency_score",
    # behavioural
    "log_transaction_count",
    "active_days",
    "tx_per_active_day",
    "mean_gap_hours_log",
    "gap_cv",
    "burstiness",
    "same_block_share",
    "same_minute_share",
    "pool_top_share",
    "pool_hhi",
    "token_top_share",
    "round_trip_share",
    "repeated_size_share",
    "swap_size_cv",
    "swap_share",
    "lp_churn",
    "min_deposit_to_withdraw_hours_log",
    "max_deposit_share",
    "peer_wallets_same_fingerprint",
]
MODEL_FEATURES = [*DEX_FEATURES, *TRANSFER_FEATURES, *LENDING_FEATURES]


def _group_sum(codes: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    return np.bincount(codes, weights=values, minlength=n)


def model_features(
    transactions: pd.DataFrame,
    as_of: float,
    reference: pd.DataFrame | None = None,
    peers: pd.Series | None = None,
) -> pd.DataFrame:
    """One row per wallet (index: lower-cased address) with the columns of MODEL_FEATURES.
    `reference`: the reference features of the same transactions, when already computed.
    `peers`: population-wide sybil peer counts (core.cross_wallet) when these are one partition."""
    ref = reference_features(transactions, as_of) if reference is None else reference
    wallets = pd.Index(ref.index)
    return side_by_side(
        [
            dex_features(transactions, ref, peers),
            transfer_features(transactions, wallets),
            lending_features(transactions, wallets),
        ]
    )


DEX_READ_COLUMNS = ["wallet", "timestamp", "action", "amount_usd", "pool_id", "token_a_symbol", "token_b_symbol"]


def dex_features(transactions: pd.DataFrame, ref: pd.DataFrame, peers: pd.Series | None = None) -> pd.DataFrame:
    """The DEX_FEATURES of every wallet of `ref` (the reference features); zeros without DEX rows."""
    tx = transactions
    if "protocol_type" in tx.columns:  # a column at a time (a frame's row filter copies the whole table)
        is_dex = rows_with(tx, "protocol_type", "dexes")
        tx = tx if is_dex.all() else rows_of(tx, is_dex, DEX_READ_COLUMNS)
    if len(tx["wallet"]) == 0:
        return zeros_frame(ref.index, DEX_FEATURES)
    wallet_index = pd.Index(ref.index)
    wallet = wallet_positions(tx["wallet"], wallet_index)
    n = len(wallet_index)
    ts = tx["timestamp"].to_numpy(np.int64)
    order = wallet_time_order(wallet, ts)
    wallet, ts = wallet[order], ts[order]
    action = tx["action"].astype(object).to_numpy()[order]
    amount = tx["amount_usd"].to_numpy(float)[order]
    pool, _ = _codes(tx["pool_id"])
    pool = pool[order]
    sym_a, sym_b, _ = codes_in_common(tx["token_a_symbol"], tx["token_b_symbol"])  # equality and counts only
    sym_a, sym_b = sym_a[order], sym_b[order]
    is_swap, is_dep, is_wd = action == "swap", action == "deposit", action == "withdraw"

    count = np.bincount(wallet, minlength=n).astype(float)
    same_wallet_as_prev = np.r_[False, wallet[1:] == wallet[:-1]]
    gap = np.where(same_wallet_as_prev, np.r_[0, np.diff(ts)], np.nan)
    has_gap = ~np.isnan(gap)
    n_gaps = np.bincount(wallet[has_gap], minlength=n).astype(float)
    g = np.nan_to_num(gap)
    gap_mean = np.divide(_group_sum(wallet, g, n), n_gaps, out=np.zeros(n), where=n_gaps > 0)
    gap_sq = np.divide(_group_sum(wallet, g**2, n), n_gaps, out=np.zeros(n), where=n_gaps > 0)
    gap_std = np.sqrt(np.maximum(gap_sq - gap_mean**2, 0))
    gap_cv = np.divide(gap_std, gap_mean, out=np.zeros(n), where=gap_mean > 0)
    burstiness = np.divide(gap_std - gap_mean, gap_std + gap_mean, out=np.zeros(n), where=(gap_std + gap_mean) > 0)

    def gap_share(limit: float) -> np.ndarray:
        return np.divide(
            _group_sum(wallet, (has_gap & (g <= limit)).astype(float), n), n_gaps, out=np.zeros(n), where=n_gaps > 0
        )

    active_days = relative_active_days(wallet, ts, n)

    # Swap sequences: round trips (A→B then B→A) and repeated sizes, against the wallet's previous swap.
    s_idx = np.flatnonzero(is_swap)
    s_wallet = wallet[s_idx]
    prev_same = np.r_[False, s_wallet[1:] == s_wallet[:-1]]
    s_a, s_b, s_amt = sym_a[s_idx], sym_b[s_idx], amount[s_idx]
    round_trip = prev_same & (s_a == np.r_[-2, s_b[:-1]]) & (s_b == np.r_[-2, s_a[:-1]]) & (s_a >= 0)
    prev_amt = np.r_[np.nan, s_amt[:-1]]
    repeated = prev_same & (np.abs(s_amt - prev_amt) <= 0.005 * np.maximum(s_amt, 1e-9))
    n_swaps = floats(ref, "num_swaps")
    swap_pairs = np.maximum(n_swaps - 1, 0)
    round_trip_share = np.divide(
        _group_sum(s_wallet, round_trip.astype(float), n), swap_pairs, out=np.zeros(n), where=swap_pairs > 0
    )
    repeated_share = np.divide(
        _group_sum(s_wallet, repeated.astype(float), n), swap_pairs, out=np.zeros(n), where=swap_pairs > 0
    )
    s_mean = np.divide(_group_sum(s_wallet, s_amt, n), n_swaps, out=np.zeros(n), where=n_swaps > 0)
    s_sq = np.divide(_group_sum(s_wallet, s_amt**2, n), n_swaps, out=np.zeros(n), where=n_swaps > 0)
    swap_size_cv = np.divide(np.sqrt(np.maximum(s_sq - s_mean**2, 0)), s_mean, out=np.zeros(n), where=s_mean > 0)

    # Deposit → next withdraw speed (fast near-total exits are the rug-pull signature).
    d_idx, w_idx = np.flatnonzero(is_dep), np.flatnonzero(is_wd)
    seconds, found = seconds_to_next_withdraw(wallet[d_idx], ts[d_idx], wallet[w_idx], ts[w_idx])
    hours = np.where(found, seconds / SECONDS_PER_HOUR, NO_WITHDRAW_HOURS)
    min_hold = np.full(n, NO_WITHDRAW_HOURS)
    np.minimum.at(min_hold, wallet[d_idx], hours)
    max_dep = np.zeros(n)
    np.maximum.at(max_dep, wallet[d_idx], amount[d_idx])
    total_dep = column(ref, "total_deposit_usd")

    pool_top, pool_hhi = share_of_top_and_hhi(wallet, pool, n)
    token_top, _ = share_of_top_and_hhi(np.r_[s_wallet, s_wallet], np.r_[s_a, s_b], n)

    out: dict[str, np.ndarray] = {}
    for name in ("total_deposit_usd", "total_withdraw_usd", "total_swap_volume_usd", "avg_swap_size_usd"):
        out[f"log_{name}"] = np.log1p(column(ref, name))
    for name in (
        "num_deposits",
        "num_withdraws",
        "withdraw_ratio",
        "account_age_days",
        "unique_pools",
        "num_swaps",
        "unique_pools_swapped",
        "token_diversity_score",
        "swap_frequency_score",
    ):
        out[name] = floats(ref, name)
    out["log_transaction_count"] = np.log1p(count)
    out["active_days"] = active_days
    out["tx_per_active_day"] = count / np.maximum(active_days, 1)
    out["mean_gap_hours_log"] = np.log1p(gap_mean / SECONDS_PER_HOUR)
    out["gap_cv"] = gap_cv
    out["burstiness"] = burstiness
    out["same_block_share"] = gap_share(12)
    out["same_minute_share"] = gap_share(60)
    out["pool_top_share"] = pool_top
    out["pool_hhi"] = pool_hhi
    out["token_top_share"] = token_top
    out["round_trip_share"] = round_trip_share
    out["repeated_size_share"] = repeated_share
    out["swap_size_cv"] = swap_size_cv
    out["swap_share"] = safe_ratio(n_swaps, count)
    out["lp_churn"] = np.divide(
        floats(ref, "num_withdraws"),
        floats(ref, "num_deposits"),
        out=np.zeros(n),
        where=column(ref, "num_deposits") > 0,
    )
    out["min_deposit_to_withdraw_hours_log"] = np.log1p(min_hold)
    out["max_deposit_share"] = np.divide(max_dep, total_dep, out=np.zeros(n), where=total_dep > 0)
    if peers is None and n > 1:  # one process: the population is these transactions (a lone wallet has no peer)
        raw_pool = tx["pool_id"].astype(object).to_numpy()[order]
        peers = peer_counts(sequence_fingerprints(wallet, ts, action, raw_pool, wallet_index))
    out["peer_wallets_same_fingerprint"] = (
        np.zeros(n) if peers is None else peers.reindex(wallet_index, fill_value=0.0).to_numpy(float)
    )
    return frame_of({name: out[name] for name in DEX_FEATURES}, ref.index)


FEATURE_LIMIT = 1e30  # within float32, which the tree libraries convert to


def finite_features(features: pd.DataFrame) -> pd.DataFrame:
    """Features every model member accepts: ±inf (sums of absurd amounts overflow) and values beyond
    ±1e30 clipped there, NaN as 0. The trees put such a wallet on the far side of every split, as the
    raw value would; the `feature_non_finite` data check reports that it happened."""
    values = features.to_numpy(dtype=float)
    if np.isfinite(values).all() and (np.abs(values) <= FEATURE_LIMIT).all():
        return features
    cleaned = np.clip(
        np.nan_to_num(values, nan=0.0, posinf=FEATURE_LIMIT, neginf=-FEATURE_LIMIT), -FEATURE_LIMIT, FEATURE_LIMIT
    )
    return pd.DataFrame(cleaned, index=features.index, columns=features.columns)
