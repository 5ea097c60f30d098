"""The three things scoring can say about an input — success, failure, alert — as types, with the one
encoder each has, so every door (topics, API answers, files, the store) says them the same way.

A success's bytes come from the columnar encoder (core.success_messages: thousands of wallets at a
time); its `summary` carries the fields the store and the alerts need without parsing the JSON again.
A failure is one dictionary per rejected input (CONTRACTS.md §3). An alert is published for a success
that carries a score-drop, high-risk-pattern or exposure alert.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import orjson

ALERT_TYPES_PUBLISHED = frozenset({"score_drop", "high_risk_pattern", "exposure"})
Kind = Literal["success", "failure", "alert"]


@dataclass(frozen=True, slots=True)
class Outcome:
    """One output message: its kind, the wallet it is keyed by, its JSON bytes and summary fields."""

    kind: Kind
    wallet: str
    value: bytes
    summary: dict[str, Any]


def failure(wallet: str | None, error: str, timestamp: int, processing_ms: int = 0, categories=()) -> Outcome:
    """A failure message (CONTRACTS.md §3): what could not be scored, and why."""
    message = {
        "wallet_address": wallet,
        "error": error,
        "timestamp": timestamp,
        "processing_time_ms": processing_ms,
        "categories": list(categories),
    }
    return Outcome("failure", wallet or "", orjson.dumps(message), message)


def alert_for(success: Outcome) -> Outcome | None:
    """The alert record of a success whose alerts include a published type, else None."""
    summary = success.summary
    published = [a for a in summary.get("alerts", ()) if a["type"] in ALERT_TYPES_PUBLISHED]
    if not published:
        return None
    message = {
        "wallet_address": success.wallet,
        "timestamp": summary["timestamp"],
        "hybrid_score": summary.get("hybrid_score"),
        "risk_level": summary.get("risk_level"),
        "model_version": summary.get("model_version"),
        "alerts": published,
    }
    return Outcome("alert", success.wallet, orjson.dumps(message), message)


def outcomes_of(values: Sequence[bytes], summaries: Sequence[dict[str, Any]]) -> Iterator[Outcome]:
    """Encoded output messages (one per input, success or failure by their fields) as outcomes."""
    for value, summary in zip(values, summaries):
        kind: Kind = "success" if "zscore" in summary else "failure"
        yield Outcome(kind, summary.get("wallet_address") or "", value, summary)


def with_alerts(outcomes: Sequence[Outcome]) -> tuple[list[Outcome], int]:
    """Each outcome followed by its alert, if it has one; and how many alerts there are."""
    out, alerts = [], 0
    for outcome in outcomes:
        out.append(outcome)
        alert = alert_for(outcome) if outcome.kind == "success" else None
        if alert is not None:
            out.append(alert)
            alerts += 1
    return out, alerts
