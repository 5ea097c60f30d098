"""The score store: latest score per wallet, every scoring event, and the wallet history the streaming
runs need for incremental scoring. SQLAlchemy Core, so one code path serves SQLite (embedded default,
WAL so readers keep working while a run writes) and PostgreSQL (production, by URL).

One module per part: `tables` (schema and engine), `migrate` (schema versions: `migrations/` applied on
open, so a release upgrades the store it finds), `histories` (wallet histories and their write
conflicts), `population` (each wallet's contribution to the cross-wallet signals, scored against),
`score_writes` / `score_reads` (output messages in, scores out), `ranges` (what each Kafka
offset range published), `known_addresses` (the lists screened against and the counterparty index),
`subscriptions` (watchlists, API keys and the webhook outbox).
`ScoreStore` is all of them on one engine.
"""

from __future__ import annotations

from functools import lru_cache

from defi_scoring.score_store.histories import HistoryConflict, WalletHistories, history_counts
from defi_scoring.score_store.known_addresses import ExposureInputs, KnownAddresses, KnownImport
from defi_scoring.score_store.population import PopulationIndex, PopulationView
from defi_scoring.score_store.ranges import RangeOutputs
from defi_scoring.score_store.score_reads import ScoreReads
from defi_scoring.score_store.score_writes import ScoreWrites
from defi_scoring.score_store.subscriptions import Subscriptions
from defi_scoring.score_store.tables import metadata, processed_ranges, score_events, wallet_histories, wallet_scores

__all__ = [
    "ExposureInputs",
    "HistoryConflict",
    "KnownImport",
    "PopulationView",
    "ScoreStore",
    "history_counts",
    "metadata",
    "processed_ranges",
    "score_events",
    "shared_store",
    "wallet_histories",
    "wallet_scores",
]


class ScoreStore(
    WalletHistories, PopulationIndex, ScoreWrites, ScoreReads, RangeOutputs, KnownAddresses, Subscriptions
):
    """The whole store on one engine and connection pool: `ScoreStore("sqlite:///…")` or a PostgreSQL URL."""


@lru_cache(maxsize=8)
def shared_store(url: str) -> ScoreStore:
    """One ScoreStore (engine and connection pool) per URL and process."""
    return ScoreStore(url)
