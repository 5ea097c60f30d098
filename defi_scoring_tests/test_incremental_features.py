"""wallet_features after a second batch: only the touched wallets are recomputed, and the table equals a
full recompute (real Dagster execution of the score_wallets job)."""

import dagster as dg
import numpy as np
import orjson
import pandas as pd

from defi_scoring.assets.partitions import transaction_batch_partitions
from defi_scoring.batch_files import read_transactions
from defi_scoring.config import Settings
from defi_scoring.core.features import reference_features
from defi_scoring.core.synthetic import generate_wallets, write_dataset
from defi_scoring.definitions import build_definitions
from defi_scoring_tests.conftest import DAY, DEPOSIT_TIME, dex_message, example_message, swap
from defi_scoring_tests.test_definitions import _land


def _features_run(defs, instance, as_of: int, **config) -> dict:
    result = defs.resolve_job_def("score_wallets").execute_in_process(
        instance=instance, run_config={"ops": {"wallet_features": {"config": {"as_of": as_of, **config}}}}
    )
    assert result.success
    return result.asset_materializations_for_node("wallet_features")[0].metadata


def _ingest(defs, instance, key: str) -> None:
    assert defs.resolve_job_def("ingest_batch").execute_in_process(instance=instance, partition_key=key).success


def _full_recompute(home, as_of: int) -> pd.DataFrame:
    files = sorted((home / "batches").glob("*/transactions.parquet"))
    return reference_features(read_transactions(files), as_of).assign(as_of=as_of)


def _assert_same_table(incremental: pd.DataFrame, full: pd.DataFrame) -> None:
    assert incremental.index.equals(full.index)  # same wallets in the same row order
    assert list(incremental.columns) == list(full.columns)
    exact = [c for c in full.columns if c != "avg_holding_time_days"]
    pd.testing.assert_frame_equal(incremental[exact], full[exact], check_exact=True)
    # open deposits are moved to the new as_of arithmetically: equal up to float rounding
    np.testing.assert_allclose(incremental["avg_holding_time_days"], full["avg_holding_time_days"], rtol=1e-12)


def test_second_batch_recomputes_only_its_wallets_and_equals_a_full_recompute(tmp_home):
    defs = build_definitions(Settings(home=tmp_home))
    first = tmp_home / "landing" / "first.jsonl"
    write_dataset(generate_wallets(150, seed=5), first, seed=5)
    lines = first.read_bytes().splitlines()
    existing = [orjson.loads(line)["wallet_address"].lower() for line in lines]
    extended = sorted(set(existing))[:20]
    # The second batch sorts *before* the first ("0-…" < "first"): its rows win deduplication and its
    # new wallets come first in a full recompute, which the incremental table must reproduce.
    second = [
        orjson.dumps(dex_message([swap(f"new-{i}", ts=DEPOSIT_TIME + i)], wallet=w)) for i, w in enumerate(extended)
    ]
    second += lines[-5:]  # resent unchanged: those wallets are touched too
    second.append(orjson.dumps(example_message()))  # a new wallet with an open deposit
    new_wallets = generate_wallets(40, seed=6)
    extra = tmp_home / "extra.jsonl"
    write_dataset(new_wallets, extra, seed=6)
    second += extra.read_bytes().splitlines()
    _land(tmp_home, "0-second", second)
    touched = {orjson.loads(line)["wallet_address"].lower() for line in second}

    first_as_of, second_as_of = DEPOSIT_TIME + 30 * DAY, DEPOSIT_TIME + 45 * DAY
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(transaction_batch_partitions.name, ["first", "0-second"])
        _ingest(defs, instance, "first")
        meta = _features_run(defs, instance, first_as_of)
        assert meta["update"].value.startswith("full: no previous table")
        assert "first" in (tmp_home / "tables" / "wallet_features.batches.json").read_text()
        before = pd.read_parquet(tmp_home / "tables" / "wallet_features.parquet")
        # untouched wallets with open deposits exist, so moving as_of is exercised
        assert (before.drop(index=list(touched), errors="ignore")["open_deposits"] > 0).any()

        _ingest(defs, instance, "0-second")
        meta = _features_run(defs, instance, second_as_of)
        assert meta["update"].value == "incremental: 1 batches landed since the previous table"
        assert meta["recomputed_wallets"].value == len(touched) < meta["wallets"].value
        incremental = pd.read_parquet(tmp_home / "tables" / "wallet_features.parquet")
        _assert_same_table(incremental, _full_recompute(tmp_home, second_as_of))
        scores = pd.read_parquet(tmp_home / "tables" / "reference_scores.parquet")
        assert scores.index.equals(incremental.index)

        # nothing new: every wallet kept, only moved to the new as_of
        meta = _features_run(defs, instance, second_as_of + DAY)
        assert meta["recomputed_wallets"].value == 0
        _assert_same_table(
            pd.read_parquet(tmp_home / "tables" / "wallet_features.parquet"),
            _full_recompute(tmp_home, second_as_of + DAY),
        )

        # a batch materialised again (its file rewritten) → full recompute, and it says why
        _ingest(defs, instance, "first")
        meta = _features_run(defs, instance, second_as_of)
        assert meta["update"].value == "full: batch 'first' changed or was removed since the previous table"
        assert meta["recomputed_wallets"].value == meta["wallets"].value
        meta = _features_run(defs, instance, second_as_of, incremental=False)
        assert meta["update"].value == "full: incremental updates are off (config incremental: false)"

        # an unreadable record of the batches → full recompute, not a failed run
        state = tmp_home / "tables" / "wallet_features.batches.json"
        state.write_text("{half a file")
        meta = _features_run(defs, instance, second_as_of)
        assert meta["update"].value.startswith("full: the record of the previous table's batches is unreadable")

        # a table of an earlier feature set (no open_deposits) and a new batch → full, all columns back
        table_path = tmp_home / "tables" / "wallet_features.parquet"
        pd.read_parquet(table_path).drop(columns="open_deposits").to_parquet(table_path)
        _land(tmp_home, "third", [orjson.dumps(dex_message([swap("third-0", ts=DEPOSIT_TIME)], wallet=extended[0]))])
        instance.add_dynamic_partitions(transaction_batch_partitions.name, ["third"])
        _ingest(defs, instance, "third")
        meta = _features_run(defs, instance, second_as_of)
        assert meta["update"].value == "full: the previous table has other feature columns (an earlier version's)"
        _assert_same_table(pd.read_parquet(table_path), _full_recompute(tmp_home, second_as_of))
