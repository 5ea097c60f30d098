"""The one scoring service: every door (batch asset, stream range, API, Dask job, file) scores here, so
a wallet's score is a function of the stored state and the model and reference versions, never of
the door or of who else arrived in the same batch.

A store-backed call is one database transaction:
1. append: the batch's transactions join each wallet's stored history (deduplicated by document_id)
   and the wallet's entries in the population index are rebuilt from its full history;
2. score: every touched wallet on its full stored history, against the stored population (sybil
   peers, pump windows, pool liquidity: score_store.population), with its previous score from the
   store, at the explicit as-of or else at its own newest transaction;
3. record: the output messages become score events and latest scores. Stored wallets whose sybil
   peer count this append moved (an earlier member of a farm that just grew) are scored again in the
   same call and recorded with source "population".
persist=False does all of it and rolls the transaction back: the answer an append would give, with
nothing written. A history another writer changed meanwhile (HistoryConflict) scores again.

Without a store (`defi-scoring score FILE`) the batch is the whole state: the same core with the
population computed from the batch, which equals the stored doors' scores when the file equals the
stored state.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pandas as pd
import sqlalchemy as sa

from defi_scoring.core.batch_scoring import ScoredBatch, score_batch
from defi_scoring.core.normalise import NormalisedBatch
from defi_scoring.core.outcomes import Outcome, outcomes_of
from defi_scoring.core.scoring_config import ScoringConfig, default_scoring_config
from defi_scoring.core.success_messages import EncodedMessages, encode_success_messages
from defi_scoring.core.wallet_history import merge_history
from defi_scoring.core.wallet_scoring import ModelFn, WalletScores, score_wallet_table
from defi_scoring.score_store import HistoryConflict, ScoreStore, history_counts
from defi_scoring.score_store.population import joined_signals

POPULATION_SOURCE = "population"
NO_MESSAGES = EncodedMessages([], [])


@dataclass
class ServiceResult:
    scored: ScoredBatch  # one output per input message, in input order
    messages: EncodedMessages  # those outputs encoded (what the door answers or publishes)
    neighbours: EncodedMessages  # stored wallets scored again because this append moved their peers

    def outcomes(self) -> list[Outcome]:
        """The answers, one per input message in input order, typed (success or failure)."""
        return list(outcomes_of(self.messages.values, self.messages.summaries))


def touched_wallets(transactions: pd.DataFrame) -> list[str]:
    """The distinct (lower-cased) wallets of a normalised transactions frame, in order of appearance."""
    return pd.unique(transactions["wallet"].astype(object).to_numpy()).tolist()


class ScoringService:
    """Scores against one store (None: the batch is the whole state) with one config and model."""

    def __init__(
        self, store: ScoreStore | None, config: ScoringConfig | None = None, model: ModelFn | None = None
    ) -> None:
        self.store = store
        self.config = config or default_scoring_config()
        self.model = model

    def score(
        self,
        batch: NormalisedBatch,
        *,
        source: str,
        run_id: str,
        as_of: int | None = None,
        persist: bool = True,
        failed_at: int | None = None,
        before_commit: Callable[[sa.Connection, ServiceResult], None] | None = None,
        attempts: int = 3,
    ) -> ServiceResult:
        """Append `batch` and score its wallets on their full stored histories (module docstring).
        before_commit(conn, result): the door's own writes in the same transaction (a stream range's
        outputs). failed_at: the `timestamp` of failure messages (default: as_of, else now)."""
        started = time.perf_counter()
        failed_at = failed_at if failed_at is not None else (as_of if as_of is not None else int(time.time()))
        if self.store is None:
            scored = score_batch(batch, as_of, self.config, self.model, None, started)
            scored.failed_at = failed_at
            return ServiceResult(scored, scored.encoded(), NO_MESSAGES)
        for attempt in range(attempts):
            try:
                with self.store.transaction(commit=persist) as conn:
                    touched, merged = self._append(batch.transactions, conn)
                    wallets, neighbours = self._score_stored(touched, conn, as_of, merged)
                    scored = ScoredBatch(batch, wallets, as_of, time.perf_counter() - started, failed_at)
                    result = ServiceResult(scored, scored.encoded(), self._encode(wallets, neighbours))
                    self._record(result, source, run_id, conn)
                    if before_commit is not None:
                        before_commit(conn, result)
                return result
            except HistoryConflict:
                if attempt == attempts - 1:
                    raise
        raise AssertionError("unreachable")

    def append(self, transactions: pd.DataFrame) -> list[str]:
        """Only step 1 (a Dask job's first phase: every partition appends before any scores)."""
        assert self.store is not None, "append needs a store"
        with self.store.transaction() as conn:
            return self._append(transactions, conn)[0]

    def score_stored(
        self,
        wallets: Sequence[str],
        *,
        source: str,
        run_id: str,
        as_of: int | None = None,
        until: int | None = None,
        record: bool = True,
    ) -> tuple[WalletScores, EncodedMessages]:
        """Steps 2–3 for wallets already stored (a Dask job's second phase, the daily re-scoring):
        their scores and one success message per wallet (recorded under `source`). until: only the
        transactions up to that time (a past day's re-scoring; wallets with none then are skipped)."""
        assert self.store is not None, "score_stored needs a store"
        with self.store.transaction() as conn:
            histories = None
            if until is not None:
                histories = self.store.wallet_history(list(wallets), conn)
                histories = histories[(histories["timestamp"] <= until).to_numpy()]
                wallets = touched_wallets(histories)
            scores, _ = self._score_stored(list(wallets), conn, as_of, histories, neighbours=False)
            table = scores.table
            messages = encode_success_messages(table, table.index.tolist(), scores, as_of or 0, 0)
            if record:  # watchers' deliveries first: they read the previous stored score
                self.store.enqueue_deliveries(messages, NO_MESSAGES, conn, source=source)
                self.store.record_messages(messages.summaries, run_id, source, conn, encoded=messages.values)
        return scores, messages

    def _append(self, transactions: pd.DataFrame, conn: sa.Connection) -> tuple[list[str], pd.DataFrame]:
        """(the wallets appended to, their full histories)."""
        store = self.store
        touched = touched_wallets(transactions)
        history = store.wallet_history(touched, conn) if touched else transactions.iloc[:0]
        merged = merge_history(history, transactions)
        if touched:
            before = history_counts(history)
            store.save_histories(merged, before, conn)
            after = history_counts(merged)
            grown = [w for w in touched if after.get(w, 0) != before.get(w, 0)]
            if grown:  # a resent transaction changes no history, so no index entry either
                new = {w for w in grown if not before.get(w)}
                store.update_population(merged, grown, self.config.patterns, conn, new=new)
                store.update_counterparty_index(merged, grown, conn, fresh=transactions)
        return touched, merged

    def _score_stored(
        self,
        touched: list[str],
        conn: sa.Connection,
        as_of: int | None,
        histories: pd.DataFrame | None,
        neighbours: bool = True,
    ) -> tuple[WalletScores, list[str]]:
        """(scores of `touched` and of the neighbours whose peers moved, those neighbours).
        histories: the full histories of `touched` when the caller has them (None: read them)."""
        store, patterns = self.store, self.config.patterns
        if histories is None:
            histories = store.wallet_history(touched, conn)
        if not touched:  # nothing valid to score (every message failed): no population to ask
            return score_wallet_table(histories, as_of, self.config, self.model), []
        view = store.population_view(touched, patterns, conn, changed=neighbours)
        known = set(touched)
        moved = [w for w in view.peers_changed if w not in known] if neighbours else []
        signals = view.signals
        if moved:  # the neighbours' own view, joined to the one already read
            signals = joined_signals(signals, store.population_view(moved, patterns, conn, changed=False).signals)
            histories = merge_history(store.wallet_history(moved, conn), histories)
        previous = store.latest_hybrid_scores(touched + moved, conn)
        exposure = store.exposure_for(touched + moved, histories, self.config, conn)  # None: no list imported
        scores = score_wallet_table(histories, as_of, self.config, self.model, previous, signals, exposure)
        peers = scores.table.get("peer_wallets_same_fingerprint")
        if peers is not None:
            store.record_scored_peers(peers, conn)
        return scores, moved

    @staticmethod
    def _encode(scores: WalletScores, wallets: list[str]) -> EncodedMessages:
        if not wallets:
            return NO_MESSAGES
        rows = scores.table.loc[wallets]
        return encode_success_messages(rows, wallets, scores, 0, 0)

    def _record(self, result: ServiceResult, source: str, run_id: str, conn: sa.Connection) -> None:
        self.store.enqueue_deliveries(result.messages, result.neighbours, conn, source=source)
        store = self.store
        store.record_messages(result.messages.summaries, run_id, source, conn, encoded=result.messages.values)
        if result.neighbours.values:
            store.record_messages(
                result.neighbours.summaries, run_id, POPULATION_SOURCE, conn, encoded=result.neighbours.values
            )
