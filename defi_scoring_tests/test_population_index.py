"""The population index on SQLite and PostgreSQL: wallets appended a few at a time (even a sybil farm one
member per request) score exactly as if the whole population were scored at once; a longer history
replaces a wallet's contributions; peers_changed names the stored wallets whose sybil peer count moved;
the migration upgrades a store at 0002; and a one-wallet view stays within a few milliseconds."""

import time
import uuid

import numpy as np
import orjson
import pandas as pd
import pytest
import sqlalchemy as sa
from alembic import command

from defi_scoring.core.cross_wallet import dex_fingerprints, peer_counts
from defi_scoring.core.normalise import normalise_messages
from defi_scoring.core.patterns import EVIDENCE, PATTERNS
from defi_scoring.core.scoring_config import default_scoring_config
from defi_scoring.core.synthetic import generate_wallets, iter_messages
from defi_scoring.core.wallet_scoring import score_wallet_table
from defi_scoring.score_store import ScoreStore, metadata
from defi_scoring.score_store.migrate import HEAD, alembic_config, current_revision
from defi_scoring.score_store.population_rows import contribution_rows
from defi_scoring.score_store.tables import POPULATION_TABLES, store_engine
from defi_scoring_tests.test_score_store import POSTGRES_URL, require_postgres
from defi_scoring_tests.test_store_migrations import schema_differences

PATTERNS_CONFIG = default_scoring_config().patterns
# what the population decides: peer counts, every detector's columns and evidence, the hybrid score
CROSS_WALLET_COLUMNS = sorted(
    {"peer_wallets_same_fingerprint", "pattern_risk", "patterns_detected", "pattern_summary", "hybrid_score"}
    | {f"{p}_{part}" for p in PATTERNS for part in ("confidence", "detected", "counted", "risk")}
    | {c for p in ("rug_pull", "pump_and_dump", "sybil_cluster") for c in EVIDENCE[p]}
)


class Stores:
    """Empty stores of one dialect: SQLite files, or schemas of their own on the PostgreSQL server."""

    def __init__(self, dialect: str, tmp_path) -> None:
        self.dialect, self.tmp_path = dialect, tmp_path
        self.schemas: list[str] = []
        self.opened: list[ScoreStore] = []

    def url(self) -> str:
        if self.dialect == "sqlite":
            return f"sqlite:///{self.tmp_path / f'store{len(self.opened)}_{uuid.uuid4().hex[:6]}.db'}"
        schema = f"pop_{uuid.uuid4().hex[:10]}"
        admin = sa.create_engine(POSTGRES_URL)
        with admin.begin() as conn:
            conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
        admin.dispose()
        self.schemas.append(schema)
        separator = "&" if "?" in POSTGRES_URL else "?"
        return f"{POSTGRES_URL}{separator}options=-csearch_path%3D{schema}"

    def open(self, url: str | None = None) -> ScoreStore:
        store = ScoreStore(url or self.url())
        self.opened.append(store)
        return store

    def close(self) -> None:
        for store in self.opened:
            store.engine.dispose()
        if self.schemas:
            admin = sa.create_engine(POSTGRES_URL)
            with admin.begin() as conn:
                for schema in self.schemas:
                    conn.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
            admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def stores(request, tmp_path):
    if request.param == "postgresql":
        require_postgres()
    made = Stores(request.param, tmp_path)
    yield made
    made.close()


@pytest.fixture(scope="module")
def population():
    """800 generated wallets (sybil farms, pump-and-dump groups, rug pulls) and their one-process scores."""
    data = generate_wallets(800, seed=21)
    tx = normalise_messages([orjson.dumps(m) for m in iter_messages(data)]).transactions
    as_of = int(tx["timestamp"].max())
    wallets = data.wallets.assign(wallet=data.wallets["wallet_address"].str.lower()).set_index("wallet")
    return tx, as_of, wallets, score_wallet_table(tx, as_of).table


def rows_of(tx: pd.DataFrame, wallets) -> pd.DataFrame:
    return tx[tx["wallet"].astype(object).isin(set(wallets)).to_numpy()]


def append(store: ScoreStore, tx: pd.DataFrame, wallets: list[str]) -> None:
    """One request's append: these wallets' full histories into the index, in one transaction."""
    with store.transaction() as conn:
        store.update_population(rows_of(tx, wallets), wallets, PATTERNS_CONFIG, conn)


def index_rows(store: ScoreStore) -> dict[str, pd.DataFrame]:
    """Every row of every population table, in a canonical order."""
    out = {}
    with store.engine.connect() as conn:
        for table in POPULATION_TABLES:
            frame = pd.DataFrame(conn.execute(sa.select(table)).all(), columns=list(table.columns.keys()))
            out[table.name] = frame.sort_values(list(frame.columns)).reset_index(drop=True)
    return out


