"""Column-wise checks of flattened transactions: every value check once per column with numpy/pandas,
one reason per dropped row (the first failing check wins), and the table of valid rows with its final
types. The reasons and their detail texts are the rows of docs/bad_input.md."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from defi_scoring.contracts.messages import ACTIONS_BY_TYPE, MAX_TIMESTAMP, MIN_TIMESTAMP
from defi_scoring.core.frame_columns import SHORT_COLUMN, column, frame_of, shared_categorical_dtype
from defi_scoring.core.python_decode import RawColumns, object_array
from defi_scoring.core.transaction_columns import CATEGORICAL_COLUMNS


def _numeric(values: list[Any]) -> tuple[np.ndarray, np.ndarray]:
    """Column of raw JSON values → (float array with NaN for missing, mask of present-but-invalid).

    None means missing (counts 0 downstream); a float NaN, a bool or a non-numeric string is invalid.
    The per-value type scan only runs when the column is not plainly numeric.
    """
    column = object_array(values)
    missing = column == None  # noqa: E711 — element-wise on an object array
    if pd.api.types.infer_dtype(column, skipna=True) in ("integer", "floating", "mixed-integer-float", "empty"):
        try:  # only numbers and None here: one C pass, None → NaN (an int beyond float range → slow path)
            number = np.array(values, dtype=float)
            return number, np.isnan(number) & ~missing
        except (OverflowError, TypeError, ValueError):
            pass
        is_bool = np.zeros(len(column), dtype=bool)
    else:
        is_bool = np.fromiter((type(v) is bool for v in column), bool, len(column))
    try:
        number = pd.to_numeric(pd.Series(np.where(is_bool, None, column)), errors="coerce").to_numpy(dtype=float)
    except OverflowError:  # an int beyond float range (only possible from dict input): that value is invalid
        number = np.array([_float_or_nan(v) for v in np.where(is_bool, None, column)], dtype=float)
    invalid = (np.isnan(number) & ~missing) | is_bool
    return number, invalid


def _float_or_nan(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return np.nan
    return number if np.isfinite(number) else np.nan


def _strings(values: list[Any]) -> np.ndarray:
    """Column of raw values → object array of str or None (non-strings become None)."""
    return np.array([v if type(v) is str and v else None for v in values], dtype=object)


def categorical(values: np.ndarray) -> pd.Categorical:
    """pd.Categorical(values) of a column of str and None (categories sorted, None missing). A short
    column goes through a dict: pandas' hashing costs ~50 µs per column whatever its length, and a
    single wallet's call builds ten of them."""
    items = values.tolist()
    if len(items) > SHORT_COLUMN or not all(type(v) is str or v is None for v in items):
        return pd.Categorical(values)
    categories = sorted({v for v in items if v is not None})
    code_of = {v: i for i, v in enumerate(categories)}
    codes = np.fromiter((code_of.get(v, -1) for v in items), np.int64, len(items))
    return pd.Categorical.from_codes(codes, dtype=shared_categorical_dtype(tuple(categories)), validate=False)


def _protocol_types(cols: RawColumns, n: int) -> np.ndarray:
    protocol_type = np.full(n, "dexes", dtype=object)
    protocol_type[np.asarray(cols.other_rows, dtype=np.int64)] = np.asarray(cols.other_type, dtype=object)
    return protocol_type


def _scatter(n: int, rows: np.ndarray, values: np.ndarray, fill: Any) -> np.ndarray:
    """A full-length column from the values of the non-DEX rows."""
    dtype = object if fill is None else np.asarray([fill]).dtype
    out = np.full(n, fill, dtype=dtype)
    out[rows] = values
    return out


def _is_type(values: list[Any], kind: type) -> np.ndarray:
    return np.fromiter((type(v) is kind for v in values), bool, len(values))


_ACTION_SETS = {kind: frozenset(actions) for kind, actions in ACTIONS_BY_TYPE.items()}


def _unknown_action(action: np.ndarray, protocol_type: np.ndarray) -> np.ndarray:
    """Per row: its action is not one of its protocol type's. A short column (an API call) is one
    set lookup per row: pandas' isin, three times over masked Series, cost ~0.3 ms whatever the length."""
    if len(action) <= SHORT_COLUMN:
        allowed = _ACTION_SETS
        return np.fromiter(
            (
                type(a) is not str or a not in allowed.get(t, ())
                for a, t in zip(action.tolist(), protocol_type.tolist())
            ),
            bool,
            len(action),
        )
    unknown = np.ones(len(action), dtype=bool)
    for kind, actions in ACTIONS_BY_TYPE.items():
        rows = protocol_type == kind
        unknown[rows] = ~pd.Series(action[rows], dtype=object).isin(actions).to_numpy()
    return unknown


