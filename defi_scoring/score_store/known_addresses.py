"""Known addresses and the counterparty index in the store: what screening reads and what re-screening
needs (issue 36).

- `import_known_addresses`: upsert list rows by (address, source, category); `removed` marks a row
  (kept for audit, never screened). Returns the addresses whose screening changed.
- `update_counterparty_index`: the distinct (wallet, counterparty) pairs of grown histories, called by
  the scoring service on append, in its transaction.
- `exposure_inputs`: for wallets being scored, the list rows and the stored neighbour edges that
  core.exposure.exposure_table needs, in a few indexed queries (never a history decoded).
- `wallets_reaching`: the stored wallets whose exposure a change of these addresses can move (those
  that touched them, and one or two hops further through non-hub intermediates).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import sqlalchemy as sa

from defi_scoring.core.exposure import counterparty_edges, exposure_table
from defi_scoring.core.known_list import KNOWN_COLUMNS
from defi_scoring.core.scoring_config import ExposureConfig, ScoringConfig
from defi_scoring.score_store.connection import StoreConnection
from defi_scoring.score_store.tables import counterparty_index, known_addresses

CHUNK = 5_000
_ka, _ci = known_addresses.c, counterparty_index.c
_ROW_NAMES = ("address", "source", "category", "label", "listed_at", "removed", "imported_at")


@dataclass
class KnownImport:
    """What an import did: rows written, per-category/source counts, addresses whose screening changed."""

    rows: int = 0
    added: int = 0  # rows newly active
    removed: int = 0  # rows newly marked removed
    unchanged: int = 0
    changed_addresses: list[str] = field(default_factory=list)
    by_category: dict[str, int] = field(default_factory=dict)
    by_source: dict[str, int] = field(default_factory=dict)


@dataclass
class ExposureInputs:
    """What core.exposure.exposure_table needs besides the scored wallets' own histories."""

    known: pd.DataFrame  # list rows (KNOWN_COLUMNS) of every address the computation can meet
    neighbours: pd.DataFrame  # (wallet, counterparty) edges of stored intermediates
    degrees: pd.Series  # intermediate → distinct counterparties


def _chunks(values: Sequence, size: int = CHUNK) -> Iterator[list]:
    values = list(values)
    for i in range(0, len(values), size):
        yield values[i : i + size]


def _frame(rows: list, names: Sequence[str]) -> pd.DataFrame:
    columns = list(zip(*rows)) if rows else [[] for _ in names]
    return pd.DataFrame({name: pd.Series(list(values), dtype=object) for name, values in zip(names, columns)})


