"""Seeded synthetic wallets: realistic DEX behaviour per archetype, as messages plus labels.

It is the demo data and the benchmark data. Transactions are drawn column-wise per archetype (numpy,
no per-wallet loop); only the final JSON assembly walks the rows. Amounts are heavy-tailed
(log-normal per wallet and per transaction), timing is bursty (a mixture of short and long gaps),
pools follow a Zipf-like popularity.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson
import pandas as pd

from defi_scoring.core import synthetic_lending, synthetic_transfers
from defi_scoring.core.synthetic_draws import address_pool, positions, within_wallet_cumsum

DEFAULT_END_TIME = 1_735_689_600  # 2025-01-01T00:00:00Z: generated histories end before this
DAY = 86_400

TOKENS = [
    # symbol, price USD, decimals
    ("USDC", 1.0, 6),
    ("USDT", 1.0, 6),
    ("DAI", 1.0, 18),
    ("FRAX", 1.0, 18),
    ("LUSD", 1.0, 18),
    ("WETH", 3400.0, 18),
    ("WBTC", 64000.0, 8),
    ("stETH", 3390.0, 18),
    ("rETH", 3700.0, 18),
    ("LINK", 14.5, 18),
    ("UNI", 7.8, 18),
    ("AAVE", 160.0, 18),
    ("MKR", 1900.0, 18),
    ("CRV", 0.45, 18),
    ("LDO", 1.9, 18),
    ("ARB", 0.8, 18),
    ("OP", 1.7, 18),
    ("PEPE", 0.0000105, 18),
    ("SHIB", 0.000018, 18),
    ("COMP", 55.0, 18),
    ("SNX", 2.1, 18),
    ("BAL", 2.6, 18),
    ("GRT", 0.17, 18),
    ("ENS", 21.0, 18),
    ("RPL", 12.0, 18),
    ("FXS", 2.4, 18),
    ("CVX", 2.9, 18),
    ("1INCH", 0.36, 18),
    ("SUSHI", 0.75, 18),
    ("YFI", 6200.0, 18),
    ("APE", 1.1, 18),
    ("IMX", 1.4, 18),
]
PROTOCOLS = [
    ("uniswap_v3", "Uniswap V3"),
    ("uniswap_v2", "Uniswap V2"),
    ("sushiswap", "SushiSwap"),
    ("curve", "Curve"),
    ("balancer_v2", "Balancer V2"),
]
FEE_TIERS = ["0.01%", "0.05%", "0.3%", "1%"]


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
    universe: _Universe
    transfers: pd.DataFrame  # synthetic_transfers.TRANSFER_COLUMNS
    lending: pd.DataFrame  # synthetic_lending.LENDING_COLUMNS

    @property
    def transaction_count(self) -> int:
        """Transactions of every protocol type."""
        return len(self.transactions) + len(self.transfers) + len(self.lending)


class _Universe:
    """Tokens and pools shared by every wallet of one generation (deterministic from the seed)."""

    def __init__(self, rng: np.random.Generator, n_pools: int = 400) -> None:
        self.symbols = np.array([t[0] for t in TOKENS], dtype=object)
        self.prices = np.array([t[1] for t in TOKENS])
        self.decimals = np.array([t[2] for t in TOKENS])
        self.token_addresses = np.array([_hex(rng, 40) for _ in TOKENS], dtype=object)
        popularity = 1.0 / np.arange(1, len(TOKENS) + 1) ** 0.9
        popularity /= popularity.sum()
        token0 = rng.choice(len(TOKENS), n_pools, p=popularity)
        token1 = rng.choice(len(TOKENS), n_pools, p=popularity)
        same = token0 == token1
        token1[same] = (token1[same] + 1 + rng.integers(0, len(TOKENS) - 1, same.sum())) % len(TOKENS)
        self.pool_token0, self.pool_token1 = token0, token1
        self.pool_ids = np.array([_hex(rng, 40) for _ in range(n_pools)], dtype=object)
        protocol = rng.integers(0, len(PROTOCOLS), n_pools)
        fee = rng.integers(0, len(FEE_TIERS), n_pools)
        self.pool_protocol = np.array([PROTOCOLS[p][0] for p in protocol], dtype=object)
        self.pool_names = np.array(
            [
                f"{PROTOCOLS[p][1]} {self.symbols[a]}/{self.symbols[b]} {FEE_TIERS[f]}"
                for p, a, b, f in zip(protocol, token0, token1, fee)
            ],
            dtype=object,
        )
        pool_popularity = 1.0 / np.arange(1, n_pools + 1) ** 1.1
        self.pool_popularity = pool_popularity / pool_popularity.sum()

    def favourite_pools(self, rng: np.random.Generator, n_wallets: int, k: int) -> np.ndarray:
        return rng.choice(len(self.pool_ids), (n_wallets, k), p=self.pool_popularity)


def _hex(rng: np.random.Generator, digits: int) -> str:
    return "0x" + rng.bytes(digits // 2).hex()


def _first_seen(rng: np.random.Generator, n: int, end_time: int) -> np.ndarray:
    """First activity uniform over the two years before `end_time`, whatever the archetype, so a
    time-based holdout sees the same mix as training. Later transactions past `end_time` are cut."""
    return end_time - rng.uniform(7 * DAY, 730 * DAY, n)


def _bursty_gaps(rng: np.random.Generator, n: int, short_s: float, long_s: float, p_short: float) -> np.ndarray:
    short = rng.exponential(short_s, n)
    long = rng.lognormal(np.log(long_s), 1.0, n)
    return np.where(rng.random(n) < p_short, short, long)


def _frame(
    wallet: np.ndarray,
    counts: np.ndarray,
    start: np.ndarray,
    gaps: np.ndarray,
    action: np.ndarray,
    pool: np.ndarray,
    direction: np.ndarray,
    usd: np.ndarray,
) -> pd.DataFrame:
    gaps = np.where(positions(counts) == 0, 0.0, gaps)  # gap = time since the wallet's previous tx
    timestamp = np.repeat(start, counts) + within_wallet_cumsum(counts, gaps)
    return pd.DataFrame(
        {
            "wallet_index": wallet,
            "position": positions(counts),
            "timestamp": timestamp.astype(np.int64),
            "action": action,
            "pool": pool,
            "direction": direction,
            "usd": usd,
        }
    )


def _pick_pools(rng, universe, counts, k, wallet_local):
    fav = universe.favourite_pools(rng, len(counts), k)
    return fav[wallet_local, rng.integers(0, k, counts.sum())]


def _generic(
    rng,
    universe,
    counts,
    end_time,
    *,
    probs,
    scale_mu,
    scale_sigma,
    tx_sigma,
    short_s,
    long_s,
    p_short,
    k_pools,
    first_is_deposit,
):
    n_w, n_tx = len(counts), int(counts.sum())
    local = np.repeat(np.arange(n_w), counts)
    gaps = _bursty_gaps(rng, n_tx, short_s, long_s, p_short)
    start = _first_seen(rng, n_w, end_time)
    action = rng.choice(np.array(["swap", "deposit", "withdraw"], dtype=object), n_tx, p=probs)
    if first_is_deposit:
        action[positions(counts) == 0] = "deposit"
    scale = rng.lognormal(scale_mu, scale_sigma, n_w)
    usd = scale[local] * rng.lognormal(0.0, tx_sigma, n_tx)
    usd = np.where(action == "withdraw", usd * rng.uniform(0.2, 0.7, n_tx), usd)
    pool = _pick_pools(rng, universe, counts, k_pools, local)
    return _frame(local, counts, start, gaps, action, pool, rng.integers(0, 2, n_tx), usd)


def _wash_trader(rng, universe, n_w, end_time):
    counts = rng.integers(30, 90, n_w)
    n_tx, local = int(counts.sum()), np.repeat(np.arange(n_w), counts)
    period = rng.uniform(120, 1800, n_w)
    gaps = period[local] * rng.uniform(0.97, 1.03, n_tx)
    start = _first_seen(rng, n_w, end_time)
    size = rng.lognormal(np.log(20_000), 1.0, n_w)
    usd = size[local] * rng.uniform(0.998, 1.002, n_tx)
    pool = _pick_pools(rng, universe, counts, 1, local)
    direction = positions(counts) % 2  # A→B, B→A, A→B, …
    return _frame(local, counts, start, gaps, np.full(n_tx, "swap", dtype=object), pool, direction, usd)


def _mev_bot(rng, universe, n_w, end_time):
    pairs = rng.integers(40, 120, n_w)
    counts = pairs * 2
    n_tx, local = int(counts.sum()), np.repeat(np.arange(n_w), counts)
    pos = positions(counts)
    gaps = np.where(
        pos % 2 == 1, rng.integers(0, 13, n_tx), rng.exponential(900, n_tx)
    )  # back-run within a block or two
    start = _first_seen(rng, n_w, end_time)
    usd = rng.lognormal(np.log(15_000), 1.2, n_tx)
    usd[pos % 2 == 1] = usd[np.flatnonzero(pos % 2 == 1) - 1] * rng.uniform(1.001, 1.01, int((pos % 2 == 1).sum()))
    pool_draw = _pick_pools(rng, universe, counts, 12, local)
    pool = np.where(pos % 2 == 1, np.roll(pool_draw, 1), pool_draw)  # sell in the pool it bought in
    direction = pos % 2
    return _frame(local, counts, start, gaps, np.full(n_tx, "swap", dtype=object), pool, direction, usd)


def _rug_puller(rng, universe, n_w, end_time):
    n_swaps = rng.integers(0, 4, n_w)
    n_dep = rng.integers(1, 4, n_w)
    n_wd = rng.integers(1, 3, n_w)
    counts = n_swaps + n_dep + n_wd
    n_tx, local = int(counts.sum()), np.repeat(np.arange(n_w), counts)
    pos = positions(counts)
    swaps_end, dep_end = n_swaps[local], (n_swaps + n_dep)[local]
    action = np.where(pos < swaps_end, "swap", np.where(pos < dep_end, "deposit", "withdraw")).astype(object)
    gaps = np.select(
        [pos < swaps_end, pos < dep_end, pos == dep_end],
        [rng.exponential(3 * 3600, n_tx), rng.exponential(600, n_tx), rng.uniform(3600, 36 * 3600, n_tx)],
        default=rng.exponential(300, n_tx),
    )
    start = _first_seen(rng, n_w, end_time)
    deposit_each = rng.lognormal(np.log(150_000), 1.0, n_w)
    pulled = rng.uniform(0.92, 1.0, n_w)
    usd = np.select(
        [action == "swap", action == "deposit"],
        [rng.lognormal(np.log(2_000), 0.8, n_tx), deposit_each[local] * rng.uniform(0.9, 1.1, n_tx)],
        default=(deposit_each * n_dep * pulled / n_wd)[local],
    )
    pool_one = universe.favourite_pools(rng, n_w, 1)[:, 0]
    pool = np.where(action == "swap", _pick_pools(rng, universe, counts, 3, local), pool_one[local])
    return _frame(local, counts, start, gaps, action, pool, rng.integers(0, 2, n_tx), usd)


def _sybil_farm(rng, universe, n_w, end_time):
    """Clusters of 5–20 wallets that replay one template with small jitter (airdrop farming)."""
    sizes = []
    while sum(sizes) < n_w:
        sizes.append(int(rng.integers(5, 21)))
    sizes[-1] -= sum(sizes) - n_w
    sizes = np.array([s for s in sizes if s > 0])
    n_clusters = len(sizes)
    template = _generic(
        rng,
        universe,
        rng.integers(4, 12, n_clusters),
        end_time,
        probs=[0.6, 0.3, 0.1],
        scale_mu=np.log(300),
        scale_sigma=0.5,
        tx_sigma=0.3,
        short_s=120,
        long_s=3 * DAY,
        p_short=0.3,
        k_pools=3,
        first_is_deposit=False,
    )
    cluster_of_wallet = np.repeat(np.arange(n_clusters), sizes)
    t_counts = np.bincount(template["wallet_index"], minlength=n_clusters)
    t_start = np.concatenate([[0], np.cumsum(t_counts)[:-1]])
    counts = t_counts[cluster_of_wallet]
    rows = np.repeat(t_start[cluster_of_wallet], counts) + positions(counts)
    out = template.iloc[rows].reset_index(drop=True)
    out["wallet_index"] = np.repeat(np.arange(n_w), counts)
    shift = rng.integers(30, 1800, n_w)  # each member runs the script a little later
    out["timestamp"] = out["timestamp"].to_numpy() + np.repeat(shift, counts) + rng.integers(0, 60, len(out))
    out["usd"] = out["usd"].to_numpy() * rng.uniform(0.98, 1.02, len(out))
    return out, cluster_of_wallet


def _pump_dumper(rng, universe, n_w, end_time):
    """Groups of 8–30 wallets that buy one pool's token within an hour of each other, then sell it
    within a day, on top of a few ordinary swaps (pump-and-dump participation)."""
    sizes = []
    while sum(sizes) < n_w:
        sizes.append(int(rng.integers(8, 31)))
    sizes[-1] -= sum(sizes) - n_w
    sizes = np.array([s for s in sizes if s > 0])
    group = np.repeat(np.arange(len(sizes)), sizes)
    background = _generic(
        rng,
        universe,
        rng.integers(2, 8, n_w),
        end_time,
        probs=[1.0, 0.0, 0.0],
        scale_mu=np.log(1_500),
        scale_sigma=1.0,
        tx_sigma=0.8,
        short_s=3600,
        long_s=10 * DAY,
        p_short=0.2,
        k_pools=4,
        first_is_deposit=False,
    )
    pump_time = end_time - rng.uniform(3 * DAY, 700 * DAY, len(sizes))
    small_cap = np.flatnonzero(universe.pool_token1 >= 12)  # pools whose token1 is a thinly traded token
    pump_pool = rng.choice(small_cap, len(sizes))
    buy = pump_time[group] + rng.uniform(0, 3600, n_w)
    sell = buy + rng.uniform(1800, 24 * 3600, n_w)
    size = rng.lognormal(np.log(3_000), 0.8, n_w)
    # direction 0 sends token0 and receives token1: buy token1, then sell it back (direction 1)
    pumps = pd.DataFrame(
        {
            "wallet_index": np.r_[np.arange(n_w), np.arange(n_w)],
            "timestamp": np.r_[buy, sell].astype(np.int64),
            "action": "swap",
            "pool": np.r_[pump_pool[group], pump_pool[group]],
            "direction": np.r_[np.zeros(n_w, int), np.ones(n_w, int)],
            "usd": np.r_[size, size * rng.uniform(1.1, 1.6, n_w)],
        }
    )
    out = pd.concat([background, pumps], ignore_index=True).sort_values(["wallet_index", "timestamp"], kind="stable")
    out["position"] = positions(np.bincount(out["wallet_index"], minlength=n_w))
    return out.reset_index(drop=True)[background.columns]


def generate_wallets(
    n_wallets: int, seed: int = 42, end_time: int = DEFAULT_END_TIME, protocol_types: Collection[str] | None = None
) -> SyntheticData:
    """Draw `n_wallets` wallets in the archetype mix of ARCHETYPES, reproducibly from `seed`;
    `protocol_types` keeps only the archetypes of those types (e.g. {"transfers"} for a transfers mix)."""
    rng = np.random.default_rng(seed)
    universe = _Universe(rng)
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
        if archetype.name == "whale_lp":
            tx = _generic(
                rng,
                universe,
                rng.integers(5, 30, n),
                end_time,
                probs=[0.25, 0.55, 0.2],
                scale_mu=np.log(400_000),
                scale_sigma=1.0,
                tx_sigma=0.8,
                short_s=3600,
                long_s=20 * DAY,
                p_short=0.2,
                k_pools=6,
                first_is_deposit=True,
            )
        elif archetype.name == "long_term_lp":
            tx = _generic(
                rng,
                universe,
                rng.integers(3, 20, n),
                end_time,
                probs=[0.3, 0.55, 0.15],
                scale_mu=np.log(8_000),
                scale_sigma=1.0,
                tx_sigma=0.7,
                short_s=1800,
                long_s=30 * DAY,
                p_short=0.15,
                k_pools=3,
                first_is_deposit=True,
            )
        elif archetype.name == "active_trader":
            tx = _generic(
                rng,
                universe,
                rng.integers(20, 80, n),
                end_time,
                probs=[0.9, 0.07, 0.03],
                scale_mu=np.log(3_000),
                scale_sigma=1.2,
                tx_sigma=1.0,
                short_s=900,
                long_s=2 * DAY,
                p_short=0.4,
                k_pools=10,
                first_is_deposit=False,
            )
        elif archetype.name == "casual":
            tx = _generic(
                rng,
                universe,
                rng.integers(1, 9, n),
                end_time,
                probs=[0.8, 0.15, 0.05],
                scale_mu=np.log(400),
                scale_sigma=1.0,
                tx_sigma=0.8,
                short_s=3600,
                long_s=15 * DAY,
                p_short=0.2,
                k_pools=3,
                first_is_deposit=False,
            )
        elif archetype.name == "wash_trader":
            tx = _wash_trader(rng, universe, n, end_time)
        elif archetype.name == "mev_bot":
            tx = _mev_bot(rng, universe, n, end_time)
        elif archetype.name == "rug_puller":
            tx = _rug_puller(rng, universe, n, end_time)
        elif archetype.name == "pump_dumper":
            tx = _pump_dumper(rng, universe, n, end_time)
        else:
            tx, cluster = _sybil_farm(rng, universe, n, end_time)
            cluster = cluster + offset  # cluster ids unique across the generation
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
    transactions = pd.concat(frames, ignore_index=True) if frames else _no_dex_transactions()
    transactions = transactions[transactions["timestamp"].to_numpy() <= end_time]
    transfers, lending = (
        _cut_and_reindex(other["transfers"], synthetic_transfers.TRANSFER_COLUMNS, end_time, order),
        _cut_and_reindex(other["lending"], synthetic_lending.LENDING_COLUMNS, end_time, order),
    )
    return SyntheticData(
        wallets.iloc[order].reset_index(drop=True), _reindex(transactions, order), universe, transfers, lending
    )


def _no_dex_transactions() -> pd.DataFrame:
    empty = np.array([], dtype=np.int64)
    return pd.DataFrame(
        {
            "wallet_index": empty,
            "position": empty,
            "timestamp": empty,
            "action": np.array([], dtype=object),
            "pool": empty,
            "direction": empty,
            "usd": np.array([], dtype=float),
        }
    )


class _Counterparties:
    """Addresses several wallets deal with: exchanges, one mixer contract, liquidation bots."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.services = address_pool(rng, 25)
        self.mixer = address_pool(rng, 1)[0]
        self.liquidators = address_pool(rng, 5)


