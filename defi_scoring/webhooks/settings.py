"""Webhook configuration: every variable, its default and meaning in one place (docs/webhooks.md)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

ADMIN_KEY_ENV = "DEFI_SCORING_ADMIN_KEY"  # the same admin key as /api/v1/admin/*


def _truthy(value: str) -> bool:
    return value.strip().lower() not in ("", "0", "false", "no", "off")


@dataclass(frozen=True)
class WebhookSettings:
    # hosts (exact names or IP literals) that may use http and private/loopback/link-local addresses
    allow: frozenset[str] = field(default_factory=frozenset)  # DEFI_SCORING_WEBHOOK_ALLOW="a,b"
    retry_hours: float = 24.0  # DEFI_SCORING_WEBHOOK_RETRY_HOURS: a delivery failing this long is dead
    max_backoff_s: float = 60.0  # DEFI_SCORING_WEBHOOK_MAX_BACKOFF_SECONDS: cap between attempts, first hour
    late_backoff_s: float = 900.0  # DEFI_SCORING_WEBHOOK_LATE_BACKOFF_SECONDS: cap after the first hour
    first_backoff_s: float = 1.0  # DEFI_SCORING_WEBHOOK_FIRST_BACKOFF_SECONDS: delay after the first failure
    pause_after_dead: int = 10  # DEFI_SCORING_WEBHOOK_PAUSE_AFTER_DEAD: dead deliveries in a row → paused
    timeout_s: float = 10.0  # DEFI_SCORING_WEBHOOK_TIMEOUT_SECONDS: one attempt, connect to response
    concurrency: int = 128  # DEFI_SCORING_WEBHOOK_CONCURRENCY: deliveries in flight per dispatcher
    poll_s: float = 0.2  # DEFI_SCORING_WEBHOOK_POLL_SECONDS: how often an idle dispatcher looks for work
    max_response_bytes: int = 4096  # DEFI_SCORING_WEBHOOK_MAX_RESPONSE_BYTES: of a receiver's answer
    keep_days: float = 7.0  # DEFI_SCORING_WEBHOOK_KEEP_DAYS: delivered and dead rows kept this long
    in_serve: bool = True  # DEFI_SCORING_WEBHOOK_DISPATCHER=0: `serve` does not run a dispatcher
    # DEFI_SCORING_WEBHOOK_LEASE_SECONDS (default timeout + 15 s): how long a claimed delivery is reserved;
    # a dispatcher killed mid-delivery leaves it due again after this long. Keep it above the timeout.
    lease: float | None = None

    @property
    def lease_s(self) -> float:
        return self.lease if self.lease is not None else self.timeout_s + 15.0

    @classmethod
    def from_env(cls) -> WebhookSettings:
        env = os.environ
        allow = frozenset(h.strip().lower().strip("[]") for h in env.get("DEFI_SCORING_WEBHOOK_ALLOW", "").split(","))
        return cls(
            allow=allow - {""},
            retry_hours=float(env.get("DEFI_SCORING_WEBHOOK_RETRY_HOURS", 24.0)),
            max_backoff_s=float(env.get("DEFI_SCORING_WEBHOOK_MAX_BACKOFF_SECONDS", 60.0)),
            late_backoff_s=float(env.get("DEFI_SCORING_WEBHOOK_LATE_BACKOFF_SECONDS", 900.0)),
            first_backoff_s=float(env.get("DEFI_SCORING_WEBHOOK_FIRST_BACKOFF_SECONDS", 1.0)),
            pause_after_dead=int(env.get("DEFI_SCORING_WEBHOOK_PAUSE_AFTER_DEAD", 10)),
            timeout_s=float(env.get("DEFI_SCORING_WEBHOOK_TIMEOUT_SECONDS", 10.0)),
            concurrency=int(env.get("DEFI_SCORING_WEBHOOK_CONCURRENCY", 128)),
            poll_s=float(env.get("DEFI_SCORING_WEBHOOK_POLL_SECONDS", 0.2)),
            max_response_bytes=int(env.get("DEFI_SCORING_WEBHOOK_MAX_RESPONSE_BYTES", 4096)),
            keep_days=float(env.get("DEFI_SCORING_WEBHOOK_KEEP_DAYS", 7.0)),
            in_serve=_truthy(env.get("DEFI_SCORING_WEBHOOK_DISPATCHER", "1")),
            lease=float(env["DEFI_SCORING_WEBHOOK_LEASE_SECONDS"])
            if env.get("DEFI_SCORING_WEBHOOK_LEASE_SECONDS")
            else None,
        )

    @staticmethod
    def admin_key() -> str | None:
        """Read at each request, as the admin endpoints do."""
        return os.environ.get(ADMIN_KEY_ENV) or None
