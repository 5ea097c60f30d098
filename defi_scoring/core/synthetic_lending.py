"""Seeded synthetic `lending` wallets (CONTRACTS.md §1b): prudent borrowers and over-levered
borrowers that get liquidated, drawn column-wise like the DEX archetypes.

A prudent borrower supplies collateral, borrows well under half of it and repays on a regular
schedule; a liquidated borrower borrows close to the limit, barely repays, and loses collateral to
liquidators (a small set of shared liquidation bots).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from defi_scoring.core.synthetic_draws import address_pool, positions, times_from_gaps

DAY = 86_400
LENDING_PROTOCOLS = np.array(["aave_v2", "aave_v3", "compound_v2"], dtype=object)
COLLATERAL_SYMBOLS = ["WETH", "WBTC", "stETH"]
DEBT_SYMBOLS = ["USDC", "USDT", "DAI"]

LENDING_COLUMNS = [
    "wallet_index",
    "timestamp",
    "action",  # deposit | withdraw | borrow | repay | liquidation
    "protocol",
    "token",  # the asset (a liquidation: the collateral seized)
    "usd",
    "debt_token",  # liquidation only
    "debt_usd",
    "liquidator",
]


def _token_ids(universe, symbols: list[str]) -> np.ndarray:
    index = {s: i for i, s in enumerate(universe.symbols)}
    return np.array([index[s] for s in symbols])


def _lending_frame(rng, universe, n_w, first_seen, counts_by_action, usd_by_action, gaps_by_action, liquidators):
    """Rows in the order of `counts_by_action` (action → per-wallet counts); amounts and gaps come from
    per-action functions of the rows' wallet indexes."""
    actions = list(counts_by_action)
    per_wallet = np.stack([counts_by_action[a] for a in actions], axis=1)  # wallets × actions
    counts = per_wallet.sum(axis=1)
    n = int(counts.sum())
    local = np.repeat(np.arange(n_w), counts)
    bounds = np.cumsum(per_wallet, axis=1)[local]
    pos = positions(counts)
    kind = (pos[:, None] >= bounds).sum(axis=1)  # which action block the row falls in
    action = np.array(actions, dtype=object)[kind]
    usd = np.zeros(n)
    gaps = np.zeros(n)
    for i, name in enumerate(actions):
        rows = kind == i
        usd[rows] = usd_by_action[name](local[rows])
        gaps[rows] = gaps_by_action[name](local[rows])
    collateral = _token_ids(universe, COLLATERAL_SYMBOLS)[rng.integers(0, len(COLLATERAL_SYMBOLS), n_w)][local]
    debt = _token_ids(universe, DEBT_SYMBOLS)[rng.integers(0, len(DEBT_SYMBOLS), n_w)][local]
    is_debt_action = np.isin(action, ["borrow", "repay"])
    is_liquidation = action == "liquidation"
    return pd.DataFrame(
        {
            "wallet_index": local,
            "timestamp": times_from_gaps(first_seen, counts, gaps),
            "action": action,
            "protocol": LENDING_PROTOCOLS[rng.integers(0, len(LENDING_PROTOCOLS), n_w)][local],
            "token": np.where(is_debt_action, debt, collateral),
            "usd": usd,
            "debt_token": np.where(is_liquidation, debt, -1),
            "debt_usd": np.where(is_liquidation, usd * rng.uniform(0.85, 0.95, n), np.nan),
            "liquidator": np.where(is_liquidation, liquidators[rng.integers(0, len(liquidators), n)], None),
        }
    )[LENDING_COLUMNS]


def prudent_borrowers(rng, universe, n_w: int, first_seen: np.ndarray) -> pd.DataFrame:
    supplied = rng.lognormal(np.log(20_000), 1.2, n_w)
    deposits, borrows = rng.integers(1, 4, n_w), rng.integers(1, 4, n_w)
    repays, withdraws = rng.integers(2, 9, n_w), rng.integers(0, 2, n_w)
    borrowed = supplied * rng.uniform(0.1, 0.45, n_w)
    period = rng.uniform(14, 45, n_w) * DAY
    return _lending_frame(
        rng,
        universe,
        n_w,
        first_seen,
        {"deposit": deposits, "borrow": borrows, "repay": repays, "withdraw": withdraws},
        {
            "deposit": lambda w: supplied[w] / deposits[w],
            "borrow": lambda w: borrowed[w] / borrows[w],
            "repay": lambda w: borrowed[w] * rng.uniform(1.0, 1.06, len(w)) / repays[w],
            "withdraw": lambda w: supplied[w] * rng.uniform(0.8, 1.0, len(w)),
        },
        {
            "deposit": lambda w: rng.exponential(3600, len(w)),
            "borrow": lambda w: rng.exponential(2 * DAY, len(w)),
            "repay": lambda w: period[w] * rng.uniform(0.9, 1.1, len(w)),
            "withdraw": lambda w: rng.exponential(5 * DAY, len(w)),
        },
        address_pool(rng, 1),
    )


def liquidated_borrowers(rng, universe, liquidators: np.ndarray, n_w: int, first_seen: np.ndarray) -> pd.DataFrame:
    supplied = rng.lognormal(np.log(15_000), 1.2, n_w)
    deposits, borrows = rng.integers(1, 3, n_w), rng.integers(2, 6, n_w)
    repays, liquidations = rng.integers(0, 2, n_w), rng.integers(1, 4, n_w)
    borrowed = supplied * rng.uniform(0.75, 0.9, n_w)
    return _lending_frame(
        rng,
        universe,
        n_w,
        first_seen,
        {"deposit": deposits, "borrow": borrows, "repay": repays, "liquidation": liquidations},
        {
            "deposit": lambda w: supplied[w] / deposits[w],
            "borrow": lambda w: borrowed[w] / borrows[w],
            "repay": lambda w: borrowed[w] * rng.uniform(0.02, 0.1, len(w)),
            "liquidation": lambda w: supplied[w] * rng.uniform(0.1, 0.4, len(w)),
        },
        {
            "deposit": lambda w: rng.exponential(3600, len(w)),
            "borrow": lambda w: rng.exponential(DAY / 2, len(w)),
            "repay": lambda w: rng.exponential(5 * DAY, len(w)),
            "liquidation": lambda w: rng.exponential(8 * DAY, len(w)),
        },
        liquidators,
    )


def lending_record(universe, row_token: int, usd: float) -> dict:
    """The §1b `asset` object of one lending action."""
    price = float(universe.prices[row_token])
    return {
        "amount": usd / price,
        "amountUSD": usd,
        "address": universe.token_addresses[row_token],
        "symbol": universe.symbols[row_token],
    }
