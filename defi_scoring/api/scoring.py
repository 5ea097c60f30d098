"""Scoring many request bodies in one vectorised call, each caller getting its own message.

Used by the dynamic batcher (concurrent POST /score requests) and by POST /score/batch. A wallet that
appears in several bodies of one window is scored in separate rounds, so every caller gets the score
its own message gives, as if it had been alone.
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any

from defi_scoring.api import metrics
from defi_scoring.core.batch_scoring import score_raw_messages
from defi_scoring.core.scoring_config import default_scoring_config

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
    previous = None
    try:
        previous = state.store.latest_hybrid_scores({a for a in addresses if a})
    except Exception as exc:
        metrics.STORE_ERRORS.labels("read").inc()
        log.warning("score store unreadable, scoring without previous scores: %s", exc)
    out: list[tuple[bytes, dict[str, Any]] | None] = [None] * len(bodies)
    for positions in rounds_without_repeats(addresses):
        scored = score_raw_messages(
            [bodies[i] for i in positions], config=default_scoring_config(), model=state.model, previous_scores=previous
        )
        encoded = scored.encoded()
        for i, value, summary in zip(positions, encoded.values, encoded.summaries):
            out[i] = (value, summary)
    metrics.BATCH_SIZE.observe(len(bodies))
    metrics.SCORING_SECONDS.observe(time.perf_counter() - started)
    if record:
        try:
            state.store.record_messages([m for _, m in out], run_id="api", source="api", encoded=[v for v, _ in out])
        except Exception as exc:
            metrics.STORE_ERRORS.labels("write").inc()
            log.error("score store write failed for %d messages: %s", len(out), exc)
    return out
