"""Alembic scripts of the score store (env.py, versions/); `score_store.migrate` runs them."""
