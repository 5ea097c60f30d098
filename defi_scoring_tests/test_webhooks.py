"""Watchlists and signed webhooks (issue 35), the parts: which events a score gives, signatures, the
URL rules (at creation through the API, and at delivery: a name resolving to 127.0.0.1, a 169.254.x
address, a redirect), the outbox written in the scoring transaction (SQLite and PostgreSQL), two
dispatchers sharing the work (FOR UPDATE SKIP LOCKED on PostgreSQL), backoff and pausing, and the API's
keys (401 without, 404 for another subscriber's subscription). Delivery end to end (a receiver down
while wallets are scored through the API and the stream, a dispatcher killed mid-delivery):
test_webhooks_delivery.py."""

from __future__ import annotations

import random
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import orjson
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from defi_scoring.api.app import create_app
from defi_scoring.config import Settings
from defi_scoring.core.normalise import normalise_messages
from defi_scoring.core.synthetic import generate_wallets, iter_messages
from defi_scoring.score_store import ScoreStore
from defi_scoring.score_store.tables import webhook_deliveries
from defi_scoring.service.scoring_service import ScoringService
from defi_scoring.webhooks.dispatcher import Dispatcher, backoff_s
from defi_scoring.webhooks.events import Watch, change_events
from defi_scoring.webhooks.safety import UnsafeUrl, UrlPolicy
from defi_scoring.webhooks.settings import WebhookSettings
from defi_scoring.webhooks.signing import SignatureError, sign, verify
from defi_scoring_tests.test_population_index import Stores
from defi_scoring_tests.test_score_store import require_postgres

ADMIN = "admin-key-for-tests"
LOCAL = frozenset({"127.0.0.1"})


# ---------------------------------------------------------------- a real HTTP receiver
class Receiver:
    """A threaded HTTP server on 127.0.0.1 that verifies each delivery's signature and records it.
    stop() closes the port (connections refused) and start() opens the same port again.
    mode: "ok" (200), "fail" (500), "redirect" (302 to /elsewhere); delay_s: answer that much later."""

    def __init__(self, secrets: dict[str, str] | None = None, mode: str = "ok", delay_s: float = 0.0) -> None:
        self.secrets = secrets if secrets is not None else {}
        self.mode, self.delay_s = mode, delay_s
        self.received: list[dict] = []
        self.bad_signatures: list[str] = []
        self.paths: list[str] = []
        self.port = 0
        self._server: ThreadingHTTPServer | None = None
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.record(self.path, dict(self.headers), body)
                if receiver.delay_s:
                    time.sleep(receiver.delay_s)
                if receiver.mode == "redirect" and self.path == "/hook":
                    self.send_response(302)
                    self.send_header("Location", f"http://127.0.0.1:{receiver.port}/elsewhere")
                else:
                    self.send_response(500 if receiver.mode == "fail" else 200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *_args) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def record(self, path: str, headers: dict, body: bytes) -> None:
        payload = orjson.loads(body)
        secret = self.secrets.get(payload.get("subscription_id"))
        try:
            if secret is None:
                raise SignatureError("no secret known for this subscription")
            verify(secret, body, headers.get("X-Signature"))
            assert headers.get("X-Delivery-ID") == payload["id"]
        except (SignatureError, AssertionError) as exc:
            self.bad_signatures.append(f"{payload.get('id')}: {exc}")
        with self._lock:
            self.paths.append(path)
            self.received.append({**payload, "_body": body, "_at": time.time()})

    def ids(self) -> set[str]:
        return {r["id"] for r in self.received}


def wait_until(condition, timeout: float = 60.0, every: float = 0.05, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class Running:
    """A Dispatcher's loop in a thread, stopped on exit."""

    def __init__(self, store: ScoreStore, settings: WebhookSettings) -> None:
        self.dispatcher = Dispatcher(store, settings)
        self._stop = threading.Event()
        from defi_scoring.webhooks.dispatcher import run_dispatcher

        self._thread = threading.Thread(target=run_dispatcher, args=(self.dispatcher, self._stop.is_set), daemon=True)

    def __enter__(self) -> Dispatcher:
        self._thread.start()
        return self.dispatcher

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(30)


def fast_settings(**changes) -> WebhookSettings:
    base = dict(allow=LOCAL, first_backoff_s=0.1, max_backoff_s=0.5, poll_s=0.05, timeout_s=3.0, concurrency=16)
    return WebhookSettings(**{**base, **changes})


def all_deliveries(store: ScoreStore) -> list[dict]:
    with store.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(sa.select(webhook_deliveries))]


