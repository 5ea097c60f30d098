"""Seeded synthetic `transfers` wallets (CONTRACTS.md §1b): plain users, exchange-like hubs, drainers
(phishing collectors) and mixer users, drawn column-wise like the DEX archetypes.

Shapes follow what the real labelled accounts show (docs/ml.md): normal wallets deal with a few
regular counterparties and exchanges, move exact computed amounts and often pass funds on soon after
they arrive; collectors receive from many one-off senders and sweep to one or two cash-out addresses;
mixer users move the same round denominations over and over.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from defi_scoring.core.synthetic_draws import address_pool, positions, times_from_gaps

DAY = 86_400
NATIVE = -1  # token index of ETH itself ("native" in the message)
ETH_USD = 3400.0

TRANSFER_COLUMNS = [
    "wallet_index",
    "timestamp",
    "action",  # send | receive
    "counterparty",
    "token",  # index into the universe's tokens, NATIVE for ETH
    "amount",  # token units
    "usd",
    "method",  # None for a plain transfer
    "failed",
    "gas_used",
    "gas_price",
]
CONTRACT_METHODS = np.array(["swapExactETHForTokens", "deposit", "multicall", "approve", "mint", "claim"], dtype=object)
MIXER_DENOMINATIONS_ETH = np.array([0.1, 1.0, 10.0])


def _priced(universe, token: np.ndarray, usd: np.ndarray) -> np.ndarray:
    """Token units worth `usd` (ETH for NATIVE)."""
    price = np.where(token == NATIVE, ETH_USD, universe.prices[np.maximum(token, 0)])
    return usd / price


def _frame(rng, counts, first_seen, gaps, is_receive, *, counterparty, token, amount, usd, method=None, failed=None):
    """The wallets' rows as TRANSFER_COLUMNS: times from the gaps, gas on sends; token sends call
    `transfer` unless `method` says otherwise."""
    n, is_send = len(is_receive), ~is_receive
    if method is None:
        method = np.where(is_send & (token != NATIVE), "transfer", None)
    gas_used, gas_price = _gas(rng, n, method, token, is_send)
    return pd.DataFrame(
        {
            "wallet_index": np.repeat(np.arange(len(counts)), counts),
            "timestamp": times_from_gaps(first_seen, counts, gaps),
            "action": np.where(is_receive, "receive", "send").astype(object),
            "counterparty": counterparty,
            "token": token,
            "amount": amount,
            "usd": usd,
            "method": method,
            "failed": np.zeros(n, dtype=bool) if failed is None else failed,
            "gas_used": gas_used,
            "gas_price": gas_price,
        }
    )[TRANSFER_COLUMNS]


def _gas(rng, n: int, method: np.ndarray, token: np.ndarray, is_send: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Gas of the wallet's own sends (a plain ETH transfer costs 21,000); receipts carry none."""
    plain = (token == NATIVE) & np.equal(method, None)
    used = np.where(plain, 21_000, rng.integers(35_000, 220_000, n)).astype(float)
    price = rng.lognormal(np.log(25e9), 0.6, n).round()
    return np.where(is_send, used, np.nan), np.where(is_send, price, np.nan)


def _user_tokens(rng, universe, n: int, native_share: float) -> np.ndarray:
    popular = np.arange(min(8, len(universe.prices)))
    weights = 1.0 / (popular + 1)
    return np.where(rng.random(n) < native_share, NATIVE, rng.choice(popular, n, p=weights / weights.sum()))


def transfer_users(rng, universe, services: np.ndarray, n_w: int, first_seen: np.ndarray) -> pd.DataFrame:
    """Ordinary wallets: a handful of contacts and exchanges, exact amounts, funds often used soon."""
    counts = rng.integers(5, 60, n_w)
    n = int(counts.sum())
    local = np.repeat(np.arange(n_w), counts)
    is_receive = (rng.random(n) < 0.45) | (positions(counts) == 0)
    contacts = address_pool(rng, n_w * 4).reshape(n_w, 4)
    counterparty = np.where(
        rng.random(n) < 0.55,
        services[rng.integers(0, len(services), n)],
        contacts[local, rng.integers(0, 4, n)],
    )
    token = _user_tokens(rng, universe, n, 0.6)
    usd = rng.lognormal(np.log(2_000), 1.0, n_w)[local] * rng.lognormal(0.0, 0.8, n)
    amount = _priced(universe, token, usd)
    typed = rng.random(n) < 0.2  # some amounts typed by hand: round numbers
    amount = np.where(typed, np.maximum(np.round(amount, 1), 0.1), amount)
    usd = np.where(typed, amount * np.where(token == NATIVE, ETH_USD, universe.prices[np.maximum(token, 0)]), usd)
    after_receive = np.r_[False, is_receive[:-1]]
    gaps = np.where(
        after_receive & (rng.random(n) < 0.6), rng.exponential(900, n), rng.lognormal(np.log(3 * DAY), 1.0, n)
    )
    is_send = ~is_receive
    method = np.where(is_send & (token == NATIVE) & (rng.random(n) < 0.35), rng.choice(CONTRACT_METHODS, n), None)
    method = np.where(is_send & (token != NATIVE), "transfer", method)
    failed = is_send & (rng.random(n) < 0.02)
    return _frame(
        rng,
        counts,
        first_seen,
        gaps,
        is_receive,
        counterparty=counterparty,
        token=token,
        amount=amount,
        usd=usd,
        method=method,
        failed=failed,
    )