def farm_members(wallets: pd.DataFrame, tx: pd.DataFrame) -> list[str]:
    """The members of the sybil farm whose members replay the most distinct sequences (so that an
    arrival moves some of them and not the others), in address order."""
    fp = dex_fingerprints(tx)
    farms = wallets[wallets["archetype"] == "sybil_farm"]
    groups = farms.groupby("cluster_id").apply(lambda g: fp.loc[g.index, "digest"].nunique(), include_groups=False)
    return sorted(farms.index[farms["cluster_id"] == groups.idxmax()])


def test_appended_a_few_at_a_time_the_index_scores_like_the_whole_population(stores, population):
    tx, as_of, wallets, whole = population
    store = stores.open()
    farm = farm_members(wallets, tx)
    others = [w for w in whole.index if w not in set(farm)]
    for k in range(5):  # five appends of interleaved wallets, then the farm one member per request
        append(store, tx, others[k::5])
    for member in farm:
        append(store, tx, [member])

    flagged = whole.index[whole[["sybil_cluster_detected", "pump_and_dump_detected", "rug_pull_detected"]].any(axis=1)]
    subset = sorted(set(whole.index[::6]) | set(flagged[::2]) | set(farm[:3]))
    with store.transaction() as conn:  # the view reads pool rows when the detector asks: inside the transaction
        view = store.population_view(subset, PATTERNS_CONFIG, conn, changed=False)
        scored = score_wallet_table(rows_of(tx, subset), as_of, signals=view.signals).table
    assert view.peers_changed == [] and set(subset) <= set(view.signals.peers.index)
    expected = whole.loc[scored.index]
    assert sorted(scored.index) == subset
    pd.testing.assert_frame_equal(scored[CROSS_WALLET_COLUMNS], expected[CROSS_WALLET_COLUMNS], check_exact=True)
    pd.testing.assert_frame_equal(scored, expected, check_dtype=False, check_categorical=False)

    alone = score_wallet_table(rows_of(tx, subset), as_of).table  # the subset as its own population
    for pattern in ("sybil_cluster", "pump_and_dump", "rug_pull"):
        assert scored[f"{pattern}_detected"].sum() >= 3, f"the subset should hold {pattern} wallets"
    assert (alone["peer_wallets_same_fingerprint"] < scored["peer_wallets_same_fingerprint"]).sum() >= 10
    assert alone["pump_and_dump_detected"].sum() < scored["pump_and_dump_detected"].sum()
    assert alone["rug_pull_detected"].sum() < scored["rug_pull_detected"].sum()


def test_a_longer_history_replaces_the_wallets_contributions(stores, population):
    tx, _, _, whole = population
    everyone = list(whole.index)
    kept = tx.groupby("wallet", observed=True).cumcount() < 0.6 * tx.groupby("wallet", observed=True)[
        "timestamp"
    ].transform("size")
    older = tx[kept.to_numpy()]
    assert older["wallet"].nunique() == len(everyone) and len(older) < len(tx)

    grown = stores.open()
    for k in range(2):  # first the older part of every history, then the full ones in other groups
        append(grown, older, everyone[k::2])
    for k in range(3):
        append(grown, tx, everyone[k::3])
    gone = everyone[0]
    with grown.transaction() as conn:  # a wallet without rows in `merged` leaves the index
        grown.update_population(rows_of(tx, everyone[1:2]), [gone], PATTERNS_CONFIG, conn)

    fresh = stores.open()
    append(fresh, tx, everyone[1:])
    got, want = index_rows(grown), index_rows(fresh)
    for name in want:
        pd.testing.assert_frame_equal(got[name], want[name], check_dtype=False, obj=name)
        assert gone not in set(got[name]["wallet"])
    assert len(want["population_liquidity"]) and len(want["population_windows"]) and len(want["population_dumps"])


def _extended(history: pd.DataFrame) -> pd.DataFrame:
    """The history with one more swap: its last DEX row repeated a minute later."""
    dex = history[(history["protocol_type"] == "dexes").to_numpy()]
    extra = dex.iloc[[-1]].assign(timestamp=dex["timestamp"].iloc[-1] + 60, document_id="extra-swap")
    return pd.concat([history, extra], ignore_index=True)


