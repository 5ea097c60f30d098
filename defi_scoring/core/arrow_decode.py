"""Native decoding of well-formed §1/§1b messages: JSON lines → typed columns in Arrow's C++ reader.

Why: turning JSON into Python dicts and flattening them transaction by transaction cost ~85% of the
batch path (README "Performance"). Arrow's JSON reader parses the lines into typed columns against an
explicit schema, with no Python object per transaction; the nested lists are flattened with offsets.

Exactness comes first: this path only *accepts* a message when the Python path
(`normalise._python_rows`) would keep every one of its transactions unchanged. Anything else — a type
Arrow refuses (a number as a string, a transaction that is not an object), a duplicate key, a NaN
literal, invalid UTF-8, an unknown section, a missing field, an out-of-range value, a wallet without
transactions — sends the whole message to the Python path, which gives it the exact verdict and error
text of docs/bad_input.md. So both paths give the same table and the same rejections (a property test
holds them to it); this one is only faster on the messages it takes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from defi_scoring.contracts.messages import (
    ACTIONS_BY_TYPE,
    ADDRESS_PATTERN,
    MAX_MESSAGE_BYTES,
    MAX_TIMESTAMP,
    MIN_TIMESTAMP,
)
from defi_scoring.core.byte_search import find_all

# Only the fields the Python path reads, per protocol type (an unread field is skipped, as there):
# DEX tokens give symbol and amountUSD; transfer and lending assets also amount and address.
_TOKEN = pa.struct(
    [("amount", pa.float64()), ("amountUSD", pa.float64()), ("address", pa.string()), ("symbol", pa.string())]
)
_PRICED = pa.struct([("amountUSD", pa.float64()), ("symbol", pa.string())])
_TOKENTYPES = {
    "tokenIn": _PRICED,
    "tokenOut": _PRICED,
    "token0": _PRICED,
    "token1": _PRICED,
    "token": _TOKEN,
    "asset": _TOKEN,
    "collateral": _TOKEN,
    "debt": _PRICED,
}
_TOKEN_FIELDS = tuple(_TOKENTYPES)
_TRANSACTION = pa.struct(
    [
        ("document_id", pa.string()),
        ("action", pa.string()),
        ("timestamp", pa.float64()),
        ("protocol", pa.string()),
        ("poolId", pa.string()),
        *_TOKENTYPES.items(),
        ("counterparty", pa.string()),
        ("liquidator", pa.string()),
        ("method", pa.string()),
        ("failed", pa.bool_()),
        ("gasUsed", pa.float64()),
        ("gasPrice", pa.float64()),
    ]
)
_SCHEMA = pa.schema(
    [
        ("wallet_address", pa.string()),
        (
            "data",
            pa.list_(pa.struct([("protocolType", pa.string()), ("transactions", pa.list_(_TRANSACTION))])),
        ),
    ]
)
TYPES = tuple(ACTIONS_BY_TYPE)
ACTIONS = tuple(sorted({a for actions in ACTIONS_BY_TYPE.values() for a in actions}))
_ALLOWED = np.array([[a in ACTIONS_BY_TYPE[t] for a in ACTIONS] for t in TYPES])  # [type, action]
_PARSE = pj.ParseOptions(explicit_schema=_SCHEMA, unexpected_field_behavior="ignore")
# What Arrow reads but orjson refuses (NaN/Infinity literals): such lines go to the Python path. The
# check is conservative (the same letters inside a string also send it there). Arrow itself refuses
# lone surrogate escapes, duplicate keys and trailing commas, as orjson does.
_ORJSON_REFUSES = (b"NaN", b"Infinity")
_CHUNK_LINES = 2_000  # after a failed parse, lines are parsed again in chunks of this size
_SMALLEST_RETRY = 32  # a failing chunk of at most this many lines goes to the Python path whole


@dataclass
class ArrowRows:
    """Rows of the messages this path accepted (every other message index is in `rest`)."""

    frame: pd.DataFrame  # the columns of normalise.TRANSACTION_COLUMNS, before deduplication
    positions: np.ndarray  # each row's position inside its section
    accepted: np.ndarray  # message indices decoded here
    addresses: list[str]  # wallet_address as received, per accepted message
    rest: np.ndarray  # message indices for the Python path


def decode(raw_messages: list) -> ArrowRows:
    """Decode what Arrow can take exactly; everything else is left to the Python path (`rest`)."""
    n = len(raw_messages)
    eligible = np.zeros(n, dtype=bool)
    lines: list[bytes] = []
    for i, raw in enumerate(raw_messages):
        if type(raw) is str:
            try:
                raw = raw.encode()
            except UnicodeEncodeError:  # a lone surrogate: the Python path says "invalid JSON"
                continue
        # One JSON object per line, nothing around it: a line Arrow would split, or one whose first
        # value is not an object (pyarrow 25 crashes on a buffer that starts with a top-level null),
        # goes to the Python path.
        if (
            type(raw) is not bytes
            or raw[:1] != b"{"
            or raw[-1:] != b"}"
            or len(raw) > MAX_MESSAGE_BYTES
            or b"\n" in raw
            or b"\r" in raw
        ):
            continue
        eligible[i] = True
        lines.append(raw)
    index = np.flatnonzero(eligible)
    joined = b"\n".join(lines) + b"\n"
    refused = _refused_lines(lines, joined)
    if refused.any():
        index = index[~refused]
        lines = [line for line, bad in zip(lines, refused.tolist()) if not bad]
        joined = None
    pieces = _parse(lines, np.arange(len(lines)), joined=joined)
    del joined, lines  # the parsed columns hold everything from here on
    if not pieces:
        return _empty(np.arange(n))
    table = pa.concat_tables([t for t, _ in pieces])
    parsed = index[np.concatenate([rows for _, rows in pieces])]
    frame, positions, accepted_rows, addresses = _flatten(table, parsed)
    accepted = parsed[accepted_rows]
    rest = np.setdiff1d(np.arange(n), accepted, assume_unique=True)
    return ArrowRows(frame, positions, accepted, addresses, rest)


def _refused_lines(lines: list[bytes], joined: bytes) -> np.ndarray:
    """Lines holding what Arrow reads and orjson refuses (a substring scan: fast when absent)."""
    refused = np.zeros(len(lines), dtype=bool)
    hits = [at for pattern in _ORJSON_REFUSES for at in find_all(joined, pattern)]
    if hits:
        starts = np.cumsum([0] + [len(line) + 1 for line in lines[:-1]])
        refused[np.searchsorted(starts, hits, side="right") - 1] = True
    return refused


def _read(lines: list[bytes], joined: bytes | None = None) -> pa.Table | None:
    """One parse; None when Arrow refuses any line or the rows do not line up with the lines."""
    joined = joined if joined is not None else b"\n".join(lines) + b"\n"
    try:
        table = pj.read_json(pa.py_buffer(joined), parse_options=_PARSE)
        if table.num_rows != len(lines):  # e.g. two objects on one line, which orjson refuses
            return None
        table.validate(full=True)  # UTF-8 of every string (orjson refuses invalid UTF-8)
    except (pa.ArrowInvalid, pa.ArrowTypeError, ValueError):
        return None
    return table


def _parse(
    lines: list[bytes], rows: np.ndarray, whole: bool = True, joined: bytes | None = None
) -> list[tuple[pa.Table, np.ndarray]]:
    """Parse all lines at once; when that fails, smaller and smaller chunks, so that a few bad lines
    send only their own chunk of ≤ 32 lines to the Python path."""
    if not lines:
        return []
    table = _read(lines, joined)
    if table is not None:
        return [(table, rows)]
    if len(lines) <= _SMALLEST_RETRY:
        return []
    size = _CHUNK_LINES if whole and len(lines) > _CHUNK_LINES else max(_SMALLEST_RETRY, len(lines) // 16)
    out = []
    for start in range(0, len(lines), size):
        out += _parse(lines[start : start + size], rows[start : start + size], whole=False)
    return out


def _empty(rest: np.ndarray) -> ArrowRows:
    return ArrowRows(pd.DataFrame(), np.zeros(0, np.int64), np.zeros(0, np.int64), [], rest)


def _floats(array: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(values with NaN for null, null mask)."""
    return array.to_numpy(zero_copy_only=False).astype(float, copy=False), array.is_null().to_numpy(
        zero_copy_only=False
    )


