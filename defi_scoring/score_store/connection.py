"""What every part of the store shares: the engine (at the schema's head revision) and atomic units of work."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from defi_scoring.score_store.migrate import upgrade_store
from defi_scoring.score_store.tables import store_engine


class StoreConnection:
    def __init__(self, url: str, create: bool = True) -> None:
        """`create`: create or upgrade the schema to head (one version query when it is there already)."""
        self.url = url
        self.engine = store_engine(url)
        self._driver_forms: dict[tuple[int, tuple[str, ...]], tuple[str, tuple[int, ...] | None]] = {}
        if create:
            upgrade_store(self.engine)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def ping(self) -> bool:
        with self.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        return True

    def transaction(self, commit: bool = True):
        """One atomic unit: `with store.transaction() as conn: ...` — all or nothing. commit=False
        rolls back at the end even when nothing failed (an answer computed as if written)."""
        return self.engine.begin() if commit else _rolled_back(self.engine)

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
        """The dialect's INSERT, which has ON CONFLICT (both SQLite and PostgreSQL spell it the same)."""
        return postgresql.insert(table) if self.dialect == "postgresql" else sqlite.insert(table)

    def _executemany(
        self, conn: sa.Connection, statement: sa.Executable, names: tuple[str, ...], rows: Sequence[tuple]
    ) -> None:
        """One statement over many rows (tuples of `names` in order), as one driver executemany.

        The SQL is the dialect's compilation of a Core statement, made once; the rows skip SQLAlchemy's
        per-row parameter processing, which doubled the cost of recording a batch on SQLite."""
        sql, order = self._driver_form(statement, names)
        if order is None:  # named paramstyle (psycopg): mappings
            params: Sequence = [dict(zip(names, row)) for row in rows]
        elif order == tuple(range(len(names))):
            params = rows
        else:
            params = [tuple(row[i] for i in order) for row in rows]
        conn.exec_driver_sql(sql, params)

    def _driver_query(
        self, conn: sa.Connection, statement: sa.Executable, names: tuple[str, ...], row: tuple
    ) -> sa.CursorResult:
        """One execution of a Core statement at driver level (for reads so small that SQLAlchemy's
        per-call parameter handling is most of their cost)."""
        sql, order = self._driver_form(statement, names)
        params = dict(zip(names, row)) if order is None else tuple(row[i] for i in order)
        return conn.exec_driver_sql(sql, params)

    def _driver_form(self, statement: sa.Executable, names: tuple[str, ...]) -> tuple[str, tuple[int, ...] | None]:
        key = (id(statement), names)
        form = self._driver_forms.get(key)
        if form is None:
            form = self._driver_forms[key] = _driver_form(statement, self.engine.dialect, names)
        return form


def _driver_form(
    statement: sa.Executable, dialect: sa.Dialect, names: tuple[str, ...]
) -> tuple[str, tuple[int, ...] | None]:
    """(SQL, where each positional parameter is in a row of `names`; None when parameters are named).
    An INSERT gets exactly the columns `names`, and no RETURNING of its key."""
    if isinstance(statement, sa.Insert):
        compiled = statement.inline().compile(dialect=dialect, column_keys=list(names))
    else:
        compiled = statement.compile(dialect=dialect)
    if not compiled.positional:
        return compiled.string, None
    return compiled.string, tuple(names.index(name) for name in compiled.positiontup)


@contextmanager
def _rolled_back(engine: sa.Engine) -> Iterator[sa.Connection]:
    with engine.connect() as conn:
        transaction = conn.begin()
        try:
            yield conn
        finally:
            transaction.rollback()


class _Borrowed:
    """A caller's connection used as a context manager without closing it."""

    def __init__(self, conn: sa.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> sa.Connection:
        return self.conn

    def __exit__(self, *exc) -> None:
        return None
