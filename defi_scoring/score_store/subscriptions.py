"""Watchlists and the webhook outbox (issue 35, docs/webhooks.md).

Subscribers hold API keys (only the key's SHA-256 is stored). A subscription watches wallets and names
the event types it wants; webhook_deliveries is a transactional outbox: `enqueue_deliveries` runs in the
scoring transaction, before the new scores replace the stored ones (so each watched wallet's previous
score is still there to compare with), hence a score is never stored without its deliveries nor the
reverse. The dispatcher (`webhooks.dispatcher`) claims due rows — `FOR UPDATE SKIP LOCKED` on
PostgreSQL, so several dispatchers share the work; one atomic UPDATE … RETURNING on SQLite — by moving
their `next_attempt_at` a lease ahead: a dispatcher that dies mid-delivery leaves them due again.

Delivery states: pending (never attempted), failed (attempted, will be retried), delivered, dead
(failed for the whole retry horizon). Rows of paused subscriptions wait, and are sent on resume.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import orjson
import sqlalchemy as sa

from defi_scoring.score_store.connection import StoreConnection
from defi_scoring.score_store.tables import (
    wallet_scores,
    webhook_deliveries,
    webhook_subscribers,
    webhook_subscriptions,
    webhook_watched,
)
from defi_scoring.webhooks.events import (
    Watch,
    change_events,
    delivery_body,
    new_delivery_id,
    score_fields,
    snapshot_extra,
)

CHUNK = 5_000  # wallets per IN list
POPULATION_SOURCE = "population"  # the scoring service's source of neighbours scored again
DELIVERY_STATES = ("pending", "failed", "delivered", "dead")
_d, _s, _w = webhook_deliveries.c, webhook_subscriptions.c, webhook_watched.c
_DELIVERY_COLUMNS = (
    "id",
    "subscription_id",
    "wallet",
    "type",
    "payload",
    "status",
    "attempts",
    "created_at",
    "retry_from",
    "next_attempt_at",
)
_INSERT_DELIVERY = sa.insert(webhook_deliveries)
_ANY_WATCHED = sa.select(_w.wallet).limit(1)
_WATCHES = (
    sa.select(_w.wallet, _s.id, _s.events, _s.threshold, _s.min_change)
    .join(webhook_subscriptions, _s.id == _w.subscription_id)
    .where(_w.wallet.in_(sa.bindparam("wallets", expanding=True)))
)
_STORED = sa.select(wallet_scores.c.wallet, wallet_scores.c.message).where(
    wallet_scores.c.wallet.in_(sa.bindparam("wallets", expanding=True))
)
_DUE = (
    sa.select(_d.id)
    .join(webhook_subscriptions, _s.id == _d.subscription_id)
    .where(_d.status.in_(("pending", "failed")), _d.next_attempt_at <= sa.bindparam("now"), _s.status == "active")
    .order_by(_d.next_attempt_at)
    .limit(sa.bindparam("size"))
)
_CLAIMED = (_d.id, _d.subscription_id, _d.type, _d.payload, _d.attempts, _d.retry_from, _d.created_at)
_FINISH_COLUMNS = ("key", "new_status", "new_attempts", "due", "attempted", "http_status", "error", "delivered")
_FINISH = (
    sa.update(webhook_deliveries)
    .where(_d.id == sa.bindparam("key"))
    .values(
        status=sa.bindparam("new_status"),
        attempts=sa.bindparam("new_attempts"),
        next_attempt_at=sa.bindparam("due"),
        last_attempt_at=sa.bindparam("attempted"),
        last_status=sa.bindparam("http_status"),
        last_error=sa.bindparam("error"),
        delivered_at=sa.bindparam("delivered"),
    )
)
_LISTED = (
    "id",
    "type",
    "wallet",
    "status",
    "attempts",
    "created_at",
    "next_attempt_at",
    "last_attempt_at",
    "last_status",
    "last_error",
    "delivered_at",
)


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _chunks(values: Sequence, size: int = CHUNK):
    for i in range(0, len(values), size):
        yield list(values[i : i + size])


@dataclass(frozen=True)
class Claimed:
    """A delivery a dispatcher holds (its lease) until it records the attempt's outcome."""

    id: str
    subscription_id: str
    type: str
    payload: bytes
    attempts: int
    retry_from: float
    created_at: float
    url: str
    secret: str


@dataclass(frozen=True)
class Outcome:
    """What one attempt gave: status delivered, failed (retry at next_attempt_at) or dead."""

    id: str
    subscription_id: str
    status: str
    attempts: int
    next_attempt_at: float
    attempted_at: float
    http_status: int | None = None
    error: str | None = None


