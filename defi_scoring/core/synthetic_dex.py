"""Synthetic DEX wallets: the token and pool universe of one generation and one generator per DEX
archetype, each drawing all its wallets' transactions column-wise (no per-wallet loop)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from defi_scoring.core.synthetic_draws import DAY, first_seen, positions, within_wallet_cumsum

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
_LAUNCH_BASES = np.array([[t[0] for t in TOKENS].index(s) for s in ("WETH", "USDC", "USDT")])  # a new token's pair


class Universe:
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
        self.n_listed = n_pools  # pools 0…n_listed−1 are the ones wallets pick favourites from; later: launched

    def favourite_pools(self, rng: np.random.Generator, n_wallets: int, k: int) -> np.ndarray:
        return rng.choice(self.n_listed, (n_wallets, k), p=self.pool_popularity)

    def launch_pools(self, rng: np.random.Generator, base: np.ndarray) -> np.ndarray:
        """New pools, one per entry of `base` (token indexes), each pairing it with a token launched with the
        pool — what a rug puller creates. Appended after the listed pools (nobody picks them as favourites);
        returns their pool indexes."""
        n = len(base)
        letters, length = rng.integers(65, 91, (n, 5)).astype(np.uint8), rng.integers(3, 6, n)
        stems = pd.Series([row[:k].tobytes().decode() for row, k in zip(letters, length)], dtype=object)
        taken = (stems.duplicated() | stems.isin(self.symbols)).to_numpy()  # symbols unique in the universe
        symbols = np.where(taken, stems + pd.Series(np.arange(n)).astype(str), stems).astype(object)
        tokens = len(self.symbols) + np.arange(n)
        self.symbols = np.r_[self.symbols, symbols]
        self.prices = np.r_[self.prices, rng.lognormal(np.log(0.01), 2.0, n)]
        self.decimals = np.r_[self.decimals, np.full(n, 18)]
        self.token_addresses = np.r_[self.token_addresses, np.array([_hex(rng, 40) for _ in range(n)], dtype=object)]
        protocol = rng.choice(np.array([1, 2]), n, p=[0.7, 0.3])  # Uniswap V2 and its forks: anyone can list
        pools = len(self.pool_ids) + np.arange(n)
        self.pool_token0, self.pool_token1 = np.r_[self.pool_token0, base], np.r_[self.pool_token1, tokens]
        self.pool_ids = np.r_[self.pool_ids, np.array([_hex(rng, 40) for _ in range(n)], dtype=object)]
        self.pool_protocol = np.r_[self.pool_protocol, np.array([PROTOCOLS[p][0] for p in protocol], dtype=object)]
        names = [f"{PROTOCOLS[p][1]} {self.symbols[a]}/{s} 0.3%" for p, a, s in zip(protocol, base, symbols)]
        self.pool_names = np.r_[self.pool_names, np.array(names, dtype=object)]
        return pools


def _hex(rng: np.random.Generator, digits: int) -> str:
    return "0x" + rng.bytes(digits // 2).hex()


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
    start = first_seen(rng, n_w, end_time)
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
    start = first_seen(rng, n_w, end_time)
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
    start = first_seen(rng, n_w, end_time)
    usd = rng.lognormal(np.log(15_000), 1.2, n_tx)
    usd[pos % 2 == 1] = usd[np.flatnonzero(pos % 2 == 1) - 1] * rng.uniform(1.001, 1.01, int((pos % 2 == 1).sum()))
    pool_draw = _pick_pools(rng, universe, counts, 12, local)
    pool = np.where(pos % 2 == 1, np.roll(pool_draw, 1), pool_draw)  # sell in the pool it bought in
    direction = pos % 2
    return _frame(local, counts, start, gaps, np.full(n_tx, "swap", dtype=object), pool, direction, usd)


def _rug_puller(rng, universe, n_w, end_time):
    """After 0–3 ordinary swaps, creates a pool for a token of its own, provides its liquidity (1–3 deposits)
    and withdraws 92–100% of it 1–36 hours later — the drained pool's victims come from rug_pull_victims."""
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
    start = first_seen(rng, n_w, end_time)
    deposit_each = rng.lognormal(np.log(150_000), 1.0, n_w)
    pulled = rng.uniform(0.92, 1.0, n_w)
    swap_usd = rng.lognormal(np.log(2_000), 0.8, n_tx)
    deposit_usd = np.where(action == "deposit", deposit_each[local] * rng.uniform(0.9, 1.1, n_tx), 0.0)
    deposited = np.bincount(local, weights=deposit_usd, minlength=n_w)
    withdraw_usd = (deposited * pulled / n_wd)[local]  # together: `pulled` of what it deposited
    usd = np.select([action == "swap", action == "deposit"], [swap_usd, deposit_usd], withdraw_usd)
    # its liquidity goes into a pool it creates (victims join it in rug_pull_victims); the base token is drawn
    # like the favourite pool this once was, the rest from a spawned generator: later archetypes' draws unchanged
    base = _LAUNCH_BASES[rng.choice(len(_LAUNCH_BASES), n_w, p=[0.7, 0.2, 0.1])]
    pool_one = universe.launch_pools(rng.spawn(1)[0], base)
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
    small_cap = np.flatnonzero(universe.pool_token1[: universe.n_listed] >= 12)  # token1 thinly traded
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


