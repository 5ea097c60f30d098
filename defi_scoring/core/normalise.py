"""Raw wallet-transactions messages → one columnar table of transactions + rejected messages.

All protocol types of CONTRACTS.md §1/§1b (`dexes`, `transfers`, `lending`) land in the same table,
told apart by `protocol_type`; the DEX code reads only its own rows, so a new type adds columns and
features without touching it.

Why not validate each message with the pydantic models? They cost ~4 µs per transaction, which alone
would eat the raw→score budget. Two decoders feed the same column-wise checks:
- native (`core/arrow_decode.py`): Arrow's JSON reader parses well-formed lines into typed columns in
  C++; it takes a message only when it would keep every transaction of it unchanged;
- Python (here): each remaining line is parsed with orjson, its transactions are flattened into
  plain column lists with no checks, and every value check runs once per column with numpy/pandas.
  It is the reference: every bad-input verdict and error text comes from it.
Deduplication by (wallet, document_id) runs once over the rows of both, in batch order. The pydantic
models in `defi_scoring.contracts` stay the documented contract; tests hold the decoders and the
models to the same verdicts. What happens to each kind of bad input is tabled in `docs/bad_input.md`.
"""

from __future__ import annotations

import contextlib
import ctypes
import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import orjson
import pandas as pd
from pandas.api.types import union_categoricals

from defi_scoring.contracts.messages import ACTIONS_BY_TYPE, MAX_MESSAGE_BYTES, MAX_TIMESTAMP, MIN_TIMESTAMP
from defi_scoring.core import arrow_decode

ADDRESS_RE = re.compile(r"0x[0-9a-fA-F]{40}")
MAX_WARNINGS_LISTED = 5
NATIVE_MIN_BYTES = 1_000_000  # measured crossover: ~1 MB of transfers, ~2 MB of DEX messages
# A larger batch is decoded this much text at a time (normalise_in_chunks, the same batch): Arrow's
# buffers and the parts stay chunk-sized instead of several times the whole input.
DECODE_CHUNK_BYTES = 64_000_000

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

CATEGORY_OF_ACTION = {"swap": "trading", "deposit": "liquidity_provision", "withdraw": "liquidity_provision"}


@dataclass
class Rejection:
    """A message that yields no scoreable transaction: it becomes a failure record."""

    message_index: int
    wallet_address: str
    error: str
    categories: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class NormalisedBatch:
    transactions: pd.DataFrame
    rejections: list[Rejection]
    wallet_addresses: list[str]  # per message, as received ("" when unreadable)
    warnings: dict[int, list[str]]  # per message index: dropped transactions, ignored sections
    counts: dict[str, int]

    @property
    def message_count(self) -> int:
        return len(self.wallet_addresses)

    def rejections_frame(self) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "message_index": [r.message_index for r in self.rejections],
                "wallet_address": [r.wallet_address for r in self.rejections],
                "error": [r.error for r in self.rejections],
                "categories": [orjson.dumps(r.categories).decode() for r in self.rejections],
            }
        )


def _shared(value: Any) -> Any:
    """One string object per distinct value (actions, pools, symbols repeat): the column passes that
    follow then touch a few objects instead of one scattered object per transaction (~20% of the
    normalisation time on 130k transactions). Non-strings pass through unchanged."""
    return sys.intern(value) if type(value) is str else value


def _object_array(values: list[Any]) -> np.ndarray:
    """A list as a 1-D object array in one pass (nested lists stay elements, never a second axis)."""
    return np.fromiter(values, dtype=object, count=len(values))


_NO_TOKEN: dict = {}


class _Columns:
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


def _numeric(values: list[Any]) -> tuple[np.ndarray, np.ndarray]:
    """Column of raw JSON values → (float array with NaN for missing, mask of present-but-invalid).

    None means missing (counts 0 downstream); a float NaN, a bool or a non-numeric string is invalid.
    The per-value type scan only runs when the column is not plainly numeric.
    """
    column = _object_array(values)
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


