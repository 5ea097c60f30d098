"""The normalised transactions table every decoder produces and every feature reads: its columns."""

from __future__ import annotations

TRANSACTION_COLUMNS = [
    "wallet",  # lower-cased address: the wallet key
    "message_index",  # position of the message in its batch
    "protocol_type",
    "document_id",
    "action",
    "timestamp",
    "protocol",
    "pool_id",
    "amount_usd",  # swap: max(in, out); LP: token0 + token1 (CONTRACTS.md §4)
    "token_a_symbol",  # tokenIn for swaps, token0 for LP actions
    "token_a_usd",
    "token_b_symbol",  # tokenOut for swaps, token1 for LP actions
    "token_b_usd",
    # transfers and lending (§1b); missing on DEX rows
    "counterparty",  # transfers: the other side (lower-cased); liquidation: the liquidator
    "method",  # transfers: called contract function
    "token_address",  # transfers/lending: the moved token (lower-cased, "native" for ETH)
    "token_amount",  # transfers/lending: amount in token units (NaN when not given)
    "failed",  # transfers: 1.0 failed, 0.0 succeeded, NaN unknown
    "gas_used",  # transfers: gas used (NaN when not given)
]
EXTRA_STRING_COLUMNS = ["counterparty", "method", "token_address"]
EXTRA_NUMBER_COLUMNS = ["token_amount", "failed", "gas_used"]

CATEGORICAL_COLUMNS = [
    "wallet",
    "protocol_type",
    "action",
    "protocol",
    "pool_id",
    "token_a_symbol",
    "token_b_symbol",
    *EXTRA_STRING_COLUMNS,
]
