"""Wallet histories for incremental scoring: one blob per wallet, merged by document_id, with
optimistic concurrency (a writer that lost a race raises HistoryConflict and its range scores again)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from functools import cached_property

import pandas as pd
import sqlalchemy as sa

from defi_scoring.core.wallet_history import decode_histories, encode_histories, merge_history
from defi_scoring.score_store.connection import StoreConnection
from defi_scoring.score_store.tables import wallet_histories

_history = wallet_histories.c
# Only where the stored count is still the one this writer read: a history another writer extended
# meanwhile is left alone (and _written_by_others then reports it).
_UPDATE = (
    sa.update(wallet_histories)
    .where(_history.wallet == sa.bindparam("key"), _history.transactions == sa.bindparam("base"))
    .values(
        columns=sa.bindparam("blob"),
        transactions=sa.bindparam("count"),
        writer=sa.bindparam("token"),
        updated_at=sa.bindparam("now"),
    )
)
_UPDATE_PARAMS = ("blob", "count", "token", "now", "key", "base")
_INSERT_COLUMNS = ("wallet", "transactions", "columns", "writer", "updated_at")


class HistoryConflict(RuntimeError):
    """Another writer changed a wallet's history between our read and our write; score again."""


def history_counts(history: pd.DataFrame) -> dict[str, int]:
    """{wallet: transactions} of a normalised transactions frame."""
    if history.empty:
        return {}
    counts = history["wallet"].astype(object).value_counts()
    return dict(zip(counts.index.tolist(), counts.tolist()))


class WalletHistories(StoreConnection):
    @cached_property
    def _insert_history(self):
        """A wallet's first history; a writer that raced us to it wins and we see a conflict."""
        return self._insert(wallet_histories).on_conflict_do_nothing(index_elements=["wallet"])

    def wallet_history(
        self, wallets: Iterable[str], conn: sa.Connection | None = None, chunk: int = 5_000
    ) -> pd.DataFrame:
        """Stored transactions of these (lower-cased) wallets, in the normalised column layout."""
        wallets = list(dict.fromkeys(wallets))
        found_wallets, blobs = [], []
        with self._connect(conn) as c:
            for i in range(0, len(wallets), chunk):
                query = sa.select(wallet_histories.c.wallet, wallet_histories.c.columns).where(
                    wallet_histories.c.wallet.in_(wallets[i : i + chunk])
                )
                for wallet, blob in c.execute(query):
                    found_wallets.append(wallet)
                    blobs.append(blob)
        return decode_histories(found_wallets, blobs)

    def stored_wallets(self, conn: sa.Connection | None = None) -> list[str]:
        """Every wallet with a stored history (what a re-scoring of the whole state covers)."""
        with self._connect(conn) as c:
            return c.execute(sa.select(wallet_histories.c.wallet).order_by(wallet_histories.c.wallet)).scalars().all()

    def add_transactions(self, transactions: pd.DataFrame, conn: sa.Connection | None = None) -> None:
        """Merge normalised transactions into the stored histories; (wallet, document_id) already
        stored are left as they are, so adding the same transactions twice changes nothing."""
        if transactions.empty:
            return

        def work(c: sa.Connection) -> None:
            history = self.wallet_history(transactions["wallet"].astype(object).unique().tolist(), c)
            self.save_histories(merge_history(history, transactions), history_counts(history), c)

        self._run(work, conn)

    def save_histories(self, merged: pd.DataFrame, base_counts: dict[str, int], conn: sa.Connection) -> int:
        """Write the histories of wallets that gained transactions since they were read with
        `base_counts` transactions. Raises HistoryConflict if another writer got there first (the
        caller's transaction then rolls back and it scores again). Returns the wallets written."""
        counts = history_counts(merged)
        changed = [w for w, n in counts.items() if n != base_counts.get(w, 0)]
        if not changed:
            return 0
        subset = merged[merged["wallet"].astype(object).isin(changed)]
        encoded = encode_histories(subset)
        token, now = uuid.uuid4().hex, time.time()
        updates = [(blob, n, token, now, w, base_counts[w]) for w, (n, blob) in encoded.items() if base_counts.get(w)]
        inserts = [(w, n, blob, token, now) for w, (n, blob) in encoded.items() if not base_counts.get(w)]
        if updates:
            self._executemany(conn, _UPDATE, _UPDATE_PARAMS, updates)
        if inserts:
            self._executemany(conn, self._insert_history, _INSERT_COLUMNS, inserts)
        lost = self._written_by_others(conn, changed, token)
        if lost:
            raise HistoryConflict(
                f"{len(lost)} wallet histories changed while this run scored them "
                f"(e.g. {lost[0]}); the range is scored again"
            )
        return len(changed)

    @staticmethod
    def _written_by_others(conn: sa.Connection, wallets: list[str], token: str, chunk: int = 5_000) -> list[str]:
        """Wallets whose stored history another writer holds: our update found a count it no longer had."""
        lost: list[str] = []
        column = wallet_histories.c
        for i in range(0, len(wallets), chunk):
            query = sa.select(column.wallet).where(column.wallet.in_(wallets[i : i + chunk]), column.writer != token)
            lost += conn.execute(query).scalars().all()
        return lost