def _strings_or_null(array: pa.Array) -> pa.Array:
    """ "" counts as missing, as in the Python path."""
    return pc.if_else(pc.equal(array, ""), pa.scalar(None, pa.string()), array)


def _categorical(array: pa.Array) -> pd.Categorical:
    """Arrow strings → pandas Categorical with sorted categories (what pd.Categorical of the same
    values gives), encoded in C++."""
    encoded = pc.dictionary_encode(array)
    dictionary = encoded.dictionary
    order = pc.array_sort_indices(dictionary).to_numpy()
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    indices = encoded.indices.to_numpy(zero_copy_only=False)
    valid = encoded.indices.is_valid().to_numpy(zero_copy_only=False)
    codes = np.where(valid, rank[np.where(valid, indices, 0).astype(np.int64)] if len(order) else -1, -1)
    categories = pd.Index(dictionary.take(pa.array(order)).to_numpy(zero_copy_only=False), dtype=object)
    return pd.Categorical.from_codes(codes, categories=categories)


def _codes_categorical(codes: np.ndarray, names: tuple[str, ...]) -> pd.Categorical:
    """Codes into `names` → Categorical of the names present, sorted (as pd.Categorical gives)."""
    present = np.flatnonzero(np.bincount(codes, minlength=len(names)))
    categories = sorted(names[k] for k in present)
    remap = np.full(len(names), -1, dtype=np.int64)
    remap[[names.index(c) for c in categories]] = np.arange(len(categories))
    return pd.Categorical.from_codes(remap[codes], categories=pd.Index(categories, dtype=object))


