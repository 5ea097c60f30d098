"""Column conversions the importers share: text, addresses, numbers, timestamps, method names, ids.

Why: each input column is checked and converted once for all its rows (pyarrow.compute / numpy); a
row that fails a check is rejected with a reason instead of stopping the import.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

ADDRESS = r"^0x[0-9a-fA-F]{40}$"
TX_HASH = r"^0x[0-9a-fA-F]{64}$"
UNSIGNED = r"^[0-9]+$"
DECIMAL = r"^([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?$"
ZERO_ADDRESS = "0x" + "0" * 40
NATIVE = "native"
CONTRACT_CREATION = "contract_creation"
NULL_TEXT = pa.scalar(None, pa.string())

# Four-byte selectors of the most called functions, so that a table without function names (ethereum-etl,
# an unverified contract on Etherscan) still gives the method families of the transfer features a name.
KNOWN_SELECTORS = {
    "0xa9059cbb": "transfer",
    "0x23b872dd": "transferFrom",
    "0x095ea7b3": "approve",
    "0x42842e0e": "safeTransferFrom",
    "0xd0e30db0": "deposit",
    "0x2e1a7d4d": "withdraw",
    "0x7ff36ab5": "swapExactETHForTokens",
    "0x18cbafe5": "swapExactTokensForETH",
    "0x38ed1739": "swapExactTokensForTokens",
    "0xfb3bdb41": "swapETHForExactTokens",
    "0xac9650d8": "multicall",
    "0x5ae401dc": "multicall",
    "0x3593564c": "execute",
}


def text(table: pa.Table, *names: str) -> pa.ChunkedArray:
    """The first of `names` present, as trimmed text with empty cells null (absent column: all null)."""
    for name in names:
        if name in table.column_names:
            col = table.column(name)
            if not pa.types.is_string(col.type):
                col = col.cast(pa.string())
            col = pc.utf8_trim_whitespace(col)
            return pc.if_else(pc.equal(col, ""), NULL_TEXT, col)
    return pa.chunked_array([pa.nulls(table.num_rows, pa.string())])


def column(table: pa.Table, *names: str) -> pa.ChunkedArray:
    """The first of `names` present as stored (numbers stay numbers; absent: all-null text)."""
    for name in names:
        if name in table.column_names:
            return table.column(name)
    return pa.chunked_array([pa.nulls(table.num_rows, pa.string())])


def has(table: pa.Table, *names: str) -> bool:
    return any(name in table.column_names for name in names)


def numpy_bool(arr) -> np.ndarray:
    """A boolean Arrow column as numpy, null = False."""
    return np.asarray(pc.fill_null(arr, False).to_numpy(zero_copy_only=False), dtype=bool)


def present(arr) -> np.ndarray:
    return numpy_bool(pc.is_valid(arr))


def matches(arr, pattern: str) -> np.ndarray:
    return numpy_bool(pc.match_substring_regex(arr, pattern))


def lower(arr) -> pa.ChunkedArray:
    return pc.utf8_lower(arr)


def equal(a, b) -> np.ndarray:
    """Row-wise equality of two text columns, null = not equal."""
    return numpy_bool(pc.equal(a, b))


def numbers(arr, pattern: str = UNSIGNED) -> tuple[np.ndarray, np.ndarray]:
    """Text (or a numeric column) → float64 with NaN for empty cells, and the mask of cells that are no number.

    Thousands separators (`1,000.5` in Etherscan's website exports) are accepted in decimal text.
    """
    if not _is_text(arr):
        values = pc.cast(arr, pa.float64()).to_numpy(zero_copy_only=False)
        return np.asarray(values, dtype=float), np.zeros(len(arr), dtype=bool)
    arr = pc.utf8_trim_whitespace(arr)
    arr = pc.if_else(pc.equal(arr, ""), pa.scalar(None, arr.type), arr)
    if pattern == DECIMAL:
        arr = pc.replace_substring(arr, ",", "")
    valid = pc.match_substring_regex(arr, pattern)
    values = pc.cast(pc.if_else(valid, arr, pa.scalar(None, arr.type)), pa.float64())
    bad = present(arr) & ~numpy_bool(valid)
    return np.asarray(values.to_numpy(zero_copy_only=False), dtype=float), bad


def unix_seconds(arr) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unix seconds from integers, integer text or date-time text / timestamps (as ethereum-etl tables in
    BigQuery/AWS carry them) → (int64 seconds, missing mask, bad mask)."""
    n = len(arr)
    if pa.types.is_timestamp(arr.type) or pa.types.is_date(arr.type):
        seconds = pc.cast(pc.cast(arr, pa.timestamp("s", tz="UTC")), pa.int64())
        missing = ~present(seconds)
        return (
            np.nan_to_num(seconds.to_numpy(zero_copy_only=False).astype(float)).astype(np.int64),
            missing,
            np.zeros(n, bool),
        )
    values, bad = numbers(arr, r"^[0-9]{1,12}$") if _is_text(arr) else numbers(arr)
    if _is_text(arr) and bad.any():  # date-time text: "2021-09-01 00:00:00 UTC", ISO 8601
        cells = pd.Series(arr.to_numpy(zero_copy_only=False), dtype=object)[bad]
        parsed = pd.to_datetime(cells.str.replace(" UTC", "", regex=False), utc=True, errors="coerce", format="mixed")
        ok = parsed.notna().to_numpy()
        idx = np.flatnonzero(bad)[ok]
        values[idx] = parsed[ok].astype("int64").to_numpy() // 10**9
        bad[idx] = False
    missing = np.isnan(values) & ~bad
    return np.nan_to_num(values).astype(np.int64), missing, bad


def _is_text(arr) -> bool:
    return pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)


