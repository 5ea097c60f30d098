"""Alembic environment of the score store: runs on the connection `score_store.migrate` passes, inside
its (locked) transaction. There is no URL to connect to: open the store, or `defi-scoring store upgrade`."""

from alembic import context

from defi_scoring.score_store.migrate import VERSION_TABLE, include_name
from defi_scoring.score_store.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("the score store migrates on a connection from score_store.migrate (defi-scoring store upgrade)")
context.configure(
    connection=connection,
    target_metadata=metadata,
    version_table=VERSION_TABLE,
    include_name=include_name,
    compare_type=True,
    render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters a column by copying its table
)
with context.begin_transaction():
    context.run_migrations()