def _section_1b(rng, universe, counterparties: _Counterparties, name: str, n: int, end_time: int) -> pd.DataFrame:
    start = _first_seen(rng, n, end_time)
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


def iter_messages(data: SyntheticData) -> Iterator[dict]:
    """One wallet-transactions message (CONTRACTS.md §1, §1b) per wallet, with its full history: a
    section per protocol type the wallet used, in wallet order."""
    addresses = data.wallets["wallet_address"].tolist()
    streams = [
        ("dexes", _dex_records(data, addresses)),
        ("transfers", _transfer_records(data)),
        ("lending", _lending_records(data, len(data.transactions) + len(data.transfers))),
    ]
    heads = {name: next(stream, None) for name, stream in streams}
    for wallet, address in enumerate(addresses):
        sections = []
        for name, stream in streams:
            head = heads[name]
            if head is not None and head[0] == wallet:
                sections.append({"protocolType": name, "transactions": head[1]})
                heads[name] = next(stream, None)
        if sections:
            yield {"wallet_address": address, "data": sections}


def _grouped(wallets: list[int], records: Iterator[dict]) -> Iterator[tuple[int, list[dict]]]:
    """(wallet index, its records) for rows sorted by wallet."""
    current, txs = -1, []
    for wallet, record in zip(wallets, records):
        if wallet != current:
            if current >= 0:
                yield current, txs
            current, txs = wallet, []
        txs.append(record)
    if current >= 0:
        yield current, txs