def normalise_messages(raw_messages: Iterable[Any], decoder: str = "auto") -> NormalisedBatch:
    """Turn a batch of raw messages into transactions + rejections; never raises on bad input.

    decoder "arrow": Arrow's native reader takes every message it can decode exactly
    (core/arrow_decode.py) and this module's Python path the rest; "python": the Python path alone
    (the reference the property test compares with); "auto": arrow from NATIVE_MIN_BYTES of input on
    (below, Arrow's fixed cost per call is more than it saves). All three give the same batch."""
    raws = raw_messages if isinstance(raw_messages, list) else list(raw_messages)
    if len(raws) > 1 and _text_bytes(raws) > DECODE_CHUNK_BYTES:
        return normalise_in_chunks(_slices(raws, DECODE_CHUNK_BYTES), decoder)
    return _combine([_decode_part(raws, decoder)])


def _text_bytes(raws: list[Any]) -> int:
    return sum(len(r) for r in raws if isinstance(r, (bytes, str)))


def _slices(raws: list[Any], chunk_bytes: int) -> Iterator[list[Any]]:
    """Consecutive runs of messages of about `chunk_bytes` of text each."""
    start, size = 0, 0
    for i, raw in enumerate(raws):
        size += len(raw) if isinstance(raw, (bytes, str)) else 0
        if size >= chunk_bytes:
            yield raws[start : i + 1]
            start, size = i + 1, 0
    if start < len(raws):
        yield raws[start:]


def normalise_in_chunks(chunks: Iterable[list[Any]], decoder: str = "auto") -> NormalisedBatch:
    """The batch `normalise_messages` gives for all chunks' messages in order, decoding one chunk at a
    time: a chunk's raw lines can be freed before the next is read, so a large file never sits in
    memory as text. Duplicates across chunks are found over the whole batch, as in one call."""
    parts = []
    for chunk in chunks:
        part = _decode_part(chunk if isinstance(chunk, list) else list(chunk), decoder)
        part.valid = _column_blocks(part.valid)
        parts.append(part)
        del chunk, part
        _release_freed_memory()  # the chunk's text and Arrow buffers, before the next chunk is read
    return _combine(parts or [_decode_part([], decoder)])  # no chunk (an empty file): an empty batch


