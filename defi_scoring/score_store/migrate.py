"""Schema versions of the store: Alembic migrations shipped inside the package (`migrations/`), applied
when a store is opened, so a new release upgrades the database it finds in place.

Opening is cheap at head: one SELECT of the version, and Alembic is not even imported. Only a store
behind head takes the upgrade path, under a lock so that processes opening it at once migrate it once:
a PostgreSQL advisory lock held by the upgrade's transaction (DDL is transactional there), or on SQLite
a `BEGIN IMMEDIATE` transaction (the database's write lock) around the whole upgrade.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa

from defi_scoring.score_store.tables import metadata, sqlite_pragmas

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).with_name("migrations")
# Not Alembic's default `alembic_version`: MLflow and Dagster keep theirs under that name, and a
# production PostgreSQL database may hold all three.
VERSION_TABLE = "score_store_version"
BASELINE = "0001"  # the schema releases before migrations created with metadata.create_all
HEAD = "0005"  # the newest revision; a test checks it against migrations/versions
_LOCK_CLASS = 0x5C05  # first key of the advisory lock; the second is the schema's hash
_UPGRADE_BUSY_TIMEOUT_MS = 600_000  # SQLite: openers wait for a long upgrade instead of failing
_IN_PROCESS = threading.Lock()  # Alembic's `context` and `op` are module globals: one upgrade per process


def include_name(name: str | None, type_: str, _parent_names) -> bool:
    """Only the store's tables count when comparing schemas: MLflow or Dagster may share the schema."""
    return type_ != "table" or name in metadata.tables


def alembic_config(connection: sa.Connection | None = None) -> Config:
    """Alembic's configuration without an alembic.ini: the scripts inside the package, and the
    connection env.py runs on."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS).replace("%", "%%"))
    config.attributes["connection"] = connection
    return config


def current_revision(engine: sa.Engine) -> str | None:
    """The store's revision; None for an empty database or one made by a release before migrations."""
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar()
    except sa.exc.DBAPIError:  # no version table (PostgreSQL: ProgrammingError, SQLite: OperationalError)
        return None


def upgrade_store(engine: sa.Engine) -> str:
    """Bring the store to head and return the revision it is at: one query when it is already there."""
    if current_revision(engine) == HEAD:
        return HEAD
    with _IN_PROCESS, _locked_transaction(engine) as conn:
        _upgrade(conn)
    return HEAD


def _upgrade(conn: sa.Connection) -> None:
    """Under the lock: look again (another process may have upgraded meanwhile), stamp a store made
    by a release before migrations at the baseline, then upgrade — all in the caller's transaction."""
    from alembic import command
    from alembic.runtime.migration import MigrationContext

    config = alembic_config(conn)
    current = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE}).get_current_revision()
    if current == HEAD:
        return
    if current is None and any(sa.inspect(conn).has_table(name) for name in metadata.tables):
        command.stamp(config, BASELINE)
    command.upgrade(config, "head")


@contextmanager
def _locked_transaction(engine: sa.Engine) -> Iterator[sa.Connection]:
    """One transaction that only one process at a time holds for this store."""
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            # per schema: stores in different schemas of one database do not wait for each other
            conn.execute(
                sa.text("SELECT pg_advisory_xact_lock(:key, hashtext(current_schema()))"), {"key": _LOCK_CLASS}
            )
            yield conn
        return
    database = engine.url.database if engine.dialect.name == "sqlite" else None
    if not database or database == ":memory:":  # another dialect, or a database only this engine sees
        with engine.begin() as conn:
            yield conn
        return
    # pysqlite runs DDL outside any transaction unless told otherwise: its own BEGIN is switched off
    # and one BEGIN IMMEDIATE (taking the write lock at once) covers the whole upgrade.
    locked = sa.create_engine(engine.url, poolclass=sa.pool.NullPool)

    def connect(dbapi_connection, _record) -> None:
        dbapi_connection.isolation_level = None
        sqlite_pragmas(dbapi_connection)
        dbapi_connection.execute(f"PRAGMA busy_timeout={_UPGRADE_BUSY_TIMEOUT_MS}")

    sa.event.listen(locked, "connect", connect)
    sa.event.listen(locked, "begin", lambda conn: conn.exec_driver_sql("BEGIN IMMEDIATE"))
    try:
        with locked.begin() as conn:
            yield conn
    finally:
        locked.dispose()