def rows_pass(
    transaction_present: np.ndarray,
    document_id_present: np.ndarray,
    type_code: np.ndarray,
    action_code: np.ndarray,
    timestamp: np.ndarray,
    timestamp_missing: np.ndarray,
    amounts: tuple[np.ndarray, ...],
    transfer_without_counterparty: np.ndarray,
    ascii_text: np.ndarray,
) -> np.ndarray:
    """Per row: the Python path would keep it unchanged. The one statement of what this path takes,
    for JSON lines and columnar tables alike (codes: indices into `TYPES` / `ACTIONS`, −1 unknown)."""
    with np.errstate(invalid="ignore"):
        valid_action = (type_code >= 0) & (action_code >= 0) & _ALLOWED[type_code, action_code]
        ok = (
            transaction_present
            & document_id_present
            & valid_action
            & ~timestamp_missing
            & (timestamp >= MIN_TIMESTAMP)
            & (timestamp <= MAX_TIMESTAMP)
            & ~transfer_without_counterparty
            & ascii_text  # Python's str.lower and Arrow's agree on ASCII; the rest goes to the Python path
        )
        for x in amounts:  # absent, or finite and not negative
            ok &= np.isnan(x) | ((x >= 0) & np.isfinite(x))
    return ok


def accepted_messages(message_ok: np.ndarray, row_message: np.ndarray, row_ok: np.ndarray) -> np.ndarray:
    """Messages taken here: readable, with rows, every row passing (`rows_pass`)."""
    n_messages = len(message_ok)
    bad = np.bincount(row_message[~row_ok], minlength=n_messages) > 0
    has_rows = np.bincount(row_message, minlength=n_messages) > 0
    return np.flatnonzero(message_ok & ~bad & has_rows)


def dex_amount_usd(type_code: np.ndarray, action_code: np.ndarray, a_usd: np.ndarray, b_usd: np.ndarray) -> np.ndarray:
    """CONTRACTS.md §4: a swap max(in, out), an LP action token0 + token1; other types their asset."""
    dex = type_code == TYPES.index("dexes")
    swap = dex & (action_code == ACTIONS.index("swap"))
    return np.where(swap, np.maximum(a_usd, b_usd), np.where(dex, a_usd + b_usd, a_usd))


