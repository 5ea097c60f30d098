"""Signatures of deliveries: `X-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>`,
the key being the subscription secret's UTF-8 bytes. Signed again at each attempt, so `t` is the
attempt's time and a receiver can refuse old (replayed) requests."""

from __future__ import annotations

import hashlib
import hmac
import time

TOLERANCE_S = 300  # a receiver refuses signatures older (or further in the future) than this


class SignatureError(ValueError):
    """The signature header is missing, malformed, stale or does not match."""


def signature(secret: str, body: bytes, timestamp: int) -> str:
    return hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()


def sign(secret: str, body: bytes, timestamp: int | None = None) -> str:
    """The X-Signature header value for `body` at `timestamp` (default now)."""
    t = int(time.time()) if timestamp is None else int(timestamp)
    return f"t={t},v1={signature(secret, body, t)}"


def verify(
    secret: str, body: bytes, header: str | None, tolerance_s: float = TOLERANCE_S, now: float | None = None
) -> int:
    """Check an X-Signature header against the raw body; returns its timestamp, raises SignatureError.
    Several v1 values are accepted (any matching one passes)."""
    if not header:
        raise SignatureError("no X-Signature header")
    timestamp, candidates = None, []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isdigit():
            timestamp = int(value)
        elif key == "v1":
            candidates.append(value)
    if timestamp is None or not candidates:
        raise SignatureError(f"malformed X-Signature header: {header[:100]!r}")
    now = time.time() if now is None else now
    if abs(now - timestamp) > tolerance_s:
        raise SignatureError(f"signature timestamp {timestamp} is more than {tolerance_s:.0f} s from now")
    expected = signature(secret, body, timestamp)
    if not any(hmac.compare_digest(expected, c) for c in candidates):
        raise SignatureError("signature does not match the body")
    return timestamp
