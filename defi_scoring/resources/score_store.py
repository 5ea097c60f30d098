"""The score store (SQLite under the data home, or PostgreSQL by URL) as a Dagster resource."""

from functools import lru_cache

import dagster as dg

from defi_scoring.score_store import ScoreStore


@lru_cache(maxsize=8)
def _store(url: str) -> ScoreStore:
    return ScoreStore(url)  # one engine (connection pool) per URL and process


class ScoreStoreResource(dg.ConfigurableResource):
    url: str
    """SQLAlchemy URL, e.g. sqlite:////path/scores.db or postgresql+psycopg://user@host:5432/db."""

    @property
    def store(self) -> ScoreStore:
        return _store(self.url)
