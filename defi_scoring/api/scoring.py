"""The API's door to the scoring service: request bodies appended to the stored histories and scored
on them, each caller getting its own message.

Used by the dynamic batcher (concurrent POST /score requests) and by POST /score/batch. A window of
requests is one append (one store transaction); a wallet that appears in several bodies of one window
is appended and scored in separate rounds, in arrival order, so each caller gets what its message
gave once the earlier ones were stored. persist=False scores stored history plus the body and writes
nothing. A batch sent as an Arrow transactions table is scored by `score_table` (one message per
wallet) through the same service.
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

from defi_scoring.api import metrics
from defi_scoring.core import table_decode
from defi_scoring.core.normalise import normalise_messages, normalise_tables
from defi_scoring.core.scoring_config import default_scoring_config
from defi_scoring.core.success_messages import EncodedMessages
from defi_scoring.service.scoring_service import ScoringService

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


class StoreUnavailable(RuntimeError):
    """The score store (the wallets' state) cannot be read or written: nothing can be scored (503)."""


def _service(state) -> ScoringService:
    try:
        return ScoringService(state.store, default_scoring_config(), state.model)
    except sa.exc.SQLAlchemyError as exc:
        metrics.STORE_ERRORS.labels("read").inc()
        raise StoreUnavailable(f"score store unavailable ({str(exc)[:200]}); see /api/v1/health") from exc


def _scored(service: ScoringService, batch, persist: bool, as_of: int | None):
    try:
        return service.score(batch, source="api", run_id="api", persist=persist, as_of=as_of)
    except sa.exc.SQLAlchemyError as exc:
        metrics.STORE_ERRORS.labels("write").inc()
        log.error("score store failed while scoring %d messages: %s", batch.message_count, exc)
        raise StoreUnavailable(f"score store unavailable ({str(exc)[:200]}); see /api/v1/health") from exc


def score_bodies(
    state, bodies: list[Any], persist: bool = True, as_of: int | None = None
) -> list[tuple[bytes, dict[str, Any]]]:
    """(output message as JSON, its summary) per body, in order; appended and recorded in the store
    unless persist=False. The JSON is what the caller gets, byte for byte."""
    started = time.perf_counter()
    service = _service(state)
    addresses = [_address(b) for b in bodies]
    out: list[tuple[bytes, dict[str, Any]] | None] = [None] * len(bodies)
    for positions in rounds_without_repeats(addresses):
        result = _scored(service, normalise_messages([bodies[i] for i in positions]), persist, as_of)
        for i, value, summary in zip(positions, result.messages.values, result.messages.summaries):
            out[i] = (value, summary)
    _observe(len(out), started)
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


def score_table(
    state, table: pa.Table, wallets: list[str | None], persist: bool = True, as_of: int | None = None
) -> EncodedMessages:
    """A transactions table (core/transaction_table.py) scored as its §1 messages would be: one output
    message per wallet, in order of first appearance, through the service as `score_bodies`.
    `wallets`: `table_wallets(table)`. Raises TableSchemaError for a table that is not one."""
    started = time.perf_counter()
    service = _service(state)
    encoded = _scored(service, normalise_tables([table]), persist, as_of).messages
    _observe(len(encoded.values), started)
    return encoded


def _observe(count: int, started: float) -> None:
    metrics.BATCH_SIZE.observe(count)
    metrics.SCORING_SECONDS.observe(time.perf_counter() - started)


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