def _dex_records(data: SyntheticData, addresses: list[str]) -> Iterator[tuple[int, list[dict]]]:
    tx = data.transactions
    universe = data.universe
    pool = tx["pool"].to_numpy()
    direction = tx["direction"].to_numpy()
    t0, t1 = universe.pool_token0[pool], universe.pool_token1[pool]
    is_swap = tx["action"].to_numpy() == "swap"
    token_a = np.where(is_swap & (direction == 1), t1, t0)
    token_b = np.where(is_swap & (direction == 1), t0, t1)
    usd = tx["usd"].to_numpy()
    usd_a = np.where(is_swap, usd, usd / 2)
    usd_b = np.where(is_swap, usd * 0.997, usd / 2)  # swap slippage; LP split 50/50
    wallets = tx["wallet_index"].to_numpy().tolist()
    columns = zip(
        wallets,
        tx["timestamp"].to_numpy().tolist(),
        tx["action"].tolist(),
        pool.tolist(),
        token_a.tolist(),
        token_b.tolist(),
        np.round(usd_a, 2).tolist(),
        np.round(usd_b, 2).tolist(),
    )
    symbols, prices = universe.symbols.tolist(), universe.prices.tolist()
    scales = (10.0**universe.decimals).tolist()
    token_addresses, pool_ids = universe.token_addresses.tolist(), universe.pool_ids.tolist()
    pool_names, protocols = universe.pool_names.tolist(), universe.pool_protocol.tolist()

    def token(i: int, usd_value: float) -> dict:
        return {
            "amount": usd_value / prices[i] * scales[i],
            "amountUSD": usd_value,
            "address": token_addresses[i],
            "symbol": symbols[i],
        }

    def records() -> Iterator[dict]:
        for serial, (wallet, ts, action, p, a, b, ua, ub) in enumerate(columns, start=1):
            record = {
                "document_id": f"{serial:024x}",
                "action": action,
                "timestamp": ts,
                "caller": addresses[wallet],
                "protocol": protocols[p],
                "poolId": pool_ids[p],
                "poolName": pool_names[p],
            }
            if action == "swap":
                record["tokenIn"], record["tokenOut"] = token(a, ua), token(b, ub)
            else:
                record["token0"], record["token1"] = token(a, ua), token(b, ub)
            yield record

    return _grouped(wallets, records())


