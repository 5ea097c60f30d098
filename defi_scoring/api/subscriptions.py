"""Watchlists and signed webhooks over REST (docs/webhooks.md): `/api/v1/subscriptions`.

Every call needs `X-API-Key`: the admin key (DEFI_SCORING_ADMIN_KEY; sees every subscription) or a
subscriber's key (`defi-scoring keys create`; sees only its own: another's answers 404, as if it did
not exist). A missing or unknown key answers 401. The store does the work (score_store.subscriptions);
URLs pass webhooks.safety before they are stored.
"""

from __future__ import annotations

import hmac
import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from defi_scoring.score_store import ScoreStore
from defi_scoring.webhooks.events import EVENT_TYPES, parse_events
from defi_scoring.webhooks.safety import UnsafeUrl, UrlPolicy
from defi_scoring.webhooks.settings import ADMIN_KEY_ENV, WebhookSettings

MAX_WALLETS_PER_CALL = 10_000
_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
EventType = Literal["snapshot", "scored", "threshold_crossed", "risk_level_changed", "alert"]


class SubscriptionCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "url": "https://hooks.example.com/defi-scoring",
                    "wallets": ["0x742d35Cc6634C0532925a3b8D4C9db96590e4265"],
                    "events": ["snapshot", "scored", "threshold_crossed"],
                    "threshold": 70,
                    "description": "treasury counterparties",
                }
            ]
        },
    )
    url: str = Field(description="https URL (http only for hosts in DEFI_SCORING_WEBHOOK_ALLOW)")
    wallets: list[str] = Field(default_factory=list, description=f"up to {MAX_WALLETS_PER_CALL:,} addresses")
    events: list[EventType] | None = Field(None, description=f"default: all of {list(EVENT_TYPES)}")
    threshold: float | None = Field(None, ge=0, le=100, description="hybrid score whose crossing is an event")
    min_change: float | None = Field(None, ge=0, description="`scored` only when the hybrid score moved this much")
    description: str | None = Field(None, max_length=500)


class SubscriptionPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str | None = None
    events: list[EventType] | None = None
    threshold: float | None = Field(None, ge=0, le=100)
    min_change: float | None = Field(None, ge=0)
    description: str | None = Field(None, max_length=500)
    status: Literal["active", "paused"] | None = Field(None, description="active resumes a paused subscription")
    rotate_secret: bool = Field(False, description="true: a new secret, returned once in this answer")


class WalletList(BaseModel):
    model_config = ConfigDict(extra="forbid")
    wallets: list[str]


@dataclass(frozen=True)
class Caller:
    subscriber: str | None  # None: the admin

    @property
    def owner(self) -> str | None:
        """Whose subscriptions this caller may see (None: all)."""
        return self.subscriber


def _store(request: Request) -> ScoreStore:
    try:
        return request.app.state.service.store
    except Exception as exc:
        raise HTTPException(503, f"score store unavailable ({str(exc)[:200]}); see /health") from exc


def caller(
    request: Request,
    x_api_key: str | None = Header(None, description=f"${ADMIN_KEY_ENV}, or a key from `defi-scoring keys create`"),
) -> Caller:
    if not x_api_key:
        raise HTTPException(401, "missing X-API-Key header (the admin key, or a key from `defi-scoring keys create`)")
    admin = WebhookSettings.admin_key()
    if admin and hmac.compare_digest(x_api_key.encode(), admin.encode()):
        return Caller(None)
    subscriber = _store(request).subscriber_for_key(x_api_key)
    if subscriber is None:
        raise HTTPException(401, "unknown or revoked API key")
    return Caller(subscriber)


def _wallets(wallets: list[str]) -> list[str]:
    if len(wallets) > MAX_WALLETS_PER_CALL:
        raise HTTPException(413, f"{len(wallets)} wallets exceed the limit of {MAX_WALLETS_PER_CALL:,} per call")
    bad = [w for w in wallets if not isinstance(w, str) or not _ADDRESS.match(w)]
    if bad:
        raise HTTPException(422, f"{len(bad)} value(s) are not addresses (0x + 40 hex digits), e.g. {bad[0]!r}")
    return [w.lower() for w in wallets]


