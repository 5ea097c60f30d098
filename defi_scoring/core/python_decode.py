"""The Python decoder: each message parsed with orjson, its transactions flattened into plain column
lists with no checks (the checks run per column afterwards, `core/column_checks.py`). It reads every
message, also those the native decoder leaves to it, so every bad-input verdict and error text of
docs/bad_input.md comes from here and from the column checks."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from defi_scoring.contracts.messages import ACTIONS_BY_TYPE, MAX_MESSAGE_BYTES

ADDRESS_RE = re.compile(r"0x[0-9a-fA-F]{40}")


@dataclass
class Rejection:
    """A message that yields no scoreable transaction: it becomes a failure record."""

    message_index: int
    wallet_address: str
    error: str
    categories: list[dict[str, Any]] = field(default_factory=list)


def _shared(value: Any) -> Any:
    """One string object per distinct value (actions, pools, symbols repeat): the column passes that
    follow then touch a few objects instead of one scattered object per transaction (~20% of the
    normalisation time on 130k transactions). Non-strings pass through unchanged."""
    return sys.intern(value) if type(value) is str else value


def object_array(values: list[Any]) -> np.ndarray:
    """A list as a 1-D object array in one pass (nested lists stay elements, never a second axis)."""
    return np.fromiter(values, dtype=object, count=len(values))


_NO_TOKEN: dict = {}


class RawColumns:
    """Plain lists, one per raw field, appended to in the flattening loop (no checks there)."""

    def __init__(self) -> None:
        self.message_index: list[int] = []
        self.position: list[int] = []
        self.document_id: list[Any] = []
        self.action: list[Any] = []
        self.timestamp: list[Any] = []
        self.protocol: list[Any] = []
        self.pool_id: list[Any] = []
        self.a_symbol: list[Any] = []
        self.a_usd: list[Any] = []
        self.b_symbol: list[Any] = []
        self.b_usd: list[Any] = []
        self.not_an_object: list[bool] = []
        # rows of other types than `dexes`: (row, protocol type) and their own fields, recorded sparsely
        # so the DEX loop stays as tight as before
        self.other_rows: list[int] = []
        self.other_type: list[str] = []
        self.counterparty: list[Any] = []
        self.method: list[Any] = []
        self.token_address: list[Any] = []
        self.token_amount: list[Any] = []
        self.failed: list[Any] = []
        self.gas_used: list[Any] = []
        self.gas_price: list[Any] = []

    def add_dex(self, message_index: int, transactions: list[Any]) -> None:
        mi, pos = self.message_index, self.position
        doc, act, ts, proto, pool = self.document_id, self.action, self.timestamp, self.protocol, self.pool_id
        asym, ausd, bsym, busd, bad = self.a_symbol, self.a_usd, self.b_symbol, self.b_usd, self.not_an_object
        for i, tx in enumerate(transactions):
            mi.append(message_index)
            pos.append(i)
            if type(tx) is not dict:
                bad.append(True)
                for col in (doc, act, ts, proto, pool, asym, ausd, bsym, busd):
                    col.append(None)
                continue
            bad.append(False)
            get = tx.get
            action = get("action")
            doc.append(get("document_id"))
            act.append(_shared(action))
            ts.append(get("timestamp"))
            proto.append(_shared(get("protocol")))
            pool.append(_shared(get("poolId")))
            if action == "swap":
                a, b = get("tokenIn"), get("tokenOut")
            else:
                a, b = get("token0"), get("token1")
            if type(a) is dict:
                asym.append(_shared(a.get("symbol")))
                ausd.append(a.get("amountUSD"))
            else:
                asym.append(None)
                ausd.append(None)
            if type(b) is dict:
                bsym.append(_shared(b.get("symbol")))
                busd.append(b.get("amountUSD"))
            else:
                bsym.append(None)
                busd.append(None)

    def add_other(self, protocol_type: str, message_index: int, transactions: list[Any]) -> None:
        """`transfers` (token, counterparty, method, failed, gas) or `lending` (asset; a liquidation's
        collateral and debt go to the token a/b columns, its liquidator to counterparty)."""
        is_transfer = protocol_type == "transfers"
        if is_transfer and all(type(tx) is dict for tx in transactions):
            self._add_transfers(message_index, transactions)
            return
        for i, tx in enumerate(transactions):
            self.other_rows.append(len(self.message_index))
            self.other_type.append(protocol_type)
            self.message_index.append(message_index)
            self.position.append(i)
            self.pool_id.append(None)
            if type(tx) is not dict:
                self.not_an_object.append(True)
                for col in (
                    self.document_id,
                    self.action,
                    self.timestamp,
                    self.protocol,
                    self.a_symbol,
                    self.a_usd,
                    self.b_symbol,
                    self.b_usd,
                    self.counterparty,
                    self.method,
                    self.token_address,
                    self.token_amount,
                    self.failed,
                    self.gas_used,
                    self.gas_price,
                ):
                    col.append(None)
                continue
            self.not_an_object.append(False)
            get = tx.get
            action = get("action")
            self.document_id.append(get("document_id"))
            self.action.append(_shared(action))
            self.timestamp.append(get("timestamp"))
            self.protocol.append(_shared(get("protocol")))
            if is_transfer:
                a, b = get("token"), None
                self.counterparty.append(_shared(get("counterparty")))
                self.method.append(_shared(get("method")))
                self.failed.append(get("failed"))
                self.gas_used.append(get("gasUsed"))
                self.gas_price.append(get("gasPrice"))
            else:
                if action == "liquidation":
                    a, b = get("collateral"), get("debt")
                    a = a if a is not None else get("asset")
                else:
                    a, b = get("asset"), None
                self.counterparty.append(get("liquidator"))
                self.method.append(None)
                self.failed.append(None)
                self.gas_used.append(None)
                self.gas_price.append(None)
            a = a if type(a) is dict else {}
            b = b if type(b) is dict else {}
            self.a_symbol.append(_shared(a.get("symbol")))
            self.a_usd.append(a.get("amountUSD"))
            self.token_address.append(_shared(a.get("address")))
            self.token_amount.append(a.get("amount"))
            self.b_symbol.append(_shared(b.get("symbol")))
            self.b_usd.append(b.get("amountUSD"))

    def _add_transfers(self, message_index: int, transactions: list[dict]) -> None:
        """The common case of `add_other`: transfers that are all objects, one pass per field (the same
        values as the row loop, several times faster than appending row by row)."""
        n, start = len(transactions), len(self.message_index)
        self.other_rows.extend(range(start, start + n))
        self.other_type.extend(["transfers"] * n)
        self.message_index.extend([message_index] * n)
        self.position.extend(range(n))
        self.pool_id.extend([None] * n)
        self.not_an_object.extend([False] * n)
        self.document_id.extend([tx.get("document_id") for tx in transactions])
        self.action.extend([_shared(tx.get("action")) for tx in transactions])
        self.timestamp.extend([tx.get("timestamp") for tx in transactions])
        self.protocol.extend([_shared(tx.get("protocol")) for tx in transactions])
        self.counterparty.extend([_shared(tx.get("counterparty")) for tx in transactions])
        self.method.extend([_shared(tx.get("method")) for tx in transactions])
        self.failed.extend([tx.get("failed") for tx in transactions])
        self.gas_used.extend([tx.get("gasUsed") for tx in transactions])
        self.gas_price.extend([tx.get("gasPrice") for tx in transactions])
        tokens = [token if type(token := tx.get("token")) is dict else _NO_TOKEN for tx in transactions]
        self.a_symbol.extend([_shared(t.get("symbol")) for t in tokens])
        self.a_usd.extend([t.get("amountUSD") for t in tokens])
        self.token_address.extend([_shared(t.get("address")) for t in tokens])
        self.token_amount.extend([t.get("amount") for t in tokens])
        self.b_symbol.extend([None] * n)
        self.b_usd.extend([None] * n)


def _as_line(raw: Any) -> tuple[Any, str | None]:
    """Parse one raw message (bytes, str or an already-decoded dict) into a Python object."""
    if isinstance(raw, dict):
        return raw, None
    if isinstance(raw, str):
        try:
            raw = raw.encode()
        except UnicodeEncodeError as exc:  # a str with a lone surrogate has no UTF-8 form
            return None, f"invalid JSON ({exc})"
    if not isinstance(raw, (bytes, bytearray, memoryview)):
        return None, f"unsupported message type {type(raw).__name__}"
    if len(raw) > MAX_MESSAGE_BYTES:
        return None, f"message of {len(raw)} bytes exceeds the {MAX_MESSAGE_BYTES}-byte limit"
    try:
        return orjson.loads(raw), None
    except orjson.JSONDecodeError as exc:
        return None, f"invalid JSON ({exc})"


def wallet_hint(raw: Any) -> str:
    """Best-effort wallet address from an unreadable message, so its failure can be routed."""
    if isinstance(raw, (bytes, bytearray)):
        raw = bytes(raw[:4096]).decode("utf-8", "replace")
    if isinstance(raw, str):
        found = re.search(r'"wallet_address"\s*:\s*"(0x[0-9a-fA-F]{40})"', raw)
        return found.group(1) if found else ""
    return ""


@dataclass
class FlattenedMessages:
    """What the Python path read: raw column lists plus the messages it could not read at all."""

    columns: RawColumns
    rejections: list[Rejection]
    warnings: dict[int, list[str]]
    ignored_sections: int


def flatten_messages(
    raws: list[Any], indices: Iterable[int], addresses: list[str], wallet_keys: list[str | None]
) -> FlattenedMessages:
    """orjson-parse the messages `indices` and flatten their transactions into plain lists, unchecked.
    Fills `addresses` and `wallet_keys` (per message of the whole batch) for those messages."""
    cols = RawColumns()
    rejections: list[Rejection] = []
    warnings: dict[int, list[str]] = {}
    ignored_sections = 0
    for index in indices:
        raw = raws[index]
        message, error = _as_line(raw)
        address = ""
        if error is None:
            if not isinstance(message, dict):
                error = f"message must be a JSON object, got {type(message).__name__}"
            else:
                address_value = message.get("wallet_address")
                data = message.get("data")
                if isinstance(address_value, str):
                    address = address_value
                if address_value is None:
                    error = "missing required field 'wallet_address'"
                elif not isinstance(address_value, str) or not ADDRESS_RE.fullmatch(address_value):
                    error = f"invalid wallet_address {address_value!r}: expected 0x followed by 40 hex digits"
                elif data is None:
                    error = "missing required field 'data'"
                elif not isinstance(data, list):
                    error = f"field 'data' must be a list of protocol sections, got {type(data).__name__}"
        else:
            address = wallet_hint(raw)
        addresses[index] = address
        if error is not None:
            rejections.append(Rejection(index, address, f"Processing failed: {error}"))
            continue
        wallet_keys[index] = address.lower()
        for s, section in enumerate(message["data"]):
            protocol_type = section.get("protocolType") if isinstance(section, dict) else None
            transactions = section.get("transactions") if isinstance(section, dict) else None
            if protocol_type == "dexes" and isinstance(transactions, list):
                cols.add_dex(index, transactions)
            elif protocol_type in ACTIONS_BY_TYPE and isinstance(transactions, list):
                cols.add_other(protocol_type, index, transactions)
            else:
                reason = (
                    f"section {s}: {protocol_type!r} transactions must be a list"
                    if protocol_type in ACTIONS_BY_TYPE
                    else f"section {s}: protocolType {protocol_type!r} has no features yet; ignored"
                )
                warnings.setdefault(index, []).append(reason)
                ignored_sections += 1
    return FlattenedMessages(cols, rejections, warnings, ignored_sections)
