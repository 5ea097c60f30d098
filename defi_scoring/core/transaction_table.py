"""The columnar input format: one row per transaction, every §1/§1b kind in one table (Parquet, Arrow).

Why: JSON lines cost ~1.4 µs a transaction to parse on two cores, more than scoring them; the tools
people hold real data in (DuckDB, Polars, Arrow, ethereum-etl) exchange Parquet and Arrow. A table in
this schema goes through every door that takes JSON lines (`score`, `land`, the landing sensor,
`POST /api/v1/score/batch` as an Arrow stream) and gives the same scores as the same transactions in
§1 messages: a wallet's rows are its message (in order of first appearance), and every row passes the
same checks with the same error texts (docs/bad_input.md).

The two token slots follow the §1 message: `token_*` is a swap's `tokenIn`, an LP action's `token0`, a
transfer's `token`, a lending action's `asset` (a liquidation's `collateral`); `token_b_*` is a swap's
`tokenOut`, an LP action's `token1`, a liquidation's `debt`. Amounts are in token units (ETH, not wei),
USD values are null when unknown. Only `wallet_address`, `protocol_type`, `document_id`, `action` and
`timestamp` are required; a missing optional column reads as null, an extra column is ignored.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pyarrow as pa

# (name, Arrow type, meaning) — the README's "Columnar input" table is this list.
TABLE_COLUMNS: list[tuple[str, pa.DataType, str]] = [
    ("wallet_address", pa.string(), "the wallet, 0x + 40 hex digits (compared lower-cased, echoed as given)"),
    ("protocol_type", pa.string(), "dexes | transfers | lending"),
    ("document_id", pa.string(), "the transaction's id, unique per wallet (duplicates are dropped)"),
    (
        "action",
        pa.string(),
        "dexes: swap|deposit|withdraw; transfers: send|receive; lending: deposit|withdraw|borrow|repay|liquidation",
    ),
    ("timestamp", pa.int64(), "unix seconds"),
    ("protocol", pa.string(), "e.g. uniswap_v3, aave_v2 (optional)"),
    ("pool_id", pa.string(), "dexes: the pool"),
    ("counterparty", pa.string(), "transfers: the other side; liquidation: the liquidator"),
    ("method", pa.string(), "transfers: the called contract function"),
    ("failed", pa.bool_(), "transfers: the transaction reverted"),
    ("gas_used", pa.float64(), "transfers: gas used"),
    ("gas_price", pa.float64(), "transfers: gas price in wei"),
    ("token_address", pa.string(), 'first token: contract address, "native" for ETH'),
    ("token_symbol", pa.string(), "first token: symbol"),
    ("token_amount", pa.float64(), "first token: amount in token units"),
    ("token_usd", pa.float64(), "first token: USD value (null when unknown)"),
    ("token_b_address", pa.string(), "second token (swap tokenOut, LP token1, liquidation debt): address"),
    ("token_b_symbol", pa.string(), "second token: symbol"),
    ("token_b_amount", pa.float64(), "second token: amount in token units"),
    ("token_b_usd", pa.float64(), "second token: USD value (null when unknown)"),
]
TABLE_SCHEMA = pa.schema([pa.field(name, kind) for name, kind, _ in TABLE_COLUMNS])
REQUIRED_COLUMNS = ("wallet_address", "protocol_type", "document_id", "action", "timestamp")
ARROW_STREAM_MEDIA_TYPE = "application/vnd.apache.arrow.stream"


def is_table_file(path) -> bool:
    """Parquet or Arrow IPC by name (`.parquet`, `.pq`, `.arrow`, `.feather`), else JSON lines."""
    return str(path).lower().endswith((".parquet", ".pq", ".arrow", ".feather"))


def _token_fields(token: Any) -> tuple[Any, Any, Any, Any]:
    if not isinstance(token, dict):
        return None, None, None, None
    return token.get("address"), token.get("symbol"), token.get("amount"), token.get("amountUSD")


def table_from_messages(messages: Iterable[dict]) -> pa.Table:
    """§1 messages (dicts) → the columnar table, one row per transaction (sections in message order).
    For converting files and building tests and benches; `defi-scoring convert` uses it."""
    rows: dict[str, list[Any]] = {name: [] for name, _, _ in TABLE_COLUMNS}
    add = [(name, rows[name].append) for name in rows]
    for message in messages:
        wallet = message.get("wallet_address")
        for section in message.get("data") or []:
            kind = section.get("protocolType")
            for tx in section.get("transactions") or []:
                action = tx.get("action")
                if kind == "dexes":
                    a, b = (
                        (tx.get("tokenIn"), tx.get("tokenOut"))
                        if action == "swap"
                        else (tx.get("token0"), tx.get("token1"))
                    )
                    counterparty = None
                elif kind == "lending":
                    liquidation = action == "liquidation"
                    a = (tx.get("collateral") or tx.get("asset")) if liquidation else tx.get("asset")
                    b = tx.get("debt") if liquidation else None
                    counterparty = tx.get("liquidator")
                else:
                    a, b, counterparty = tx.get("token"), None, tx.get("counterparty")
                values = (
                    wallet,
                    kind,
                    tx.get("document_id"),
                    action,
                    tx.get("timestamp"),
                    tx.get("protocol"),
                    tx.get("poolId"),
                    counterparty,
                    tx.get("method"),
                    tx.get("failed"),
                    tx.get("gasUsed"),
                    tx.get("gasPrice"),
                    *_token_fields(a),
                    *_token_fields(b),
                )
                for (_, append), value in zip(add, values):
                    append(value)
    return pa.table({name: _array(values, kind) for (name, kind, _), values in zip(TABLE_COLUMNS, rows.values())})


def _array(values: list[Any], kind: pa.DataType) -> pa.Array:
    """The column; JSON integers beyond 2**53 in a float column (wei-sized amounts, as in the worked
    example) become the nearest double, as the JSON readers take them (Arrow refuses them as inexact)."""
    try:
        return pa.array(values, type=kind)
    except pa.ArrowInvalid:
        if kind != pa.float64():
            raise
        return pa.array([float(v) if type(v) is int else v for v in values], type=kind)