def messages(n: int, seed: int) -> list[bytes]:
    return [orjson.dumps(m) for m in iter_messages(generate_wallets(n, seed=seed))]


def wallet_of(line: bytes) -> str:
    return orjson.loads(line)["wallet_address"].lower()


# ---------------------------------------------------------------- pure parts
def test_events_of_a_score_change():
    everything = Watch("s", frozenset({"scored", "threshold_crossed", "risk_level_changed", "alert"}), 60.0, None)
    low = {"hybrid_score": 40.0, "risk_level": "low", "alerts": []}
    high = {"hybrid_score": 75.0, "risk_level": "high", "alerts": [{"type": "score_drop"}]}
    assert [t for t, _ in change_events(everything, None, low)] == ["scored"]  # no previous: nothing crossed
    up = change_events(everything, low, high)
    assert [t for t, _ in up] == ["scored", "threshold_crossed", "risk_level_changed", "alert"]
    assert up[1][1] == {"threshold": 60.0, "direction": "up"}
    down = dict(change_events(everything, high, low))
    assert down["threshold_crossed"]["direction"] == "down" and "alert" not in down
    assert [t for t, _ in change_events(everything, low, {**low, "hybrid_score": 41.0})] == ["scored"]
    only_big = Watch("s", frozenset({"scored"}), None, 5.0)
    assert change_events(only_big, low, {**low, "hybrid_score": 44.0}) == []
    assert [t for t, _ in change_events(only_big, low, {**low, "hybrid_score": 45.0})] == ["scored"]
    assert change_events(Watch("s", frozenset({"alert"})), low, low) == []


def test_signatures_are_checked_and_old_ones_refused():
    body = b'{"id":"dlv_1"}'
    header = sign("whsec_x", body, timestamp=1_700_000_000)
    assert verify("whsec_x", body, header, now=1_700_000_100) == 1_700_000_000
    for secret, raw, now in (("other", body, 1_700_000_100), ("whsec_x", body + b" ", 1_700_000_100)):
        with pytest.raises(SignatureError, match="does not match"):
            verify(secret, raw, header, now=now)
    with pytest.raises(SignatureError, match="more than 300 s"):
        verify("whsec_x", body, header, now=1_700_000_301)
    with pytest.raises(SignatureError):
        verify("whsec_x", body, None)


def test_url_rules():
    policy = UrlPolicy(frozenset({"127.0.0.1", "receiver.internal"}))
    for url, reason in (
        ("http://example.com/hook", "only https"),
        ("ftp://example.com/hook", "http"),
        ("https://user:pw@example.com/hook", "credentials"),
        ("https://169.254.169.254/latest/meta-data", "link-local"),
        ("https://10.0.0.8/hook", "private"),
        ("https://[::1]:8443/hook", "loopback"),
        ("https://localhost:8443/hook", "resolves to 127.0.0.1"),
    ):
        with pytest.raises(UnsafeUrl, match=reason):
            policy.check_new(url)
    assert policy.check_new("http://127.0.0.1:9000/hook")  # allow-listed: http and loopback
    assert policy.check_new("https://8.8.8.8/hook")


def test_backoff_is_capped_in_the_first_hour_then_grows():
    settings = WebhookSettings()
    rng = random.Random(1)
    early = [backoff_s(n, 600, settings, rng) for n in range(1, 40)]
    assert all(0 < d <= 60 for d in early) and max(early) > 30
    assert early[0] <= 1.0  # 1 s base, with jitter
    late = [backoff_s(n, 7200, settings, rng) for n in range(12, 30)]
    assert all(60 < d <= 900 for d in late)


# ---------------------------------------------------------------- the store, SQLite and PostgreSQL
@pytest.fixture(params=["sqlite", "postgresql"])
def stores(request, tmp_path):
    if request.param == "postgresql":
        require_postgres()
    made = Stores(request.param, tmp_path)
    yield made
    made.close()