class KnownAddresses(StoreConnection):
    """The store's known-address lists and counterparty index."""

    # lists

    def import_known_addresses(
        self, rows: pd.DataFrame, conn: sa.Connection | None = None, replace: bool = False
    ) -> KnownImport:
        """Upsert list rows (KNOWN_COLUMNS; `removed` true marks the row removed). Rows that change
        nothing are left alone (their imported_at too), so importing a list twice changes nothing.
        replace: the rows are each of their sources' whole list: a stored active row of those
        sources that is not among them is marked removed (a disappearance is a removal)."""
        result = KnownImport()

        def work(c: sa.Connection) -> None:
            frame = _normalised_rows(rows)
            if replace and len(frame):
                frame = pd.concat([frame, self._gone(frame, c)], ignore_index=True)
            result.rows = len(frame)
            if frame.empty:
                return
            before = self._stored_rows(frame["address"].unique().tolist(), c)
            merged = frame.merge(before, on=["address", "source", "category"], how="left", suffixes=("", "_old"))
            old_removed = merged["removed_old"].astype("boolean")
            existed = old_removed.notna().to_numpy()
            was_active = existed & ~old_removed.fillna(True).to_numpy(bool)
            removing = merged["removed"].to_numpy(bool)
            same = (
                existed
                & (old_removed.fillna(False).to_numpy(bool) == removing)
                & (merged["label"].fillna("").to_numpy(object) == merged["label_old"].fillna("").to_numpy(object))
                & (_times(merged["listed_at"]) == _times(merged["listed_at_old"]))
            )
            write = ~same & (existed | ~removing)  # a removal of a row never stored is a no-op
            now = time.time()
            params = [
                (a, s, cat, label or None, None if listed != listed else int(listed), bool(rem), now)
                for a, s, cat, label, listed, rem in merged.loc[
                    write, ["address", "source", "category", "label", "listed_at", "removed"]
                ].itertuples(index=False, name=None)
            ]
            if params:
                self._executemany(c, self._upsert_known, _ROW_NAMES, params)
            newly_active = write & ~removing & ~was_active
            newly_removed = write & removing & was_active
            result.added, result.removed = int(newly_active.sum()), int(newly_removed.sum())
            result.unchanged = int((~write).sum())
            result.changed_addresses = sorted(set(merged.loc[newly_active | newly_removed, "address"]))
            active = frame[~frame["removed"].to_numpy(bool)]
            result.by_category = active["category"].value_counts().sort_index().to_dict()
            result.by_source = active["source"].value_counts().sort_index().to_dict()

        self._run(work, conn)
        return result

    @staticmethod
    def _gone(frame: pd.DataFrame, conn: sa.Connection) -> pd.DataFrame:
        """Active stored rows of the frame's sources that the frame does not hold, as removals."""
        query = sa.select(_ka.address, _ka.source, _ka.category, _ka.label, _ka.listed_at).where(
            _ka.source.in_(sorted(set(frame["source"]))), _ka.removed == sa.false()
        )
        stored = _frame(conn.execute(query).all(), ["address", "source", "category", "label", "listed_at"])
        keys = ["address", "source", "category"]
        kept = stored.merge(frame[keys], on=keys, how="left", indicator=True)
        gone = kept[kept["_merge"] == "left_only"].drop(columns="_merge")
        return gone.assign(label=gone["label"].fillna(""), listed_at=pd.to_numeric(gone["listed_at"]), removed=True)

    @property
    def _upsert_known(self):
        statement = self._insert(known_addresses)
        return statement.on_conflict_do_update(
            index_elements=["address", "source", "category"],
            set_={
                "label": statement.excluded.label,
                "listed_at": statement.excluded.listed_at,
                "removed": statement.excluded.removed,
                "imported_at": statement.excluded.imported_at,
            },
        )

    @staticmethod
    def _stored_rows(addresses: list[str], conn: sa.Connection) -> pd.DataFrame:
        rows: list = []
        for chunk in _chunks(addresses):
            query = sa.select(_ka.address, _ka.source, _ka.category, _ka.label, _ka.listed_at, _ka.removed)
            rows += conn.execute(query.where(_ka.address.in_(chunk))).all()
        return _frame(rows, ["address", "source", "category", "label_old", "listed_at_old", "removed_old"])

    def known_address_rows(
        self, addresses: Iterable[str] | None = None, conn: sa.Connection | None = None
    ) -> pd.DataFrame:
        """Active list rows (KNOWN_COLUMNS): of these addresses (lower-cased), or all (None)."""
        query = sa.select(_ka.address, _ka.category, _ka.source, _ka.label, _ka.listed_at, _ka.removed).where(
            _ka.removed == sa.false()
        )
        rows: list = []
        with self._connect(conn) as c:
            if addresses is None:
                rows = c.execute(query).all()
            else:
                for chunk in _chunks(list(dict.fromkeys(addresses))):
                    rows += c.execute(query.where(_ka.address.in_(chunk))).all()
        frame = _frame(rows, KNOWN_COLUMNS)
        frame["removed"] = frame["removed"].astype(bool)
        return frame

    def known_address_counts(self, conn: sa.Connection | None = None) -> pd.DataFrame:
        """Active rows per (category, source)."""
        query = (
            sa.select(_ka.category, _ka.source, sa.func.count())
            .where(_ka.removed == sa.false())
            .group_by(_ka.category, _ka.source)
            .order_by(_ka.category, _ka.source)
        )
        with self._connect(conn) as c:
            return pd.DataFrame(c.execute(query).all(), columns=["category", "source", "rows"])

    # the counterparty index

    def update_counterparty_index(
        self,
        histories: pd.DataFrame,
        wallets: Sequence[str],
        conn: sa.Connection,
        fresh: pd.DataFrame | None = None,
    ) -> int:
        """Add the (wallet, counterparty) pairs of these wallets' histories (normalised transactions;
        other wallets' rows are ignored) to the index; pairs already there stay. Returns pairs offered.
        fresh: the transactions just appended; a wallet already in the index offers only their pairs
        (its older ones are there), a wallet not yet in it (new, or stored before the index existed)
        its whole history's."""
        wallets = list(dict.fromkeys(wallets))
        if not wallets or histories.empty:
            return 0
        if fresh is not None:
            indexed = set(self._degrees(wallets, conn).index)
            whole = histories[histories["wallet"].astype(object).isin(set(wallets) - indexed).to_numpy()]
            recent = fresh[fresh["wallet"].astype(object).isin(indexed).to_numpy()]
            parts = [part for part in (whole, recent[histories.columns]) if len(part)]
            histories = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0] if parts else whole
            if histories.empty:
                return 0
        mine = histories[histories["wallet"].astype(object).isin(set(wallets)).to_numpy()]
        edges = counterparty_edges(mine)
        if edges.empty:
            return 0
        self._executemany(
            conn, self._insert_pair, ("wallet", "counterparty"), list(edges.itertuples(index=False, name=None))
        )
        return len(edges)

    @property
    def _insert_pair(self):
        return self._insert(counterparty_index).on_conflict_do_nothing(index_elements=["wallet", "counterparty"])

    def _degrees(self, nodes: list[str], conn: sa.Connection) -> pd.Series:
        """Distinct counterparties of these stored wallets (absent: not stored)."""
        found: list = []
        for chunk in _chunks(nodes):
            query = sa.select(_ci.wallet, sa.func.count()).where(_ci.wallet.in_(chunk)).group_by(_ci.wallet)
            found += conn.execute(query).all()
        frame = _frame(found, ["wallet", "n"])
        return pd.Series(frame["n"].astype(np.int64).to_numpy(), index=pd.Index(frame["wallet"], dtype=object))

    @staticmethod
    def _risky_listing(config: ExposureConfig):
        """Active list rows whose category has a severity above 0 (benign context passes nothing on)."""
        benign = [c for c, s in config.severities.items() if s <= 0]
        condition = _ka.removed == sa.false()
        if benign:
            condition = sa.and_(condition, _ka.category.not_in(benign))
        return condition

    def _listed_edges(self, nodes: list[str], config: ExposureConfig, conn: sa.Connection) -> pd.DataFrame:
        """Edges of these stored wallets to risky listed addresses."""
        found: list = []
        on = _ka.address == _ci.counterparty
        for chunk in _chunks(nodes):
            query = (
                sa.select(_ci.wallet, _ci.counterparty)
                .distinct()
                .select_from(counterparty_index.join(known_addresses, on))
                .where(_ci.wallet.in_(chunk), self._risky_listing(config))
            )
            found += conn.execute(query).all()
        return _frame(found, ["wallet", "counterparty"])

    def _edges_to_exposed(self, nodes: list[str], config: ExposureConfig, conn: sa.Connection) -> pd.DataFrame:
        """Edges of these stored wallets to stored wallets that have a risky listed counterparty (the
        exposed wallets found once, the nodes' edges read by their primary key and filtered here)."""
        query = (
            sa.select(_ci.wallet)
            .distinct()
            .select_from(counterparty_index.join(known_addresses, _ka.address == _ci.counterparty))
            .where(self._risky_listing(config))
        )
        exposed = pd.Index(conn.execute(query).scalars().all(), dtype=object)
        if exposed.empty:
            return _frame([], ["wallet", "counterparty"])
        found: list = []
        for chunk in _chunks(nodes):
            found += conn.execute(sa.select(_ci.wallet, _ci.counterparty).where(_ci.wallet.in_(chunk))).all()
        edges = _frame(found, ["wallet", "counterparty"])
        return edges[edges["counterparty"].isin(exposed).to_numpy()].reset_index(drop=True)

    def exposure_inputs(
        self, wallets: Sequence[str], histories: pd.DataFrame, config: ExposureConfig, conn: sa.Connection
    ) -> ExposureInputs:
        """The list rows and stored neighbour edges for scoring `wallets` on `histories` (their full
        histories): with the histories, exposure_table gives what it gives on the whole stored state."""
        wallets = list(dict.fromkeys(wallets))
        first = counterparty_edges(histories)
        c1 = pd.unique(first["counterparty"]).tolist()
        degrees = self._degrees(c1, conn)
        stored1 = degrees.index[degrees.to_numpy() <= config.max_intermediate_degree].tolist()
        edges = [self._listed_edges(stored1, config, conn)]
        if config.max_hops >= 2 and stored1:
            hop2 = self._edges_to_exposed(stored1, config, conn)
            edges.append(hop2)
            c2 = sorted(set(hop2["counterparty"]) - set(stored1))
            if c2:
                more = self._degrees(c2, conn)
                degrees = pd.concat([degrees, more])
                passable2 = more.index[more.to_numpy() <= config.max_intermediate_degree].tolist()
                edges.append(self._listed_edges(passable2, config, conn))
        neighbours = pd.concat(edges, ignore_index=True).drop_duplicates(ignore_index=True)
        addresses = set(wallets) | set(c1) | set(neighbours["wallet"]) | set(neighbours["counterparty"])
        known = self.known_address_rows(addresses, conn)
        return ExposureInputs(known, neighbours, degrees)

    def has_known_addresses(self, conn: sa.Connection | None = None) -> bool:
        """Whether any list row is active (one indexed probe: with none, screening is skipped)."""
        with self._connect(conn) as c:
            return c.execute(sa.select(_ka.address).where(_ka.removed == sa.false()).limit(1)).first() is not None

    def exposure_for(
        self, wallets: Sequence[str], histories: pd.DataFrame, config: ScoringConfig, conn: sa.Connection
    ) -> pd.DataFrame | None:
        """The `exposure` frame of score_wallet_table for `wallets` scored on `histories` (their full
        stored histories, in the caller's transaction, after update_counterparty_index); None when
        no list is imported (the scores are then exactly the behaviour's)."""
        if histories.empty or not self.has_known_addresses(conn):
            return None
        inputs = self.exposure_inputs(wallets, histories, config.exposure, conn)
        return exposure_table(histories, inputs.known, config, inputs.neighbours, inputs.degrees)

    def wallets_reaching(
        self, addresses: Iterable[str], config: ExposureConfig, conn: sa.Connection | None = None
    ) -> list[str]:
        """Stored wallets whose exposure to these addresses can change when they are listed or
        removed: the addresses themselves if stored (ownership), the wallets that touched them
        (direct), and up to `max_hops` further through intermediates that pass exposure on (stored,
        not hubs). Sorted."""
        from defi_scoring.score_store.tables import wallet_histories

        addresses = list(dict.fromkeys(a.lower() for a in addresses))
        reached: set[str] = set()
        with self._connect(conn) as c:
            for chunk in _chunks(addresses):
                query = sa.select(wallet_histories.c.wallet).where(wallet_histories.c.wallet.in_(chunk))
                reached.update(c.execute(query).scalars())
            frontier = addresses
            for hop in range(config.max_hops + 1):
                touching: set[str] = set()
                for chunk in _chunks(frontier):
                    touching.update(
                        c.execute(sa.select(_ci.wallet).distinct().where(_ci.counterparty.in_(chunk))).scalars()
                    )
                reached |= touching
                if hop == config.max_hops or not touching:
                    break
                degrees = self._degrees(sorted(touching), c)
                frontier = degrees.index[degrees.to_numpy() <= config.max_intermediate_degree].tolist()
        return sorted(reached)


def _normalised_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """List rows with lower-cased addresses, text fields, listed_at as a number or NaN, removed as bool;
    a (address, source, category) given twice keeps its last row."""
    n = len(rows)
    frame = pd.DataFrame(
        {
            "address": rows["address"].astype(str).str.lower().to_numpy(object),
            "source": rows["source"].astype(str).to_numpy(object),
            "category": rows["category"].astype(str).to_numpy(object),
            "label": rows["label"].fillna("").astype(str).to_numpy(object) if "label" in rows else np.full(n, ""),
            "listed_at": pd.to_numeric(rows["listed_at"], errors="coerce").to_numpy(float)
            if "listed_at" in rows
            else np.full(n, np.nan),
            "removed": rows["removed"].astype("boolean").fillna(False).to_numpy(bool)
            if "removed" in rows
            else np.zeros(n, bool),
        }
    )
    return frame.drop_duplicates(["address", "source", "category"], keep="last", ignore_index=True)


def _times(values: pd.Series) -> np.ndarray:
    """Listing times as floats, -1 for none (so that two missing times compare equal)."""
    return pd.to_numeric(values, errors="coerce").fillna(-1).to_numpy(float)
