"""Columnar input (core/transaction_table.py) → the rows of the normalised table, with no JSON at all.

A wallet's rows are its message. The flat columns are checked by the native decoder's own rule
(`arrow_decode.rows_pass`), string columns kept as dictionary codes (what Parquet stores), so a check
or a lower-casing runs once per distinct value, and the tables of one file become Categoricals once
(`assemble`). A wallet that the rule does not take whole (a bad row, an unknown protocol type, a
non-ASCII address) is rebuilt as a §1 message from its rows and goes to the Python path like any JSON
message, so its verdicts and error texts are those of docs/bad_input.md, and the same transactions
give the same table whichever way they came.

Rows are ordered as their §1 messages would hold them: wallets in order of first appearance, within a
wallet its protocol types in order of first appearance, within a type the table's order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from defi_scoring.core import arrow_decode
from defi_scoring.core.transaction_columns import CATEGORICAL_COLUMNS, TRANSACTION_COLUMNS
from defi_scoring.core.transaction_table import REQUIRED_COLUMNS, TABLE_SCHEMA


class TableSchemaError(ValueError):
    """The table itself cannot be read as transactions (a missing required column, a column of a type
    that does not convert): the whole input is refused with this message, nothing is scored."""


@dataclass
class Rows:
    """Rows the native checks took, by column: numbers as arrays, strings as `_Strings` (codes into
    a dictionary), so that the tables of one file become Categoricals once, at the end (`assemble`)."""

    columns: dict[str, Any]  # TRANSACTION_COLUMNS → np.ndarray | _Strings
    positions: np.ndarray  # each row's position inside its section
    accepted: np.ndarray  # message indices taken here (global)
    addresses: list[str]  # wallet_address as received, per accepted message

    def __len__(self) -> int:
        return len(self.positions)


NO_ROWS = Rows({}, np.zeros(0, np.int64), np.zeros(0, np.int64), [])


@dataclass
class TableRows:
    """One decoded table: the rows the native checks took, and §1 messages for the other wallets."""

    rows: Rows  # message indices are the wallets' global indices
    messages: dict[int, dict[str, Any]]  # message index → §1 message, for the Python path
    keys: list[str | None]  # per new wallet of this table (lower-cased address), in index order
    sections: dict[tuple[int, str | None], int]  # rows per (message index, protocol type) in this table


def conform(table: pa.Table) -> pa.Table:
    """The table with exactly TABLE_SCHEMA's columns: missing optional ones as nulls, others cast."""
    missing = [name for name in REQUIRED_COLUMNS if name not in table.column_names]
    if missing:
        raise TableSchemaError(
            f"missing required column(s) {', '.join(missing)}; a transactions table needs "
            f"{', '.join(REQUIRED_COLUMNS)} (README, 'Columnar input')"
        )
    columns = []
    for field in TABLE_SCHEMA:
        if field.name not in table.column_names:
            columns.append(pa.nulls(table.num_rows, field.type))
            continue
        column = table.column(field.name)
        if pa.types.is_dictionary(column.type) and field.type == pa.string() and field.name != "document_id":
            if not pa.types.is_string(column.type.value_type):  # e.g. large_string from polars
                column = column.cast(pa.dictionary(column.type.index_type, pa.string()))
            columns.append(column)
            continue
        if pa.types.is_dictionary(column.type):
            column = column.cast(column.type.value_type)
        if field.name == "timestamp" and pa.types.is_timestamp(column.type):  # datetimes (pandas, DuckDB)
            column = column.cast(pa.timestamp("s", tz=column.type.tz), safe=False).cast(pa.int64())
        target = pa.float64() if field.name == "timestamp" else field.type
        if column.type != target:
            try:
                column = column.cast(target)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as error:
                raise TableSchemaError(
                    f"column {field.name!r} is {column.type}, expected {field.type}: {error}"
                ) from None
        columns.append(column)
    names = [f.name for f in TABLE_SCHEMA]
    return pa.Table.from_arrays(columns, names=names).combine_chunks()