def test_the_outbox_is_written_with_the_score_and_only_with_it(stores):
    store = stores.open()
    lines = messages(6, seed=3)
    wallets = [wallet_of(line) for line in lines]
    subscription, _ = store.create_subscription(
        owner=None, url="https://8.8.8.8/h", events=["snapshot", "scored"], wallets=wallets[:4]
    )
    assert [d["type"] for d in all_deliveries(store)] == ["snapshot"] * 4
    service = ScoringService(store)
    service.score(normalise_messages(lines), source="api", run_id="r", persist=False)  # a what-if: nothing
    assert len(all_deliveries(store)) == 4

    def fail(_conn, _result):
        raise RuntimeError("the door's own write failed")

    with pytest.raises(RuntimeError):
        service.score(normalise_messages(lines), source="stream", run_id="r", before_commit=fail)
    assert len(all_deliveries(store)) == 4 and store.wallet(wallets[0]) is None  # neither score nor delivery
    service.score(normalise_messages(lines[:5]), source="stream", run_id="r1")
    scored = [d for d in all_deliveries(store) if d["type"] == "scored"]
    assert sorted(d["wallet"] for d in scored) == sorted(wallets[:4])  # watched ones only
    body = orjson.loads(scored[0]["payload"])
    assert body["previous"] is None and body["source"] == "stream" and body["id"] == scored[0]["id"]
    assert set(body) >= {"id", "type", "created_at", "subscription_id", "wallet_address", "previous", "current"}
    stored = store.wallet(body["wallet_address"])["latest"]
    assert {k: body["current"][k] for k in ("zscore", "hybrid_score", "risk_level")} == {
        k: stored[k] for k in ("zscore", "hybrid_score", "risk_level")
    }
    # scored again (new as-of): `previous` is the score it replaces, read in the same transaction
    before = store.wallet(wallets[0])["latest"]
    service.score(normalise_messages(lines[:1]), source="api", run_id="r2", as_of=1_900_000_000)
    again = [orjson.loads(d["payload"]) for d in all_deliveries(store) if d["wallet"] == wallets[0]]
    latest = next(b for b in again if b["type"] == "scored" and b["source"] == "api")
    assert latest["previous"]["hybrid_score"] == before["hybrid_score"]
    assert latest["previous"]["timestamp"] == before["timestamp"] != latest["current"]["timestamp"]
    # a wallet added later gets a snapshot of its stored score
    assert store.add_wallets(subscription["id"], None, [wallets[4], wallets[0]]) == 1
    snap = [orjson.loads(d["payload"]) for d in all_deliveries(store) if d["wallet"] == wallets[4]]
    assert (
        snap[0]["type"] == "snapshot"
        and snap[0]["status"] == "scored"
        and snap[0]["current"]["hybrid_score"] is not None
    )


def test_two_dispatchers_share_the_work_without_sending_twice(stores):
    store = stores.open()
    receiver = Receiver().start()
    try:
        wallets = [f"0x{i:040x}" for i in range(300)]
        subscription, secret = store.create_subscription(
            owner=None, url=receiver.url, events=["snapshot"], wallets=wallets
        )
        receiver.secrets[subscription["id"]] = secret
        second = ScoreStore(store.url)  # its own engine, as another process would have
        settings = fast_settings(concurrency=8)
        with Running(store, settings) as one, Running(second, settings) as two:
            wait_until(lambda: len(receiver.received) >= 300, what="300 deliveries")
            wait_until(lambda: store.webhook_status()["pending"] == 0, what="all recorded")
            time.sleep(0.3)
        second.engine.dispose()
        assert len(receiver.received) == 300 and len(receiver.ids()) == 300  # each once: claims do not overlap
        assert one.delivered > 0 and two.delivered > 0 and one.delivered + two.delivered == 300
        assert not receiver.bad_signatures
        assert {d["status"] for d in all_deliveries(store)} == {"delivered"}
    finally:
        receiver.stop()


