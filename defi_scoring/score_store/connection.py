"""What every part of the store shares: the engine, atomic units of work and plain driver SQL."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from defi_scoring.score_store.tables import create_tables, store_engine


class StoreConnection:
    def __init__(self, url: str, create: bool = True) -> None:
        self.url = url
        self.engine = store_engine(url)
        if create:
            create_tables(self.engine)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def ping(self) -> bool:
        with self.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        return True

    def transaction(self):
        """One atomic unit: `with store.transaction() as conn: ...` — all or nothing."""
        return self.engine.begin()

    def _run(self, work, conn: sa.Connection | None) -> None:
        """`work(conn)` inside the caller's transaction, or in one of its own."""
        if conn is not None:
            work(conn)
            return
        with self.engine.begin() as own:
            work(own)

    def _connect(self, conn: sa.Connection | None = None):
        """A connection to read with: the caller's (left open) or a new one."""
        return self.engine.connect() if conn is None else _Borrowed(conn)

    def _insert(self, table: sa.Table):
        return postgresql.insert(table) if self.dialect == "postgresql" else sqlite.insert(table)

    def _sql(self, sql: str) -> str:
        """`?` placeholders, rewritten for PostgreSQL drivers."""
        return sql.replace("?", "%s") if self.dialect == "postgresql" else sql

    def _executemany(self, conn: sa.Connection, sql: str, rows: list[tuple]) -> None:
        """Driver-level executemany with plain tuples (~5× faster than SQLAlchemy dict rows)."""
        conn.exec_driver_sql(self._sql(sql), rows)


class _Borrowed:
    """A caller's connection used as a context manager without closing it."""

    def __init__(self, conn: sa.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> sa.Connection:
        return self.conn

    def __exit__(self, *exc) -> None:
        return None
