"""Per-wallet reference features (CONTRACTS.md §4), computed for all wallets at once.

Every feature is a group reduction over integer wallet codes (bincount, ufunc.at, a sorted-key
search), so the cost is a few passes over the transaction columns whatever the number of wallets.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from defi_scoring.core.frame_columns import SHORT_COLUMN, column, frame_of, shared_index

SECONDS_PER_DAY = 86_400.0
SECONDS_PER_HOUR = 3_600.0
STABLECOINS = frozenset({"USDC", "USDT", "DAI", "LUSD", "USDP", "TUSD", "FRAX"})
_TS_BITS = 33  # timestamps < 2**33 (year 2242): room to pack (wallet code, timestamp) in one int64

LP_FEATURES = [
    "total_deposit_usd",
    "total_withdraw_usd",
    "num_deposits",
    "num_withdraws",
    "withdraw_ratio",
    "account_age_days",
    "avg_holding_time_days",
    "unique_pools",
    "lp_frequency_score",
]
SWAP_FEATURES = [
    "total_swap_volume_usd",
    "num_swaps",
    "unique_pools_swapped",
    "avg_swap_size_usd",
    "token_diversity_score",
    "swap_frequency_score",
]


def _codes(values: pd.Series) -> tuple[np.ndarray, pd.Index]:
    """Integer codes (-1 for missing) and their labels; free for categorical columns. A categorical
    of one value on every row (a lone wallet's wallet, pool or counterparty) skips pandas' factorize
    (~0.1 ms a call): its codes are all 0 and its label that value, as factorize gives."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        categorical = values.array
        if len(categorical.categories) == 1 and len(categorical) and not categorical.codes.any():
            return np.zeros(len(categorical), dtype=np.int64), pd.Index(categorical[:1])
    codes, uniques = pd.factorize(values, sort=False)
    return np.asarray(codes, dtype=np.int64), pd.Index(uniques)


def codes_in_common(first: pd.Series, second: pd.Series) -> tuple[np.ndarray, np.ndarray, pd.Index]:
    """Codes of two columns in one code space (-1 = missing) and its labels. Categoricals are recoded
    through their few categories, not row by row (stacking two columns of millions costs ~0.1 s)."""
    if not (isinstance(first.dtype, pd.CategoricalDtype) and isinstance(second.dtype, pd.CategoricalDtype)):
        codes, names = _codes(stacked(first, second))
        return codes[: len(first)], codes[len(first) :], names
    first_values, second_values = first.array, second.array
    first_names, second_names = first_values.categories, second_values.categories
    if len(first_names) + len(second_names) <= SHORT_COLUMN:  # few labels: Python sets beat Index.union
        return _short_codes_in_common(first_values, second_values)
    names = first_names.union(second_names)

    def recoded(values: pd.Categorical) -> np.ndarray:
        lookup = np.append(names.get_indexer(values.categories), -1).astype(np.int64)  # code -1 → -1
        return lookup[values.codes]

    return recoded(first_values), recoded(second_values), names


def _short_codes_in_common(first: pd.Categorical, second: pd.Categorical) -> tuple[np.ndarray, np.ndarray, pd.Index]:
    """codes_in_common of two Categoricals with few categories: the labels pandas' Index.union gives
    (the first's when both are equal or the second is empty, the second's when the first is empty,
    else the sorted union), through a dict instead of Index set operations and hash tables (~0.2 ms a
    call whatever the size; one wallet's call makes two)."""
    a, b = first.categories, second.categories
    if a.equals(b) or not len(b):
        names = a
    elif not len(a):
        names = b
    else:
        try:
            names = shared_index(tuple(sorted(set(a.tolist()) | set(b.tolist()))))
        except TypeError:  # labels that do not compare: pandas' own union
            names = a.union(b)
    position = {label: i for i, label in enumerate(names.tolist())}

    def recoded(values: pd.Categorical) -> np.ndarray:
        lookup = np.array([position[label] for label in values.categories.tolist()] + [-1], dtype=np.int64)
        return lookup[values.codes]

    return recoded(first), recoded(second), names


def _any_codes(values: pd.Series) -> np.ndarray:
    """Integer codes (-1 for missing) in no particular order: a categorical's own, else factorised.
    For counting distinct values only (their order changes nothing)."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        return values.cat.codes.to_numpy().astype(np.int64)
    return _codes(values)[0]


def stacked(first: pd.Series, second: pd.Series) -> pd.Series:
    """Two columns end to end, kept categorical when both are (so factorising them is free)."""
    if isinstance(first.dtype, pd.CategoricalDtype) and isinstance(second.dtype, pd.CategoricalDtype):
        return pd.Series(pd.api.types.union_categoricals([first.array, second.array], ignore_order=True))
    return pd.concat([first.astype(object), second.astype(object)], ignore_index=True)


def wallet_positions(wallets: pd.Series, index: pd.Index) -> np.ndarray:
    """Row position in `index` of each transaction's wallet; via the categories when the column is
    categorical (a lookup over distinct wallets instead of hashing every transaction's string)."""
    if isinstance(wallets.dtype, pd.CategoricalDtype):
        lookup = index.get_indexer(wallets.cat.categories).astype(np.int64)
        return lookup[wallets.cat.codes.to_numpy()]
    return index.get_indexer(wallets.astype(object)).astype(np.int64)


def _group_min_max(codes: np.ndarray, values: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    lo = np.full(n, np.iinfo(np.int64).max, dtype=np.int64)
    hi = np.full(n, np.iinfo(np.int64).min, dtype=np.int64)
    np.minimum.at(lo, codes, values)
    np.maximum.at(hi, codes, values)
    return lo, hi


def sorted_unique(values: np.ndarray) -> np.ndarray:
    """np.unique(values) for non-negative integer keys: by marking them in an array of flags when the
    keys are dense enough (packed (wallet, pool/token/symbol) keys: one pass, no sort), else from one
    plain sort of the keys (NumPy's vectorised sort; np.unique's own path is several times slower)."""
    present = _presence(values)
    if present is not None:
        return np.flatnonzero(present)
    ordered = values if is_sorted(values) else np.sort(values)  # keys of (wallet, time)-ordered rows often are
    return ordered[np.r_[True, ordered[1:] != ordered[:-1]]]


def is_sorted(values: np.ndarray) -> bool:
    """Non-decreasing: one pass, much cheaper than the sort it saves."""
    return len(values) < 2 or bool((values[1:] >= values[:-1]).all())


def unique_inverse_counts(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """np.unique(values, return_inverse=True, return_counts=True), the same arrays, without np.unique."""
    present = _presence(values)
    if present is not None:
        uniques = np.flatnonzero(present)
        inverse = (np.cumsum(present) - 1)[values]
        return uniques, inverse, np.bincount(inverse, minlength=len(uniques))
    order = np.argsort(values)  # equal keys in any order: each gets its key's index either way
    ordered = values[order]
    first = np.r_[True, ordered[1:] != ordered[:-1]]
    inverse = np.empty(len(values), dtype=np.int64)
    inverse[order] = np.cumsum(first) - 1
    starts = np.flatnonzero(first)
    return ordered[first], inverse, np.diff(np.r_[starts, len(values)])


DENSE_KEYS_PER_ROW = 4  # flag array at most this many bytes per row (and at least 1 MB is always fine)


def _presence(values: np.ndarray) -> np.ndarray | None:
    """Flags of which keys occur, or None when the key range is too wide for that to pay off."""
    if not len(values):
        return np.zeros(0, dtype=bool)
    low, high = int(values.min()), int(values.max())
    if low < 0 or high >= max(DENSE_KEYS_PER_ROW * len(values), 1 << 20):
        return None
    present = np.zeros(high + 1, dtype=bool)
    present[values] = True
    return present


def seconds_to_next_withdraw(
    dep_wallet: np.ndarray, dep_ts: np.ndarray, wd_wallet: np.ndarray, wd_ts: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per deposit: seconds to the wallet's earliest withdraw strictly later (any pool), and whether
    there is one. One sort of packed (wallet, ts) keys and one binary search — no per-wallet loop."""
    wd_keys = np.sort((wd_wallet << _TS_BITS) | wd_ts)
    dep_keys = (dep_wallet << _TS_BITS) | dep_ts
    j = np.searchsorted(wd_keys, dep_keys, side="right")  # first withdraw key > (wallet, ts)
    in_range = j < len(wd_keys)
    nxt = wd_keys[np.where(in_range, j, 0)] if len(wd_keys) else np.zeros_like(dep_keys)
    found = in_range & ((nxt >> _TS_BITS) == dep_wallet)
    seconds = ((nxt & ((1 << _TS_BITS) - 1)) - dep_ts).astype(np.float64)
    return np.where(found, seconds, np.nan), found


def swap_frequency_score(num_swaps: np.ndarray, mean_gap_hours: np.ndarray) -> np.ndarray:
    return np.select(
        [num_swaps < 2, mean_gap_hours <= 1, mean_gap_hours <= 24, mean_gap_hours <= 168, mean_gap_hours <= 720],
        [0.0, 100.0, 80.0, 60.0, 40.0],
        default=20.0,
    )


DEX_COLUMNS = ["timestamp", "amount_usd", "action", "pool_id", "token_a_symbol", "token_b_symbol"]  # what §4 reads


def rows_with(frame: pd.DataFrame, name: str, value: str) -> np.ndarray:
    """Per row: `frame[name] == value` as a bool array, through a Categorical's codes (comparing a
    categorical Series builds two more Series: ~0.1 ms per call whatever the length, five calls for
    one wallet)."""
    values = column(frame, name)
    if isinstance(values, pd.Categorical):
        categories = values.categories
        if value not in categories:
            return np.zeros(len(values), dtype=bool)
        return values.codes == categories.get_loc(value)
    return np.asarray(values == value, dtype=bool)


def rows_of(frame: pd.DataFrame, mask: np.ndarray, columns: list[str]) -> dict[str, pd.Series]:
    """The rows of `mask` of those `columns` that `frame` has, filtered a column at a time. Not
    `frame.loc[mask, columns]`: a row filter first consolidates the frame's columns into 2-D blocks —
    a copy of the whole table (all protocol types, every column) on a freshly built table."""
    return {c: _masked(frame[c], mask) for c in columns if c in frame.columns}


def _masked(column: pd.Series, mask: np.ndarray) -> pd.Series:
    """column[mask] on its array (a Series' own boolean indexing also filters its index: ~7× slower)."""
    values = column.array[mask] if isinstance(column.dtype, pd.CategoricalDtype) else column.to_numpy()[mask]
    return pd.Series(values, name=column.name, copy=False)


def value_kinds(column: pd.Series, values: list[str]) -> np.ndarray:
    """Per row the position of its value in `values` (len(values) for any other or a missing one);
    through a categorical's codes (no string compared per row)."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        position = {v: i for i, v in enumerate(values)}
        lookup = np.array([position.get(c, len(values)) for c in column.cat.categories] + [len(values)], np.int64)
        return lookup[column.cat.codes.to_numpy()]  # code -1 (missing) reads the last entry
    objects = column.astype(object).to_numpy()
    kinds = np.full(len(objects), len(values), dtype=np.int64)
    for i, v in enumerate(values):
        kinds[objects == v] = i
    return kinds


def _packed(group: np.ndarray, items: np.ndarray, width: int) -> np.ndarray:
    """group * width + item for the rows with an item (>= 0), without masking when all have one."""
    if len(items) and items.min() < 0:
        keep = items >= 0
        group, items = group[keep], items[keep]
    keys = group * width
    keys += items
    return keys


def _pools_per_wallet(wallet: np.ndarray, pool: np.ndarray, is_swap: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(wallet of each distinct (wallet, pool) pair, the same for pairs with a swap): one sort of keys
    that carry a swap bit, instead of one per question."""
    width = max(int(pool.max()) + 1, 1) if len(pool) else 1
    keys = _packed(wallet, pool, width)  # (wallet, pool), then the swap bit
    swap_bit = is_swap[pool >= 0] if len(keys) < len(pool) else is_swap
    keys *= 2
    keys += swap_bit
    keys = sorted_unique(keys)
    pairs = keys // 2
    first = np.r_[True, pairs[1:] != pairs[:-1]] if len(pairs) else np.zeros(0, dtype=bool)
    return pairs[first] // width, pairs[(keys % 2).astype(bool)] // width


def _distinct_of_two(group: np.ndarray, first: np.ndarray, second: np.ndarray, width: int):
    """Distinct (group, item) pairs over two item columns of the same rows (-1 = none): (group, item)
    of each pair, sorted, as np.unique of both columns stacked would give them, without stacking."""
    keys = [_packed(group, items, width) for items in (first, second)]
    size = (int(group.max()) + 1) * width if len(group) else 0
    if size <= max(DENSE_KEYS_PER_ROW * 2 * len(group), 1 << 20):
        present = np.zeros(size, dtype=bool)
        for k in keys:
            present[k] = True
        pairs = np.flatnonzero(present)
    else:
        pairs = sorted_unique(np.concatenate(keys))
    return pairs // width, pairs % width


def reference_features(transactions: pd.DataFrame, as_of: float | None) -> pd.DataFrame:
    """One row per wallet (index: lower-cased address) with every feature of CONTRACTS.md §4.

    `as_of` (unix s) is when an open deposit stops being held; None: each wallet's own newest
    transaction (any protocol type), so a score depends on the stored history, never on the clock.

    `transactions` is the normalised table (deduplicated). The §4 features read only `dexes` rows; a
    wallet with transfers or lending but no DEX activity gets the values §4 gives for empty sections.
    `transaction_count`, `first_timestamp` and `last_timestamp` cover every protocol type.
    """
    all_wallet, wallets = _codes(transactions["wallet"])
    n = len(wallets)
    all_ts = transactions["timestamp"].to_numpy(dtype=np.int64)
    is_dex = rows_with(transactions, "protocol_type", "dexes") if "protocol_type" in transactions else None
    dex = transactions if is_dex is None or is_dex.all() else rows_of(transactions, is_dex, DEX_COLUMNS)
    wallet = all_wallet if dex is transactions else all_wallet[is_dex]
    ts = dex["timestamp"].to_numpy(dtype=np.int64)
    amount = dex["amount_usd"].to_numpy(dtype=np.float64)
    kind = value_kinds(dex["action"], ["swap", "deposit", "withdraw"])  # 3: any other
    is_swap, is_dep, is_wd = kind == 0, kind == 1, kind == 2
    pool = _any_codes(dex["pool_id"])

    # Counts and USD totals of each action per wallet in one pass (bins (wallet, action), rows summed
    # in order: the same sums as one masked pass per action).
    by_action = wallet * 4
    by_action += kind
    counts = np.bincount(by_action, minlength=4 * n).reshape(n, 4)
    totals = np.bincount(by_action, weights=amount, minlength=4 * n).reshape(n, 4)
    num_swaps, num_deposits, num_withdraws = (counts[:, k].astype(np.int64) for k in range(3))
    swap_volume, total_deposit, total_withdraw = (np.ascontiguousarray(totals[:, k]) for k in range(3))
    dex_first, dex_last = _group_min_max(wallet, ts, n)
    has_dex = np.bincount(wallet, minlength=n) > 0
    first_ts, last_ts = _group_min_max(all_wallet, all_ts, n)

    seconds, closed = seconds_to_next_withdraw(wallet[is_dep], ts[is_dep], wallet[is_wd], ts[is_wd])
    held_until = last_ts[wallet[is_dep]].astype(np.float64) if as_of is None else float(as_of)
    holding = np.where(closed, seconds, held_until - ts[is_dep].astype(np.float64))
    holding_sum = np.bincount(wallet[is_dep], weights=holding, minlength=n)
    open_deposits = np.bincount(wallet[is_dep][~closed], minlength=n).astype(np.int64)
    avg_holding_days = np.divide(holding_sum, num_deposits * SECONDS_PER_DAY, out=np.zeros(n), where=num_deposits > 0)

    pool_wallets, swap_pool_wallets = _pools_per_wallet(wallet, pool, is_swap)

    # Token diversity: distinct symbols over tokenIn/tokenOut of swaps, 10 per stablecoin else 15.
    token_in, token_out, symbol_names = codes_in_common(dex["token_a_symbol"], dex["token_b_symbol"])
    width = max(len(symbol_names), 1)
    sym_wallet, sym = _distinct_of_two(wallet[is_swap], token_in[is_swap], token_out[is_swap], width)
    is_stable = np.fromiter((s in STABLECOINS for s in symbol_names.tolist()), bool, len(symbol_names))
    symbol_weight = np.where(is_stable, 10.0, 15.0)
    token_diversity = np.minimum(np.bincount(sym_wallet, weights=symbol_weight[sym], minlength=n), 150.0)

    swap_first, swap_last = _group_min_max(wallet[is_swap], ts[is_swap], n)
    mean_gap_hours = np.divide(
        (swap_last - swap_first).astype(np.float64),
        (num_swaps - 1) * SECONDS_PER_HOUR,
        out=np.zeros(n),
        where=num_swaps >= 2,
    )

    features = frame_of(
        {
            "total_deposit_usd": total_deposit,
            "total_withdraw_usd": total_withdraw,
            "num_deposits": num_deposits,
            "num_withdraws": num_withdraws,
            "withdraw_ratio": np.divide(total_withdraw, total_deposit, out=np.zeros(n), where=total_deposit > 0),
            "account_age_days": np.where(has_dex, dex_last - dex_first, 0) / SECONDS_PER_DAY,
            "avg_holding_time_days": avg_holding_days,
            "open_deposits": open_deposits,  # held "until as_of": what a later as_of moves
            "unique_pools": np.bincount(pool_wallets, minlength=n).astype(np.int64),
            "lp_frequency_score": np.minimum(num_deposits * 20.0, 200.0),
            "total_swap_volume_usd": swap_volume,
            "num_swaps": num_swaps,
            "unique_pools_swapped": np.bincount(swap_pool_wallets, minlength=n).astype(np.int64),
            "avg_swap_size_usd": np.divide(swap_volume, num_swaps, out=np.zeros(n), where=num_swaps > 0),
            "token_diversity_score": token_diversity,
            "swap_frequency_score": swap_frequency_score(num_swaps, mean_gap_hours),
            "lp_transaction_count": num_deposits + num_withdraws,
            "transaction_count": np.bincount(all_wallet, minlength=n).astype(np.int64),
            "dex_transaction_count": np.bincount(wallet, minlength=n).astype(np.int64),
            "first_timestamp": first_ts,
            "last_timestamp": last_ts,
        },
        index=pd.Index(np.asarray(wallets, dtype=object), name="wallet"),
    )
    return features