def _transfer_records(data: SyntheticData) -> Iterator[tuple[int, list[dict]]]:
    tx = data.transfers
    wallets = tx["wallet_index"].to_numpy().tolist()
    first_serial = len(data.transactions) + 1
    columns = zip(
        tx["timestamp"].to_numpy().tolist(),
        tx["action"].tolist(),
        tx["counterparty"].tolist(),
        tx["token"].to_numpy().tolist(),
        tx["amount"].to_numpy().tolist(),
        np.round(tx["usd"].to_numpy(), 2).tolist(),
        tx["method"].tolist(),
        tx["failed"].to_numpy().tolist(),
        tx["gas_used"].to_numpy().tolist(),
        tx["gas_price"].to_numpy().tolist(),
    )

    def records() -> Iterator[dict]:
        for serial, (ts, action, other, token, amount, usd, method, failed, gas_used, gas_price) in enumerate(
            columns, start=first_serial
        ):
            record = {
                "document_id": f"{serial:024x}",
                "action": action,
                "timestamp": ts,
                "counterparty": other,
                "token": synthetic_transfers.transfer_record(data.universe, token, amount, usd),
            }
            if method is not None:
                record["method"] = method
            if action == "send":
                record["failed"] = failed
                record["gasUsed"] = int(gas_used)
                record["gasPrice"] = int(gas_price)
            yield record

    return _grouped(wallets, records())


