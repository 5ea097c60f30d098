"""Scoring many request bodies in one vectorised call, each caller getting its own message.

Used by the dynamic batcher (concurrent POST /score requests) and by POST /score/batch. A wallet that
appears in several bodies of one window is scored in separate rounds, so every caller gets the score
its own message gives, as if it had been alone. A batch sent as an Arrow transactions table is scored
by `score_table` (one message per wallet), with the same previous scores, metrics and store records.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterable
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from defi_scoring.api import metrics
from defi_scoring.core import table_decode
from defi_scoring.core.batch_scoring import score_raw_messages, score_tables
from defi_scoring.core.scoring_config import default_scoring_config
from defi_scoring.core.success_messages import EncodedMessages

log = logging.getLogger("defi_scoring.api")


ADDRESS_FIELD = re.compile(rb'"wallet_address"\s*:\s*"(0x[0-9a-fA-F]{40})"')


def _address(body: Any) -> str | None:
    """The wallet key of a body without parsing it (normalisation parses it once, later)."""
    if isinstance(body, dict):
        address = body.get("wallet_address")
        return address.lower() if isinstance(address, str) else None
    if isinstance(body, str):
        body = body.encode()
    found = ADDRESS_FIELD.search(body) if isinstance(body, (bytes, bytearray)) else None
    return found.group(1).decode().lower() if found else None


def rounds_without_repeats(addresses: list[str | None]) -> list[list[int]]:
    """Positions split into rounds in which no wallet appears twice (unreadable ones go in round 0)."""
    rounds: list[list[int]] = []
    seen_in: dict[str, int] = {}
    for position, address in enumerate(addresses):
        level = 0 if address is None else seen_in.get(address, -1) + 1
        if address is not None:
            seen_in[address] = level
        while len(rounds) <= level:
            rounds.append([])
        rounds[level].append(position)
    return rounds


def score_bodies(state, bodies: list[Any], record: bool = True) -> list[tuple[bytes, dict[str, Any]]]:
    """(output message as JSON, its summary) per body, in order; all recorded in the score store.

    The JSON is what the caller gets, byte for byte: nothing is decoded and encoded again."""
    started = time.perf_counter()
    addresses = [_address(b) for b in bodies]
    previous = _previous_scores(state, {a for a in addresses if a})
    out: list[tuple[bytes, dict[str, Any]] | None] = [None] * len(bodies)
    for positions in rounds_without_repeats(addresses):
        scored = score_raw_messages(
            [bodies[i] for i in positions], config=default_scoring_config(), model=state.model, previous_scores=previous
        )
        encoded = scored.encoded()
        for i, value, summary in zip(positions, encoded.values, encoded.summaries):
            out[i] = (value, summary)
    _observe_and_record(state, [v for v, _ in out], [m for _, m in out], started, record)
    return out


def table_wallets(table: pa.Table) -> list[str | None]:
    """The distinct wallets of a transactions table (lower-cased, as the decoder keys them; a null
    address is one wallet too): the batch's size for its limit and the keys of its previous scores.
    Raises TableSchemaError when the table has no usable `wallet_address` column."""
    if "wallet_address" not in table.column_names:
        table_decode.conform(table)  # raises with the message naming every missing column
    column = table.column("wallet_address")
    try:
        keys = pc.unique(pc.utf8_lower(column.cast(pa.string())))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as error:
        raise table_decode.TableSchemaError(
            f"column 'wallet_address' is {column.type}, expected string: {error}"
        ) from None
    return keys.to_pylist()


def score_table(state, table: pa.Table, wallets: list[str | None], record: bool = True) -> EncodedMessages:
    """A transactions table (core/transaction_table.py) scored as its §1 messages would be: one output
    message per wallet, in order of first appearance; recorded as `score_bodies` records.
    `wallets`: `table_wallets(table)`. Raises TableSchemaError for a table that is not one."""
    started = time.perf_counter()
    previous = _previous_scores(state, [w for w in wallets if w])
    encoded = score_tables(
        [table], config=default_scoring_config(), model=state.model, previous_scores=previous
    ).encoded()
    _observe_and_record(state, encoded.values, encoded.summaries, started, record)
    return encoded


def _previous_scores(state, wallets: Iterable[str]) -> pd.Series | None:
    """Each wallet's last hybrid score (the score-drop alert reads it); None while the store is down."""
    try:
        return state.store.latest_hybrid_scores(wallets)
    except Exception as exc:
        metrics.STORE_ERRORS.labels("read").inc()
        log.warning("score store unreadable, scoring without previous scores: %s", exc)
        return None


def _observe_and_record(
    state, values: list[bytes], summaries: list[dict[str, Any]], started: float, record: bool
) -> None:
    """Scoring metrics, then every output message stored as an event of source `api` (a failed write
    is counted and logged: the caller still gets its scores)."""
    metrics.BATCH_SIZE.observe(len(values))
    metrics.SCORING_SECONDS.observe(time.perf_counter() - started)
    if not record:
        return
    try:
        state.store.record_messages(summaries, run_id="api", source="api", encoded=values)
    except Exception as exc:
        metrics.STORE_ERRORS.labels("write").inc()
        log.error("score store write failed for %d messages: %s", len(values), exc)


# One row per result of POST /score/batch when the caller accepts Arrow (README, "REST API").
ANSWER_SCHEMA = pa.schema(
    [
        ("wallet_address", pa.string()),
        ("ok", pa.bool_()),
        ("zscore", pa.string()),
        ("score", pa.float64()),
        ("confidence", pa.float64()),
        ("risk_level", pa.string()),
        ("error", pa.string()),
        ("message", pa.string()),
    ]
)
# The summaries' fields the answer reads (a success summary has no `error`, a failure only address and
# error): converted natively, by name, other fields ignored — no JSON is parsed again.
_SUMMARY_FIELDS = pa.struct(
    [
        ("wallet_address", pa.string()),
        ("zscore", pa.string()),
        ("hybrid_score", pa.float64()),
        ("confidence", pa.float64()),
        ("risk_level", pa.string()),
        ("error", pa.string()),
    ]
)


def arrow_answer(values: list[bytes], summaries: list[dict[str, Any]]) -> bytes:
    """The results as an Arrow IPC stream of ANSWER_SCHEMA, one row per result, in order."""
    fields = pa.array(summaries, type=_SUMMARY_FIELDS)
    error = fields.field("error")
    columns = [
        fields.field("wallet_address"),
        pc.is_null(error),
        fields.field("zscore"),
        fields.field("hybrid_score"),
        fields.field("confidence"),
        fields.field("risk_level"),
        error,
        pa.array(values, pa.string()),
    ]
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, ANSWER_SCHEMA) as writer:
        writer.write_batch(pa.record_batch(columns, schema=ANSWER_SCHEMA))
    return sink.getvalue().to_pybytes()