def method_names(function_name, selector) -> pa.ChunkedArray:
    """The called function: Etherscan's `functionName` without its arguments, else the 4-byte selector
    (named when well known), null for a plain transfer (selector `0x` or empty)."""
    name = pc.utf8_trim_whitespace(pc.replace_substring_regex(function_name, r"\(.*$", ""))
    name = pc.if_else(pc.equal(name, ""), NULL_TEXT, name)
    return pc.coalesce(name, selector_names(selector))


def function_style(label):
    """The website's spaced label as the function name the API gives ("Swap Exact ETH For Tokens" →
    "swapExactETHForTokens"), so a wallet's methods read the same from either export."""
    joined = pc.replace_substring(label, " ", "")
    return pc.binary_join_element_wise(
        pc.utf8_lower(pc.utf8_slice_codeunits(joined, 0, 1)), pc.utf8_slice_codeunits(joined, 1), ""
    )


def selector_names(selector) -> pa.ChunkedArray:
    """`0xa9059cbb` → `transfer` for well-known selectors, other selectors as they are, `0x`/empty → null."""
    selector = lower(selector)
    selector = pc.if_else(matches(selector, r"^0x[0-9a-f]{8}$"), selector, NULL_TEXT)
    keys = pa.array(list(KNOWN_SELECTORS))
    known = pc.take(pa.array(list(KNOWN_SELECTORS.values())), pc.index_in(selector, value_set=keys))
    return pc.coalesce(known, selector)


def transfer_ids(tx_hash, token, sender, recipient, value, log_index=None) -> pa.Array:
    """A deterministic id for each token transfer: `hash:log_index` when the log index is known, else
    `hash:token:from:to:value` with `:n` added to the n-th repeat of an identical transfer in the file."""
    if log_index is not None:
        by_log = pc.binary_join_element_wise(tx_hash, log_index, ":")
        if not pc.any(pc.is_null(by_log)).as_py():
            return by_log
    joined = pc.binary_join_element_wise(tx_hash, token, sender, recipient, value, ":", null_handling="replace")
    keys = pd.Series(joined.to_numpy(zero_copy_only=False), dtype=object)
    nth = pa.array(keys.groupby(keys, sort=False, dropna=False).cumcount().to_numpy())
    repeat = pc.binary_join_element_wise(joined, pc.cast(nth, pa.string()), ":")
    ids = pc.if_else(pc.greater(nth, 0), repeat, joined)
    return ids if log_index is None else pc.coalesce(by_log, ids)