def _lending_records(data: SyntheticData, serial_offset: int) -> Iterator[tuple[int, list[dict]]]:
    tx = data.lending
    wallets = tx["wallet_index"].to_numpy().tolist()
    universe = data.universe
    columns = zip(
        tx["timestamp"].to_numpy().tolist(),
        tx["action"].tolist(),
        tx["protocol"].tolist(),
        tx["token"].to_numpy().tolist(),
        np.round(tx["usd"].to_numpy(), 2).tolist(),
        tx["debt_token"].to_numpy().tolist(),
        np.round(tx["debt_usd"].to_numpy(), 2).tolist(),
        tx["liquidator"].tolist(),
    )

    def records() -> Iterator[dict]:
        for serial, (ts, action, protocol, token, usd, debt_token, debt_usd, liquidator) in enumerate(
            columns, start=serial_offset + 1
        ):
            record = {"document_id": f"{serial:024x}", "action": action, "timestamp": ts, "protocol": protocol}
            asset = synthetic_lending.lending_record(universe, token, usd)
            if action == "liquidation":
                record["collateral"] = asset
                record["debt"] = synthetic_lending.lending_record(universe, debt_token, debt_usd)
                record["liquidator"] = liquidator
            else:
                record["asset"] = asset
            yield record

    return _grouped(wallets, records())


