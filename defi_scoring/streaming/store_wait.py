"""Riding out a score store outage inside a range run instead of failing it.

A range run that cannot reach its store fails; run retries follow within seconds, so an outage of
half a minute (a database restart, a failover) would exhaust them and end the range on the failure
topic. Scoring a range is idempotent until its single commit, so the run can simply try again: it
waits with backoff for up to `DEFI_SCORING_STORE_WAIT_SECONDS` (60), saying so in its log, and fails
only after that (then run retries and, last, the failure topic take over — docs/operations.md).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import TypeVar

import sqlalchemy as sa

T = TypeVar("T")
STORE_WAIT_ENV = "DEFI_SCORING_STORE_WAIT_SECONDS"
DEFAULT_STORE_WAIT_SECONDS = 60.0
# Errors of a store that is down or restarting (connection refused, server gone); SQLite's "database is
# locked" is one too, and trying again is the right answer to it as well.
STORE_DOWN = (sa.exc.OperationalError, sa.exc.InterfaceError, sa.exc.DisconnectionError)


def store_wait_seconds() -> float:
    return float(os.environ.get(STORE_WAIT_ENV, DEFAULT_STORE_WAIT_SECONDS))


def waiting_for_store(work: Callable[[], T], wait_seconds: float, warn: Callable[[str], None]) -> T:
    """`work()`, called again while it fails with a store-down error, for up to `wait_seconds`."""
    deadline = time.monotonic() + wait_seconds
    delay = 0.5
    while True:
        try:
            return work()
        except STORE_DOWN as exc:
            if time.monotonic() + delay > deadline:
                raise
            reason = str(exc).strip().splitlines()[0][:200]
            warn(f"score store unreachable ({reason}); trying again in {delay:.1f}s")
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