def _column_blocks(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with every column in a block of its own (a chunk-sized copy): combining the chunks
    then frees each chunk's column as soon as it is concatenated, instead of holding every chunk
    whole until the end (the peak of a chunked decode was the chunks plus their concatenation)."""
    out = pd.DataFrame(index=frame.index)
    for name in frame.columns:
        out[name] = frame[name].copy()
    return out


def _release_freed_memory() -> None:
    """Give memory freed by Arrow's pool and by malloc back to the system, so that the peak resident
    size of a chunked decode is the parts kept, not every chunk's transient buffers."""
    import pyarrow as pa

    pa.default_memory_pool().release_unused()
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6").malloc_trim(0)


@dataclass
class _DecodedPart:
    """One chunk decoded, before deduplication (message indices local to the chunk)."""

    addresses: list[str]
    wallet_keys: list[str | None]
    valid: pd.DataFrame
    positions: np.ndarray
    dropped: pd.DataFrame
    messages_with_valid: set[int]
    rejections: list[Rejection]
    warnings: dict[int, list[str]]
    ignored_sections: int


def _decode_part(raws: list[Any], decoder: str) -> _DecodedPart:
    n = len(raws)
    addresses: list[str] = [""] * n
    wallet_keys: list[str | None] = [None] * n
    if decoder == "auto":
        size = sum(len(r) for r in raws if isinstance(r, (bytes, str)))
        decoder = "arrow" if size >= NATIVE_MIN_BYTES else "python"
    if decoder == "python":
        fast = None
        rest = range(n)
    else:
        fast = arrow_decode.decode(raws)
        rest = fast.rest.tolist()
        for i, address in zip(fast.accepted.tolist(), fast.addresses):
            addresses[i] = address
            wallet_keys[i] = address.lower()
    slow = _python_rows(raws, rest, addresses, wallet_keys)
    valid, positions = slow.frame, slow.positions
    if fast is not None and len(fast.frame):
        valid, positions = (
            _concat_in_message_order([(fast.frame, fast.positions), (slow.frame, slow.positions)])
            if len(slow.frame)
            else (fast.frame, fast.positions)
        )
    messages_with_valid = slow.messages_with_valid | (set(fast.accepted.tolist()) if fast else set())
    return _DecodedPart(
        addresses,
        wallet_keys,
        valid,
        positions,
        slow.dropped,
        messages_with_valid,
        slow.rejections,
        slow.warnings,
        slow.ignored_sections,
    )


def _combine(parts: list[_DecodedPart]) -> NormalisedBatch:
    """The parts as one batch: message indices made global, duplicates dropped over all of them,
    messages left without a valid transaction rejected."""
    if len(parts) == 1:
        part = parts[0]
        valid, positions, dropped = part.valid, part.positions, part.dropped
        messages_with_valid, rejections, warnings = part.messages_with_valid, part.rejections, part.warnings
    else:
        offsets = np.cumsum([0] + [len(p.addresses) for p in parts[:-1]]).tolist()
        pieces = [(_shifted(p.valid, o), p.positions) for p, o in zip(parts, offsets) if len(p.valid)]
        pieces = pieces or [(parts[0].valid, parts[0].positions)]
        for part in parts:  # the pieces hold the only references: their columns go as they are joined
            part.valid = part.valid.iloc[:0]
        valid, positions = _concat_in_message_order(pieces, release=True)
        dropped_parts = [_shifted(p.dropped, o) for p, o in zip(parts, offsets) if len(p.dropped)]
        dropped = pd.concat(dropped_parts, ignore_index=True) if dropped_parts else parts[0].dropped
        messages_with_valid = {i + o for p, o in zip(parts, offsets) for i in p.messages_with_valid}
        rejections = [
            replace(r, message_index=r.message_index + o) for p, o in zip(parts, offsets) for r in p.rejections
        ]
        warnings = {i + o: w for p, o in zip(parts, offsets) for i, w in p.warnings.items()}
    addresses = [a for p in parts for a in p.addresses]
    wallet_keys = [k for p in parts for k in p.wallet_keys]
    transactions, dropped = _deduplicate(valid, positions, dropped, cleanup=len(dropped) > 0)
    _explain_drops(dropped, warnings)
    already_rejected = {r.message_index for r in rejections}
    for index, key in enumerate(wallet_keys):
        if key is None or index in messages_with_valid or index in already_rejected:
            continue
        rejections.append(_no_valid_transactions(index, addresses[index], dropped, warnings.get(index, [])))
    rejections.sort(key=lambda r: r.message_index)

    counts = {
        "messages": len(addresses),
        "rejected_messages": len(rejections),
        "transactions": len(transactions),
        "dropped_transactions": int((dropped["reason"] != "duplicate").sum()) if len(dropped) else 0,
        "duplicate_transactions": int((dropped["reason"] == "duplicate").sum()) if len(dropped) else 0,
        "ignored_sections": sum(p.ignored_sections for p in parts),
    }
    return NormalisedBatch(transactions, rejections, addresses, warnings, counts)


def _shifted(frame: pd.DataFrame, offset: int) -> pd.DataFrame:
    """The frame with `message_index` moved by `offset` (a chunk's indices made global)."""
    if offset == 0:
        return frame
    frame = frame.copy(deep=False)
    frame["message_index"] = (frame["message_index"].to_numpy(np.int64) + offset).astype(np.int32)
    return frame


@dataclass
class _PythonRows:
    frame: pd.DataFrame  # valid rows, not yet deduplicated
    positions: np.ndarray
    dropped: pd.DataFrame  # invalid rows with their reason and detail
    messages_with_valid: set[int]
    rejections: list[Rejection]
    warnings: dict[int, list[str]]
    ignored_sections: int


def _python_rows(
    raws: list[Any], indices: Iterable[int], addresses: list[str], wallet_keys: list[str | None]
) -> _PythonRows:
    """The Python path over the messages `indices`: orjson, flattening into lists, column-wise checks.
    Fills `addresses` and `wallet_keys` (per message of the whole batch) for those messages."""
    cols = _Columns()
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
    valid, positions, dropped, messages_with_valid = _validate_columns(cols, wallet_keys)
    return _PythonRows(valid, positions, dropped, messages_with_valid, rejections, warnings, ignored_sections)


def _concat_in_message_order(
    pieces: list[tuple[pd.DataFrame, np.ndarray]], release: bool = False
) -> tuple[pd.DataFrame, np.ndarray]:
    """Rows of both paths as one frame in batch order (categories: the union, sorted). `release`: each
    piece's column is deleted once concatenated (pieces of `_column_blocks`: its memory goes with it),
    and the frame is built a column at a time, so the peak is the result plus one column."""
    positions = np.concatenate([p for _, p in pieces])
    frame = pd.DataFrame(index=pd.RangeIndex(len(positions)))
    for name in TRANSACTION_COLUMNS:
        if name in CATEGORICAL_COLUMNS:
            column = union_categoricals([f[name].array for f, _ in pieces], sort_categories=True)
        else:
            column = np.concatenate([f[name].to_numpy() for f, _ in pieces])
        if release:
            for f, _ in pieces:
                del f[name]
        frame[name] = column
        del column
    message_index = frame["message_index"].to_numpy()
    if len(message_index) < 2 or bool((message_index[1:] >= message_index[:-1]).all()):
        return frame, positions  # chunks in file order are in batch order: no copy by take
    order = np.argsort(message_index, kind="stable")
    return frame.take(order).reset_index(drop=True), positions[order]


def _deduplicate(
    valid: pd.DataFrame, positions: np.ndarray, dropped: pd.DataFrame, cleanup: bool
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Keep the first of each (wallet, document_id) in batch order; the others become "duplicate"
    drops. `cleanup`: rows were dropped before, so categories may have lost their last row."""
    duplicate = valid.duplicated(["wallet", "document_id"], keep="first").to_numpy()
    if duplicate.any():
        dup = pd.DataFrame(
            {
                "message_index": valid["message_index"].to_numpy()[duplicate].astype(np.int32),
                "document_id": valid["document_id"].to_numpy()[duplicate],
                "action": np.asarray(valid["action"].to_numpy(), dtype=object)[duplicate],
                "protocol_type": np.asarray(valid["protocol_type"].to_numpy(), dtype=object)[duplicate],
                "position": positions[duplicate],
                "reason": "duplicate",
                "detail": "duplicate document_id (kept the first occurrence)",
            }
        )
        dropped = pd.concat([dropped, dup], ignore_index=True) if len(dropped) else dup
        valid = _rows_kept(valid, ~duplicate)
        cleanup = True
    index = valid.index
    numbered = isinstance(index, pd.RangeIndex) and index.start == 0 and index.step == 1
    transactions = valid if numbered else valid.reset_index(drop=True)  # (a reset copies every column)
    if cleanup:
        for name in CATEGORICAL_COLUMNS:  # as if built from the kept rows only: no category without a row
            transactions[name] = transactions[name].cat.remove_unused_categories()
    return transactions, dropped.reset_index(drop=True)


def _rows_kept(frame: pd.DataFrame, keep: np.ndarray) -> pd.DataFrame:
    """frame[keep] built a column at a time, each of the frame's columns deleted once copied (the
    frame is the caller's own): the peak is the kept rows plus one column, not both tables."""
    out = pd.DataFrame(index=pd.RangeIndex(int(keep.sum())))
    for name in list(frame.columns):
        column = frame[name]
        out[name] = column.array[keep] if isinstance(column.dtype, pd.CategoricalDtype) else column.to_numpy()[keep]
        del frame[name], column
    return out


def _protocol_types(cols: _Columns, n: int) -> np.ndarray:
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


def _unknown_action(action: pd.Series, protocol_type: np.ndarray) -> np.ndarray:
    unknown = np.ones(len(action), dtype=bool)
    for kind, actions in ACTIONS_BY_TYPE.items():
        rows = protocol_type == kind
        unknown[rows] = ~action[rows].isin(actions).to_numpy()
    return unknown


def _validate_columns(
    cols: _Columns, wallet_keys: list[str | None]
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
    action = pd.Series(_object_array(cols.action), dtype=object)
    not_object = np.asarray(cols.not_an_object, dtype=bool)
    protocol_type = _protocol_types(cols, n)

    # Fields of transfers/lending rows: checked on those rows only, then scattered to full length.
    other = np.asarray(cols.other_rows, dtype=np.int64)
    other_type = np.asarray(cols.other_type, dtype=object)
    is_transfer = other_type == "transfers"
    raw_counterparty = pd.Series(_object_array(cols.counterparty), dtype=object)
    counterparty_missing = (raw_counterparty.isna().to_numpy() | (raw_counterparty == "").to_numpy()) & is_transfer
    counterparty_invalid = ~raw_counterparty.isna().to_numpy() & ~_is_type(cols.counterparty, str)
    token_amount, bad_amount_type = _numeric(cols.token_amount)
    bad_amount = bad_amount_type | (token_amount < 0) | np.isinf(token_amount)
    failed_raw = pd.Series(_object_array(cols.failed), dtype=object)
    bad_failed = ~failed_raw.isna().to_numpy() & ~_is_type(cols.failed, bool)
    gas_used, bad_gas_used = _numeric(cols.gas_used)
    gas_price, bad_gas_price = _numeric(cols.gas_price)
    bad_gas = bad_gas_used | bad_gas_price | (gas_used < 0) | (gas_price < 0) | np.isinf(gas_used) | np.isinf(gas_price)

    def on_other(mask: np.ndarray) -> np.ndarray:
        return _scatter(n, other, np.asarray(mask, dtype=bool), False)

    # One reason per dropped row; the first failing check wins (the order of this list).
    checks = [
        ("not_an_object", not_object),
        ("missing_document_id", pd.isna(document_id)),
        ("missing_action", action.isna().to_numpy()),
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
    counterparty = raw_counterparty.where(~(counterparty_invalid | counterparty_missing), None)
    a_usd, b_usd = np.nan_to_num(a_usd, nan=0.0), np.nan_to_num(b_usd, nan=0.0)
    # amount_usd: swap max(in, out) and LP token0 + token1 (CONTRACTS.md §4); a transfer or lending
    # action moves one asset (a liquidation: the collateral seized).
    is_swap = action.to_numpy() == "swap"
    is_dex = protocol_type == "dexes"
    failed = np.fromiter((1.0 if v is True else 0.0 if v is False else np.nan for v in cols.failed), float, len(other))
    columns = {
        "wallet": wallet,
        "message_index": message_index.astype(np.int32),
        "protocol_type": protocol_type,
        "document_id": document_id,
        "action": np.where(invalid, None, action.to_numpy()),  # a dropped row may hold any JSON value
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
        columns[name] = pd.Categorical(columns[name])
    frame = pd.DataFrame(columns)  # built once, with its final types: no copy per column

    positions = np.asarray(cols.position, dtype=np.int64)
    dropped = pd.DataFrame(
        {
            "message_index": message_index[invalid].astype(np.int32),
            "document_id": document_id[invalid],
            "action": action.to_numpy()[invalid],
            "protocol_type": protocol_type[invalid],
            "position": positions[invalid],
            "reason": reason[invalid],
        }
    )
    dropped["detail"] = _details(cols, np.flatnonzero(invalid), reason[invalid], protocol_type)
    valid = frame.loc[~invalid].reset_index(drop=True) if invalid.any() else frame
    messages_with_valid = set(np.unique(valid["message_index"].to_numpy()).tolist())
    return valid, positions[~invalid], dropped, messages_with_valid


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


def _lower(values: np.ndarray) -> np.ndarray:
    return np.asarray([v.lower() if v is not None else None for v in values.tolist()], dtype=object)


def _details(cols: _Columns, rows: np.ndarray, reasons: np.ndarray, protocol_type: np.ndarray) -> list[str]:
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
            out.append(f"counterparty must be an address string, got {cols.counterparty[k]!r}")
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


def _explain_drops(dropped: pd.DataFrame, warnings: dict[int, list[str]]) -> None:
    if dropped.empty:
        return
    for index, group in dropped.groupby("message_index", sort=True):
        lines = warnings.setdefault(int(index), [])
        for row in group.head(MAX_WARNINGS_LISTED).itertuples(index=False):
            doc = f" (document_id {row.document_id!r})" if row.document_id is not None else ""
            lines.append(f"transaction {row.position}{doc} dropped: {row.detail}")
        if len(group) > MAX_WARNINGS_LISTED:
            lines.append(f"… and {len(group) - MAX_WARNINGS_LISTED} more dropped transactions")


def _no_valid_transactions(index: int, address: str, dropped: pd.DataFrame, notes: list[str]) -> Rejection:
    """Failure record for a readable message that kept no transaction of any known type."""
    rows = dropped[dropped["message_index"] == index] if len(dropped) else dropped
    categories = []
    if len(rows):
        category = (
            rows["action"]
            .map(lambda action: CATEGORY_OF_ACTION.get(action) if isinstance(action, str) else None)
            .where(rows["protocol_type"] == "dexes", rows["protocol_type"])
            .fillna("dexes")
        )
        for name, group in rows.groupby(category, sort=True):
            categories.append(
                {"category": name, "error": "; ".join(sorted(set(group["detail"]))), "transaction_count": len(group)}
            )
    detail = f" ({'; '.join(notes)})" if notes else ""
    return Rejection(index, address, f"Processing failed: No valid transactions found{detail}", categories)