def split_newest(message: dict, rng: np.random.Generator, max_new: int = 3) -> tuple[dict | None, dict]:
    """(older history, newest 1..max_new transactions) of a full-history message: what a stream of new
    transactions looks like once the older ones have been seen (None when everything is new). The
    newest are taken across the message's sections by timestamp."""
    rows = [(tx["timestamp"], i, tx) for i, section in enumerate(message["data"]) for tx in section["transactions"]]
    rows.sort(key=lambda row: row[0])
    new = min(len(rows), int(rng.integers(1, max_new + 1)))

    def rebuild(part: list) -> dict:
        sections = [
            {"protocolType": section["protocolType"], "transactions": [tx for _, j, tx in part if j == i]}
            for i, section in enumerate(message["data"])
        ]
        return {"wallet_address": message["wallet_address"], "data": [s for s in sections if s["transactions"]]}

    older = rebuild(rows[:-new]) if len(rows) > new else None
    return older, rebuild(rows[-new:])


CORRUPTIONS = [
    "truncated_json",
    "missing_wallet",
    "invalid_wallet",
    "timestamp_ms",
    "negative_usd",
    "unknown_action",
    "empty_data",
    "lending_only",
]


def corrupt(message: dict, kind: str) -> bytes:
    """A realistic bad version of a message (used to show that bad input is accounted for)."""
    message = orjson.loads(orjson.dumps(message))
    txs = message["data"][0]["transactions"]
    if kind == "truncated_json":
        raw = orjson.dumps(message)
        return raw[: len(raw) // 2]
    if kind == "missing_wallet":
        del message["wallet_address"]
    elif kind == "invalid_wallet":
        message["wallet_address"] = message["wallet_address"][:-3]
    elif kind == "timestamp_ms":
        for tx in txs:
            tx["timestamp"] *= 1000
    elif kind == "negative_usd":
        for tx in txs:
            valued = tx.get("tokenIn") or tx.get("token0") or tx.get("token") or tx.get("asset") or tx["collateral"]
            valued["amountUSD"] = -1.0
    elif kind == "unknown_action":
        for tx in txs:
            tx["action"] = "stake"
    elif kind == "empty_data":
        message["data"] = []
    elif kind == "lending_only":
        message["data"] = [{"protocolType": "lending", "transactions": [{"document_id": "l1", "action": "borrow"}]}]
    return orjson.dumps(message)


def write_dataset(
    data: SyntheticData,
    messages_path: Path,
    labels_path: Path | None = None,
    bad_fraction: float = 0.0,
    seed: int = 42,
    progress=None,
) -> dict[str, int]:
    """Write JSONL messages (optionally with a share of corrupted lines) and a labels CSV."""
    rng = np.random.default_rng(seed + 1)
    messages_path.parent.mkdir(parents=True, exist_ok=True)
    bad_lines = 0
    with open(messages_path, "wb") as out:
        for i, message in enumerate(iter_messages(data)):
            if bad_fraction and rng.random() < bad_fraction:
                out.write(corrupt(message, CORRUPTIONS[bad_lines % len(CORRUPTIONS)]) + b"\n")
                bad_lines += 1
            else:
                out.write(orjson.dumps(message) + b"\n")
            if progress is not None and i % 1000 == 0:
                progress(i)
    if labels_path is not None:
        labels_path.parent.mkdir(parents=True, exist_ok=True)
        data.wallets.to_csv(labels_path, index=False)
    return {"wallets": len(data.wallets), "transactions": data.transaction_count, "bad_lines": bad_lines}
