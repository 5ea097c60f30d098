"""Raw wallet-transactions messages → one columnar table of transactions + rejected messages.

All protocol types of CONTRACTS.md §1/§1b (`dexes`, `transfers`, `lending`) land in the same table,
told apart by `protocol_type`; the DEX code reads only its own rows, so a new type adds columns and
features without touching it.

Why not validate each message with the pydantic models? They cost ~4 µs per transaction, which alone
would eat the raw→score budget. Two decoders feed the same column-wise checks:
- native (`core/arrow_decode.py`): Arrow's JSON reader parses well-formed lines into typed columns in
  C++; it takes a message only when it would keep every transaction of it unchanged;
- Python (`core/python_decode.py`): each remaining line is parsed with orjson and its transactions are
  flattened into plain column lists with no checks; every value check then runs once per column with
  numpy/pandas (`core/column_checks.py`). It is the reference: every bad-input verdict and error
  text comes from it.
Here: choosing the decoder, decoding large batches a chunk at a time, combining the parts.
Deduplication by (wallet, document_id) runs once over the rows of both, in batch order. The pydantic
models in `defi_scoring.contracts` stay the documented contract; tests hold the decoders and the
models to the same verdicts. What happens to each kind of bad input is tabled in `docs/bad_input.md`.
"""

from __future__ import annotations

import contextlib
import ctypes
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import orjson
import pandas as pd
import polars as pl
import pyarrow as pa
from pandas.api.types import union_categoricals

from defi_scoring.contracts.messages import MAX_MESSAGE_BYTES
from defi_scoring.core import arrow_decode, table_decode
from defi_scoring.core.column_checks import SHORT_COLUMN, validate_columns
from defi_scoring.core.frame_columns import column
from defi_scoring.core.python_decode import FlattenedMessages, Rejection, flatten_messages, wallet_hint
from defi_scoring.core.transaction_columns import (
    CATEGORICAL_COLUMNS,
    EXTRA_NUMBER_COLUMNS,
    EXTRA_STRING_COLUMNS,
    TRANSACTION_COLUMNS,
)

__all__ = [
    "EXTRA_NUMBER_COLUMNS",
    "EXTRA_STRING_COLUMNS",
    "MAX_MESSAGE_BYTES",
    "TRANSACTION_COLUMNS",
    "NormalisedBatch",
    "Rejection",
    "normalise_in_chunks",
    "normalise_messages",
    "normalise_tables",
    "wallet_hint",
]

MAX_WARNINGS_LISTED = 5
NATIVE_MIN_BYTES = 1_000_000  # measured crossover: ~1 MB of transfers, ~2 MB of DEX messages
# A larger batch is decoded this much text at a time (normalise_in_chunks, the same batch): Arrow's
# buffers and the parts stay chunk-sized instead of several times the whole input.
DECODE_CHUNK_BYTES = 64_000_000


CATEGORY_OF_ACTION = {"swap": "trading", "deposit": "liquidity_provision", "withdraw": "liquidity_provision"}


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
        slow.read.rejections,
        slow.read.warnings,
        slow.read.ignored_sections,
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
    ignored = sum(p.ignored_sections for p in parts)
    return _finish(
        valid, positions, dropped, messages_with_valid, rejections, warnings, addresses, wallet_keys, ignored
    )


def _finish(
    valid: pd.DataFrame,
    positions: np.ndarray,
    dropped: pd.DataFrame,
    messages_with_valid: set[int],
    rejections: list[Rejection],
    warnings: dict[int, list[str]],
    addresses: list[str],
    wallet_keys: list[str | None],
    ignored_sections: int,
    document_hash: np.ndarray | None = None,
) -> NormalisedBatch:
    """Rows of every part in batch order → duplicates dropped, messages without a valid transaction
    rejected, counts."""
    transactions, dropped = _deduplicate(valid, positions, dropped, len(dropped) > 0, document_hash)
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
        "ignored_sections": ignored_sections,
    }
    return NormalisedBatch(transactions, rejections, addresses, warnings, counts)


