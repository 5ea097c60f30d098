"""Known addresses and the counterparty index in the score store, on SQLite and PostgreSQL: an address
listed by two sources keeps both rows, a removal is marked and gives the score back, the stored doors'
exposure equals the file door's on the same state, and a list import (the Dagster assets) re-scores
exactly the stored wallets it reaches."""

import json
from pathlib import Path

import dagster as dg
import orjson
import pandas as pd
import pytest
import sqlalchemy as sa

from defi_scoring.assets.exposure import EXPOSURE_ASSETS, EXPOSURE_JOBS, EXPOSURE_SENSORS, known_addresses_sensor
from defi_scoring.core.exposure import exposure_table
from defi_scoring.core.normalise import normalise_messages
from defi_scoring.core.scoring_config import default_scoring_config
from defi_scoring.core.wallet_scoring import score_wallet_table
from defi_scoring.resources.data_home import DataHomeResource
from defi_scoring.resources.mlflow_store import MlflowResource
from defi_scoring.resources.score_store import ScoreStoreResource
from defi_scoring.score_store import ScoreStore
from defi_scoring.score_store.tables import score_events
from defi_scoring.service.scoring_service import ScoringService
from defi_scoring_tests.conftest import transfer, transfers_message
from defi_scoring_tests.test_exposure import CEX, KNOWN_BAD, A, B, C, D, E, S, X, histories, known
from defi_scoring_tests.test_population_index import stores  # noqa: F401 — the SQLite/PostgreSQL fixture

CONFIG = default_scoring_config()


def stored(store: ScoreStore, tx: pd.DataFrame) -> list[str]:
    """Append the histories and index their counterparties (what the scoring service does on append)."""
    wallets = ScoringService(store, CONFIG).append(tx)
    with store.transaction() as conn:
        store.update_counterparty_index(store.wallet_history(wallets, conn), wallets, conn)
    return wallets


def test_two_sources_keep_both_rows_and_a_removal_is_marked(stores):  # noqa: F811
    store = stores.open()
    first = store.import_known_addresses(known())
    assert first.added == 4 and set(first.changed_addresses) == {X, S, CEX}
    rows = store.known_address_rows([S])
    assert sorted(rows["source"]) == ["etherscan-labels", "ofac"]  # one address, two sources: both kept
    again = store.import_known_addresses(known())
    assert (again.added, again.removed, again.unchanged, again.changed_addresses) == (0, 0, 4, [])
    removal = pd.DataFrame([{"address": X, "category": "exploit", "source": "forta", "removed": True}])
    gone = store.import_known_addresses(removal)
    assert gone.removed == 1 and gone.changed_addresses == [X]
    assert X not in set(store.known_address_rows()["address"])
    with store.engine.connect() as conn:  # marked, kept for audit
        assert conn.execute(sa.text("SELECT removed FROM known_addresses WHERE address = :a"), {"a": X}).scalar()
    # a whole list for a source: what it no longer holds is removed
    replaced = store.import_known_addresses(known().iloc[[2]], replace=True)  # etherscan-labels keeps only S
    assert replaced.removed == 1 and replaced.changed_addresses == [CEX]


def test_stored_exposure_equals_the_file_doors_and_reaches_the_right_wallets(stores):  # noqa: F811
    store = stores.open()
    tx = histories()
    wallets = stored(store, tx)
    store.import_known_addresses(known())
    whole = exposure_table(tx, known(), CONFIG)
    with store.transaction() as conn:
        for one in ([A], [D], [S], [B, C], wallets):
            mine = store.wallet_history(one, conn)
            exposure = store.exposure_for(one, mine, CONFIG, conn)
            pd.testing.assert_frame_equal(exposure.sort_index(), whole.loc[sorted(one)], check_like=True)
    # X (exploit) reaches A directly, B and S at one hop (through A), C and D at two hops
    assert store.wallets_reaching([X], CONFIG.exposure) == sorted([A, B, S, C, D])
    assert store.wallets_reaching([CEX], CONFIG.exposure.model_copy(update={"max_hops": 0})) == sorted([A, E])
    assert store.wallets_reaching([S], CONFIG.exposure.model_copy(update={"max_hops": 0})) == sorted([C, S])


