"""Seeded synthetic wallets: the archetype mix and one generation of it (DEX, transfers, lending).

It is the demo data and the benchmark data. The archetypes' generators live in `synthetic_dex`,
`synthetic_transfers` and `synthetic_lending`; `synthetic_messages` turns a generation into messages,
corrupted lines and files (re-exported here). Transactions are drawn column-wise per archetype (numpy,
no per-wallet loop); only the final JSON assembly walks the rows. Amounts are heavy-tailed
(log-normal per wallet and per transaction), timing is bursty (a mixture of short and long gaps),
pools follow a Zipf-like popularity. Rug pullers create pools of their own, which benign traders of the
same generation buy into before the pull (their labels stay benign).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

import numpy as np
import pandas as pd

from defi_scoring.core import synthetic_lending, synthetic_transfers
from defi_scoring.core.synthetic_dex import Universe, dex_wallets, no_dex_transactions, rug_pull_victims
from defi_scoring.core.synthetic_draws import address_pool, first_seen, positions
from defi_scoring.core.synthetic_messages import CORRUPTIONS, corrupt, iter_messages, split_newest, write_dataset

__all__ = [
    "ARCHETYPES",
    "CORRUPTIONS",
    "DEFAULT_END_TIME",
    "PROTOCOL_TYPES",
    "RISKY_ARCHETYPES",
    "SyntheticData",
    "corrupt",
    "generate_wallets",
    "iter_messages",
    "split_newest",
    "write_dataset",
]

DEFAULT_END_TIME = 1_735_689_600  # 2025-01-01T00:00:00Z: generated histories end before this


@dataclass(frozen=True)
class Archetype:
    name: str
    share: float
    is_risky: bool
    protocol_type: str = "dexes"  # the §1 / §1b section its history is made of


ARCHETYPES = [
    Archetype("whale_lp", 0.04, False),
    Archetype("long_term_lp", 0.18, False),
    Archetype("active_trader", 0.18, False),
    Archetype("casual", 0.29, False),
    Archetype("wash_trader", 0.06, True),
    Archetype("mev_bot", 0.06, True),
    Archetype("sybil_farm", 0.10, True),
    Archetype("rug_puller", 0.06, True),
    Archetype("pump_dumper", 0.03, True),
    # transfers and lending (CONTRACTS.md §1b)
    Archetype("transfer_user", 0.07, False, "transfers"),
    Archetype("exchange_hub", 0.01, False, "transfers"),
    Archetype("drainer", 0.03, True, "transfers"),
    Archetype("mixer_user", 0.02, True, "transfers"),
    Archetype("prudent_borrower", 0.04, False, "lending"),
    Archetype("liquidated_borrower", 0.02, True, "lending"),
]
ARCHETYPE_NAMES = [a.name for a in ARCHETYPES]
PROTOCOL_TYPES = ("dexes", "transfers", "lending")
RISKY_ARCHETYPES = {a.name for a in ARCHETYPES if a.is_risky}
RUG_PULL_VICTIMS = ("long_term_lp", "active_trader", "casual")  # benign DEX wallets that buy into a puller's pool
# The pattern detector (core.patterns) each risky archetype is generated to trip.
OWN_DETECTOR = {
    "wash_trader": "wash_trading",
    "mev_bot": "mev_bot",
    "sybil_farm": "sybil_cluster",
    "rug_puller": "rug_pull",
    "pump_dumper": "pump_and_dump",
    "drainer": "fan_in_collector",
}


@dataclass
class SyntheticData:
    """Column-wise transactions (one row per transaction) plus per-wallet labels."""

    wallets: pd.DataFrame  # wallet_address, archetype, is_risky, cluster_id
    transactions: pd.DataFrame  # dexes: wallet_index, position, timestamp, action, pool, direction, usd
    universe: Universe
    transfers: pd.DataFrame  # synthetic_transfers.TRANSFER_COLUMNS
    lending: pd.DataFrame  # synthetic_lending.LENDING_COLUMNS

    @property
    def transaction_count(self) -> int:
        """Transactions of every protocol type."""
        return len(self.transactions) + len(self.transfers) + len(self.lending)


def generate_wallets(
    n_wallets: int, seed: int = 42, end_time: int = DEFAULT_END_TIME, protocol_types: Collection[str] | None = None
) -> SyntheticData:
    """Draw `n_wallets` wallets in the archetype mix of ARCHETYPES, reproducibly from `seed`;
    `protocol_types` keeps only the archetypes of those types (e.g. {"transfers"} for a transfers mix)."""
    rng = np.random.default_rng(seed)
    universe = Universe(rng)
    keep = set(PROTOCOL_TYPES if protocol_types is None else protocol_types)
    unknown = keep - set(PROTOCOL_TYPES)
    if unknown:
        raise ValueError(f"unknown protocol types {sorted(unknown)}; choose from {PROTOCOL_TYPES}")
    shares = np.array([a.share if a.protocol_type in keep else 0.0 for a in ARCHETYPES])
    per_type = rng.multinomial(n_wallets, shares / shares.sum())
    frames, wallet_rows, offset = [], [], 0
    other = {"transfers": [], "lending": []}
    counterparties = _Counterparties(rng)
    for archetype, n in zip(ARCHETYPES, per_type):
        if n == 0:
            continue
        cluster = np.full(n, -1)
        if archetype.protocol_type != "dexes":
            section = _section_1b(rng, universe, counterparties, archetype.name, n, end_time)
            section["wallet_index"] = section["wallet_index"].to_numpy() + offset
            other[archetype.protocol_type].append(section)
            wallet_rows.append(
                pd.DataFrame({"archetype": archetype.name, "is_risky": archetype.is_risky, "cluster_id": cluster})
            )
            offset += n
            continue
        tx, clusters = dex_wallets(rng, universe, archetype.name, n, end_time)
        if clusters is not None:
            cluster = clusters + offset  # cluster ids unique across the generation
        tx["wallet_index"] = tx["wallet_index"].to_numpy() + offset
        frames.append(tx)
        wallet_rows.append(
            pd.DataFrame({"archetype": archetype.name, "is_risky": archetype.is_risky, "cluster_id": cluster})
        )
        offset += n
    wallets = pd.concat(wallet_rows, ignore_index=True)
    order = rng.permutation(len(wallets))  # interleave archetypes in the output
    addresses = np.array([_checksum_like(rng.bytes(20).hex(), rng) for _ in range(len(wallets))], dtype=object)
    wallets.insert(0, "wallet_address", addresses)
    transactions = pd.concat(frames, ignore_index=True) if frames else no_dex_transactions()
    # rug pulls need victims: benign traders of this generation buy into the pullers' pools (a spawned
    # generator, so the wallets' order and addresses for a seed do not depend on them)
    candidates = np.flatnonzero(wallets["archetype"].isin(RUG_PULL_VICTIMS).to_numpy())
    victims = rug_pull_victims(rng.spawn(1)[0], universe, transactions, candidates)
    transactions = pd.concat([transactions, victims], ignore_index=True)
    transactions = transactions[transactions["timestamp"].to_numpy() <= end_time]
    transfers, lending = (
        _cut_and_reindex(other["transfers"], synthetic_transfers.TRANSFER_COLUMNS, end_time, order),
        _cut_and_reindex(other["lending"], synthetic_lending.LENDING_COLUMNS, end_time, order),
    )
    return SyntheticData(
        wallets.iloc[order].reset_index(drop=True), _reindex(transactions, order), universe, transfers, lending
    )


class _Counterparties:
    """Addresses several wallets deal with: exchanges, one mixer contract, liquidation bots."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.services = address_pool(rng, 25)
        self.mixer = address_pool(rng, 1)[0]
        self.liquidators = address_pool(rng, 5)