def validate_columns(
    cols: RawColumns, wallet_keys: list[str | None]
) -> tuple[pd.DataFrame, np.ndarray, pd.DataFrame, set[int]]:
    """Column-wise checks → (valid transactions, their positions in their sections, dropped rows with a
    reason, messages with at least one valid transaction — one that only repeats known transactions is
    valid; duplicates are dropped later, over both decoding paths)."""
    n = len(cols.message_index)
    message_index = np.asarray(cols.message_index, dtype=np.int64)
    timestamp, bad_timestamp_type = _numeric(cols.timestamp)
    a_usd, bad_a = _numeric(cols.a_usd)
    b_usd, bad_b = _numeric(cols.b_usd)
    document_id = np.array(
        [str(v) if type(v) is int else (v if type(v) is str and v else None) for v in cols.document_id], dtype=object
    )
    action = object_array(cols.action)
    not_object = np.asarray(cols.not_an_object, dtype=bool)
    protocol_type = _protocol_types(cols, n)

    # Fields of transfers/lending rows: checked on those rows only, then scattered to full length.
    other = np.asarray(cols.other_rows, dtype=np.int64)
    other_type = np.asarray(cols.other_type, dtype=object)
    is_transfer = other_type == "transfers"
    raw_counterparty = object_array(cols.counterparty)
    counterparty_absent = pd.isna(raw_counterparty)
    counterparty_missing = (counterparty_absent | (raw_counterparty == "")) & is_transfer
    counterparty_invalid = ~counterparty_absent & ~_is_type(cols.counterparty, str)
    token_amount, bad_amount_type = _numeric(cols.token_amount)
    bad_amount = bad_amount_type | (token_amount < 0) | np.isinf(token_amount)
    bad_failed = ~pd.isna(object_array(cols.failed)) & ~_is_type(cols.failed, bool)
    gas_used, bad_gas_used = _numeric(cols.gas_used)
    gas_price, bad_gas_price = _numeric(cols.gas_price)
    bad_gas = bad_gas_used | bad_gas_price | (gas_used < 0) | (gas_price < 0) | np.isinf(gas_used) | np.isinf(gas_price)

    def on_other(mask: np.ndarray) -> np.ndarray:
        return _scatter(n, other, np.asarray(mask, dtype=bool), False)

    # One reason per dropped row; the first failing check wins (the order of this list).
    checks = [
        ("not_an_object", not_object),
        ("missing_document_id", pd.isna(document_id)),
        ("missing_action", pd.isna(action)),
        ("unknown_action", _unknown_action(action, protocol_type)),
        ("missing_timestamp", np.isnan(timestamp) & ~bad_timestamp_type),
        ("invalid_timestamp", bad_timestamp_type),
        ("timestamp_out_of_range", (timestamp < MIN_TIMESTAMP) | (timestamp > MAX_TIMESTAMP)),
        ("invalid_amount_usd", bad_a | bad_b),
        ("negative_or_non_finite_amount_usd", (a_usd < 0) | (b_usd < 0) | np.isinf(a_usd) | np.isinf(b_usd)),
        ("missing_counterparty", on_other(counterparty_missing)),
        ("invalid_counterparty", on_other(counterparty_invalid)),
        ("invalid_token_amount", on_other(bad_amount)),
        ("invalid_failed", on_other(bad_failed)),
        ("invalid_gas", on_other(bad_gas)),
    ]
    reason = np.full(n, None, dtype=object)
    for name, mask in reversed(checks):
        reason[mask] = name
    invalid = pd.notna(reason)

    wallet = np.asarray(wallet_keys, dtype=object)[message_index] if n else np.zeros(0, dtype=object)
    counterparty = np.where(counterparty_invalid | counterparty_missing, None, raw_counterparty)
    a_usd, b_usd = np.nan_to_num(a_usd, nan=0.0), np.nan_to_num(b_usd, nan=0.0)
    # amount_usd: swap max(in, out) and LP token0 + token1 (CONTRACTS.md §4); a transfer or lending
    # action moves one asset (a liquidation: the collateral seized).
    is_swap = action == "swap"
    is_dex = protocol_type == "dexes"
    failed = np.fromiter((1.0 if v is True else 0.0 if v is False else np.nan for v in cols.failed), float, len(other))
    columns = {
        "wallet": wallet,
        "message_index": message_index.astype(np.int32),
        "protocol_type": protocol_type,
        "document_id": document_id,
        "action": np.where(invalid, None, action),  # a dropped row may hold any JSON value
        "timestamp": np.where(invalid, 0, np.nan_to_num(timestamp)).astype(np.int64),
        "protocol": _strings(cols.protocol),
        "pool_id": _strings(cols.pool_id),
        "amount_usd": np.where(is_swap, np.maximum(a_usd, b_usd), np.where(is_dex, a_usd + b_usd, a_usd)),
        "token_a_symbol": _strings(cols.a_symbol),
        "token_a_usd": a_usd,
        "token_b_symbol": _strings(cols.b_symbol),
        "token_b_usd": b_usd,
        "counterparty": _scatter(n, other, _lower(_strings(counterparty.tolist())), None),
        "method": _scatter(n, other, _strings(cols.method), None),
        "token_address": _scatter(n, other, _lower(_strings(cols.token_address)), None),
        "token_amount": _scatter(n, other, token_amount, np.nan).astype(float),
        "failed": _scatter(n, other, failed, np.nan).astype(float),
        "gas_used": _scatter(n, other, gas_used, np.nan).astype(float),
    }
    # String columns become categories before any row selection, so selections copy codes, not objects.
    for name in CATEGORICAL_COLUMNS:
        columns[name] = categorical(columns[name])
    frame = frame_of(columns, pd.RangeIndex(n))  # built once, with its final types: no copy per column

    positions = np.asarray(cols.position, dtype=np.int64)
    details = _details(cols, np.flatnonzero(invalid), reason[invalid], protocol_type)
    dropped = frame_of(
        {
            "message_index": message_index[invalid].astype(np.int32),
            "document_id": document_id[invalid],
            "action": action[invalid],
            "protocol_type": protocol_type[invalid],
            "position": positions[invalid],
            "reason": reason[invalid],
            "detail": np.array(details, dtype=object),
        },
        pd.RangeIndex(len(details)),
    )
    valid = frame.loc[~invalid].reset_index(drop=True) if invalid.any() else frame
    index = column(valid, "message_index")
    messages_with_valid = set((index if len(index) <= SHORT_COLUMN else np.unique(index)).tolist())
    return valid, positions[~invalid], dropped, messages_with_valid