def test_a_removal_lowers_the_risk_again_in_the_store(stores):  # noqa: F811
    store = stores.open()
    tx = histories()
    stored(store, tx)
    store.import_known_addresses(known())

    def score_of(wallet: str) -> float:
        with store.transaction() as conn:
            mine = store.wallet_history([wallet], conn)
            exposure = store.exposure_for([wallet], mine, CONFIG, conn)
        return score_wallet_table(mine, None, CONFIG, exposure=exposure).table.loc[wallet, "hybrid_score"]

    before = score_of(A)
    store.import_known_addresses(
        pd.DataFrame([{"address": X, "category": "exploit", "source": "forta", "removed": True}])
    )
    after = score_of(A)
    assert after > before + 10


@pytest.mark.skipif(not KNOWN_BAD.exists(), reason="shared known-bad lists not present")
def test_the_shipped_combined_table_imports(stores):  # noqa: F811
    from defi_scoring.adapters.importers.known_import import import_list_files

    store = stores.open()
    outcome = import_list_files(store, [KNOWN_BAD / "known_addresses.csv"])
    assert outcome.summary()["invalid"] == 0 and outcome.stored.rows == 44_693  # distinct (address, source, category)
    counts = store.known_address_counts().groupby("category")["rows"].sum()
    assert counts["sanctioned"] == 228 and counts["phishing"] == 14_308
    assert import_list_files(store, [KNOWN_BAD / "known_addresses.csv"]).stored.added == 0  # idempotent


def _definitions(home: Path, url: str) -> dg.Definitions:
    data_home = DataHomeResource(home=str(home))
    return dg.Definitions(
        assets=list(EXPOSURE_ASSETS),
        jobs=list(EXPOSURE_JOBS),
        sensors=list(EXPOSURE_SENSORS),
        resources={
            "data_home": data_home,
            "score_store": ScoreStoreResource(url=url),
            "mlflow_store": MlflowResource(home=str(home)),
        },
    )


def test_a_list_import_rescores_exactly_the_wallets_it_reaches(stores, tmp_home):  # noqa: F811
    url = stores.url()
    store = stores.open(url)
    tx = histories()
    stored(store, tx)
    folder = tmp_home / "known_addresses"
    folder.mkdir(parents=True)
    first = known().iloc[[0]]  # X only
    first.to_csv(folder / "forta.csv", index=False)
    defs = _definitions(tmp_home, url)
    with dg.instance_for_test() as instance:
        context = dg.build_sensor_context(
            instance=instance, resources={"data_home": DataHomeResource(home=str(tmp_home))}
        )
        import os
        import time

        past = time.time() - 60
        os.utime(folder / "forta.csv", (past, past))
        request = known_addresses_sensor(context)
        assert isinstance(request, dg.RunRequest)
        job = defs.resolve_job_def("import_known_addresses")
        result = job.execute_in_process(instance=instance, run_config=request.run_config)
        assert result.success
        materialisation = next(
            e.materialization
            for e in result.get_asset_materialization_events()
            if e.asset_key.path == ["known_addresses"]
        )
        assert materialisation.metadata["category/exploit"].value == 1
        assert materialisation.metadata["changed_addresses"].value == 1
        rescoring = next(
            e.materialization
            for e in result.get_asset_materialization_events()
            if e.asset_key.path == ["exposure_rescoring"]
        )
        assert rescoring.metadata["wallets_rescored"].value == 5
    assert not (folder / "forta.csv").exists() and list((folder / "imported").iterdir())
    with store.engine.connect() as conn:
        query = sa.select(score_events.c.wallet).where(score_events.c.source == "exposure")
        rescored = sorted(conn.execute(query).scalars())
    assert rescored == sorted([A, B, S, C, D])  # E (only an exchange) is not touched