def test_failing_endpoint_retries_with_backoff_then_dies_and_pauses(stores):
    store = stores.open()
    receiver = Receiver(mode="fail").start()
    try:
        wallets = [f"0x{i:040x}" for i in range(4)]
        subscription, secret = store.create_subscription(
            owner=None, url=receiver.url, events=["snapshot"], wallets=wallets
        )
        receiver.secrets[subscription["id"]] = secret
        settings = fast_settings(retry_hours=2.0 / 3600, pause_after_dead=3)  # dead after 2 s
        with Running(store, settings):
            wait_until(lambda: store.subscription(subscription["id"])["status"] == "paused", what="paused")
        view = store.subscription(subscription["id"])
        assert "paused after 3 dead deliveries" in view["status_reason"] and "HTTP 500" in view["status_reason"]
        rows = all_deliveries(store)
        assert {r["status"] for r in rows} <= {"dead", "failed", "pending"} and any(r["status"] == "dead" for r in rows)
        assert all(r["attempts"] >= 2 for r in rows if r["status"] == "dead")  # retried before giving up
        attempts = len(receiver.received)
        # resumed, with the endpoint fixed: the waiting ones go; a dead one is sent again on request
        receiver.mode = "ok"
        store.update_subscription(subscription["id"], None, {"status": "active"})
        dead = next(r["id"] for r in rows if r["status"] == "dead")
        assert store.redeliver(subscription["id"], dead)["status"] == "pending"
        with Running(store, settings):
            wait_until(lambda: any(r["id"] == dead for r in receiver.received[attempts:]), what="redelivery")
        assert store.subscription(subscription["id"])["status"] == "active"
    finally:
        receiver.stop()


def test_refused_at_delivery_resolving_to_loopback_link_local_or_redirecting(tmp_path):
    store = ScoreStore(f"sqlite:///{tmp_path / 'scores.db'}")
    receiver = Receiver(mode="redirect").start()
    try:
        # made with rules that allowed them (or by an older release): the dispatcher checks again
        named = store.create_subscription(
            owner=None, url=f"https://localhost:{receiver.port}/hook", events=["snapshot"], wallets=["0x" + "1" * 40]
        )[0]
        metadata = store.create_subscription(
            owner=None, url="https://169.254.169.254/latest/meta-data", events=["snapshot"], wallets=["0x" + "2" * 40]
        )[0]
        redirecting, secret = store.create_subscription(
            owner=None, url=receiver.url, events=["snapshot"], wallets=["0x" + "3" * 40]
        )
        receiver.secrets[redirecting["id"]] = secret
        with Running(store, fast_settings(allow=LOCAL)):
            wait_until(
                lambda: all(store.deliveries(s["id"])[0]["attempts"] >= 2 for s in (named, metadata, redirecting)),
                what="two attempts each",
            )
        (to_localhost,) = store.deliveries(named["id"])
        assert "refused: localhost resolves to 127.0.0.1" in to_localhost["last_error"]
        assert to_localhost["status"] == "failed" and to_localhost["last_status"] is None
        (to_metadata,) = store.deliveries(metadata["id"])
        assert "169.254.169.254 is a link-local address" in to_metadata["last_error"]
        (redirected,) = store.deliveries(redirecting["id"])
        assert redirected["status"] == "failed" and redirected["last_status"] == 302
        assert "not followed" in redirected["last_error"]
        assert set(receiver.paths) == {"/hook"}  # the redirect target was never called
        assert all(r["wallet_address"] == "0x" + "3" * 40 for r in receiver.received)  # nothing reached localhost
    finally:
        receiver.stop()


# ---------------------------------------------------------------- the API: keys, owners, refusals
@pytest.fixture
def api(tmp_path, monkeypatch):
    monkeypatch.setenv("DEFI_SCORING_ADMIN_KEY", ADMIN)
    monkeypatch.setenv("DEFI_SCORING_WEBHOOK_ALLOW", "127.0.0.1")
    monkeypatch.setenv("DEFI_SCORING_WEBHOOK_DISPATCHER", "0")
    with TestClient(create_app(Settings(home=tmp_path / "home"))) as client:
        yield client


