"""Columnar input (core/transaction_table.py) → the rows of the normalised table, with no JSON at all.

A wallet's rows are its message. The flat columns are arranged, without copying values, into the
nested shape Arrow's JSON reader gives for §1 messages (list of sections, each a list of transaction
structs), and handed to the native decoder's own flattening and checks (`arrow_decode.flatten`): one
definition of every check for both inputs. A wallet that the native checks do not take whole (a bad
row, an unknown protocol type, a non-ASCII address) is rebuilt as a §1 message from its rows and goes
to the Python path like any JSON message, so its verdicts and error texts are those of
docs/bad_input.md, and the same transactions give the same table whichever way they came.

Rows are ordered as their §1 messages would hold them: wallets in order of first appearance, within a
wallet its protocol types in order of first appearance, within a type the table's order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from defi_scoring.core import arrow_decode
from defi_scoring.core.transaction_table import REQUIRED_COLUMNS, TABLE_SCHEMA


class TableSchemaError(ValueError):
    """The table itself cannot be read as transactions (a missing required column, a column of a type
    that does not convert): the whole input is refused with this message, nothing is scored."""


@dataclass
class TableRows:
    """One decoded table: the rows the native checks took, and §1 messages for the other wallets."""

    rows: arrow_decode.ArrowRows  # message indices are the wallets' global indices
    messages: dict[int, dict[str, Any]]  # message index → §1 message, for the Python path
    keys: list[str | None]  # per new wallet of this table (lower-cased address), in index order


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
        if pa.types.is_dictionary(column.type):
            column = column.cast(column.type.value_type)
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


def decode_table(table: pa.Table, wallet_index: dict[str | None, int]) -> TableRows:
    """Decode one table (or one row group of a larger one). `wallet_index` maps a lower-cased
    address to its message index and is extended with the table's new wallets, so that a wallet
    whose rows span several tables is one message."""
    table = conform(table)
    n_rows = table.num_rows
    address = table.column("wallet_address").chunk(0) if n_rows else pa.array([], pa.string())
    key = pc.utf8_lower(address)
    unique_keys = pc.unique(key)
    new_keys = []
    for k in unique_keys.to_pylist():  # one entry per wallet, not per row
        if k not in wallet_index:
            wallet_index[k] = len(wallet_index)
            new_keys.append(k)
    if not n_rows:
        return TableRows(arrow_decode.empty_rows(), {}, new_keys)
    unique_index = pa.array([wallet_index[k] for k in unique_keys.to_pylist()], pa.int64())
    row_message = unique_index.take(pc.fill_null(pc.index_in(key, unique_keys), 0)).to_numpy()
    nulls = key.is_null().to_numpy(zero_copy_only=False)
    if nulls.any():  # pc.unique keeps one null; index_in never matches it
        row_message = np.where(nulls, wallet_index[None], row_message)

    protocol_type = table.column("protocol_type").chunk(0)
    order = _row_order(row_message, protocol_type)
    if order is not None:
        table = table.take(pa.array(order))
        row_message, address, protocol_type = (
            row_message[order],
            table.column("wallet_address").chunk(0),
            table.column("protocol_type").chunk(0),
        )

    messages, first_row_of_message = np.unique(row_message, return_index=True)
    section_start = _starts(row_message, protocol_type)
    data = _nested(table, row_message, section_start, first_row_of_message)
    nested = pa.table({"wallet_address": address.take(pa.array(first_row_of_message)), "data": data})
    rows = arrow_decode.flatten_parsed(nested, messages)
    rest = rows.rest
    python_messages = {}
    if len(rest):
        rest_rows = np.isin(row_message, rest)
        python_messages = _messages_of(table.filter(pa.array(rest_rows)), row_message[rest_rows])
    return TableRows(rows, python_messages, new_keys)


def _row_order(row_message: np.ndarray, protocol_type: pa.Array) -> np.ndarray | None:
    """The take that groups rows as §1 messages hold them; None when they already are."""
    if len(row_message) < 2:
        return None
    type_code = pc.fill_null(pc.index_in(protocol_type, pc.unique(protocol_type)), -1).to_numpy(zero_copy_only=False)
    grouped = (row_message[1:] >= row_message[:-1]).all()
    if grouped:
        same_message = row_message[1:] == row_message[:-1]
        changes = same_message & (type_code[1:] != type_code[:-1])
        if not changes.any():
            return None
        # a type may come back within its wallet only if it never left: check each (message, type) run
        run_starts = np.flatnonzero(np.concatenate([[True], (~same_message) | (type_code[1:] != type_code[:-1])]))
        pairs = row_message[run_starts].astype(np.int64) * (type_code.max() + 2) + (type_code[run_starts] + 1)
        if len(np.unique(pairs)) == len(pairs):
            return None
    # (message, first row of its (message, type) pair, row) — a stable sort by the first two
    n_types = int(type_code.max()) + 2
    pair = row_message.astype(np.int64) * n_types + (type_code + 1)
    _, first_of_pair, inverse = np.unique(pair, return_index=True, return_inverse=True)
    return np.lexsort((first_of_pair[inverse], row_message)).astype(np.int64)


def _starts(row_message: np.ndarray, protocol_type: pa.Array) -> np.ndarray:
    """First row of each section (a run of one wallet and one protocol type)."""
    n = len(row_message)
    if n == 0:
        return np.zeros(0, np.int64)
    type_code = pc.fill_null(pc.index_in(protocol_type, pc.unique(protocol_type)), -1).to_numpy(zero_copy_only=False)
    change = np.empty(n, dtype=bool)
    change[0] = True
    change[1:] = (row_message[1:] != row_message[:-1]) | (type_code[1:] != type_code[:-1])
    return np.flatnonzero(change)


def _token(table: pa.Table, prefix: str) -> pa.StructArray:
    return pa.StructArray.from_arrays(
        [
            table.column(f"{prefix}_amount").chunk(0),
            table.column(f"{prefix}_usd").chunk(0),
            table.column(f"{prefix}_address").chunk(0),
            table.column(f"{prefix}_symbol").chunk(0),
        ],
        names=["amount", "amountUSD", "address", "symbol"],
    )


def _nested(
    table: pa.Table, row_message: np.ndarray, section_start: np.ndarray, first_row_of_message: np.ndarray
) -> pa.ListArray:
    """The rows as `data`: list<struct<protocolType, transactions: list<transaction>>> per wallet. Both
    token slots of every kind point at the same two structs (the flattening picks by type and action)."""
    col = lambda name: table.column(name).chunk(0)
    a, b = _token(table, "token"), _token(table, "token_b")
    transactions = pa.StructArray.from_arrays(
        [
            col("document_id"),
            col("action"),
            col("timestamp"),
            col("protocol"),
            col("pool_id"),
            a,
            b,
            a,
            b,
            a,
            a,
            a,
            b,
            col("counterparty"),
            col("counterparty"),
            col("method"),
            col("failed"),
            col("gas_used"),
            col("gas_price"),
        ],
        names=[
            "document_id",
            "action",
            "timestamp",
            "protocol",
            "poolId",
            "tokenIn",
            "tokenOut",
            "token0",
            "token1",
            "token",
            "asset",
            "collateral",
            "debt",
            "counterparty",
            "liquidator",
            "method",
            "failed",
            "gasUsed",
            "gasPrice",
        ],
    )
    n = len(row_message)
    section_offsets = pa.array(np.append(section_start, n).astype(np.int32))
    per_section = pa.ListArray.from_arrays(section_offsets, transactions)
    section_type = col("protocol_type").take(pa.array(section_start))
    sections = pa.StructArray.from_arrays([section_type, per_section], names=["protocolType", "transactions"])
    # sections of each wallet: from its first section to the next wallet's
    message_first_section = np.searchsorted(section_start, first_row_of_message)
    message_offsets = pa.array(np.append(message_first_section, len(section_start)).astype(np.int32))
    return pa.ListArray.from_arrays(message_offsets, sections)


def _messages_of(table: pa.Table, row_message: np.ndarray) -> dict[int, dict[str, Any]]:
    """§1 messages of the wallets the native checks did not take (a Python loop over their rows only:
    the bad-input path). Absent values are left out, as a JSON message would leave them out."""
    messages: dict[int, dict[str, Any]] = {}
    sections: dict[tuple[int, Any], list[dict[str, Any]]] = {}
    for index, row in zip(row_message.tolist(), table.to_pylist()):
        message = messages.get(index)
        if message is None:
            message = messages[index] = {"wallet_address": row["wallet_address"], "data": []}
        kind = row["protocol_type"]
        transactions = sections.get((index, kind))
        if transactions is None:
            transactions = sections[(index, kind)] = []
            message["data"].append({"protocolType": kind, "transactions": transactions})
        transactions.append(_transaction(row))
    return messages


def _slot(row: dict[str, Any], prefix: str) -> dict[str, Any]:
    token = {
        "amount": row[f"{prefix}_amount"],
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
