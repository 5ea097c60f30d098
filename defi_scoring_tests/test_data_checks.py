"""Data-quality checks: the measures on their own, then the four Dagster checks on a good and a bad batch."""

import dagster as dg
import numpy as np
import orjson
import pandas as pd
import pytest

from defi_scoring.assets.partitions import transaction_batch_partitions
from defi_scoring.config import Settings
from defi_scoring.core.config_files import write_defaults
from defi_scoring.core.data_checks import (
    Thresholds,
    judge,
    non_finite_rates,
    population_stability_index,
)
from defi_scoring.core.synthetic import DEFAULT_END_TIME, generate_wallets, iter_messages, write_dataset
from defi_scoring.definitions import build_definitions
from defi_scoring_tests.conftest import dex_message, swap

TINY_ENSEMBLE = """
registered_model_name: defi-wallet-risk
members:
  - {name: xgboost, kind: xgboost, weight: 1.0, params: {n_estimators: 5, max_depth: 2, random_state: 1}}
"""


def test_psi_is_small_for_the_same_shape_and_large_for_a_shift():
    rng = np.random.default_rng(0)
    before = rng.normal(60, 15, 5_000)
    assert population_stability_index(before, rng.normal(60, 15, 5_000)) < 0.02
    assert population_stability_index(before, rng.normal(40, 15, 5_000)) > 0.25
    assert population_stability_index(before, np.array([])) == 0.0


def test_verdicts_and_non_finite_rates():
    limits = Thresholds(warn=0.05, error=0.2)
    assert judge("x", 0.01, limits).passed
    assert (judge("x", 0.1, limits).passed, judge("x", 0.1, limits).severity) == (False, "WARN")
    assert (judge("x", 0.5, limits).passed, judge("x", 0.5, limits).severity) == (False, "ERROR")
    assert judge("x", float("nan"), limits).severity == "ERROR"
    rates = non_finite_rates(
        pd.DataFrame({"a": [1.0, np.inf, 2.0, 3.0], "b": [1.0, None, None, 4.0], "c": list("wxyz")})
    )
    assert rates.index.tolist() == ["b", "a"] and rates.loc["b", "non_finite"] == 0.5 and rates.loc["a", "inf"] == 0.25


def _good_batch(path, n, seed):
    write_dataset(generate_wallets(n, seed=seed), path, None, bad_fraction=0.0, seed=seed)


def _bad_batch(path):
    """Half the lines corrupted, 600 wallets of one tiny swap each, and one wallet whose amounts overflow."""
    good = [orjson.dumps(m) for m in iter_messages(generate_wallets(200, seed=99))]
    tiny = [
        orjson.dumps(dex_message([swap(f"{i:024x}", usd_in=1.0, usd_out=1.0)], wallet=f"0x{i + 1:040x}"))
        for i in range(600)
    ]
    huge = dex_message(
        [swap("f" * 24, usd_in=1e308, usd_out=1e308), swap("e" * 24, ts=1703990800, usd_in=1e308, usd_out=1e308)],
        wallet="0x" + "9" * 40,
    )
    garbage = [b'{"wallet_address": "0x1", "data": ' + bytes(str(i), "ascii") for i in range(900)]
    path.write_bytes(b"\n".join([*good, *tiny, orjson.dumps(huge), *garbage]) + b"\n")


def _evaluations(result):
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


@pytest.fixture
def world(tmp_home, tmp_path, monkeypatch):
    models = tmp_path / "config"
    write_defaults(models)
    monkeypatch.setenv("DEFI_SCORING_CONFIG_DIR", str(models))
    instance = dg.DagsterInstance.ephemeral()
    return tmp_home, models, instance, build_definitions(Settings(home=tmp_home))


def _land_and_score(home, defs, instance, key):
    instance.add_dynamic_partitions(transaction_batch_partitions.name, [key])
    ingest = defs.resolve_job_def("ingest_batch").execute_in_process(instance=instance, partition_key=key)
    config = {"ops": {"wallet_features": {"config": {"as_of": DEFAULT_END_TIME}}}}
    score = defs.resolve_job_def("score_wallets").execute_in_process(instance=instance, run_config=config)
    assert ingest.success and score.success  # a failed data check warns; it never loses the batch
    return {**_evaluations(ingest), **_evaluations(score)}


def test_four_data_checks_pass_on_good_batches_and_fail_on_a_bad_one(world, monkeypatch):
    home, models, instance, defs = world
    landing = home / "landing"
    landing.mkdir(parents=True, exist_ok=True)

    _good_batch(landing / "good-a.jsonl", 400, seed=1)
    first = _land_and_score(home, defs, instance, "good-a")
    assert {"rejection_rate", "feature_non_finite", "score_drift"} <= set(first)
    assert all(e.passed for e in first.values()), {n: e.description for n, e in first.items()}
    _good_batch(landing / "good-b.jsonl", 400, seed=2)
    second = _land_and_score(home, defs, instance, "good-b")
    assert all(e.passed for e in second.values()), {n: e.description for n, e in second.items()}

    _bad_batch(landing / "bad.jsonl")
    bad = _land_and_score(home, defs, instance, "bad")
    for name in ("rejection_rate", "feature_non_finite", "score_drift"):
        assert not bad[name].passed and bad[name].severity == dg.AssetCheckSeverity.ERROR, bad[name].description
    assert bad["rejection_rate"].metadata["value"].value >= 900 / 1801  # the garbage lines at least
    assert bad["feature_non_finite"].metadata["worst_column"].value in ("total_swap_volume_usd", "avg_swap_size_usd")

    # Freshness: a champion trained just now and scores materialised just now pass; stricter limits fail.
    labels = home / "labels"
    labels.mkdir()
    truth = generate_wallets(400, seed=1).wallets
    truth[["wallet_address", "is_risky"]].to_csv(labels / "labels.csv", index=False)
    (models / "ensemble.yaml").write_text(TINY_ENSEMBLE)
    assert defs.resolve_job_def("train_model").execute_in_process(instance=instance).success
    fresh = _evaluations(defs.resolve_job_def("data_freshness").execute_in_process(instance=instance))
    assert fresh["scored_wallets_is_fresh"].passed and fresh["champion_is_fresh"].passed

    strict = (models / "data_checks.yaml").read_text()
    strict = strict.replace("scored_wallets_max_age_hours: 26", "scored_wallets_max_age_hours: 0.00001")
    strict = strict.replace("champion_max_age_days: 14", "champion_max_age_days: 0.0000001")
    (models / "data_checks.yaml").write_text(strict)
    stale = _evaluations(defs.resolve_job_def("data_freshness").execute_in_process(instance=instance))
    assert not stale["scored_wallets_is_fresh"].passed and "h ago" in stale["scored_wallets_is_fresh"].description
    assert not stale["champion_is_fresh"].passed and "days old" in stale["champion_is_fresh"].description


def test_models_get_finite_features_even_from_overflowing_amounts():
    from defi_scoring.core.model_features import FEATURE_LIMIT, finite_features

    frame = pd.DataFrame({"a": [1.0, np.inf, -np.inf, np.nan], "b": [1e300, 2.0, 3.0, 4.0]})
    clean = finite_features(frame)
    assert clean["a"].tolist() == [1.0, FEATURE_LIMIT, -FEATURE_LIMIT, 0.0]
    assert clean["b"].tolist() == [FEATURE_LIMIT, 2.0, 3.0, 4.0]
    fine = pd.DataFrame({"a": [1.0, 2.0]})
    assert finite_features(fine) is fine  # the common case costs one check