def _checked_url(url: str) -> str:
    try:
        return UrlPolicy(WebhookSettings.from_env().allow).check_new(url)
    except UnsafeUrl as exc:
        raise HTTPException(422, f"url refused: {exc}") from exc


def _not_found(subscription: str) -> HTTPException:
    return HTTPException(404, f"no subscription {subscription}")


Who = Annotated[Caller, Depends(caller)]
router = APIRouter(prefix="/api/v1/subscriptions", tags=["subscriptions"])


@router.post("", status_code=201, summary="Subscribe a URL to changes of watched wallets")
def create_subscription(body: SubscriptionCreate, request: Request, who: Who) -> dict[str, Any]:
    """201 with the subscription, its `id` and its `secret` (shown only here: the HMAC key of the
    X-Signature header is its UTF-8 bytes). Each watched wallet gets a `snapshot` delivery."""
    wallets = _wallets(body.wallets)
    events = parse_events(body.events)
    url = _checked_url(body.url)
    subscription, secret = _store(request).create_subscription(
        owner=who.subscriber,
        url=url,
        events=events,
        threshold=body.threshold,
        min_change=body.min_change,
        description=body.description,
        wallets=wallets,
    )
    return {**subscription, "secret": secret}


@router.get("", summary="The caller's subscriptions (the admin's: all)")
def list_subscriptions(request: Request, who: Who) -> list[dict[str, Any]]:
    return _store(request).subscriptions(who.owner)


@router.get("/{subscription_id}", summary="One subscription (its status says if and why it is paused)")
def get_subscription(subscription_id: str, request: Request, who: Who) -> dict[str, Any]:
    found = _store(request).subscription(subscription_id, who.owner)
    if found is None:
        raise _not_found(subscription_id)
    return found


@router.patch("/{subscription_id}", summary="Change a subscription, pause or resume it, rotate its secret")
def patch_subscription(subscription_id: str, body: SubscriptionPatch, request: Request, who: Who) -> dict[str, Any]:
    changes = body.model_dump(exclude_unset=True)
    if changes.get("url") is not None:
        changes["url"] = _checked_url(changes["url"])
    elif "url" in changes:
        raise HTTPException(422, "url cannot be null")
    if "events" in changes:
        changes["events"] = parse_events(changes["events"])
    updated = _store(request).update_subscription(subscription_id, who.owner, changes)
    if updated is None:
        raise _not_found(subscription_id)
    return updated


@router.delete("/{subscription_id}", status_code=204, summary="Delete a subscription and its deliveries")
def delete_subscription(subscription_id: str, request: Request, who: Who) -> Response:
    if not _store(request).delete_subscription(subscription_id, who.owner):
        raise _not_found(subscription_id)
    return Response(status_code=204)


@router.post("/{subscription_id}/wallets", summary=f"Watch more wallets (up to {MAX_WALLETS_PER_CALL:,} a call)")
def add_wallets(subscription_id: str, body: WalletList, request: Request, who: Who) -> dict:
    """Each wallet not watched yet gets a `snapshot` delivery (if the subscription has that event)."""
    store = _store(request)
    added = store.add_wallets(subscription_id, who.owner, _wallets(body.wallets))
    if added is None:
        raise _not_found(subscription_id)
    return {"added": added, "wallet_count": store.subscription(subscription_id)["wallet_count"]}


@router.delete("/{subscription_id}/wallets", summary=f"Stop watching wallets (up to {MAX_WALLETS_PER_CALL:,} a call)")
def remove_wallets(subscription_id: str, body: WalletList, request: Request, who: Who) -> dict:
    store = _store(request)
    removed = store.remove_wallets(subscription_id, who.owner, _wallets(body.wallets))
    if removed is None:
        raise _not_found(subscription_id)
    return {"removed": removed, "wallet_count": store.subscription(subscription_id)["wallet_count"]}