def decode_table(
    table: pa.Table, wallet_index: dict[str | None, int], before: dict[tuple[int, str | None], int] | None = None
) -> TableRows:
    """Decode one table (or one row group of a larger one). `wallet_index` maps a lower-cased
    address to its message index and is extended with the table's new wallets, so that a wallet
    whose rows span several tables is one message; `before`: rows per (wallet, protocol type) in the
    earlier tables, in order of first appearance (so a rebuilt message numbers its sections as the
    wallet's whole message would)."""
    table = conform(table)
    address = _Strings(table.column("wallet_address").chunk(0) if table.num_rows else pa.array([], pa.string()))
    key = address.lowered()
    # wallets numbered in order of their first row (not the dictionary's order, which may also hold
    # values no row uses); a row without an address is one wallet of its own ("" fails its checks)
    codes, first_row = np.unique(key.indices, return_index=True)
    entries = key.dictionary.to_pylist()
    index_of_code = np.full(len(entries) + 1, -1, dtype=np.int64)  # code k at k + 1, null at 0
    new_keys = []
    for code in codes[np.argsort(first_row)].tolist():  # one entry per wallet, not per row
        entry = entries[code] if code >= 0 else None
        if entry not in wallet_index:
            wallet_index[entry] = len(wallet_index)
            new_keys.append(entry)
        index_of_code[code + 1] = wallet_index[entry]
    if not table.num_rows:
        return TableRows(NO_ROWS, {}, new_keys, {})
    row_message = index_of_code[key.indices + 1]

    protocol_type = _Strings(table.column("protocol_type").chunk(0))
    type_code = protocol_type.codes_in(arrow_decode.TYPES)
    order = _row_order(row_message, type_code)
    if order is not None:
        table = table.take(pa.array(order))
        row_message, type_code = row_message[order], type_code[order]
        address = _Strings(table.column("wallet_address").chunk(0))
        key = address.lowered()
    rows, rest = _accepted_rows(table, row_message, type_code, address, key)
    sections = _section_sizes(
        row_message, protocol_type if order is None else _Strings(table.column("protocol_type").chunk(0))
    )
    python_messages = {}
    if len(rest):
        rest_rows = np.isin(row_message, rest)
        python_messages = _messages_of(table.filter(pa.array(rest_rows)), row_message[rest_rows], before or {})
    return TableRows(rows, python_messages, new_keys, sections)


