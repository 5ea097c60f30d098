"""The population index: every stored wallet's contribution to the three cross-wallet signals, so that
each scoring door (API, stream, batch) scores against the whole stored population rather than the
transactions at hand — a sybil farm whose members arrive one request at a time is still found.

Contributions of disjoint wallet sets add up (core.cross_wallet; distributed.engine proves it), so the
index keeps one set of rows per wallet (`population_rows`) and replaces them whole when its history
grows. A view reads only what the scored wallets touch: their fingerprint neighbours (same digest and
length, start within the window: a range of one index), the counts of their pump windows and tokens,
the rows of the pools they withdrew from, and the swap time span (two indexed min/max).

Peer counts move when a neighbour arrives or leaves, so `update_population` keeps each affected row's
current count (`peers`) and whether it differs from the one it was last scored with (`moved`): the
wallets whose stored score is stale, `PopulationView.peers_changed`. Two writers appending members of
one farm at once (PostgreSQL) may each miss the other's: the next update of that farm corrects them.
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import sqlalchemy as sa

from defi_scoring.core.cross_wallet import FINGERPRINT_WINDOW_S, CrossWalletSignals, PumpTotals
from defi_scoring.core.patterns import PoolRows, PoolTotals
from defi_scoring.core.scoring_config import PatternsConfig
from defi_scoring.score_store.connection import StoreConnection
from defi_scoring.score_store.population_rows import contribution_rows, row_tuples, signed, unsigned
from defi_scoring.score_store.tables import (
    POPULATION_TABLES,
    population_dumps,
    population_fingerprints,
    population_liquidity,
    population_pool_spans,
    population_swaps,
    population_windows,
)

CHUNK = 5_000  # wallets (or pools) per IN list
_fp, _dumps, _windows = population_fingerprints.c, population_dumps.c, population_windows.c
_INSERTS = {t.name: sa.insert(t) for t in POPULATION_TABLES}
_SET_PEERS = (
    sa.update(population_fingerprints)
    .where(_fp.wallet == sa.bindparam("key"))
    .values(peers=sa.bindparam("count"), moved=sa.bindparam("flag"))
)
_RECORD = (
    sa.update(population_fingerprints)
    .where(_fp.wallet == sa.bindparam("key"))
    .values(scored_peers=sa.bindparam("scored"), moved=_fp.peers != sa.bindparam("again"))
)


@dataclass
class PopulationView:
    """What scoring some wallets against the stored population needs (see population_view)."""

    signals: CrossWalletSignals  # peers cover at least the viewed wallets; pools read lazily (in the transaction)
    peers_changed: list[str]  # other stored wallets whose peer count moved since they were scored


def joined_signals(first: CrossWalletSignals, second: CrossWalletSignals) -> CrossWalletSignals:
    """Two views of one population (of the same transaction) as one view of both wallet sets: their
    totals are the population's, so a key present in both has the same value in both."""

    def union(a: pd.Series, b: pd.Series) -> pd.Series:
        both = pd.concat([a, b])
        return both[~both.index.duplicated()]

    pump_a, pump_b = first.pump, second.pump
    pump = PumpTotals(
        pump_a.swap_ts_min,
        pump_a.swap_ts_max,
        union(pump_a.dumps_per_token, pump_b.dumps_per_token),
        union(pump_a.wallets_per_window, pump_b.wallets_per_window),
    )
    return CrossWalletSignals(union(first.peers, second.peers), pump, first.pools)


def _chunks(values: list, size: int = CHUNK) -> Iterator[list]:
    for i in range(0, len(values), size):
        yield values[i : i + size]


@functools.cache
def _neighbours():
    """(a, b): fingerprint rows `a` and every row `b` counted as its peer (or itself)."""
    a, b = population_fingerprints.alias("a"), population_fingerprints.alias("b")
    half = FINGERPRINT_WINDOW_S // 2
    on = sa.and_(
        b.c.digest == a.c.digest,
        b.c.length == a.c.length,
        b.c.start.between(a.c.start - half, a.c.start + half),
    )
    return a, b, on


def _window_index(keys: list[tuple[int, str, int]]) -> pd.MultiIndex:
    """(grid, token, bucket) keys as PumpTotals.of indexes them; built from codes (from_tuples and
    from_arrays factorise each level the slow way: they were most of a one-wallet view's cost)."""
    columns = list(zip(*keys)) if keys else [(), (), ()]
    levels, codes = [], []
    for values, dtype in zip(columns, (np.int64, object, np.int64)):
        code, level = pd.factorize(np.asarray(values, dtype=dtype), sort=True)  # sorts the few distinct only
        levels.append(pd.Index(np.asarray(level, dtype=dtype), dtype=dtype))
        codes.append(code)
    return pd.MultiIndex(levels=levels, codes=codes, names=["grid", "token", "bucket"], verify_integrity=False)