def _lower(values: np.ndarray) -> np.ndarray:
    return np.asarray([v.lower() if v is not None else None for v in values.tolist()], dtype=object)


def _details(cols: RawColumns, rows: np.ndarray, reasons: np.ndarray, protocol_type: np.ndarray) -> list[str]:
    """Human-readable detail per dropped row (only runs over bad rows)."""
    other_position = {row: k for k, row in enumerate(cols.other_rows)} if len(rows) else {}
    out = []
    for row, reason in zip(rows.tolist(), reasons.tolist()):
        k = other_position.get(row)
        if reason == "unknown_action":
            expected = ", ".join(ACTIONS_BY_TYPE[protocol_type[row]])
            out.append(
                f"unknown action {cols.action[row]!r} for {protocol_type[row]} (expected one of {expected})"
                if protocol_type[row] != "dexes"
                else f"unknown action {cols.action[row]!r} (expected one of {expected})"
            )
        elif reason in ("invalid_timestamp", "timestamp_out_of_range"):
            value = cols.timestamp[row]
            hint = (
                " (milliseconds? expected unix seconds)"
                if isinstance(value, (int, float)) and value > MAX_TIMESTAMP
                else ""
            )
            out.append(f"timestamp {value!r} is not a unix-seconds time between 2015-07-30 and 2100-01-01{hint}")
        elif reason in ("invalid_amount_usd", "negative_or_non_finite_amount_usd"):
            out.append(f"amountUSD must be a finite number >= 0, got {cols.a_usd[row]!r} / {cols.b_usd[row]!r}")
        elif reason == "not_an_object":
            out.append("transaction is not a JSON object")
        elif reason == "missing_counterparty":
            out.append("missing required field 'counterparty' (the address on the other side of the transfer)")
        elif reason == "invalid_counterparty":
            field = "counterparty" if protocol_type[row] == "transfers" else "liquidator"  # (lending's other side)
            out.append(f"{field} must be an address string, got {cols.counterparty[k]!r}")
        elif reason == "invalid_token_amount":
            out.append(f"token amount must be a finite number >= 0, got {cols.token_amount[k]!r}")
        elif reason == "invalid_failed":
            out.append(f"failed must be true or false, got {cols.failed[k]!r}")
        elif reason == "invalid_gas":
            out.append(
                f"gasUsed/gasPrice must be finite numbers >= 0, got {cols.gas_used[k]!r} / {cols.gas_price[k]!r}"
            )
        else:
            out.append(f"missing required field '{reason.removeprefix('missing_')}'")
    return out