def normalise_tables(tables: Iterable[pa.Table]) -> NormalisedBatch:
    """Columnar input (core/transaction_table.py: one row per transaction, one or several tables such
    as a Parquet file's row groups) → the batch its §1 messages would give: one message per wallet in
    order of first appearance, whichever table its rows are in. Never raises on bad rows; a table that
    is not a transactions table at all raises `TableSchemaError`."""
    wallet_index: dict[str | None, int] = {}
    addresses: list[str] = []
    wallet_keys: list[str | None] = []
    pieces: list[tuple[dict, np.ndarray]] = []
    dropped_parts: list[pd.DataFrame] = []
    messages_with_valid: set[int] = set()
    rejections: dict[int, Rejection] = {}
    warnings: dict[int, list[str]] = {}
    sections: dict[tuple[int, str | None], int] = {}  # rows so far per (message, protocol type)
    ignored = 0
    for table in tables:
        decoded = table_decode.decode_table(table, wallet_index, sections)
        addresses.extend([""] * len(decoded.keys))
        wallet_keys.extend([None] * len(decoded.keys))
        fast = decoded.rows
        for i, address in zip(fast.accepted.tolist(), fast.addresses):
            addresses[i] = addresses[i] or address
            wallet_keys[i] = address.lower()
        messages_with_valid.update(fast.accepted.tolist())
        if len(fast):
            types = np.asarray(arrow_decode.TYPES, dtype=object)[fast.columns["protocol_type"].indices]
            positions = table_decode.shift_positions(fast.positions, fast.columns["message_index"], types, sections)
            pieces.append((fast.columns, positions))
        if decoded.messages:
            seen = {i: addresses[i] for i in decoded.messages}
            slow = _python_rows(decoded.messages, sorted(decoded.messages), addresses, wallet_keys)
            for i, address in seen.items():
                addresses[i] = address or addresses[i]
            if len(slow.frame):
                frame = slow.frame
                positions = table_decode.shift_positions(
                    slow.positions,
                    column(frame, "message_index").astype(np.int64),
                    np.asarray(frame["protocol_type"].astype(object)),
                    sections,
                )
                pieces.append((table_decode.columns_of(frame), positions))
            if len(slow.dropped):
                dropped = slow.dropped
                if sections:
                    dropped = dropped.assign(
                        position=table_decode.shift_positions(
                            dropped["position"].to_numpy(np.int64),
                            dropped["message_index"].to_numpy(np.int64),
                            dropped["protocol_type"].to_numpy(dtype=object),
                            sections,
                        )
                    )
                dropped_parts.append(dropped)
            messages_with_valid |= slow.messages_with_valid
            for rejection in slow.read.rejections:
                rejections.setdefault(rejection.message_index, rejection)
            for i, lines in slow.read.warnings.items():
                warnings.setdefault(i, []).extend(lines)
            ignored += slow.read.ignored_sections
        for section, rows in decoded.sections.items():
            sections[section] = sections.get(section, 0) + rows
    if pieces:
        valid, positions, document_hash = table_decode.assemble(pieces)
    else:
        document_hash = None
        empty = _python_rows([], [], [], [])
        valid, positions = empty.frame, empty.positions
        dropped_parts = dropped_parts or [empty.dropped]
    if not dropped_parts:
        dropped_parts = [_python_rows([], [], [], []).dropped]
    dropped = pd.concat(dropped_parts, ignore_index=True) if len(dropped_parts) > 1 else dropped_parts[0]
    return _finish(
        valid,
        positions,
        dropped,
        messages_with_valid,
        list(rejections.values()),
        warnings,
        addresses,
        wallet_keys,
        ignored,
        document_hash,
    )


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
    read: FlattenedMessages  # the messages it could not read at all, warnings, ignored sections


