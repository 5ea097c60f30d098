"""Manipulation pattern detectors, vectorised over all wallets at once.

Each detector gives every wallet a confidence 0–1 (how sure we are the pattern is there), a
detected flag, a risk score (the configured risk × (0.5 + 0.5 × confidence)) and evidence columns. Detections with
confidence above `patterns.min_confidence` count; the wallet's pattern risk is the confidence-weighted
mean of the counted risk scores (CONTRACTS.md §5). Cross-wallet detectors (sybil clusters,
pump-and-dump) use group counts over hashed keys, never all-pairs comparison.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from defi_scoring.core.cross_wallet import DumpEvents, PumpTotals, local_expected_and_in_window
from defi_scoring.core.features import (
    SECONDS_PER_HOUR,
    _codes,
    seconds_to_next_withdraw,
    stacked,
    wallet_positions,
)
from defi_scoring.core.frame_columns import column, floats, frame_of
from defi_scoring.core.scoring_config import PatternsConfig

PATTERNS = ["wash_trading", "mev_bot", "sybil_cluster", "rug_pull", "pump_and_dump", "fan_in_collector"]

EXPLANATIONS = {
    "wash_trading": "trades back and forth in one pair with repeated sizes at a regular interval "
    "({round_trip_share:.0%} round trips, {repeated_size_share:.0%} repeated sizes, "
    "gap variation {gap_cv:.2f}, {num_swaps:.0f} swaps)",
    "mev_bot": "{same_block_share:.0%} of its swaps follow the previous one within a block, "
    "{round_trip_share:.0%} are immediate reversals, {tx_per_active_day:.0f} transactions per active day",
    "sybil_cluster": "replays the same action/pool sequence as {peer_wallets_same_fingerprint:.0f} other wallets "
    "starting within 3 hours of it",
    "rug_pull": "deposited ${total_deposit_usd:,.0f} and withdrew {withdraw_ratio:.0%} of it within "
    "{exit_hours:.1f} hours",
    "pump_and_dump": "bought {pump_token} and sold it {pump_dump_hours:.1f} hours later, as did "
    "{pump_buyers:.0f} wallets in the same window (usual: {pump_expected_buyers:.1f})",
    "fan_in_collector": "received from {fan_in:.0f} addresses and sent to {fan_out:.0f} "
    "(typical receipt ${received_median_usd:,.0f})",
}
EVIDENCE = {
    "wash_trading": ["round_trip_share", "repeated_size_share", "gap_cv", "num_swaps"],
    "mev_bot": ["same_block_share", "round_trip_share", "tx_per_active_day", "num_swaps"],
    "sybil_cluster": ["peer_wallets_same_fingerprint", "transaction_count"],
    "rug_pull": ["total_deposit_usd", "withdraw_ratio", "exit_hours"],
    "pump_and_dump": ["pump_token", "pump_buyers", "pump_expected_buyers", "pump_dump_hours"],
    "fan_in_collector": ["fan_in", "fan_out", "received_median_usd", "repeated_amount_share"],
}


def _clip01(x: np.ndarray) -> np.ndarray:
    return np.clip(x, 0.0, 1.0)


def _col(frame: pd.DataFrame, name: str) -> np.ndarray:
    return floats(frame, name)


def wash_trading(w: pd.DataFrame, cfg: PatternsConfig) -> np.ndarray:
    regular = 1 - _clip01(_col(w, "gap_cv") / 0.5)
    score = 0.4 * _col(w, "round_trip_share") + 0.35 * _col(w, "repeated_size_share") + 0.25 * regular
    return np.where(_col(w, "num_swaps") >= cfg.wash_trading.min_swaps, score, 0.0)


def mev_bot(w: pd.DataFrame, cfg: PatternsConfig) -> np.ndarray:
    score = (
        0.55 * _clip01(_col(w, "same_block_share") / 0.4)
        + 0.25 * _clip01(_col(w, "round_trip_share") / 0.4)
        + 0.2 * _clip01(_col(w, "tx_per_active_day") / 20)
    )
    return np.where(_col(w, "num_swaps") >= cfg.mev_bot.min_swaps, score, 0.0)


def sybil_cluster(w: pd.DataFrame, cfg: PatternsConfig) -> np.ndarray:
    peers = _col(w, "peer_wallets_same_fingerprint")
    eligible = (_col(w, "transaction_count") >= cfg.sybil_cluster.min_transactions) & (
        peers >= cfg.sybil_cluster.min_peers
    )
    return np.where(eligible, _clip01(0.5 + 0.1 * peers), 0.0)


def rug_pull(w: pd.DataFrame, cfg: PatternsConfig, hours: np.ndarray) -> np.ndarray:
    """hours: per wallet, the fastest deposit → next withdraw, in hours."""
    c = cfg.rug_pull
    deposit, ratio = _col(w, "total_deposit_usd"), _col(w, "withdraw_ratio")
    eligible = (deposit >= c.min_deposit_usd) & (ratio >= c.min_withdraw_ratio) & (hours <= c.max_exit_hours)
    score = (
        0.45
        + 0.2 * _clip01((ratio - c.min_withdraw_ratio) / (1 - c.min_withdraw_ratio + 1e-9))
        + 0.2 * _clip01(1 - hours / c.max_exit_hours)
        + 0.15 * _clip01(np.log10(np.maximum(deposit, 1) / c.min_deposit_usd) / 1.5)
    )
    return np.where(eligible, score, 0.0)


def fan_in_collector(w: pd.DataFrame, cfg: PatternsConfig) -> np.ndarray:
    """Many senders, few recipients: the shape of phishing and scam collection addresses."""
    c = cfg.fan_in_collector
    senders, ratio = _col(w, "fan_in"), _col(w, "fan_in_out_log_ratio")
    eligible = (senders >= c.min_senders) & (ratio >= c.min_fan_ratio)
    score = (
        0.6
        + 0.2 * _clip01(np.log(np.maximum(senders, 1) / c.min_senders) / np.log(10))
        + 0.2 * _clip01((ratio - c.min_fan_ratio) / 2)
    )
    return np.where(eligible, score, 0.0)


def dump_events(transactions: pd.DataFrame, wallets: pd.Index, cfg: PatternsConfig) -> tuple[DumpEvents, np.ndarray]:
    """Each wallet's buys of a token that it sold again within `dump_hours`, plus the timestamps of
    all swaps (the population's time span). The next sell of the same token comes from one binary
    search over packed (wallet·token, time) keys. Reads only each wallet's own transactions."""
    none = DumpEvents(np.zeros(0, np.int64), np.zeros(0, object), np.zeros(0, np.int64), np.zeros(0))
    tx = transactions[(transactions["action"] == "swap").to_numpy()]
    if tx.empty:
        return none, np.zeros(0, np.int64)
    wallet = wallet_positions(tx["wallet"], wallets)
    ts = tx["timestamp"].to_numpy(np.int64)
    tokens, names = _codes(stacked(tx["token_b_symbol"], tx["token_a_symbol"]))
    bought, sold = tokens[: len(tx)], tokens[len(tx) :]
    n_tokens = np.int64(max(len(names), 1))
    b, s = bought >= 0, sold >= 0
    b_wallet, b_token, b_ts = wallet[b], bought[b], ts[b]
    seconds, found = seconds_to_next_withdraw(
        b_wallet * n_tokens + b_token, b_ts, wallet[s] * n_tokens + sold[s], ts[s]
    )
    dumped = found & (seconds <= cfg.pump_and_dump.dump_hours * SECONDS_PER_HOUR)
    if not dumped.any():
        return none, ts
    token_names = np.asarray(names, dtype=object)[b_token[dumped]]
    return DumpEvents(b_wallet[dumped], token_names, b_ts[dumped], seconds[dumped]), ts


def pump_totals(transactions: pd.DataFrame, wallets: pd.Index, cfg: PatternsConfig) -> PumpTotals:
    """These wallets' contribution to the population-wide pump-and-dump counts."""
    events, swap_ts = dump_events(transactions, wallets, cfg)
    return PumpTotals.of(events, swap_ts, int(cfg.pump_and_dump.window_hours * SECONDS_PER_HOUR))


def pump_and_dump_evidence(
    transactions: pd.DataFrame, wallets: pd.Index, cfg: PatternsConfig, totals: PumpTotals | None = None
) -> pd.DataFrame:
    """Per wallet: a buy of one token that it sold again within `dump_hours` ("buy-and-dump"), made
    together with many other wallets doing the same in one window — many more than that token's
    usual rate of buy-and-dumps per window.

    Counting buy-and-dumps (not plain buys) keeps the baseline low for busy tokens, so the detector
    does not go blind as the population grows. Wallets are counted per (token, window) on two grids
    offset by half a window, so a burst straddling a boundary is still seen whole on one of them.
    `totals`: the population's counts (core.cross_wallet) when these wallets are one partition of it.
    """
    c = cfg.pump_and_dump
    n = len(wallets)
    out = frame_of(
        {
            "pump_confidence": np.zeros(n),
            "pump_buyers": np.zeros(n),
            "pump_expected_buyers": np.zeros(n),
            "pump_dump_hours": np.full(n, np.nan),
            "pump_token": np.full(n, "", dtype=object),
        },
        wallets,
    )
    # A window never holds more wallets than have buy-and-dumps: with fewer than min_wallets of them
    # (a request of a few wallets), nothing can be hit and the search is skipped.
    if totals is None and n < c.min_wallets:
        return out
    events, swap_ts = dump_events(transactions, wallets, cfg)
    if len(events.ts) == 0 or (totals is None and len(np.unique(events.wallet)) < c.min_wallets):
        return out
    window = int(c.window_hours * SECONDS_PER_HOUR)
    if totals is None:
        expected, wallets_in_window = local_expected_and_in_window(events, swap_ts, window)
    else:
        expected, wallets_in_window = totals.expected_and_in_window(events, window)
    threshold = np.maximum(c.min_wallets, c.lift * expected)
    hit = wallets_in_window >= threshold
    if not hit.any():
        return out
    confidence = (
        0.55
        + 0.25 * _clip01(wallets_in_window[hit] / (2 * threshold[hit]))
        + 0.2 * _clip01(1 - events.seconds[hit] / (c.dump_hours * SECONDS_PER_HOUR))
    )
    hit_wallet = events.wallet[hit]
    order = np.lexsort((confidence, hit_wallet))  # per wallet, its strongest event last
    pick = order[np.r_[hit_wallet[order][1:] != hit_wallet[order][:-1], True]]
    rows = hit_wallet[pick]
    out.iloc[rows, out.columns.get_loc("pump_confidence")] = confidence[pick]
    out.iloc[rows, out.columns.get_loc("pump_buyers")] = wallets_in_window[hit][pick]
    out.iloc[rows, out.columns.get_loc("pump_expected_buyers")] = expected[hit][pick]
    out.iloc[rows, out.columns.get_loc("pump_dump_hours")] = events.seconds[hit][pick] / SECONDS_PER_HOUR
    out.iloc[rows, out.columns.get_loc("pump_token")] = events.token[hit][pick]
    return out


def detect_patterns(
    wallet_table: pd.DataFrame, transactions: pd.DataFrame, cfg: PatternsConfig, pump: PumpTotals | None = None
) -> pd.DataFrame:
    """Columns per pattern P: P_confidence, P_detected, P_counted, P_risk; plus pattern_risk (0–100),
    patterns_detected (counted detections) and the evidence columns (exit_hours, pump_*).
    `pump`: population-wide pump-and-dump totals when these wallets are one partition (core.cross_wallet)."""
    w = wallet_table
    exit_hours = np.expm1(_col(w, "min_deposit_to_withdraw_hours_log"))
    out: dict[str, np.ndarray] = {"exit_hours": exit_hours}
    pump = pump_and_dump_evidence(transactions, w.index, cfg, pump)
    confidences = {
        "wash_trading": wash_trading(w, cfg),
        "mev_bot": mev_bot(w, cfg),
        "sybil_cluster": sybil_cluster(w, cfg),
        "rug_pull": rug_pull(w, cfg, exit_hours),
        "pump_and_dump": pump["pump_confidence"].to_numpy(),
        "fan_in_collector": fan_in_collector(w, cfg),
    }
    weighted_risk = np.zeros(len(w))
    weight = np.zeros(len(w))
    counted_total = np.zeros(len(w), dtype=np.int64)
    for name in PATTERNS:
        conf = confidences[name]
        risk = np.where(conf > 0, getattr(cfg, name).risk * (0.5 + 0.5 * conf), 0.0)
        counted = conf > cfg.min_confidence
        out[f"{name}_confidence"] = conf
        out[f"{name}_detected"] = conf >= 0.5
        out[f"{name}_counted"] = counted
        out[f"{name}_risk"] = risk
        weighted_risk += np.where(counted, conf * risk, 0.0)
        weight += np.where(counted, conf, 0.0)
        counted_total += counted
    out["pattern_risk"] = np.divide(weighted_risk, weight, out=np.zeros(len(w)), where=weight > 0)
    out["patterns_detected"] = counted_total
    out["pattern_summary"] = _summaries(out, len(w))
    out.update({name: np.asarray(column(pump, name)) for name in pump.columns if name != "pump_confidence"})
    return frame_of(out, w.index)


def _summary_texts() -> np.ndarray:
    """The summary of every combination of counted patterns (bit i: PATTERNS[i]), written once."""
    texts = []
    for combo in range(1 << len(PATTERNS)):
        found = [name.replace("_", " ") for i, name in enumerate(PATTERNS) if combo >> i & 1]
        texts.append("Detected " + ", ".join(found) if found else "No manipulation pattern detected")
    return np.asarray(texts, dtype=object)


_SUMMARY_TEXTS = _summary_texts()


def _summaries(out: dict[str, np.ndarray], n: int) -> np.ndarray:
    """A readable summary per wallet, via one lookup per combination of counted patterns."""
    bits = np.zeros(n, dtype=np.int64)
    for i, name in enumerate(PATTERNS):
        bits |= out[f"{name}_counted"].astype(np.int64) << i
    return _SUMMARY_TEXTS[bits]