def _section_sizes(row_message: np.ndarray, protocol_type: _Strings) -> dict[tuple[int, str | None], int]:
    """Rows per (wallet, protocol type) of this table: where the next table's rows of a section go on
    counting from (a transaction's position in its section, as warnings name it)."""
    pairs = row_message.astype(np.int64) * (len(protocol_type.dictionary) + 1) + (protocol_type.indices + 1)
    found, first, counts = np.unique(pairs, return_index=True, return_counts=True)
    by_appearance = np.argsort(first, kind="stable")
    found, counts = found[by_appearance], counts[by_appearance]
    names = [None, *protocol_type.dictionary.to_pylist()]
    width = len(protocol_type.dictionary) + 1
    return {(int(p // width), names[int(p % width)]): int(n) for p, n in zip(found.tolist(), counts.tolist())}


def shift_positions(
    positions: np.ndarray, message_index: np.ndarray, protocol_type: np.ndarray, before: dict
) -> np.ndarray:
    """Positions counted on from the rows of the same sections in earlier tables (`before`): only the
    rows of wallets seen before are looked up."""
    if not before or not len(positions):
        return positions
    seen = np.isin(message_index, np.fromiter({m for m, _ in before}, dtype=np.int64))
    if not seen.any():
        return positions
    rows = np.flatnonzero(seen)
    keys = zip(message_index[rows].tolist(), protocol_type[rows].tolist())
    shifted = positions.copy()
    shifted[rows] += np.fromiter((before.get(k, 0) for k in keys), dtype=np.int64, count=len(rows))
    return shifted


class _Strings:
    """A string column as dictionary codes (−1: null) and its dictionary: what Parquet stores, so a
    check or a change runs once per distinct value, not once per row."""

    def __init__(self, array: pa.Array, indices: np.ndarray | None = None, dictionary: pa.Array | None = None):
        if indices is not None:
            self.indices, self.dictionary = indices, dictionary
            return
        if pa.types.is_dictionary(array.type) and array.dictionary.null_count:  # nulls belong in the indices
            array = array.cast(array.type.value_type)
        if not pa.types.is_dictionary(array.type):
            array = pc.dictionary_encode(array)
        self.dictionary = array.dictionary.cast(pa.string())
        self.indices = pc.fill_null(array.indices.cast(pa.int64()), -1).to_numpy(zero_copy_only=False)

    def _per_row(self, per_entry: np.ndarray, null_value) -> np.ndarray:
        out = per_entry[self.indices.clip(0)] if len(per_entry) else np.full(len(self.indices), null_value)
        return np.where(self.indices >= 0, out, null_value)

    def without_empty(self) -> _Strings:
        """ "" counts as missing, as in the Python path."""
        empty = pc.equal(self.dictionary, "").to_numpy(zero_copy_only=False)
        return _Strings(None, np.where(self._per_row(empty, False), -1, self.indices), self.dictionary)

    def lowered(self) -> _Strings:
        """Lower-cased, spellings that lower to the same text made one entry."""
        encoded = pc.dictionary_encode(pc.utf8_lower(self.dictionary))
        remap = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
        return _Strings(
            None, np.where(self.indices >= 0, remap[self.indices.clip(0)] if len(remap) else -1, -1), encoded.dictionary
        )

    def rows(self, keep: np.ndarray) -> _Strings:
        return _Strings(None, self.indices[keep], self.dictionary)

    @staticmethod
    def of_categorical(values: pd.Categorical) -> _Strings:
        categories = pa.array(values.categories.to_numpy(dtype=object), pa.string())
        return _Strings(None, values.codes.astype(np.int64), categories)

    @staticmethod
    def joined(parts: list[_Strings]) -> _Strings:
        """The parts' rows one after another, over one dictionary (a value in several parts is one entry)."""
        if len(parts) == 1:
            return parts[0]
        offsets = np.cumsum([0] + [len(p.dictionary) for p in parts[:-1]])
        indices = np.concatenate([np.where(p.indices >= 0, p.indices + o, -1) for p, o in zip(parts, offsets)])
        encoded = pc.dictionary_encode(pa.concat_arrays([p.dictionary for p in parts]))
        remap = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
        return _Strings(
            None, np.where(indices >= 0, remap[indices.clip(0)] if len(remap) else -1, -1), encoded.dictionary
        )

    def only(self, rows: np.ndarray) -> _Strings:
        """Null outside `rows`."""
        return _Strings(None, np.where(rows, self.indices, -1), self.dictionary)

    def present(self) -> np.ndarray:
        return self.indices >= 0

    def ascii(self) -> np.ndarray:
        """Per row: ASCII text, or null."""
        return self._per_row(pc.string_is_ascii(self.dictionary).to_numpy(zero_copy_only=False), True)

    def codes_in(self, names: tuple[str, ...]) -> np.ndarray:
        """Per row: the value's index in `names`, −1 when absent or not there."""
        positions = pc.fill_null(pc.index_in(self.dictionary, pa.array(names)), -1)
        return self._per_row(positions.to_numpy(zero_copy_only=False).astype(np.int64), -1)

    def matches(self, pattern: str) -> np.ndarray:
        found = pc.match_substring_regex(self.dictionary, pattern).to_numpy(zero_copy_only=False)
        return self._per_row(found, False)

    def categorical(self, take: np.ndarray | None = None) -> pd.Categorical:
        """The rows (`take`: these, in this order) as a Categorical of the values present, sorted (what
        pd.Categorical gives)."""
        codes = self.indices if take is None else self.indices[take]
        used = np.flatnonzero(np.bincount(codes[codes >= 0], minlength=len(self.dictionary)))
        values = self.dictionary.take(pa.array(used))
        order = pc.array_sort_indices(values).to_numpy()
        rank = np.full(len(self.dictionary) + 1, -1, dtype=np.int64)
        rank[used[order]] = np.arange(len(order))
        categories = pd.Index(values.take(pa.array(order)).to_numpy(zero_copy_only=False), dtype=object)
        return pd.Categorical.from_codes(rank[codes], categories=categories, validate=False)


def _floats(table: pa.Table, name: str) -> np.ndarray:
    """Values with NaN for null."""
    return table.column(name).chunk(0).to_numpy(zero_copy_only=False).astype(float, copy=False)


def _accepted_rows(
    table: pa.Table, row_message: np.ndarray, type_code: np.ndarray, address: _Strings, key: _Strings
) -> tuple[arrow_decode.ArrowRows, np.ndarray]:
    """The native decoder's checks (`arrow_decode.rows_pass`) on the flat columns → rows of the
    wallets taken whole, and the message indices left for the Python path."""
    col = lambda name: table.column(name).chunk(0)
    types = arrow_decode.TYPES
    is_dex, is_transfer, is_lending = (type_code == types.index(t) for t in ("dexes", "transfers", "lending"))
    is_other = is_transfer | is_lending
    action = _Strings(col("action")).without_empty()
    action_code = action.codes_in(arrow_decode.ACTIONS)
    liquidation = is_lending & (action_code == arrow_decode.ACTIONS.index("liquidation"))
    has_b = is_dex | liquidation  # a swap's tokenOut, an LP action's token1, a liquidation's debt
    document = pc.if_else(pc.equal(col("document_id"), ""), pa.scalar(None, pa.string()), col("document_id"))
    timestamp = _floats(table, "timestamp")
    a_usd, b_usd = _floats(table, "token_usd"), np.where(has_b, _floats(table, "token_b_usd"), np.nan)
    token_amount = np.where(is_other, _floats(table, "token_amount"), np.nan)
    gas_used = np.where(is_transfer, _floats(table, "gas_used"), np.nan)
    gas_price = np.where(is_transfer, _floats(table, "gas_price"), np.nan)
    failed_column = col("failed")
    failed = np.where(
        is_transfer & failed_column.is_valid().to_numpy(zero_copy_only=False),
        pc.fill_null(failed_column, False).to_numpy(zero_copy_only=False).astype(float),
        np.nan,
    )
    counterparty = _Strings(col("counterparty")).without_empty().only(is_other)
    token_address = _Strings(col("token_address")).without_empty().only(is_other)
    row_ok = arrow_decode.rows_pass(
        np.ones(len(row_message), dtype=bool),
        document.is_valid().to_numpy(zero_copy_only=False),
        type_code,
        action_code,
        timestamp,
        np.isnan(timestamp),
        (a_usd, b_usd, token_amount, gas_used, gas_price),
        is_transfer & ~counterparty.present(),
        counterparty.ascii() & token_address.ascii(),
    )
    messages, first_row = np.unique(row_message, return_index=True)
    local = np.searchsorted(messages, row_message)  # rows' message as an index into `messages`
    message_ok = address.matches(arrow_decode.ADDRESS_PATTERN.pattern)[first_row]
    accepted_local = arrow_decode.accepted_messages(message_ok, local, row_ok)
    accepted = messages[accepted_local]
    rest = np.setdiff1d(messages, accepted, assume_unique=True)
    if not len(accepted):
        return NO_ROWS, rest
    keep_message = np.zeros(len(messages), dtype=bool)
    keep_message[accepted_local] = True
    keep = keep_message[local]
    everything = bool(keep.all())
    kept = (lambda a: a) if everything else (lambda a: a[keep])
    section_start = _starts(row_message, type_code)
    run = np.searchsorted(section_start, np.arange(len(row_message)), side="right") - 1
    positions = np.arange(len(row_message), dtype=np.int64) - section_start[run]
    a_usd0 = np.nan_to_num(kept(a_usd), nan=0.0)
    b_usd0 = np.nan_to_num(kept(b_usd), nan=0.0)
    kept_type = kept(type_code)
    cut = (lambda strings: strings) if everything else (lambda strings: strings.rows(keep))
    columns = {
        "wallet": cut(key),
        "message_index": kept(row_message).astype(np.int32),
        "protocol_type": _Strings(None, kept_type.astype(np.int64), pa.array(types)),
        "document_hash": _hashed(document if everything else document.filter(pa.array(keep))),
        "document_id": (document if everything else document.filter(pa.array(keep)))
        .to_numpy(zero_copy_only=False)
        .astype(object),
        "action": cut(action),
        "timestamp": kept(timestamp).astype(np.int64),
        "protocol": cut(_Strings(col("protocol")).without_empty()),
        "pool_id": cut(_Strings(col("pool_id")).without_empty().only(is_dex)),
        "amount_usd": arrow_decode.dex_amount_usd(kept_type, kept(action_code), a_usd0, b_usd0),
        "token_a_symbol": cut(_Strings(col("token_symbol")).without_empty()),
        "token_a_usd": a_usd0,
        "token_b_symbol": cut(_Strings(col("token_b_symbol")).without_empty().only(has_b)),
        "token_b_usd": b_usd0,
        "counterparty": cut(counterparty.lowered()),
        "method": cut(_Strings(col("method")).without_empty().only(is_transfer)),
        "token_address": cut(token_address.lowered()),
        "token_amount": kept(token_amount),
        "failed": kept(failed),
        "gas_used": kept(gas_used),
    }
    addresses = address.dictionary.take(pa.array(address.indices[first_row[accepted_local]])).to_pylist()
    return Rows(columns, kept(positions), accepted, addresses), rest


def columns_of(frame: pd.DataFrame) -> dict[str, Any]:
    """A decoded frame's columns as `Rows` holds them (the Python path's rows of a table's bad wallets)."""
    columns = {
        name: _Strings.of_categorical(frame[name].array) if name in CATEGORICAL_COLUMNS else frame[name].to_numpy()
        for name in TRANSACTION_COLUMNS
    }
    columns["document_hash"] = _hashed(pa.array(columns["document_id"], pa.string()))
    return columns


def _hashed(document_id: pa.Array) -> np.ndarray:
    """A 64-bit hash per document_id (polars, on both cores): the deduplication's first pass."""
    return pl.from_arrow(document_id).hash(seed=0).to_numpy()


def assemble(pieces: list[tuple[dict[str, Any], np.ndarray]]) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Pieces of rows (columns, positions) → one frame in batch order (message index, then piece),
    each string column made a Categorical once over all pieces (sorted categories, only those used);
    also the rows' document_id hashes."""
    positions = np.concatenate([p for _, p in pieces])
    message_index = np.concatenate([c["message_index"] for c, _ in pieces])
    order = None
    if len(message_index) > 1 and not bool((message_index[1:] >= message_index[:-1]).all()):
        order = np.argsort(message_index, kind="stable")
    frame = {}
    for name in TRANSACTION_COLUMNS:
        if name in CATEGORICAL_COLUMNS:
            strings = _Strings.joined([c[name] for c, _ in pieces])
            frame[name] = strings.categorical(order)
        else:
            values = message_index if name == "message_index" else np.concatenate([c[name] for c, _ in pieces])
            frame[name] = values if order is None else values[order]
    hashes = np.concatenate([c["document_hash"] for c, _ in pieces])
    if order is not None:
        positions, hashes = positions[order], hashes[order]
    return pd.DataFrame(frame), positions, hashes


def _row_order(row_message: np.ndarray, type_code: np.ndarray) -> np.ndarray | None:
    """The take that groups rows as §1 messages hold them; None when they already are."""
    if len(row_message) < 2:
        return None
    if (row_message[1:] >= row_message[:-1]).all():
        same_message = row_message[1:] == row_message[:-1]
        run_starts = np.flatnonzero(np.concatenate([[True], ~same_message | (type_code[1:] != type_code[:-1])]))
        pairs = row_message[run_starts].astype(np.int64) * (int(type_code.max()) + 2) + (type_code[run_starts] + 1)
        if len(np.unique(pairs)) == len(pairs):  # each (wallet, type) is one run: already in order
            return None
    # (message, first row of its (message, type) pair, row) — a stable sort by the first two
    pair = row_message.astype(np.int64) * (int(type_code.max()) + 2) + (type_code + 1)
    _, first_of_pair, inverse = np.unique(pair, return_index=True, return_inverse=True)
    return np.lexsort((np.arange(len(pair)), first_of_pair[inverse], row_message)).astype(np.int64)


def _starts(row_message: np.ndarray, type_code: np.ndarray) -> np.ndarray:
    """First row of each section (a run of one wallet and one protocol type)."""
    n = len(row_message)
    if n == 0:
        return np.zeros(0, np.int64)
    change = np.empty(n, dtype=bool)
    change[0] = True
    change[1:] = (row_message[1:] != row_message[:-1]) | (type_code[1:] != type_code[:-1])
    return np.flatnonzero(change)


def _messages_of(table: pa.Table, row_message: np.ndarray, before: dict) -> dict[int, dict[str, Any]]:
    """§1 messages of the wallets the native checks did not take (a Python loop over their rows only:
    the bad-input path). Absent values are left out, as a JSON message would leave them out. A wallet
    seen in earlier tables starts with its earlier sections, empty, so sections keep their numbers."""
    messages: dict[int, dict[str, Any]] = {}
    sections: dict[tuple[int, Any], list[dict[str, Any]]] = {}
    wanted = set(row_message.tolist())
    for index, kind in before:
        if index in wanted:
            message = messages.setdefault(index, {"wallet_address": None, "data": []})
            transactions = sections[(index, kind)] = []
            # an earlier section of a type without features was already warned about: a known type
            # with no transactions keeps its number without a second warning
            known = kind if kind in arrow_decode.TYPES else arrow_decode.TYPES[0]
            message["data"].append({"protocolType": known, "transactions": transactions})
    for index, row in zip(row_message.tolist(), table.to_pylist()):
        message = messages.get(index)
        if message is None:
            message = messages[index] = {"wallet_address": row["wallet_address"], "data": []}
        elif message["wallet_address"] is None:
            message["wallet_address"] = row["wallet_address"]
        kind = row["protocol_type"]
        transactions = sections.get((index, kind))
        if transactions is None:
            transactions = sections[(index, kind)] = []
            message["data"].append({"protocolType": kind, "transactions": transactions})
        transactions.append(_transaction(row))
    return messages


def _slot(row: dict[str, Any], prefix: str) -> dict[str, Any]:
    token = {
        "amount": row[f"{prefix}_amount"],  # doubles: an error quotes -5 as -5.0
        "amountUSD": row[f"{prefix}_usd"],
        "address": row[f"{prefix}_address"],
        "symbol": row[f"{prefix}_symbol"],
    }
    return {k: v for k, v in token.items() if v is not None}


def _transaction(row: dict[str, Any]) -> dict[str, Any]:
    """One row as the transaction object of its §1 section."""
    timestamp = row["timestamp"]
    if timestamp is not None and float(timestamp).is_integer():
        timestamp = int(timestamp)
    tx: dict[str, Any] = {
        "document_id": row["document_id"],
        "action": row["action"],
        "timestamp": timestamp,
        "protocol": row["protocol"],
    }
    kind, action = row["protocol_type"], row["action"]
    a, b = _slot(row, "token"), _slot(row, "token_b")
    if kind == "transfers":
        tx.update(
            counterparty=row["counterparty"],
            method=row["method"],
            failed=row["failed"],
            gasUsed=row["gas_used"],
            gasPrice=row["gas_price"],
            token=a,
        )
    elif kind == "lending":
        if action == "liquidation":
            tx.update(collateral=a, debt=b, liquidator=row["counterparty"])
        else:
            tx["asset"] = a
    else:
        tx["poolId"] = row["pool_id"]
        if action == "swap":
            tx.update(tokenIn=a, tokenOut=b)
        else:
            tx.update(token0=a, token1=b)
    return {k: v for k, v in tx.items() if v is not None}