def _pool_frame(rows: list, names: tuple[str, str]) -> pd.DataFrame:
    """(pool hash, two integers) rows as a PoolTotals frame: column arrays first (pandas converts a
    list of rows through objects, ten times slower)."""
    columns = [np.array(c, dtype=np.int64) for c in zip(*rows)] if rows else [np.zeros(0, np.int64)] * 3
    return pd.DataFrame({"pool": unsigned(columns[0]), names[0]: columns[1], names[1]: columns[2]})


class PopulationIndex(StoreConnection):
    """The population index of the store: written when histories grow, read to score against."""

    def update_population(
        self,
        merged: pd.DataFrame,
        wallets: Sequence[str],
        patterns: PatternsConfig,
        conn: sa.Connection,
        new: Collection[str] = (),
    ) -> None:
        """Replace the index rows of `wallets` (lower-cased addresses) with the contributions of their
        full histories in `merged` (normalised transactions; other wallets' rows are ignored). A wallet
        with no rows in `merged` has its rows deleted. Peer counts of their old and new neighbours are
        brought up to date. new: wallets the caller knows had no stored history, hence no index rows
        (nothing to delete or leave: a first append skips those queries)."""
        wallets = list(dict.fromkeys(wallets))
        if not wallets:
            return
        rows = contribution_rows(merged, wallets, patterns)
        known = [w for w in wallets if w not in new] if new else wallets
        touched = self._fingerprint_neighbours(conn, known) if known else set()  # before: the ones they leave
        scored = self._scored_peers(conn, known) if known else {}
        fp = rows["population_fingerprints"]
        fp["peers"] = np.zeros(len(fp["wallet"]))  # set by _refresh_peers below
        fp["scored_peers"] = np.array([scored.get(w, 0.0) for w in fp["wallet"]], dtype=float)
        fp["moved"] = np.zeros(len(fp["wallet"]), dtype=bool)
        for chunk in _chunks(known):
            for table in POPULATION_TABLES:
                conn.execute(sa.delete(table).where(table.c.wallet.in_(chunk)))
        for name, columns in rows.items():
            if len(columns["wallet"]):
                self._executemany(conn, _INSERTS[name], tuple(columns), row_tuples(columns))
        if len(fp["wallet"]):
            touched |= self._fingerprint_neighbours(conn, fp["wallet"].tolist())  # after: the ones they join
        self._refresh_peers(conn, sorted(touched))

    def population_view(
        self, wallets: Sequence[str], patterns: PatternsConfig, conn: sa.Connection, changed: bool = True
    ) -> PopulationView:
        """The signals for scoring `wallets` against every wallet in the index, which must already hold
        their current contributions (callers update first, in the same transaction). `changed`: also
        list the other wallets whose peer count moved since they were scored (else an empty list).
        `patterns` is what the index was built with (its pump windows are stored, not recomputed)."""
        wallets = list(dict.fromkeys(wallets))
        signals = CrossWalletSignals(
            self._peer_counts(conn, wallets), self._pump(conn, wallets), self._pools(conn, wallets)
        )
        moved: list[str] = []
        if changed:
            mine = set(wallets)
            query = sa.select(_fp.wallet).where(_fp.moved == sa.true())
            moved = sorted(w for w in conn.execute(query).scalars() if w not in mine)
        return PopulationView(signals, moved)

    def record_scored_peers(self, peers: pd.Series, conn: sa.Connection) -> None:
        """Remember the peer count each wallet was scored with (wallet → count; wallets without DEX
        transactions have no fingerprint row and are skipped): it leaves peers_changed."""
        values = peers.astype(float).tolist()
        rows = [(v, v, w) for w, v in zip(peers.index.astype(object).tolist(), values)]
        if rows:
            self._executemany(conn, _RECORD, ("scored", "again", "key"), rows)

    # fingerprints

    @staticmethod
    def _fingerprint_neighbours(conn: sa.Connection, wallets: list[str]) -> set[str]:
        """The wallets (these included) within the peer window of these wallets' fingerprints."""
        a, b, on = _neighbours()
        found: set[str] = set()
        for chunk in _chunks(wallets):
            query = sa.select(b.c.wallet).distinct().select_from(a.join(b, on)).where(a.c.wallet.in_(chunk))
            found.update(conn.execute(query).scalars())
        return found

    @staticmethod
    def _scored_peers(conn: sa.Connection, wallets: list[str]) -> dict[str, float]:
        scored: dict[str, float] = {}
        for chunk in _chunks(wallets):
            query = sa.select(_fp.wallet, _fp.scored_peers).where(_fp.wallet.in_(chunk), _fp.scored_peers != 0)
            scored.update(conn.execute(query).tuples().all())
        return scored

    def _refresh_peers(self, conn: sa.Connection, wallets: list[str]) -> None:
        """Store the current peer count of these wallets' rows, and whether it moved from the scored one."""
        a, b, on = _neighbours()
        changes = []
        for chunk in _chunks(wallets):
            query = (
                sa.select(a.c.wallet, a.c.peers, a.c.scored_peers, a.c.moved, sa.func.count() - 1)
                .select_from(a.join(b, on))
                .where(a.c.wallet.in_(chunk))
                .group_by(a.c.wallet, a.c.peers, a.c.scored_peers, a.c.moved)
            )
            for wallet, stored, scored, moved, count in conn.execute(query):
                count = float(count)
                if count != stored or moved != (count != scored):
                    changes.append((count, count != scored, wallet))
        if changes:
            self._executemany(conn, _SET_PEERS, ("count", "flag", "key"), changes)

    @staticmethod
    def _peer_counts(conn: sa.Connection, wallets: list[str]) -> pd.Series:
        """peer_counts over the whole index, for these wallets (0 for a wallet without DEX rows)."""
        a, b, on = _neighbours()
        counts: dict[str, float] = {}
        for chunk in _chunks(wallets):
            query = (
                sa.select(a.c.wallet, sa.func.count() - 1)
                .select_from(a.join(b, on))
                .where(a.c.wallet.in_(chunk))
                .group_by(a.c.wallet)
            )
            counts.update(conn.execute(query).tuples().all())
        values = np.fromiter((counts.get(w, 0) for w in wallets), dtype=float, count=len(wallets))
        return pd.Series(values, index=pd.Index(wallets, dtype=object), name="peer_wallets_same_fingerprint")

    # pump and dump

    @staticmethod
    def _pump(conn: sa.Connection, wallets: list[str]) -> PumpTotals:
        """The index's swap span, and the totals of these wallets' tokens and windows."""
        swaps = population_swaps.c
        span = sa.select(
            sa.select(sa.func.min(swaps.ts_min)).scalar_subquery(),
            sa.select(sa.func.max(swaps.ts_max)).scalar_subquery(),
        )
        lo, hi = conn.execute(span).one()
        dumps, windows = [], []
        for chunk in _chunks(wallets):
            tokens = sa.select(_dumps.token).distinct().where(_dumps.wallet.in_(chunk)).subquery()
            query = (
                sa.select(tokens.c.token, sa.func.sum(_dumps.dumps))
                .select_from(tokens.join(population_dumps, _dumps.token == tokens.c.token))
                .group_by(tokens.c.token)
            )
            dumps += conn.execute(query).all()
            keys = sa.select(_windows.grid, _windows.token, _windows.bucket).distinct()
            keys = keys.where(_windows.wallet.in_(chunk)).subquery()
            on = sa.and_(_windows.grid == keys.c.grid, _windows.token == keys.c.token, _windows.bucket == keys.c.bucket)
            query = (
                sa.select(keys.c.grid, keys.c.token, keys.c.bucket, sa.func.count())
                .select_from(keys.join(population_windows, on))
                .group_by(keys.c.grid, keys.c.token, keys.c.bucket)
            )
            windows += conn.execute(query).all()
        per_token = dict(dumps)  # a key read in two chunks has the same total in both
        per_window = {(grid, token, bucket): n for grid, token, bucket, n in windows}
        return PumpTotals(
            None if lo is None else int(lo),
            None if hi is None else int(hi),
            pd.Series(np.fromiter(per_token.values(), np.int64), pd.Index(list(per_token), dtype=object, name="token")),
            pd.Series(np.fromiter(per_window.values(), np.int64), _window_index(list(per_window))),
        )

    # pools

    @staticmethod
    def _pools(conn: sa.Connection, wallets: list[str]) -> PoolRows:
        """Every wallet's rows in the pools asked for, read when the rug-pull detector asks: it needs
        only the pools that wallets with a qualifying round trip pulled from, and reading every pool
        these wallets ever withdrew from read most of a busy population's liquidity rows per range."""
        liquidity, spans = population_liquidity.c, population_pool_spans.c

        def rows_of(pools: np.ndarray) -> PoolTotals:
            keys = signed(np.asarray(pools, dtype=np.uint64)).tolist()
            lq, sp = [], []
            for chunk in _chunks(keys):
                query = sa.select(liquidity.pool, liquidity.ts, liquidity.cents).where(liquidity.pool.in_(chunk))
                lq += conn.execute(query).all()
                query = sa.select(spans.pool, spans.first_seen, spans.last_seen).where(spans.pool.in_(chunk))
                sp += conn.execute(query).all()
            return PoolTotals(_pool_frame(lq, ("ts", "cents")), _pool_frame(sp, ("first", "last")))

        return rows_of