class Subscriptions(StoreConnection):
    # ---- subscribers (API keys)
    def create_subscriber(self, name: str) -> tuple[str, str]:
        """(subscriber id, API key): the key is shown once, only its hash is kept."""
        subscriber, key = "sbr_" + secrets.token_hex(8), "dsk_" + secrets.token_urlsafe(32)
        with self.engine.begin() as conn:
            conn.execute(
                sa.insert(webhook_subscribers).values(
                    id=subscriber, name=name, key_hash=key_hash(key), revoked=False, created_at=time.time()
                )
            )
        return subscriber, key

    def subscriber_for_key(self, key: str) -> str | None:
        with self.engine.connect() as conn:
            return conn.execute(
                sa.select(webhook_subscribers.c.id).where(
                    webhook_subscribers.c.key_hash == key_hash(key), webhook_subscribers.c.revoked.is_(False)
                )
            ).scalar()

    def subscribers(self) -> list[dict[str, Any]]:
        t = webhook_subscribers.c
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(t.id, t.name, t.revoked, t.created_at).order_by(t.created_at)).all()
        return [dict(r._mapping) for r in rows]

    def revoke_subscriber(self, subscriber: str) -> bool:
        with self.engine.begin() as conn:
            done = conn.execute(
                sa.update(webhook_subscribers).where(webhook_subscribers.c.id == subscriber).values(revoked=True)
            )
        return bool(done.rowcount)

    # ---- subscriptions
    def create_subscription(
        self,
        *,
        owner: str | None,
        url: str,
        events: Iterable[str],
        threshold: float | None = None,
        min_change: float | None = None,
        description: str | None = None,
        wallets: Sequence[str] = (),
    ) -> tuple[dict[str, Any], str]:
        """(the subscription, its secret). owner: the subscriber (None: made with the admin key)."""
        subscription, secret, now = "whs_" + secrets.token_hex(8), "whsec_" + secrets.token_urlsafe(32), time.time()
        with self.engine.begin() as conn:
            conn.execute(
                sa.insert(webhook_subscriptions).values(
                    id=subscription,
                    subscriber=owner,
                    url=url,
                    secret=secret,
                    events=orjson.dumps(sorted(events)).decode(),
                    threshold=threshold,
                    min_change=min_change,
                    description=description,
                    status="active",
                    status_reason=None,
                    dead_streak=0,
                    created_at=now,
                    updated_at=now,
                )
            )
            added = self._add_wallets(subscription, wallets, conn)
            view = self._view(subscription, conn)
        return {**view, "wallets_added": added}, secret

    def subscription(self, subscription: str, owner: str | None = None) -> dict[str, Any] | None:
        """The subscription (no secret) if it exists and `owner` may see it (None: the admin sees all)."""
        with self.engine.connect() as conn:
            if not self._visible(subscription, owner, conn):
                return None
            return self._view(subscription, conn)

    def subscriptions(self, owner: str | None = None) -> list[dict[str, Any]]:
        query = sa.select(_s.id).order_by(_s.created_at)
        if owner is not None:
            query = query.where(_s.subscriber == owner)
        with self.engine.connect() as conn:
            return [self._view(i, conn) for i in conn.execute(query).scalars().all()]

    def subscription_secret(self, subscription: str) -> str | None:
        with self.engine.connect() as conn:
            return conn.execute(sa.select(_s.secret).where(_s.id == subscription)).scalar()

    def update_subscription(self, subscription: str, owner: str | None, changes: dict[str, Any]) -> dict | None:
        """Change url, events, threshold, min_change, description or status (active resumes a paused
        subscription: its waiting deliveries are due at once, with a new retry horizon)."""
        now = time.time()
        values = {k: v for k, v in changes.items() if k in ("url", "threshold", "min_change", "description")}
        if "events" in changes:
            values["events"] = orjson.dumps(sorted(changes["events"])).decode()
        with self.engine.begin() as conn:
            if not self._visible(subscription, owner, conn):
                return None
            status = changes.get("status")
            if status == "active":
                values.update(status="active", status_reason=None, dead_streak=0)
                conn.execute(
                    sa.update(webhook_deliveries)
                    .where(_d.subscription_id == subscription, _d.status.in_(("pending", "failed")))
                    .values(next_attempt_at=now, retry_from=now)
                )
            elif status == "paused":
                values.update(status="paused", status_reason="paused by its owner")
            if changes.get("rotate_secret"):
                values["secret"] = "whsec_" + secrets.token_urlsafe(32)
            conn.execute(sa.update(webhook_subscriptions).where(_s.id == subscription).values(updated_at=now, **values))
            view = self._view(subscription, conn)
        return {**view, "secret": values["secret"]} if "secret" in values else view

    def delete_subscription(self, subscription: str, owner: str | None = None) -> bool:
        """Delete it with its watched wallets and its deliveries (sent or not)."""
        with self.engine.begin() as conn:
            if not self._visible(subscription, owner, conn):
                return False
            conn.execute(sa.delete(webhook_deliveries).where(_d.subscription_id == subscription))
            conn.execute(sa.delete(webhook_watched).where(_w.subscription_id == subscription))
            conn.execute(sa.delete(webhook_subscriptions).where(_s.id == subscription))
        return True

    def add_wallets(self, subscription: str, owner: str | None, wallets: Sequence[str]) -> int | None:
        """Watch these wallets too: each newly watched one gets a snapshot (if subscribed). Returns how
        many were new (None: no such subscription for this owner)."""
        with self.engine.begin() as conn:
            if not self._visible(subscription, owner, conn):
                return None
            return self._add_wallets(subscription, wallets, conn)

    def remove_wallets(self, subscription: str, owner: str | None, wallets: Sequence[str]) -> int | None:
        wallets = list(dict.fromkeys(w.lower() for w in wallets))
        removed = 0
        with self.engine.begin() as conn:
            if not self._visible(subscription, owner, conn):
                return None
            for part in _chunks(wallets):
                removed += conn.execute(
                    sa.delete(webhook_watched).where(_w.subscription_id == subscription, _w.wallet.in_(part))
                ).rowcount
        return removed

    def watched_wallets(self, subscription: str, limit: int = 1000, offset: int = 0) -> list[str]:
        query = (
            sa.select(_w.wallet)
            .where(_w.subscription_id == subscription)
            .order_by(_w.wallet)
            .limit(limit)
            .offset(offset)
        )
        with self.engine.connect() as conn:
            return list(conn.execute(query).scalars())

    def deliveries(
        self, subscription: str, status: str | None = None, limit: int = 100, with_payload: bool = False
    ) -> list[dict[str, Any]]:
        """The subscription's deliveries, newest first (of one status if given)."""
        columns = [_d[name] for name in _LISTED] + ([_d.payload] if with_payload else [])
        query = sa.select(*columns).where(_d.subscription_id == subscription)
        if status is not None:
            query = query.where(_d.status == status)
        query = query.order_by(_d.created_at.desc(), _d.id).limit(limit)
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        out = []
        for row in rows:
            item = dict(row._mapping)
            item["wallet_address"] = item.pop("wallet")
            if with_payload:
                item["payload"] = orjson.loads(item["payload"])
            out.append(item)
        return out

    def redeliver(self, subscription: str, delivery: str) -> dict[str, Any] | None:
        """Send a delivery again (whatever its state), with the same id and body, as soon as possible."""
        now = time.time()
        with self.engine.begin() as conn:
            done = conn.execute(
                sa.update(webhook_deliveries)
                .where(_d.id == delivery, _d.subscription_id == subscription)
                .values(status="pending", next_attempt_at=now, retry_from=now, delivered_at=None)
            )
            if not done.rowcount:
                return None
            row = conn.execute(sa.select(*(_d[name] for name in _LISTED)).where(_d.id == delivery)).one()
        item = dict(row._mapping)
        item["wallet_address"] = item.pop("wallet")
        return item

    def _visible(self, subscription: str, owner: str | None, conn: sa.Connection) -> bool:
        query = sa.select(_s.id).where(_s.id == subscription)
        if owner is not None:
            query = query.where(_s.subscriber == owner)
        return conn.execute(query).first() is not None

    def _view(self, subscription: str, conn: sa.Connection) -> dict[str, Any]:
        row = conn.execute(sa.select(webhook_subscriptions).where(_s.id == subscription)).one()._mapping
        counts = dict(
            conn.execute(
                sa.select(_d.status, sa.func.count()).where(_d.subscription_id == subscription).group_by(_d.status)
            ).all()
        )
        wallets = conn.execute(sa.select(sa.func.count()).where(_w.subscription_id == subscription)).scalar()
        return {
            "id": row["id"],
            "owner": row["subscriber"] or "admin",
            "url": row["url"],
            "events": orjson.loads(row["events"]),
            "threshold": row["threshold"],
            "min_change": row["min_change"],
            "description": row["description"],
            "status": row["status"],
            "status_reason": row["status_reason"],
            "wallet_count": int(wallets or 0),
            "deliveries": {state: int(counts.get(state, 0)) for state in DELIVERY_STATES},
            "created_at": row["created_at"],
            "updated_at": row["updated_at"],
        }

    def _add_wallets(self, subscription: str, wallets: Sequence[str], conn: sa.Connection) -> int:
        wallets = list(dict.fromkeys(w.lower() for w in wallets))
        if not wallets:
            return 0
        known: set[str] = set()
        for part in _chunks(wallets):
            known.update(
                conn.execute(
                    sa.select(_w.wallet).where(_w.subscription_id == subscription, _w.wallet.in_(part))
                ).scalars()
            )
        new = [w for w in wallets if w not in known]
        if not new:
            return 0
        now = time.time()
        self._executemany(
            conn,
            self._insert_watched,
            ("subscription_id", "wallet", "added_at"),
            [(subscription, w, now) for w in new],
        )
        events = orjson.loads(conn.execute(sa.select(_s.events).where(_s.id == subscription)).scalar())
        if "snapshot" in events:
            stored = self._stored_scores(new, conn)
            rows = []
            for wallet in new:
                current = stored.get(wallet)
                rows.append(self._row(subscription, wallet, "snapshot", None, current, snapshot_extra(current), now))
            self._executemany(conn, _INSERT_DELIVERY, _DELIVERY_COLUMNS, rows)
        return len(new)

    @cached_property
    def _insert_watched(self):
        return self._insert(webhook_watched).on_conflict_do_nothing(index_elements=["subscription_id", "wallet"])

    @staticmethod
    def _row(subscription, wallet, type_, previous, current, extra, now) -> tuple:
        delivery = new_delivery_id()
        body = delivery_body(delivery, type_, now, subscription, wallet, previous, current, extra)
        return (delivery, subscription, wallet, type_, body.decode(), "pending", 0, now, now, now)

    @staticmethod
    def _stored_scores(wallets: Sequence[str], conn: sa.Connection) -> dict[str, dict[str, Any]]:
        """Each stored wallet's latest score fields, from its stored success message."""
        out = {}
        for part in _chunks(list(wallets)):
            for wallet, message in conn.execute(_STORED, {"wallets": part}):
                out[wallet] = score_fields(orjson.loads(message))
        return out

    # ---- the outbox
    def enqueue_deliveries(self, messages, neighbours, conn: sa.Connection, source: str | None = None) -> int:
        """In the scoring transaction, before the new scores are recorded: one delivery per event of
        each new score of a watched wallet (core.success_messages.EncodedMessages: `messages` from
        `source`, `neighbours` re-scored with source population). Returns how many were queued."""
        news = [(s, source) for s in messages.summaries if "zscore" in s]
        news += [(s, POPULATION_SOURCE) for s in neighbours.summaries if "zscore" in s]
        if not news:
            return 0
        wallets = list(dict.fromkeys((s.get("wallet_address") or "").lower() for s, _ in news))
        if len(wallets) > 64 and conn.execute(_ANY_WATCHED).first() is None:
            return 0  # nobody watches anything: one cheap query instead of the IN lists
        watches: dict[str, list[Watch]] = {}
        parsed: dict[str, frozenset[str]] = {}
        for part in _chunks(wallets):
            for wallet, subscription, events, threshold, min_change in conn.execute(_WATCHES, {"wallets": part}):
                kinds = parsed.get(events)
                if kinds is None:
                    kinds = parsed[events] = frozenset(orjson.loads(events))
                watches.setdefault(wallet, []).append(Watch(subscription, kinds, threshold, min_change))
        if not watches:
            return 0
        previous = self._stored_scores(list(watches), conn)
        now, rows = time.time(), []
        for summary, door in news:
            wallet = (summary.get("wallet_address") or "").lower()
            subscribed = watches.get(wallet)
            if not subscribed:
                continue
            before = previous.get(wallet)
            current = {**score_fields(summary), "alerts": summary.get("alerts") or []}
            for watch in subscribed:
                for type_, extra in change_events(watch, before, current):
                    extra = {**extra, "source": door}
                    rows.append(self._row(watch.subscription_id, wallet, type_, before, current, extra, now))
            previous[wallet] = score_fields(summary)  # a wallet scored twice in one call: in order
        if rows:
            self._executemany(conn, _INSERT_DELIVERY, _DELIVERY_COLUMNS, rows)
        return len(rows)

    def claim_deliveries(self, size: int, lease_s: float, now: float | None = None) -> list[Claimed]:
        """Up to `size` due deliveries of active subscriptions, leased for `lease_s` seconds."""
        now = time.time() if now is None else now
        params = {"now": now, "size": size, "lease": now + lease_s}
        with self.engine.begin() as conn:
            if self.dialect == "postgresql":  # rows another dispatcher holds are skipped, not waited for
                ids = (
                    conn.execute(_DUE.with_for_update(skip_locked=True, of=webhook_deliveries), params).scalars().all()
                )
                if not ids:
                    return []
                claim = sa.update(webhook_deliveries).where(_d.id.in_(ids))
            else:  # one statement: SQLite's write lock makes it atomic
                claim = sa.update(webhook_deliveries).where(_d.id.in_(_DUE.scalar_subquery()))
            rows = conn.execute(claim.values(next_attempt_at=sa.bindparam("lease")).returning(*_CLAIMED), params).all()
            if not rows:
                return []
            targets = {
                i: (url, secret)
                for i, url, secret in conn.execute(
                    sa.select(_s.id, _s.url, _s.secret).where(_s.id.in_({r.subscription_id for r in rows}))
                )
            }
        return [
            Claimed(*r[:3], r.payload.encode(), *r[4:], *targets[r.subscription_id])
            for r in rows
            if r.subscription_id in targets
        ]

    def finish_deliveries(self, outcomes: Sequence[Outcome], pause_after_dead: int) -> list[str]:
        """Record attempts' outcomes; a subscription with `pause_after_dead` dead deliveries in a row is
        paused (the reason says so). Returns the subscriptions paused now."""
        if not outcomes:
            return []
        rows = [
            (
                o.id,
                o.status,
                o.attempts,
                o.next_attempt_at,
                o.attempted_at,
                o.http_status,
                o.error,
                o.attempted_at if o.status == "delivered" else None,
            )
            for o in outcomes
        ]
        per_subscription: dict[str, list[int]] = {}
        for o in outcomes:
            counts = per_subscription.setdefault(o.subscription_id, [0, 0])
            counts[0] += o.status == "delivered"
            counts[1] += o.status == "dead"
        paused: list[str] = []
        with self.engine.begin() as conn:
            self._executemany(conn, _FINISH, _FINISH_COLUMNS, rows)
            for subscription, (delivered, dead) in per_subscription.items():
                if dead:
                    streak = sa.literal(dead) if delivered else _s.dead_streak + dead
                    conn.execute(
                        sa.update(webhook_subscriptions).where(_s.id == subscription).values(dead_streak=streak)
                    )
                    last = next(
                        o.error for o in reversed(outcomes) if o.subscription_id == subscription and o.status == "dead"
                    )
                    done = conn.execute(
                        sa.update(webhook_subscriptions)
                        .where(_s.id == subscription, _s.status == "active", _s.dead_streak >= pause_after_dead)
                        .values(
                            status="paused",
                            status_reason=f"paused after {pause_after_dead} dead deliveries in a row "
                            f"(last error: {(last or '')[:300]}); PATCH status=active to resume",
                            updated_at=time.time(),
                        )
                    )
                    if done.rowcount:
                        paused.append(subscription)
                elif delivered:
                    conn.execute(
                        sa.update(webhook_subscriptions)
                        .where(_s.id == subscription, _s.dead_streak != 0)
                        .values(dead_streak=0)
                    )
        return paused

    def webhook_status(self, now: float | None = None) -> dict[str, Any]:
        """Queue depth by state, the oldest waiting delivery's age, paused subscriptions (health, metrics)."""
        now = time.time() if now is None else now
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(_d.status, sa.func.count(), sa.func.min(_d.created_at))
                .where(_d.status.in_(("pending", "failed", "dead")))
                .group_by(_d.status)
            ).all()
            paused = conn.execute(sa.select(sa.func.count()).where(_s.status == "paused")).scalar()
            subscriptions = conn.execute(sa.select(sa.func.count()).select_from(webhook_subscriptions)).scalar()
        counts = {state: 0 for state in ("pending", "failed", "dead")}
        oldest = None
        for status, count, first in rows:
            counts[status] = int(count)
            if status != "dead" and first is not None:
                oldest = first if oldest is None else min(oldest, first)
        return {
            "subscriptions": int(subscriptions or 0),
            "paused_subscriptions": int(paused or 0),
            **counts,
            "oldest_pending_seconds": round(now - oldest, 3) if oldest is not None else 0.0,
        }

    def purge_deliveries(self, before: float) -> int:
        """Forget delivered and dead deliveries last attempted before `before`."""
        with self.engine.begin() as conn:
            return conn.execute(
                sa.delete(webhook_deliveries).where(_d.status.in_(("delivered", "dead")), _d.last_attempt_at < before)
            ).rowcount
