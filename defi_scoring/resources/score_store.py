"""The score store (SQLite under the data home, or PostgreSQL by URL) as a Dagster resource."""

import dagster as dg

from defi_scoring.score_store import ScoreStore, shared_store


class ScoreStoreResource(dg.ConfigurableResource):
    url: str
    """SQLAlchemy URL, e.g. sqlite:////path/scores.db or postgresql+psycopg://user@host:5432/db."""

    @property
    def store(self) -> ScoreStore:
        return shared_store(self.url)
