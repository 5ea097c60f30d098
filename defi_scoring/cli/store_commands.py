"""`store`: the score store's schema revision, and upgrading it ahead of a deployment (opening the
store upgrades it too; this lets an operator do it once, with the services stopped, and see it done)."""

from __future__ import annotations

import click
import sqlalchemy as sa

from defi_scoring.cli.console import console
from defi_scoring.config import Settings

URL_HELP = "SQLAlchemy URL of the store (default: $DEFI_SCORING_STORE_URL, else scores.db under the data home)."


@click.group()
def store() -> None:
    """The score store's schema (Alembic migrations shipped with the package)."""


@store.command()
@click.option("--url", default=None, help=URL_HELP)
def current(url: str | None) -> None:
    """Print the store's revision and the newest one this release knows."""
    from defi_scoring.score_store.migrate import HEAD, current_revision
    from defi_scoring.score_store.tables import metadata, store_engine

    url = url or Settings.from_env().store_url
    engine = store_engine(url)
    try:
        revision = current_revision(engine)
        if revision is None:
            with engine.connect() as conn:
                legacy = any(sa.inspect(conn).has_table(name) for name in metadata.tables)
            revision = "none (made before migrations: upgrade stamps it)" if legacy else "none (empty)"
    finally:
        engine.dispose()
    console.print(f"store {_shown(url)}: revision {revision}, head {HEAD}", soft_wrap=True)


@store.command()
@click.option("--url", default=None, help=URL_HELP)
def upgrade(url: str | None) -> None:
    """Upgrade the store to the newest revision in place (a no-op when it is there)."""
    from defi_scoring.score_store.migrate import current_revision, upgrade_store
    from defi_scoring.score_store.tables import store_engine

    url = url or Settings.from_env().store_url
    engine = store_engine(url)
    try:
        before = current_revision(engine)
        after = upgrade_store(engine)
    finally:
        engine.dispose()
    done = "already at" if before == after else f"upgraded from {before or 'none'} to"
    console.print(f"[green]✓[/] store {_shown(url)}: {done} {after}", soft_wrap=True)


def _shown(url: str) -> str:
    return sa.engine.make_url(url).render_as_string(hide_password=True)