def _flatten(table: pa.Table, message_index: np.ndarray):
    """Typed table of messages → (rows frame, positions, accepted message rows, addresses)."""
    table = table.combine_chunks()
    n_messages = table.num_rows
    address = table.column("wallet_address").chunk(0) if table.num_rows else pa.array([], pa.string())
    data = table.column("data").chunk(0) if table.num_rows else pa.array([], _SCHEMA.field("data").type)
    ok = address.is_valid().to_numpy(zero_copy_only=False) & data.is_valid().to_numpy(zero_copy_only=False)
    ok &= pc.fill_null(pc.match_substring_regex(address, ADDRESS_PATTERN.pattern), False).to_numpy(zero_copy_only=False)

    sections = pc.list_flatten(data)
    section_message = pc.list_parent_indices(data).to_numpy()
    protocol_type = pc.struct_field(sections, "protocolType")
    known = pc.fill_null(pc.is_in(protocol_type, pa.array(list(ACTIONS_BY_TYPE))), False)
    transactions_list = pc.struct_field(sections, "transactions")
    good_section = (
        sections.is_valid().to_numpy(zero_copy_only=False)
        & known.to_numpy(zero_copy_only=False)
        & transactions_list.is_valid().to_numpy(zero_copy_only=False)
    )
    bad_messages = np.bincount(section_message[~good_section], minlength=n_messages) > 0

    txs = pc.list_flatten(transactions_list)
    tx_section = pc.list_parent_indices(transactions_list).to_numpy()
    lengths = pc.fill_null(pc.list_value_length(transactions_list), 0).to_numpy(zero_copy_only=False)
    section_start = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    positions = np.arange(len(txs), dtype=np.int64) - section_start[tx_section]
    row_message = section_message[tx_section]
    # Protocol types and actions as small integer codes (no Python string per row).
    section_type = pc.fill_null(pc.index_in(protocol_type, pa.array(TYPES)), -1).to_numpy(zero_copy_only=False)
    type_code = section_type[tx_section]
    is_dex, is_transfer, is_lending = (type_code == k for k in range(len(TYPES)))
    is_other = ~is_dex

    field = lambda name: pc.struct_field(txs, name)
    action = _strings_or_null(field("action"))
    action_code = pc.fill_null(pc.index_in(action, pa.array(ACTIONS)), -1).to_numpy(zero_copy_only=False)
    is_swap = action_code == ACTIONS.index("swap")
    liquidation = is_lending & (action_code == ACTIONS.index("liquidation"))

    def token_choice(which: str):
        """The a/b token of each row: swap tokenIn/tokenOut, LP token0/token1, transfer token,
        lending asset (a liquidation: collateral, else asset / debt)."""

        if which == "a":
            collateral_present = field("collateral").is_valid().to_numpy(zero_copy_only=False)
            choices = [
                (is_dex & is_swap, "tokenIn"),
                (is_dex & ~is_swap, "token0"),
                (is_transfer, "token"),
                (liquidation & collateral_present, "collateral"),
                (is_lending, "asset"),
            ]
        else:
            choices = [(is_dex & is_swap, "tokenOut"), (is_dex & ~is_swap, "token1"), (liquidation, "debt")]
        # the first matching choice of each row; only choices that some row takes are read
        chosen = np.select([mask for mask, _ in choices], np.arange(len(choices)), -1)
        used = [(k, name) for k, (_, name) in enumerate(choices) if (chosen == k).any()]

        def pick(sub: str) -> pa.Array:
            kind = _TOKEN.field(sub).type
            out = pa.nulls(len(txs), kind)
            for k, name in used:
                if _TOKENTYPES[name].get_field_index(sub) < 0:
                    continue
                value = pc.struct_field(field(name), sub)
                rows = chosen == k
                out = value if rows.all() else pc.if_else(pa.array(rows, pa.bool_()), value, out)
            return out

        return pick

    a, b = token_choice("a"), token_choice("b")
    a_usd, _ = _floats(a("amountUSD"))
    b_usd, _ = _floats(b("amountUSD"))
    timestamp, timestamp_missing = _floats(field("timestamp"))
    token_amount = np.where(is_other, _floats(a("amount"))[0], np.nan)
    gas_used = np.where(is_transfer, _floats(field("gasUsed"))[0], np.nan)
    gas_price = np.where(is_transfer, _floats(field("gasPrice"))[0], np.nan)
    failed_arrow = field("failed")
    failed = np.where(
        failed_arrow.is_null().to_numpy(zero_copy_only=False),
        np.nan,
        pc.fill_null(failed_arrow, False).to_numpy(zero_copy_only=False).astype(float),
    )
    failed = np.where(is_transfer, failed, np.nan)
    document_id = _strings_or_null(field("document_id"))
    counterparty_raw = _strings_or_null(pc.if_else(pa.array(is_transfer), field("counterparty"), field("liquidator")))
    counterparty_raw = pc.if_else(pa.array(is_other), counterparty_raw, pa.scalar(None, pa.string()))
    token_address = pc.if_else(pa.array(is_other), _strings_or_null(a("address")), pa.scalar(None, pa.string()))
    method = pc.if_else(pa.array(is_transfer), _strings_or_null(field("method")), pa.scalar(None, pa.string()))

    row_ok = rows_pass(
        txs.is_valid().to_numpy(zero_copy_only=False),
        document_id.is_valid().to_numpy(zero_copy_only=False),
        type_code,
        action_code,
        timestamp,
        timestamp_missing,
        (a_usd, b_usd, token_amount, gas_used, gas_price),
        is_transfer & counterparty_raw.is_null().to_numpy(zero_copy_only=False),
        pc.fill_null(pc.string_is_ascii(counterparty_raw), True).to_numpy(zero_copy_only=False)
        & pc.fill_null(pc.string_is_ascii(token_address), True).to_numpy(zero_copy_only=False),
    )
    accepted_rows = accepted_messages(ok & ~bad_messages, row_message, row_ok)
    keep_message = np.zeros(n_messages, dtype=bool)
    keep_message[accepted_rows] = True
    keep = keep_message[row_message]
    everything = bool(keep.all())  # the common case: no row to leave out, no copy to make
    take = None if everything else pa.array(np.flatnonzero(keep))

    def kept(array: pa.Array) -> pa.Array:
        return array if everything else array.take(take)

    def cat(array: pa.Array) -> pd.Categorical:
        return _categorical(kept(array))

    # Wallets are encoded per accepted message (every one keeps all its rows), then spread to rows by
    # the message's code: the same Categorical as encoding every row's address, from ~30× fewer strings.
    message_wallets = _categorical(pc.utf8_lower(address.take(pa.array(accepted_rows))))
    code_of_message = np.full(n_messages, -1, dtype=message_wallets.codes.dtype)
    code_of_message[accepted_rows] = message_wallets.codes
    kept_type = type_code[keep]
    a_usd0 = np.nan_to_num(a_usd[keep], nan=0.0)
    b_usd0 = np.nan_to_num(b_usd[keep], nan=0.0)
    frame = pd.DataFrame(
        {
            "wallet": pd.Categorical.from_codes(
                code_of_message[row_message[keep]], dtype=message_wallets.dtype, validate=False
            ),
            "message_index": message_index[row_message[keep]].astype(np.int32),
            "protocol_type": _codes_categorical(kept_type, TYPES),
            "document_id": kept(document_id).to_numpy(zero_copy_only=False).astype(object),
            "action": cat(action),
            "timestamp": timestamp[keep].astype(np.int64),
            "protocol": cat(_strings_or_null(field("protocol"))),
            "pool_id": cat(
                pc.if_else(pa.array(is_dex), _strings_or_null(field("poolId")), pa.scalar(None, pa.string()))
            ),
            "amount_usd": dex_amount_usd(kept_type, action_code[keep], a_usd0, b_usd0),
            "token_a_symbol": cat(_strings_or_null(a("symbol"))),
            "token_a_usd": a_usd0,
            "token_b_symbol": cat(_strings_or_null(b("symbol"))),
            "token_b_usd": b_usd0,
            "counterparty": cat(pc.utf8_lower(counterparty_raw)),
            "method": cat(method),
            "token_address": cat(pc.utf8_lower(token_address)),
            "token_amount": token_amount[keep],
            "failed": failed[keep],
            "gas_used": gas_used[keep],
        }
    )
    addresses = address.take(pa.array(accepted_rows)).to_pylist()
    return frame, positions[keep], accepted_rows, addresses
