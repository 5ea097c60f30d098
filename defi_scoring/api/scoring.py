"""Scoring many request bodies in one vectorised call, each caller getting its own message.

Used by the dynamic batcher (concurrent POST /score requests) and by POST /score/batch. A wallet that
appears in several bodies of one window is scored in separate rounds, so every caller gets the score
its own message gives, as if it had been alone.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import orjson

from defi_scoring.api import metrics
from defi_scoring.core.batch_scoring import score_raw_messages
from defi_scoring.core.scoring_config import default_scoring_config

log = logging.getLogger("defi_scoring.api")


def _address(body: Any) -> str | None:
    try:
        message = orjson.loads(body) if isinstance(body, (bytes, str)) else body
        address = message.get("wallet_address")
        return address.lower() if isinstance(address, str) else None
    except (orjson.JSONDecodeError, AttributeError):
        return None


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


def score_bodies(state, bodies: list[Any], record: bool = True) -> list[dict[str, Any]]:
    """One output message per body, in order; successes and failures recorded in the score store."""
    started = time.perf_counter()
    addresses = [_address(b) for b in bodies]
    previous = None
    try:
        previous = state.store.latest_hybrid_scores({a for a in addresses if a})
    except Exception as exc:
        metrics.STORE_ERRORS.labels("read").inc()
        log.warning("score store unreadable, scoring without previous scores: %s", exc)
    out: list[dict[str, Any] | None] = [None] * len(bodies)
    for positions in rounds_without_repeats(addresses):
        scored = score_raw_messages(
            [bodies[i] for i in positions], config=default_scoring_config(), model=state.model, previous_scores=previous
        )
        for i, message in zip(positions, scored.messages()):
            out[i] = message
    metrics.BATCH_SIZE.observe(len(bodies))
    metrics.SCORING_SECONDS.observe(time.perf_counter() - started)
    if record:
        try:
            state.store.record_messages(out, run_id="api", source="api")
        except Exception as exc:
            metrics.STORE_ERRORS.labels("write").inc()
            log.error("score store write failed for %d messages: %s", len(out), exc)
    return out