# The benign DEX archetypes share one generator. Per archetype: transactions per wallet [low, high),
# P(swap, deposit, withdraw), typical wallet size in USD and its log-spread, per-transaction log-spread,
# short and long gap scales (s), share of short gaps, favourite pools, whether the first action is a deposit.
_BENIGN_FIELDS = (
    "counts", "probs", "size_usd", "scale_sigma", "tx_sigma", "short_s", "long_s", "p_short", "k_pools",
    "first_is_deposit",
)  # fmt: skip
_BENIGN = {
    name: dict(zip(_BENIGN_FIELDS, row))
    for name, row in {
        "whale_lp": ((5, 30), [0.25, 0.55, 0.2], 400_000, 1.0, 0.8, 3600, 20 * DAY, 0.2, 6, True),
        "long_term_lp": ((3, 20), [0.3, 0.55, 0.15], 8_000, 1.0, 0.7, 1800, 30 * DAY, 0.15, 3, True),
        "active_trader": ((20, 80), [0.9, 0.07, 0.03], 3_000, 1.2, 1.0, 900, 2 * DAY, 0.4, 10, False),
        "casual": ((1, 9), [0.8, 0.15, 0.05], 400, 1.0, 0.8, 3600, 15 * DAY, 0.2, 3, False),
    }.items()
}
_RISKY = {"wash_trader": _wash_trader, "mev_bot": _mev_bot, "rug_puller": _rug_puller, "pump_dumper": _pump_dumper}


def dex_wallets(
    rng: np.random.Generator, universe: Universe, name: str, n: int, end_time: int
) -> tuple[pd.DataFrame, np.ndarray | None]:
    """The DEX transactions of `n` wallets of archetype `name` (wallet_index 0…n−1), plus each wallet's
    cluster id for the archetype that comes in clusters (sybil farms), else None."""
    if name in _BENIGN:
        params = dict(_BENIGN[name])
        low, high = params.pop("counts")
        params["scale_mu"] = np.log(params.pop("size_usd"))
        return _generic(rng, universe, rng.integers(low, high, n), end_time, **params), None
    if name == "sybil_farm":
        return _sybil_farm(rng, universe, n, end_time)
    return _RISKY[name](rng, universe, n, end_time), None


def rug_pull_victims(
    rng: np.random.Generator, universe: Universe, transactions: pd.DataFrame, candidates: np.ndarray
) -> pd.DataFrame:
    """The other side of each rug pull: 3–10 of the `candidates` (wallet indexes) buy the launched token while
    the creator's liquidity is in its pool, and 0–2 of them add a little liquidity too — the wallets the
    pull leaves holding a drained pool, which is what the rug-pull detector looks for. `transactions`: the
    generation's DEX rows, the rug pullers' among them. Rows in the DEX columns (positions set later)."""
    pool = transactions["pool"].to_numpy()
    launched = transactions[(pool >= universe.n_listed) & (transactions["action"] != "swap").to_numpy()]
    deposit = launched["action"].to_numpy() == "deposit"
    per_pool = pd.DataFrame(
        {
            "pool": launched["pool"].to_numpy(),
            "opened": np.where(deposit, launched["timestamp"], np.iinfo(np.int64).max),
            "pulled": np.where(deposit, np.iinfo(np.int64).max, launched["timestamp"]),
            "size": np.where(deposit, launched["usd"], 0.0),
        }
    ).groupby("pool", sort=True)
    pools = per_pool.agg(opened=("opened", "min"), pulled=("pulled", "min"), size=("size", "sum"))
    pools = pools[pools["pulled"] < np.iinfo(np.int64).max]
    n_pools, m = len(pools), len(candidates)
    if n_pools == 0 or m == 0:
        return no_dex_transactions()
    victims = np.minimum(rng.integers(3, 11, n_pools), m)
    adders = np.minimum(rng.integers(0, 3, n_pools), victims)
    # consecutive runs of one shuffle: distinct within a pool, spread over the candidates across pools
    first = np.cumsum(victims) - victims
    of_pool = np.repeat(np.arange(n_pools), victims)
    wallet = rng.permutation(candidates)[(first[of_pool] + positions(victims)) % m]
    opened, pulled = pools["opened"].to_numpy()[of_pool], pools["pulled"].to_numpy()[of_pool]
    buy = opened + 60 + rng.random(len(wallet)) * np.maximum(pulled - opened - 180, 0)
    n_buys = len(wallet)
    adds = np.flatnonzero(positions(victims) < adders[of_pool])
    add_time = buy[adds] + rng.random(len(adds)) * np.maximum(pulled[adds] - 60 - buy[adds], 0)
    add_usd = pools["size"].to_numpy()[of_pool[adds]] * rng.uniform(0.01, 0.05, len(adds))
    return pd.DataFrame(
        {
            "wallet_index": np.r_[wallet, wallet[adds]].astype(np.int64),
            "position": np.zeros(n_buys + len(adds), np.int64),
            "timestamp": np.r_[buy, add_time].astype(np.int64),
            "action": np.array(["swap"] * n_buys + ["deposit"] * len(adds), dtype=object),
            "pool": np.r_[pools.index.to_numpy()[of_pool], pools.index.to_numpy()[of_pool[adds]]].astype(np.int64),
            "direction": np.zeros(n_buys + len(adds), np.int64),  # swaps: base token in, the launched token out
            "usd": np.r_[rng.lognormal(np.log(1_000), 0.9, n_buys), add_usd],
        }
    )


def no_dex_transactions() -> pd.DataFrame:
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
