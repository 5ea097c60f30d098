"""`subscriptions`, `keys` and `dispatch`: webhook subscriptions from the command line, subscriber API
keys, and the webhook dispatcher alone (docs/webhooks.md). They work on the score store directly (the
operator's side: no API key needed); JSON goes to stdout, messages to stderr."""

from __future__ import annotations

import signal
import threading

import click
import orjson

from defi_scoring.cli.console import console
from defi_scoring.config import Settings

URL_HELP = "SQLAlchemy URL of the store (default: $DEFI_SCORING_STORE_URL, else scores.db under the data home)."


def _store(url: str | None):
    from defi_scoring.score_store import ScoreStore

    return ScoreStore(url or Settings.from_env().store_url)


def _json(value) -> None:
    click.echo(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode())


@click.group()
def subscriptions() -> None:
    """Webhook subscriptions: watched wallets, the events sent for them, their deliveries."""


@subscriptions.command(name="list")
@click.option("--owner", default=None, help="only this subscriber's (sbr_…)")
@click.option("--store-url", default=None, help=URL_HELP)
def list_(owner: str | None, store_url: str | None) -> None:
    """Every subscription with its status, wallet count and delivery counts, as JSON."""
    _json(_store(store_url).subscriptions(owner))


@subscriptions.command()
@click.argument("url")
@click.option("--wallet", "wallets", multiple=True, help="a wallet to watch (repeatable)")
@click.option(
    "--wallets-file", type=click.File("r"), default=None, help="a file of addresses, one a line (up to 10,000)"
)
@click.option("--event", "events", multiple=True, help="an event type (repeatable; default: all)")
@click.option("--threshold", type=float, default=None, help="hybrid score whose crossing is an event")
@click.option("--min-change", type=float, default=None, help="`scored` only when the score moved this much")
@click.option("--description", default=None)
@click.option("--owner", default=None, help="the subscriber it belongs to (sbr_…; default: the admin)")
@click.option("--store-url", default=None, help=URL_HELP)
def create(url, wallets, wallets_file, events, threshold, min_change, description, owner, store_url) -> None:
    """Subscribe URL to the watched wallets' changes; prints the subscription and its secret (once)."""
    from defi_scoring.api.subscriptions import MAX_WALLETS_PER_CALL
    from defi_scoring.webhooks.events import parse_events
    from defi_scoring.webhooks.safety import UnsafeUrl, UrlPolicy
    from defi_scoring.webhooks.settings import WebhookSettings

    chosen = list(wallets) + ([line.strip() for line in wallets_file if line.strip()] if wallets_file else [])
    if len(chosen) > MAX_WALLETS_PER_CALL:
        raise click.UsageError(f"{len(chosen)} wallets exceed {MAX_WALLETS_PER_CALL:,}; add the rest with the API")
    try:
        UrlPolicy(WebhookSettings.from_env().allow).check_new(url)
        kinds = parse_events(events or None)
    except (UnsafeUrl, ValueError) as exc:
        raise click.UsageError(str(exc)) from exc
    subscription, secret = _store(store_url).create_subscription(
        owner=owner,
        url=url,
        events=kinds,
        threshold=threshold,
        min_change=min_change,
        description=description,
        wallets=chosen,
    )
    _json({**subscription, "secret": secret})
    console.print("[yellow]the secret is shown only now[/]: receivers verify X-Signature with it")


@subscriptions.command()
@click.argument("subscription_id")
@click.option("--status", type=click.Choice(["pending", "failed", "dead", "delivered"]), default=None)
@click.option("--limit", default=100, show_default=True)
@click.option("--store-url", default=None, help=URL_HELP)
def deliveries(subscription_id: str, status: str | None, limit: int, store_url: str | None) -> None:
    """A subscription's deliveries, newest first, as JSON."""
    store = _store(store_url)
    if store.subscription(subscription_id) is None:
        raise click.ClickException(f"no subscription {subscription_id}")
    _json(store.deliveries(subscription_id, status, limit))


@click.group()
def keys() -> None:
    """API keys of subscribers (each sees and manages only its own subscriptions)."""


@keys.command(name="create")
@click.option("--name", required=True, help="who the key is for")
@click.option("--store-url", default=None, help=URL_HELP)
def create_key(name: str, store_url: str | None) -> None:
    """Make a subscriber and its API key; prints both (the key only now: the store keeps its hash)."""
    subscriber, key = _store(store_url).create_subscriber(name)
    _json({"subscriber": subscriber, "name": name, "api_key": key})
    console.print("[yellow]the key is shown only now[/]: send it as the X-API-Key header")


@keys.command(name="list")
@click.option("--store-url", default=None, help=URL_HELP)
def list_keys(store_url: str | None) -> None:
    """Subscribers (never their keys)."""
    _json(_store(store_url).subscribers())


@keys.command()
@click.argument("subscriber")
@click.option("--store-url", default=None, help=URL_HELP)
def revoke(subscriber: str, store_url: str | None) -> None:
    """Revoke a subscriber's key (its subscriptions stay, managed by the admin)."""
    if not _store(store_url).revoke_subscriber(subscriber):
        raise click.ClickException(f"no subscriber {subscriber}")
    console.print(f"[green]✓[/] {subscriber}: key revoked")


@click.command()
@click.option("--store-url", default=None, help=URL_HELP)
@click.option("--metrics-port", type=int, default=None, help="serve Prometheus metrics on this port")
def dispatch(store_url: str | None, metrics_port: int | None) -> None:
    """Run the webhook dispatcher alone (`serve` runs one too unless DEFI_SCORING_WEBHOOK_DISPATCHER=0);
    several share the work. SIGTERM or Ctrl-C: finish the deliveries in flight, then stop."""
    from defi_scoring.webhooks.dispatcher import Dispatcher, run_dispatcher
    from defi_scoring.webhooks.settings import WebhookSettings

    store = _store(store_url)
    settings = WebhookSettings.from_env()
    if metrics_port:
        from prometheus_client import start_http_server

        start_http_server(metrics_port)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    allow = ", ".join(sorted(settings.allow)) or "none"
    console.print(
        f"webhook dispatcher on {store.dialect} store ({settings.concurrency} in flight, allow-listed hosts: {allow})"
    )
    run_dispatcher(Dispatcher(store, settings), stop.is_set)
    console.print("webhook dispatcher stopped")