def exchange_hubs(rng, universe, n_w: int, first_seen: np.ndarray) -> pd.DataFrame:
    """Exchange-like hot wallets: hundreds of one-off customers in both directions, all day long."""
    counts = rng.integers(150, 450, n_w)
    n = int(counts.sum())
    is_receive = rng.random(n) < 0.5
    counterparty = address_pool(rng, n)
    token = _user_tokens(rng, universe, n, 0.5)
    usd = rng.lognormal(np.log(1_500), 1.5, n)
    amount = _priced(universe, token, usd)
    gaps = rng.exponential(600, n)
    return _frame(
        rng, counts, first_seen, gaps, is_receive, counterparty=counterparty, token=token, amount=amount, usd=usd
    )


def drainers(rng, universe, n_w: int, first_seen: np.ndarray) -> pd.DataFrame:
    """Phishing collectors: many one-off victims pay in; most receipts are swept within minutes to
    one or two cash-out addresses."""
    receipts = rng.integers(40, 160, n_w)
    swept = rng.random(int(receipts.sum())) < 0.6
    per_event = 1 + swept  # a receipt, then maybe its sweep
    event_wallet = np.repeat(np.arange(n_w), receipts)
    counts = np.bincount(event_wallet, weights=per_event, minlength=n_w).astype(int)
    n = int(counts.sum())
    local = np.repeat(np.arange(n_w), counts)
    is_receive = np.ones(n, dtype=bool)
    sweep_rows = np.cumsum(per_event)[swept] - 1  # the row after each swept receipt
    is_receive[sweep_rows] = False
    event_of_row = np.repeat(np.arange(len(per_event)), per_event)
    victim_usd = rng.lognormal(np.log(900), 1.4, len(per_event))
    token_per_event = _user_tokens(rng, universe, len(per_event), 0.4)
    usd = victim_usd[event_of_row] * np.where(is_receive, 1.0, 0.985)
    token = token_per_event[event_of_row]
    amount = _priced(universe, token, usd)
    cash_out = address_pool(rng, n_w * 2).reshape(n_w, 2)
    counterparty = np.where(is_receive, address_pool(rng, n), cash_out[local, rng.integers(0, 2, n)])
    gaps = np.where(is_receive, rng.exponential(4 * 3600, n), rng.exponential(240, n))
    return _frame(
        rng, counts, first_seen, gaps, is_receive, counterparty=counterparty, token=token, amount=amount, usd=usd
    )


def mixer_users(rng, universe, services: np.ndarray, mixer: str, n_w: int, first_seen: np.ndarray) -> pd.DataFrame:
    """Funded from an exchange, then the same round ETH denominations into a mixer contract and back
    out through relayers."""
    counts = rng.integers(6, 30, n_w)
    n = int(counts.sum())
    local = np.repeat(np.arange(n_w), counts)
    pos = positions(counts)
    denomination = rng.choice(MIXER_DENOMINATIONS_ETH, n_w)[local]
    is_receive = (pos == 0) | (rng.random(n) < 0.35)
    relayers = address_pool(rng, 6)
    counterparty = np.where(
        pos == 0,
        services[rng.integers(0, len(services), n)],
        np.where(is_receive, relayers[rng.integers(0, 6, n)], mixer),
    )
    amount = np.where(pos == 0, denomination * rng.integers(3, 12, n) * 1.0 + rng.uniform(0, 0.05, n), denomination)
    amount = np.where(is_receive & (pos > 0), denomination * 0.995, amount)  # relayer fee
    usd = amount * ETH_USD
    token = np.full(n, NATIVE)
    gaps = rng.lognormal(np.log(6 * 3600), 1.2, n)
    is_send = ~is_receive
    method = np.where(is_send, "deposit", None)
    failed = is_send & (rng.random(n) < 0.03)
    return _frame(
        rng,
        counts,
        first_seen,
        gaps,
        is_receive,
        counterparty=counterparty,
        token=token,
        amount=amount,
        usd=usd,
        method=method,
        failed=failed,
    )


def transfer_record(universe, token: int, amount: float, usd: float) -> dict:
    """The §1b `token` object of one transfer."""
    if token == NATIVE:
        return {"amount": amount, "amountUSD": usd, "address": "native", "symbol": "ETH"}
    return {
        "amount": amount,
        "amountUSD": usd,
        "address": universe.token_addresses[token],
        "symbol": universe.symbols[token],
    }
