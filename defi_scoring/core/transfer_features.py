"""Per-wallet features of `transfers` rows (CONTRACTS.md §1b), for all wallets at once.

What they look at: value and count balance in and out, counterparty diversity and concentration,
fan-in/fan-out, how fast received funds are forwarded (sweepers and drainers forward within minutes),
failed transactions, the mix of contract methods called, token diversity, round values, cadence and
burstiness, and the active span. Every feature is a difference of timestamps or a count, never a
timestamp itself, so shifting all times by a constant changes nothing (tested); prices of an era
(gas price levels) are not read either. One sort by (wallet, time) and group reductions; no loop
per wallet.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from defi_scoring.core.counterparty_pairs import CounterpartyPairs
from defi_scoring.core.feature_block import FeatureBlock
from defi_scoring.core.features import (
    SECONDS_PER_DAY,
    SECONDS_PER_HOUR,
    _codes,
    rows_of,
    rows_with,
    unique_inverse_counts,
    wallet_positions,
)
from defi_scoring.core.frame_columns import floats, frame_of, zeros_frame
from defi_scoring.core.sequence_stats import (
    distinct_count,
    gap_stats,
    group_cumsum,
    group_quantile,
    group_std,
    group_sum,
    relative_active_days,
    run_starts,
    safe_ratio,
    seconds_to_next,
    sorted_group_min_max,
    top_share_and_hhi,
    value_ranks,
    wallet_time_order,
)

PLAIN_TRANSFER_GAS = 21_000
SWEEP_HOURS = 1.0
METHOD_FAMILIES = {  # first matching family wins; matched on the lower-cased method name
    "token_transfer": re.compile(r"transfer"),
    "approve": re.compile(r"approv|permit"),
    "swap": re.compile(r"swap|trade|exchange|sell"),
    "acquire": re.compile(r"mint|claim|buy|purchase|contribute|invest"),
    "deposit_withdraw": re.compile(r"deposit|withdraw|stake|lock|redeem"),
}

READ_COLUMNS = [
    "wallet",
    "timestamp",
    "action",
    "amount_usd",
    "token_amount",
    "counterparty",
    "token_address",
    "failed",
    "gas_used",
    "method",
]
TRANSFER_FEATURES = [
    "transfer_count_log",
    "send_share",
    "log_received_usd",
    "log_sent_usd",
    "sent_to_received_ratio",
    "log_mean_received_usd",
    "log_mean_sent_usd",
    "max_receive_share",
    "counterparties_log",
    "counterparties_per_transfer",
    "fan_in_log",
    "fan_out_log",
    "fan_in_out_log_ratio",
    "counterparty_top_share",
    "counterparty_hhi",
    "reciprocal_counterparty_share",
    "self_transfer_share",
    "sweep_share_1h",
    "forward_hours_log_mean",
    "unforwarded_receive_share",
    "failed_share",
    "method_call_share",
    *(f"method_{family}_share" for family in METHOD_FAMILIES),
    "distinct_methods_log",
    "tokens_log",
    "native_share",
    "unpriced_share",
    "round_value_share",
    "zero_value_share",
    "plain_gas_share",
    "transfer_gap_hours_log",
    "transfer_gap_cv",
    "transfer_burstiness",
    "transfer_same_time_share",
    "transfer_same_minute_share",
    "active_span_days_log",
    "transfer_active_days_log",
    "transfers_per_active_day",
    "first_is_receive",
    "last_is_send",
    "log_median_received_usd",
    "log_median_sent_usd",
    "received_usd_log_std",
    "sent_usd_log_std",
    "sender_top_share",
    "recipient_top_share",
    "receives_per_sender_log",
    "sends_per_recipient_log",
    "first_send_delay_hours_log",
    "integer_value_share",
    "fine_value_share",
    "peak_balance_share",
    "transfer_gap_median_hours_log",
    "counterparties_per_active_day",
    "log_min_received_usd",
    "log_max_received_usd",
    "log_min_sent_usd",
    "log_max_sent_usd",
    "send_gap_hours_log",
    "receive_gap_hours_log",
    "net_flow_usd_signed_log",
    "token_receive_share",
    "token_send_share",
    "tokens_received_log",
    "tokens_sent_log",
    "gas_used_median_log",
    "receive_method_share",
    "send_method_share",
    "repeated_amount_share",
    "one_off_counterparty_share",
    "recipient_value_top_share",
    "emptying_send_share",
    "log_first_receive_usd",
]


def _method_family_codes(methods: pd.Series) -> tuple[np.ndarray, list[str]]:
    """Per row the index of its method family (len(families) = "other", -1 = no method); the regexes
    run once per distinct method name, not per row."""
    codes, names = _codes(methods)
    families = list(METHOD_FAMILIES)
    per_name = np.full(len(names), len(families), dtype=np.int64)
    for i, name in enumerate(str(v).lower() for v in names):
        for k, pattern in enumerate(METHOD_FAMILIES.values()):
            if pattern.search(name):
                per_name[i] = k
                break
    return np.where(codes >= 0, per_name[np.maximum(codes, 0)] if len(names) else -1, -1), families


def _round_value(amount: np.ndarray) -> np.ndarray:
    """Amount > 0 that is a multiple of 0.1 token units (1 ETH, 0.5 ETH, 100 USDT …)."""
    tenth = amount * 10
    return (amount > 0) & np.isfinite(amount) & (np.abs(tenth - np.round(tenth)) <= 1e-6 * np.maximum(tenth, 1))


def _same_address(first: pd.Series, second: pd.Series) -> np.ndarray:
    """Row-wise string equality of two address columns (a self-transfer), without hashing either's
    distinct values: categorical columns are compared as the strings their codes point at."""
    left, left_known = _address_objects(first)
    right, right_known = _address_objects(second)
    return np.asarray(left == right, dtype=bool) & left_known & right_known


def _address_objects(column: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(column.dtype, pd.CategoricalDtype):
        codes = column.cat.codes.to_numpy()
        categories = column.cat.categories.to_numpy(object)
        return (categories[codes] if len(categories) else np.full(len(codes), None, dtype=object)), codes >= 0
    values = column.to_numpy(object)
    return values, pd.notna(values)


def transfer_features(transactions: pd.DataFrame, wallets: pd.Index) -> pd.DataFrame:
    """One row per wallet of `wallets` (lower-cased addresses) with the columns of TRANSFER_FEATURES;
    wallets without transfers get zeros."""
    n = len(wallets)
    if "protocol_type" not in transactions.columns:
        return zeros_frame(wallets, TRANSFER_FEATURES)
    rows = rows_with(transactions, "protocol_type", "transfers")
    if not rows.any():
        return zeros_frame(wallets, TRANSFER_FEATURES)
    tx = transactions if rows.all() else rows_of(transactions, rows, READ_COLUMNS)  # (all: no copy)
    wallet = wallet_positions(tx["wallet"], wallets)
    ts = tx["timestamp"].to_numpy(np.int64)
    order = wallet_time_order(wallet, ts)
    wallet, ts = wallet[order], ts[order]
    is_send = (tx["action"].astype(object).to_numpy() == "send")[order]
    is_receive = ~is_send
    usd = tx["amount_usd"].to_numpy(float)[order]
    amount = tx["token_amount"].to_numpy(float)[order]
    counterparty, _ = _codes(tx["counterparty"])
    counterparty = counterparty[order]
    token, token_names = _codes(tx["token_address"])
    token = token[order]
    failed = tx["failed"].to_numpy(float)[order]
    gas = tx["gas_used"].to_numpy(float)[order]
    family, families = _method_family_codes(tx["method"])
    family = family[order]
    method, _ = _codes(tx["method"])
    method = method[order]

    count = np.bincount(wallet, minlength=n).astype(float)
    sends = np.bincount(wallet[is_send], minlength=n).astype(float)
    receives = count - sends
    received = group_sum(wallet[is_receive], usd[is_receive], n)
    sent = group_sum(wallet[is_send], usd[is_send], n)
    max_receive = np.zeros(n)
    np.maximum.at(max_receive, wallet[is_receive], usd[is_receive])

    # Counterparties: who, how many, how concentrated, in both directions (one table of pairs).
    pairs = CounterpartyPairs.of(wallet, counterparty, is_send, n)
    partners, fan_in, fan_out = pairs.partners, pairs.fan_in, pairs.fan_out
    top, hhi = top_share_and_hhi(pairs.owner, pairs.count, n)
    both = fan_in + fan_out - partners  # counterparties seen in both directions
    is_self = _same_address(tx["counterparty"], tx["wallet"])[order]

    # Received → forwarded: seconds from each receive to the wallet's next send.
    seconds, found = seconds_to_next(wallet[is_receive], ts[is_receive], wallet[is_send], ts[is_send])
    swept = found & (seconds <= SWEEP_HOURS * SECONDS_PER_HOUR)
    r_wallet = wallet[is_receive]
    forwarded = np.bincount(r_wallet[found], minlength=n).astype(float)
    forward_log_hours = group_sum(r_wallet[found], np.log1p(seconds[found] / SECONDS_PER_HOUR), n)

    known_failed = ~np.isnan(failed)
    known_gas = ~np.isnan(gas)
    with_method = method >= 0
    gaps = gap_stats(wallet, ts, n)
    first_ts, last_ts = np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64)
    starts = run_starts(wallet)
    ends = np.r_[starts[1:], len(wallet)] - 1
    first_ts[wallet[starts]], last_ts[wallet[ends]] = ts[starts], ts[ends]
    first_receive = np.zeros(n)
    first_receive[wallet[starts]] = is_receive[starts]
    last_send = np.zeros(n)
    last_send[wallet[ends]] = is_send[ends]
    active = relative_active_days(wallet, ts, n)

    out = FeatureBlock(TRANSFER_FEATURES, n)
    out.update(
        {
            "transfer_count_log": np.log1p(count),
            "send_share": safe_ratio(sends, count),
            "log_received_usd": np.log1p(received),
            "log_sent_usd": np.log1p(sent),
            "sent_to_received_ratio": np.clip(safe_ratio(sent, received, empty=np.where(sent > 0, 2.0, 0.0)), 0, 2),
            "log_mean_received_usd": np.log1p(safe_ratio(received, receives)),
            "log_mean_sent_usd": np.log1p(safe_ratio(sent, sends)),
            "max_receive_share": safe_ratio(max_receive, received),
            "counterparties_log": np.log1p(partners),
            "counterparties_per_transfer": safe_ratio(partners, count),
            "fan_in_log": np.log1p(fan_in),
            "fan_out_log": np.log1p(fan_out),
            "fan_in_out_log_ratio": np.log1p(fan_in) - np.log1p(fan_out),
            "counterparty_top_share": top,
            "counterparty_hhi": hhi,
            "reciprocal_counterparty_share": safe_ratio(both, partners),
            "self_transfer_share": safe_ratio(group_sum(wallet, is_self.astype(float), n), count),
            "sweep_share_1h": safe_ratio(np.bincount(r_wallet[swept], minlength=n).astype(float), receives),
            "forward_hours_log_mean": safe_ratio(forward_log_hours, forwarded),
            "unforwarded_receive_share": safe_ratio(receives - forwarded, receives),
            "failed_share": safe_ratio(
                group_sum(wallet[known_failed], failed[known_failed], n),
                np.bincount(wallet[known_failed], minlength=n).astype(float),
            ),
            "method_call_share": safe_ratio(group_sum(wallet, with_method.astype(float), n), count),
        }
    )
    calls = group_sum(wallet, with_method.astype(float), n)
    for k, name in enumerate(families):
        out[f"method_{name}_share"] = safe_ratio(group_sum(wallet, (family == k).astype(float), n), calls)
    out["distinct_methods_log"] = np.log1p(distinct_count(wallet, method, n))
    out["tokens_log"] = np.log1p(distinct_count(wallet, token, n))
    native = np.asarray(token_names, dtype=object) == "native"
    is_native = (token >= 0) & native[np.maximum(token, 0)] if len(token_names) else np.zeros(len(token), bool)
    out["native_share"] = safe_ratio(group_sum(wallet, is_native.astype(float), n), count)
    out["unpriced_share"] = safe_ratio(group_sum(wallet, ((usd == 0) & (amount > 0)).astype(float), n), count)
    out["round_value_share"] = safe_ratio(group_sum(wallet, _round_value(amount).astype(float), n), count)
    out["zero_value_share"] = safe_ratio(group_sum(wallet, (amount == 0).astype(float), n), count)
    out["plain_gas_share"] = safe_ratio(
        group_sum(wallet[known_gas], (gas[known_gas] == PLAIN_TRANSFER_GAS).astype(float), n),
        np.bincount(wallet[known_gas], minlength=n).astype(float),
    )
    out["transfer_gap_hours_log"] = np.log1p(gaps.mean / SECONDS_PER_HOUR)
    out["transfer_gap_cv"] = gaps.cv
    out["transfer_burstiness"] = gaps.burstiness
    out["transfer_same_time_share"] = gaps.share_within(0)
    out["transfer_same_minute_share"] = gaps.share_within(60)
    out["active_span_days_log"] = np.log1p((last_ts - first_ts) / SECONDS_PER_DAY)
    out["transfer_active_days_log"] = np.log1p(active)
    out["transfers_per_active_day"] = safe_ratio(count, np.maximum(active, 1))
    out["first_is_receive"] = first_receive
    out["last_is_send"] = last_send

    # Distributions: typical sizes and their spread, per direction.
    log_usd = np.log1p(usd)
    usd_ranks = value_ranks(log_usd)  # one sort of the values for both directions' medians
    for direction, rows in (("received", is_receive), ("sent", is_send)):
        out[f"log_median_{direction}_usd"] = group_quantile(wallet[rows], log_usd[rows], n, 0.5, usd_ranks[rows])
    out["received_usd_log_std"] = group_std(wallet[is_receive], log_usd[is_receive], n)
    out["sent_usd_log_std"] = group_std(wallet[is_send], log_usd[is_send], n)
    received_from, sent_to = ~pairs.directed_send, pairs.directed_send
    out["sender_top_share"] = top_share_and_hhi(
        pairs.directed_owner[received_from], pairs.directed_count[received_from], n
    )[0]
    out["recipient_top_share"] = top_share_and_hhi(pairs.directed_owner[sent_to], pairs.directed_count[sent_to], n)[0]
    out["receives_per_sender_log"] = np.log1p(safe_ratio(receives, fan_in))
    out["sends_per_recipient_log"] = np.log1p(safe_ratio(sends, fan_out))
    first_send = np.full(n, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(first_send, wallet[is_send], ts[is_send])
    delay = np.where(sends > 0, first_send - first_ts, last_ts - first_ts)
    out["first_send_delay_hours_log"] = np.log1p(np.maximum(delay, 0) / SECONDS_PER_HOUR)
    positive = (amount > 0) & np.isfinite(amount)
    out["integer_value_share"] = safe_ratio(
        group_sum(wallet, (positive & (amount == np.round(amount))).astype(float), n), count
    )
    thousandths = amount * 1000
    fine = positive & (np.abs(thousandths - np.round(thousandths)) > 1e-6 * np.maximum(thousandths, 1))
    out["fine_value_share"] = safe_ratio(group_sum(wallet, fine.astype(float), n), count)
    # Highest running balance (USD received − sent, in time order) against all that was received:
    # near 1 for wallets that collect and then empty at once, small for pass-through wallets.
    balance = group_cumsum(wallet, np.where(is_receive, usd, -usd))
    peak = np.zeros(n)
    np.maximum.at(peak, wallet, balance)
    out["peak_balance_share"] = np.clip(safe_ratio(peak, received), 0, 1)
    out["transfer_gap_median_hours_log"] = np.log1p(group_quantile(gaps.codes, gaps.gaps, n, 0.5) / SECONDS_PER_HOUR)
    out["counterparties_per_active_day"] = safe_ratio(partners, np.maximum(active, 1))

    # Per direction: extremes, cadence, tokens other than ETH, contract calls.
    for direction, rows in (("received", is_receive), ("sent", is_send)):
        out[f"log_min_{direction}_usd"], out[f"log_max_{direction}_usd"] = sorted_group_min_max(
            wallet[rows], log_usd[rows], n
        )
    for direction, rows in (("send", is_send), ("receive", is_receive)):
        direction_gaps = gap_stats(wallet[rows], ts[rows], n)
        out[f"{direction}_gap_hours_log"] = np.log1p(direction_gaps.mean / SECONDS_PER_HOUR)
        token_rows = rows & ~is_native & (token >= 0)
        out[f"token_{direction}_share"] = safe_ratio(
            group_sum(wallet, token_rows.astype(float), n), np.bincount(wallet[rows], minlength=n).astype(float)
        )
        out[f"{direction}_method_share"] = safe_ratio(
            group_sum(wallet, (rows & with_method).astype(float), n),
            np.bincount(wallet[rows], minlength=n).astype(float),
        )
    net = received - sent
    out["net_flow_usd_signed_log"] = np.sign(net) * np.log1p(np.abs(net))
    out["tokens_received_log"] = np.log1p(distinct_count(wallet[is_receive], token[is_receive], n))
    out["tokens_sent_log"] = np.log1p(distinct_count(wallet[is_send], token[is_send], n))
    out["gas_used_median_log"] = np.log1p(group_quantile(wallet[known_gas], gas[known_gas], n, 0.5))

    # Repetition and sweeping: the same amount again and again; contacts seen once; most of the value
    # sent to one address; sends that empty the running balance.
    amount_code = pd.factorize(np.where(positive, amount, -1.0))[0].astype(np.int64)
    _, inverse, pair_count = unique_inverse_counts(wallet * (int(amount_code.max()) + 1) + amount_code)
    repeated = positive & (pair_count[inverse] > 1)
    out["repeated_amount_share"] = safe_ratio(group_sum(wallet, repeated.astype(float), n), count)
    one_off = pairs.row_pair_count() == 1
    out["one_off_counterparty_share"] = safe_ratio(group_sum(wallet, one_off.astype(float), n), partners)
    out["recipient_value_top_share"] = pairs.top_value_share(is_send & (usd > 0), usd, n)
    before = balance - np.where(is_receive, usd, -usd)
    emptying = is_send & (usd > 0) & (usd >= 0.9 * np.maximum(before, 0)) & (before > 0)
    out["emptying_send_share"] = safe_ratio(group_sum(wallet, emptying.astype(float), n), sends)
    first_receive_usd = np.zeros(n)
    r_rows = np.flatnonzero(is_receive)
    r_first = r_rows[np.r_[True, wallet[r_rows][1:] != wallet[r_rows][:-1]]] if len(r_rows) else r_rows
    first_receive_usd[wallet[r_first]] = usd[r_first]
    out["log_first_receive_usd"] = np.log1p(first_receive_usd)
    return out.frame(wallets)


def transfer_summary(features: pd.DataFrame) -> pd.DataFrame:
    """Plain (not log-scaled) transfer quantities for messages and factor explanations."""

    def plain(column: str) -> np.ndarray:
        return np.expm1(floats(features, column))

    return frame_of(
        {
            "transfer_count": np.rint(plain("transfer_count_log")).astype(np.int64),
            "received_usd": plain("log_received_usd"),
            "sent_usd": plain("log_sent_usd"),
            "counterparties": np.rint(plain("counterparties_log")),
            "fan_in": np.rint(plain("fan_in_log")),
            "fan_out": np.rint(plain("fan_out_log")),
            "tokens": np.rint(plain("tokens_log")),
            "transfer_span_days": plain("active_span_days_log"),
            "received_median_usd": plain("log_median_received_usd"),
            "first_send_delay_hours": plain("first_send_delay_hours_log"),
        },
        index=features.index,
    )