def test_the_assets_materialise_with_dg_materialize(stores, tmp_home):  # noqa: F811
    url = stores.url()
    store = stores.open(url)
    stored(store, histories())
    listing = tmp_home / "list.json"
    listing.write_text(json.dumps(known().iloc[[1]].to_dict("records")))  # S from ofac, as a JSON array
    resources = {
        "data_home": DataHomeResource(home=str(tmp_home)),
        "score_store": ScoreStoreResource(url=url),
        "mlflow_store": MlflowResource(home=str(tmp_home)),
    }
    result = dg.materialize(
        list(EXPOSURE_ASSETS),
        resources=resources,
        run_config={"ops": {"known_addresses": {"config": {"files": [str(listing)]}}}},
    )
    assert result.success
    changed = result.output_for_node("known_addresses")
    assert changed["address"].tolist() == [S]
    with store.engine.connect() as conn:
        query = sa.select(score_events.c.wallet).where(score_events.c.source == "exposure")
        rescored = sorted(conn.execute(query).scalars())
    # S itself (ownership), C (direct), B (1 hop via C), A and D (2 hops via B)
    assert rescored == sorted([S, C, B, A, D])


def test_every_store_door_scores_exposure_through_the_service(stores):  # noqa: F811
    """The service computes exposure in its own transaction: an append (API, stream) and a stored
    re-score (batch, Dask, daily) both carry it, and the stored latest score shows it."""
    store = stores.open()
    store.import_known_addresses(known())
    service = ScoringService(store, CONFIG)
    raw = [
        orjson.dumps(transfers_message([transfer("1", counterparty=S), transfer("2", counterparty=B)], wallet=C)),
        orjson.dumps(
            transfers_message([transfer("1", counterparty=C), transfer("2", "send", counterparty=A)], wallet=B)
        ),
    ]
    appended = service.score(normalise_messages(raw), source="api", run_id="t")
    c, b = map(orjson.loads, appended.messages.values)
    assert c["exposure"]["direct"][0]["category"] == "sanctioned" and c["risk_level"] in {"high", "very_high"}
    assert b["exposure"]["indirect"][0]["hops"] == 1  # through C, whose history is stored now
    _, again = service.score_stored([C, B], source="batch", run_id="t2")
    rescored = {m["wallet_address"]: m["exposure"] for m in map(orjson.loads, again.values)}
    assert rescored == {C: c["exposure"], B: b["exposure"]}
    with store.engine.connect() as conn:
        stored_c = conn.execute(sa.text("SELECT message FROM wallet_scores WHERE wallet = :w"), {"w": C}).scalar()
    assert orjson.loads(stored_c)["exposure"] == c["exposure"]  # the API's wallet view shows it


def test_an_append_indexes_a_stored_wallets_older_pairs_once(stores):  # noqa: F811
    """A wallet stored before the counterparty index existed gets its whole history's pairs on its next
    append; after that an append offers only its new transactions' pairs."""
    store = stores.open()
    store.add_transactions(histories())  # histories only: no counterparty index rows (an older store)
    assert store.wallets_reaching([X], CONFIG.exposure.model_copy(update={"max_hops": 0})) == []
    service = ScoringService(store, CONFIG)
    late = transfers_message([transfer("9", counterparty=D, ts=1704000000)], wallet=A)
    service.score(normalise_messages([orjson.dumps(late)]), source="api", run_id="t")
    assert store.wallets_reaching([X], CONFIG.exposure.model_copy(update={"max_hops": 0})) == [A]  # an old pair
    reached = store.wallets_reaching([D], CONFIG.exposure.model_copy(update={"max_hops": 0}))
    assert reached == sorted([A, D])  # the new pair (and D, stored itself)
    with store.transaction() as conn:
        offered = store.update_counterparty_index(store.wallet_history([A], conn), [A], conn, fresh=histories()[:0])
    assert offered == 0  # indexed already: nothing new to offer