def _section_1b(rng, universe, counterparties: _Counterparties, name: str, n: int, end_time: int) -> pd.DataFrame:
    start = first_seen(rng, n, end_time)
    if name == "transfer_user":
        return synthetic_transfers.transfer_users(rng, universe, counterparties.services, n, start)
    if name == "exchange_hub":
        return synthetic_transfers.exchange_hubs(rng, universe, n, start)
    if name == "drainer":
        return synthetic_transfers.drainers(rng, universe, n, start)
    if name == "mixer_user":
        return synthetic_transfers.mixer_users(rng, universe, counterparties.services, counterparties.mixer, n, start)
    if name == "prudent_borrower":
        return synthetic_lending.prudent_borrowers(rng, universe, n, start)
    return synthetic_lending.liquidated_borrowers(rng, universe, counterparties.liquidators, n, start)


def _cut_and_reindex(frames: list[pd.DataFrame], columns: list[str], end_time: int, order: np.ndarray) -> pd.DataFrame:
    if not frames:
        return pd.DataFrame({c: [] for c in columns})
    rows = pd.concat(frames, ignore_index=True)
    rows = rows[rows["timestamp"].to_numpy() <= end_time]
    new_index = np.empty_like(order)
    new_index[order] = np.arange(len(order))
    rows["wallet_index"] = new_index[rows["wallet_index"].to_numpy()]
    return rows.sort_values(["wallet_index", "timestamp"], kind="stable").reset_index(drop=True)


def _reindex(transactions: pd.DataFrame, order: np.ndarray) -> pd.DataFrame:
    new_index = np.empty_like(order)
    new_index[order] = np.arange(len(order))
    transactions["wallet_index"] = new_index[transactions["wallet_index"].to_numpy()]
    transactions = transactions.sort_values(["wallet_index", "timestamp"], kind="stable").reset_index(drop=True)
    transactions["position"] = positions(np.bincount(transactions["wallet_index"], minlength=len(order)))
    return transactions


def _checksum_like(hex40: str, rng: np.random.Generator) -> str:
    """Mixed-case address (as wallets often arrive) — scoring compares case-insensitively."""
    mask = rng.integers(0, 2, 40)
    return "0x" + "".join(c.upper() if m and c.isalpha() else c for c, m in zip(hex40, mask))