@router.get("/{subscription_id}/wallets", summary="The watched wallets (lower-cased, sorted)")
def list_wallets(
    subscription_id: str,
    request: Request,
    who: Who,
    limit: int = Query(1000, ge=1, le=MAX_WALLETS_PER_CALL),
    offset: int = Query(0, ge=0),
) -> dict[str, Any]:
    store = _store(request)
    if store.subscription(subscription_id, who.owner) is None:
        raise _not_found(subscription_id)
    return {"wallets": store.watched_wallets(subscription_id, limit, offset), "offset": offset}


@router.get("/{subscription_id}/deliveries", summary="Deliveries, newest first")
def list_deliveries(
    subscription_id: str,
    request: Request,
    who: Who,
    status: Literal["pending", "failed", "dead", "delivered"] | None = Query(None),
    limit: int = Query(100, ge=1, le=1000),
    payload: bool = Query(False, description="include each delivery's body"),
) -> list[dict[str, Any]]:
    """pending: not attempted yet; failed: attempted, will be retried (`next_attempt_at`, `last_error`);
    dead: gave up after the retry horizon; delivered."""
    store = _store(request)
    if store.subscription(subscription_id, who.owner) is None:
        raise _not_found(subscription_id)
    return store.deliveries(subscription_id, status, limit, with_payload=payload)


@router.post(
    "/{subscription_id}/deliveries/{delivery_id}/redeliver",
    status_code=202,
    summary="Send a delivery again (same id and body), as soon as possible",
)
def redeliver(subscription_id: str, delivery_id: str, request: Request, who: Who) -> dict:
    store = _store(request)
    if store.subscription(subscription_id, who.owner) is None:
        raise _not_found(subscription_id)
    found = store.redeliver(subscription_id, delivery_id)
    if found is None:
        raise HTTPException(404, f"no delivery {delivery_id} in subscription {subscription_id}")
    return found


# ---- the dispatcher inside `serve`, and its /health component


def start_dispatcher(app) -> None:
    """Start the webhook dispatcher in a thread of this process unless DEFI_SCORING_WEBHOOK_DISPATCHER=0
    (then `defi-scoring dispatch` runs it alone)."""
    from defi_scoring.webhooks.dispatcher import Dispatcher, DispatcherThread

    settings = WebhookSettings.from_env()
    state = app.state.service
    app.state.webhooks = (
        DispatcherThread(Dispatcher(lambda: state.store, settings)).start() if settings.in_serve else None
    )


async def stop_dispatcher(app) -> None:
    from starlette.concurrency import run_in_threadpool

    thread = getattr(app.state, "webhooks", None)
    if thread is not None:
        await run_in_threadpool(thread.stop)


def _webhooks_status(app) -> dict[str, Any]:
    thread = getattr(app.state, "webhooks", None)
    if thread is None:
        dispatcher = {"dispatcher": "off (DEFI_SCORING_WEBHOOK_DISPATCHER=0: run `defi-scoring dispatch`)"}
    else:
        dispatcher = thread.dispatcher.status()
        if not thread.alive and dispatcher["dispatcher"] != "crashed":
            dispatcher["dispatcher"] = "stopped"
    try:
        queue = app.state.service.store.webhook_status()
    except Exception as exc:
        return {"status": "error", "detail": f"score store: {str(exc)[:200]}", **dispatcher}
    broken = dispatcher["dispatcher"] in ("crashed", "stopped", "error")
    return {"status": "error" if broken else "ok", **dispatcher, **queue}


async def webhooks_health(app, timeout_s: float = 1.0) -> dict[str, Any]:
    """The `webhooks` component of /health: the dispatcher here, the queue in the store."""
    import asyncio

    from starlette.concurrency import run_in_threadpool

    try:
        return await asyncio.wait_for(run_in_threadpool(_webhooks_status, app), timeout_s)
    except TimeoutError:
        return {"status": "slow", "detail": f"no answer within {timeout_s}s"}