def _python_rows(
    raws: list[Any], indices: Iterable[int], addresses: list[str], wallet_keys: list[str | None]
) -> _PythonRows:
    """The Python path over the messages `indices`: orjson, flattening into lists, column-wise checks.
    Fills `addresses` and `wallet_keys` (per message of the whole batch) for those messages."""
    read = flatten_messages(raws, indices, addresses, wallet_keys)
    valid, positions, dropped, messages_with_valid = validate_columns(read.columns, wallet_keys)
    return _PythonRows(valid, positions, dropped, messages_with_valid, read)


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
    valid: pd.DataFrame,
    positions: np.ndarray,
    dropped: pd.DataFrame,
    cleanup: bool,
    document_hash: np.ndarray | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Keep the first of each (wallet, document_id) in batch order; the others become "duplicate"
    drops. `cleanup`: rows were dropped before, so categories may have lost their last row."""
    duplicate = _repeated_keys(valid, document_hash)
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
    transactions = valid if _numbered(valid) else valid.reset_index(drop=True)  # (a reset copies every column)
    if cleanup:
        for name in CATEGORICAL_COLUMNS:  # as if built from the kept rows only: no category without a row
            transactions[name] = transactions[name].cat.remove_unused_categories()
    return transactions, dropped if _numbered(dropped) else dropped.reset_index(drop=True)


def _numbered(frame: pd.DataFrame) -> bool:
    """The frame's rows are already numbered 0…n−1 (what reset_index(drop=True) would give)."""
    index = frame.index
    return isinstance(index, pd.RangeIndex) and index.start == 0 and index.step == 1 and index.name is None


def _repeated_keys(valid: pd.DataFrame, document_hash: np.ndarray | None = None) -> np.ndarray:
    """Per row: its (wallet, document_id) came earlier (`DataFrame.duplicated`, keep first). A short
    frame (one API call) goes through a set: pandas' hashing of two columns costs ~0.3 ms whatever
    the length."""
    if len(valid) > SHORT_COLUMN:
        return _repeated_keys_hashed(valid, document_hash)
    wallet = column(valid, "wallet")
    wallets = wallet.codes if isinstance(wallet, pd.Categorical) else wallet
    seen: set = set()
    repeated = np.zeros(len(valid), dtype=bool)
    for row, key in enumerate(zip(wallets.tolist(), column(valid, "document_id").tolist())):
        if key in seen:
            repeated[row] = True
        seen.add(key)
    return repeated


def _repeated_keys_hashed(valid: pd.DataFrame, hashed: np.ndarray | None = None) -> np.ndarray:
    """`DataFrame.duplicated(["wallet", "document_id"])` for many rows, ~6× faster: a 64-bit hash per
    key (polars hashes the strings on both cores) finds the rows whose key may repeat, and only those
    go through the exact comparison (a row with a unique hash cannot repeat a key)."""
    wallet = column(valid, "wallet")
    codes = wallet.codes if isinstance(wallet, pd.Categorical) else pd.factorize(wallet)[0]
    if hashed is None:  # (a table's rows come with theirs, hashed from Arrow: table_decode)
        hashed = pl.Series(column(valid, "document_id"), dtype=pl.String, strict=False).hash(seed=0).to_numpy()
    key = hashed ^ (codes.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15))
    maybe = pl.Series(key).is_duplicated().to_numpy()
    repeated = np.zeros(len(valid), dtype=bool)
    if maybe.any():
        rows = np.flatnonzero(maybe)
        subset = pd.DataFrame({"wallet": codes[rows], "document_id": column(valid, "document_id")[rows]})
        repeated[rows] = subset.duplicated(keep="first").to_numpy()
    return repeated


def _rows_kept(frame: pd.DataFrame, keep: np.ndarray) -> pd.DataFrame:
    """frame[keep] built a column at a time, each of the frame's columns deleted once copied (the
    frame is the caller's own): the peak is the kept rows plus one column, not both tables."""
    out = pd.DataFrame(index=pd.RangeIndex(int(keep.sum())))
    for name in list(frame.columns):
        column = frame[name]
        out[name] = column.array[keep] if isinstance(column.dtype, pd.CategoricalDtype) else column.to_numpy()[keep]
        del frame[name], column
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
