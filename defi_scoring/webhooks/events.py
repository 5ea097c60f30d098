"""Which deliveries a new score gives (pure: no I/O). One delivery per event and subscription, only of
the types the subscription asked for:

- snapshot: once per watched wallet when it is added, with its stored score (or status not_scored);
- scored: every new score (when `min_change` is set: only when the hybrid score moved at least that
  much since the previous score, or there was none);
- threshold_crossed: the hybrid score crossed `threshold` either way (`direction` up: previous below,
  current at or above; down: the reverse); needs a previous score;
- risk_level_changed: the risk level differs from the previous score's;
- alert: the new score carries alerts (all of them, in `current.alerts`).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

EVENT_TYPES = ("snapshot", "scored", "threshold_crossed", "risk_level_changed", "alert")
SCORE_FIELDS = ("zscore", "hybrid_score", "confidence", "risk_level", "model_version", "timestamp")


@dataclass(frozen=True)
class Watch:
    """What one subscription asks for about the wallets it watches."""

    subscription_id: str
    events: frozenset[str]
    threshold: float | None = None
    min_change: float | None = None


def score_fields(message: Mapping[str, Any]) -> dict[str, Any]:
    """The score fields of a success message (or of its summary, or of a stored score row)."""
    return {name: message.get(name) for name in SCORE_FIELDS}


def change_events(
    watch: Watch, previous: Mapping[str, Any] | None, current: Mapping[str, Any]
) -> list[tuple[str, dict[str, Any]]]:
    """(type, extra body fields) of each event a new score (`current`, with `alerts`) gives `watch`,
    `previous` being the wallet's score before it (None: never scored)."""
    events = watch.events
    out: list[tuple[str, dict[str, Any]]] = []
    now_score = current.get("hybrid_score")
    before = previous.get("hybrid_score") if previous else None
    if "scored" in events:
        moved = now_score is None or before is None or abs(now_score - before) >= (watch.min_change or 0.0)
        if watch.min_change is None or moved:
            out.append(("scored", {}))
    if "threshold_crossed" in events and watch.threshold is not None and before is not None and now_score is not None:
        t = watch.threshold
        if before < t <= now_score:
            out.append(("threshold_crossed", {"threshold": t, "direction": "up"}))
        elif now_score < t <= before:
            out.append(("threshold_crossed", {"threshold": t, "direction": "down"}))
    if "risk_level_changed" in events and previous and previous.get("risk_level") != current.get("risk_level"):
        out.append(("risk_level_changed", {}))
    if "alert" in events and current.get("alerts"):
        out.append(("alert", {}))
    return out


def new_delivery_id() -> str:
    return "dlv_" + secrets.token_hex(12)


def iso_time(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{int(seconds % 1 * 1000):03d}Z"


def delivery_body(
    delivery_id: str,
    type_: str,
    created_at: float,
    subscription_id: str,
    wallet: str,
    previous: Mapping[str, Any] | None,
    current: Mapping[str, Any] | None,
    extra: Mapping[str, Any] | None = None,
) -> bytes:
    """The JSON body of one delivery (fixed when enqueued; signed at each attempt)."""
    body = {
        "id": delivery_id,
        "type": type_,
        "created_at": iso_time(created_at),
        "subscription_id": subscription_id,
        "wallet_address": wallet,
        "previous": None if previous is None else dict(previous),
        "current": None if current is None else dict(current),
    }
    if extra:
        body.update(extra)
    return orjson.dumps(body)


def snapshot_extra(current: Mapping[str, Any] | None) -> dict[str, str]:
    return {"status": "scored" if current is not None else "not_scored"}


def parse_events(values: Iterable[str] | None) -> frozenset[str]:
    """A subscription's event types (default: all); ValueError naming an unknown one."""
    if values is None:
        return frozenset(EVENT_TYPES)
    chosen = frozenset(values)
    unknown = sorted(chosen - set(EVENT_TYPES))
    if unknown:
        raise ValueError(f"unknown event type(s) {unknown}; known: {list(EVENT_TYPES)}")
    if not chosen:
        raise ValueError(f"events must name at least one of {list(EVENT_TYPES)}")
    return chosen