def test_peers_changed_names_the_stored_farm_members_whose_count_moved(stores, population):
    tx, _, wallets, _ = population
    store = stores.open()
    farm = farm_members(wallets, tx)
    background = [w for w in wallets.index if wallets.loc[w, "archetype"] != "sybil_farm"][:200]
    append(store, tx, background)
    with store.transaction() as conn:
        view = store.population_view(background, PATTERNS_CONFIG, conn)
        store.record_scored_peers(view.signals.peers, conn)
    recorded = view.signals.peers.to_dict()
    current_tx = rows_of(tx, background)

    def expected_changed(new: str) -> list[str]:
        current = peer_counts(dex_fingerprints(current_tx))
        return sorted(w for w, n in current.items() if w != new and n != recorded.get(w, 0.0))

    named = []
    for member in [*farm, farm[0]]:  # each member arrives alone; then the first one's history grows
        if member in recorded:
            others = current_tx[(current_tx["wallet"].astype(object) != member).to_numpy()]
            current_tx = pd.concat([others, _extended(rows_of(tx, [member]))])
        else:
            current_tx = pd.concat([current_tx, rows_of(tx, [member])])
        with store.transaction() as conn:
            store.update_population(rows_of(current_tx, [member]), [member], PATTERNS_CONFIG, conn)
            view = store.population_view([member], PATTERNS_CONFIG, conn)
            assert view.peers_changed == expected_changed(member)
            assert view.signals.peers[member] == peer_counts(dex_fingerprints(current_tx))[member]
            named.append(view.peers_changed)
            again = store.population_view(view.peers_changed, PATTERNS_CONFIG, conn, changed=False)
            rescored = pd.concat([view.signals.peers[[member]], again.signals.peers])
            store.record_scored_peers(rescored, conn)
            recorded.update(rescored.to_dict())
            assert store.population_view([member], PATTERNS_CONFIG, conn).peers_changed == []

    earlier = [set(farm[:i]) for i in range(len(farm))]
    assert all(set(names) <= earlier[i] for i, names in enumerate(named[: len(farm)]))  # only co-members
    assert any(names and set(names) < earlier[i] for i, names in enumerate(named[: len(farm)]))  # not all of them
    assert named[-1] and set(named[-1]) <= set(farm[1:])  # the grown member left its peers: their count fell


def test_the_migration_upgrades_a_store_at_0002(stores, population):
    tx, _, _, whole = population
    url = stores.url()
    engine = store_engine(url)
    with engine.begin() as conn:
        command.upgrade(alembic_config(conn), "0002")
    assert current_revision(engine) == "0002"
    assert not sa.inspect(engine).has_table("population_fingerprints")
    engine.dispose()

    store = stores.open(url)  # opening upgrades it
    assert current_revision(store.engine) == HEAD  # 0003 and whatever came after it
    assert schema_differences(store.engine, metadata) == []
    wallets = list(whole.index[:50])
    append(store, tx, wallets)
    with store.transaction() as conn:
        view = store.population_view(wallets, PATTERNS_CONFIG, conn)
    assert view.signals.peers.index.tolist() == wallets


def test_a_one_wallet_view_of_a_5000_wallet_index_takes_a_few_milliseconds(tmp_path):
    data = generate_wallets(5_000, seed=3)
    tx = normalise_messages(list(iter_messages(data))).transactions
    store = ScoreStore(f"sqlite:///{tmp_path / 'big.db'}")
    everyone = tx["wallet"].astype(object).unique().tolist()
    with store.transaction() as conn:
        store.update_population(tx, everyone, PATTERNS_CONFIG, conn)
        store.record_scored_peers(store.population_view(everyone, PATTERNS_CONFIG, conn).signals.peers, conn)
    views, updates = [], []
    for wallet in np.random.default_rng(0).choice(everyone, 200, replace=False).tolist():
        history = rows_of(tx, [wallet])
        with store.transaction() as conn:
            started = time.perf_counter()
            store.update_population(history, [wallet], PATTERNS_CONFIG, conn)
            updated = time.perf_counter()
            store.population_view([wallet], PATTERNS_CONFIG, conn)
            views.append(time.perf_counter() - updated)
            updates.append(updated - started)
    view_ms, update_ms = np.median(views) * 1000, np.median(updates) * 1000
    print(
        f"one-wallet view: median {view_ms:.2f} ms (p90 {np.percentile(views, 90) * 1000:.2f} ms); "
        f"update: median {update_ms:.2f} ms, over a {len(everyone)}-wallet SQLite index"
    )
    assert view_ms < 20  # a few ms measured; the bound only catches a lost index or a full scan


def test_a_lone_wallets_pool_rows_are_its_rows_among_many(population):
    """contribution_rows takes a shortcut for one wallet (an API request): the same pool rows."""
    tx, _, _, whole = population
    wallets = whole.index.tolist()
    everyone = contribution_rows(tx, wallets, PATTERNS_CONFIG)
    lp = [w for w in wallets if (everyone["population_liquidity"]["wallet"] == w).any()][:40]
    assert len(lp) >= 10
    for wallet in lp:
        alone = contribution_rows(rows_of(tx, [wallet]), [wallet], PATTERNS_CONFIG)
        for table in ("population_liquidity", "population_pool_spans"):
            mine = everyone[table]["wallet"] == wallet
            expected = pd.DataFrame({c: v[mine] for c, v in everyone[table].items()})
            got = pd.DataFrame(alone[table])
            pd.testing.assert_frame_equal(got, expected.reset_index(drop=True), check_dtype=False)