def test_api_keys_owners_and_refusals(api):
    store = api.app.state.service.store
    alice, alice_key = store.create_subscriber("alice")
    _, bob_key = store.create_subscriber("bob")
    new = {"url": "http://127.0.0.1:9/hook", "wallets": ["0x" + "a" * 40], "events": ["snapshot", "scored"]}
    assert api.post("/api/v1/subscriptions", json=new).status_code == 401  # no key
    assert api.post("/api/v1/subscriptions", json=new, headers={"X-API-Key": "nope"}).status_code == 401
    made = api.post("/api/v1/subscriptions", json=new, headers={"X-API-Key": alice_key})
    assert made.status_code == 201, made.text
    body = made.json()
    assert body["id"].startswith("whs_") and body["secret"].startswith("whsec_") and body["owner"] == alice
    assert body["wallet_count"] == 1 and body["deliveries"]["pending"] == 1  # its snapshot
    path = f"/api/v1/subscriptions/{body['id']}"
    as_alice, as_bob, as_admin = ({"X-API-Key": k} for k in (alice_key, bob_key, ADMIN))
    got = api.get(path, headers=as_alice).json()
    assert "secret" not in got and got["events"] == ["scored", "snapshot"]
    # another subscriber's subscription does not exist for bob, whatever he tries
    for method, suffix, payload in (
        ("GET", "", None),
        ("PATCH", "", {"description": "mine"}),
        ("DELETE", "", None),
        ("POST", "/wallets", {"wallets": ["0x" + "b" * 40]}),
        ("DELETE", "/wallets", {"wallets": ["0x" + "a" * 40]}),
        ("GET", "/deliveries", None),
    ):
        answer = api.request(method, path + suffix, json=payload, headers=as_bob)
        assert answer.status_code == 404, (method, suffix, answer.text)
    assert api.get("/api/v1/subscriptions", headers=as_bob).json() == []
    assert api.get(path, headers=as_admin).status_code == 200  # the admin sees every one
    assert api.get(path).status_code == 401
    # refused URLs, with the reason
    for url, reason in (
        ("http://example.com/hook", "only https"),
        ("https://169.254.169.254/hook", "link-local"),
        ("https://localhost/hook", "resolves to 127.0.0.1"),
    ):
        refused = api.post("/api/v1/subscriptions", json={**new, "url": url}, headers=as_alice)
        assert refused.status_code == 422 and reason in refused.json()["detail"], refused.text
    # wallets: addresses only, 10,000 a call
    many = {"wallets": [f"0x{i:040x}" for i in range(10_001)]}
    assert api.post(path + "/wallets", json=many, headers=as_alice).status_code == 413
    assert api.post(path + "/wallets", json={"wallets": ["bob"]}, headers=as_alice).status_code == 422
    added = api.post(path + "/wallets", json={"wallets": [f"0x{i:040x}" for i in range(10_000)]}, headers=as_alice)
    assert added.status_code == 200 and added.json() == {"added": 10_000, "wallet_count": 10_001}
    removed = api.request("DELETE", path + "/wallets", json={"wallets": ["0x" + "a" * 40]}, headers=as_alice)
    assert removed.json() == {"removed": 1, "wallet_count": 10_000}
    pending = api.get(path + "/deliveries?status=pending", headers=as_alice).json()
    assert len(pending) == 100 and {d["type"] for d in pending} == {"snapshot"}  # one per added wallet (limit 100)
    assert api.get(path + "/deliveries?status=bogus", headers=as_alice).status_code == 422
    again = api.post(f"{path}/deliveries/{pending[0]['id']}/redeliver", headers=as_alice)
    assert again.status_code == 202 and again.json()["status"] == "pending"
    # pause, resume, rotate
    assert api.patch(path, json={"status": "paused"}, headers=as_alice).json()["status"] == "paused"
    rotated = api.patch(path, json={"status": "active", "rotate_secret": True}, headers=as_alice).json()
    assert rotated["status"] == "active" and rotated["secret"] != body["secret"]
    assert api.patch(path, json={"url": "http://example.com/x"}, headers=as_alice).status_code == 422
    health = api.get("/api/v1/health").json()["components"]["webhooks"]
    assert health["subscriptions"] == 1 and health["pending"] == 10_001 and "off" in health["dispatcher"]
    assert api.delete(path, headers=as_alice).status_code == 204
    assert api.get(path, headers=as_alice).status_code == 404
