"""CONTRACTS.md §5 rule by rule, plus the end-to-end hybrid score on generated wallets."""

import numpy as np
import pandas as pd
import pytest

from defi_scoring.core import factors as factors_module
from defi_scoring.core.hybrid_score import FALLBACK_CONFIDENCE, INSUFFICIENT_HISTORY, hybrid_scores
from defi_scoring.core.model_scoring import ModelScores
from defi_scoring.core.normalise import normalise_messages
from defi_scoring.core.scoring_config import ScoringConfig, load_scoring_config
from defi_scoring.core.synthetic import OWN_DETECTOR, RISKY_ARCHETYPES, generate_wallets, iter_messages
from defi_scoring.core.wallet_scoring import score_wallet_table

AS_OF = 1_735_689_600


def _config(**overrides) -> ScoringConfig:
    """One dimension 'd' of two constant factors, plus the repository defaults for the rest."""
    base = load_scoring_config().model_dump()
    base["dimensions"] = {"d": {"weight": 1.0, "factors": {"fa": 1.0, "fb": 3.0}}}
    base.update(overrides)
    return ScoringConfig.model_validate(base)


@pytest.fixture
def constant_factors(monkeypatch):
    """Register two factors whose scores/confidences the test sets directly."""
    values = {}

    def make(name):
        def compute(frame):
            score, conf = values[name]
            return np.full(len(frame), score, dtype=float), np.full(len(frame), conf, dtype=float)

        return compute

    for name in ("fa", "fb"):
        monkeypatch.setitem(factors_module.FACTORS, name, factors_module.Factor(make(name), name, name))
    return values


def _table(n=1, transactions=20):
    return pd.DataFrame({"transaction_count": [transactions] * n}, index=[f"w{i}" for i in range(n)])


def _predictions(risk, confidence, anomaly, index=("w0",)):
    return pd.DataFrame(
        {"risk_probability": risk, "confidence": confidence, "anomaly_score": anomaly}, index=list(index)
    )


def test_dimension_is_confidence_weighted_mean(constant_factors):
    constant_factors.update(fa=(80.0, 1.0), fb=(20.0, 0.5))
    result = hybrid_scores(_table(), _config())
    # weights × confidence: fa 1×1 = 1, fb 3×0.5 = 1.5 → (80·1 + 20·1.5) / 2.5 = 44
    assert result.table["dimension_d_score"].iloc[0] == pytest.approx(44.0)
    assert result.table["dimension_d_confidence"].iloc[0] == pytest.approx(2.5 / 4)
    assert result.table["base_score"].iloc[0] == pytest.approx(44.0)
    # contributions are exact: base = 50 + Σ contributions
    assert 50 + result.contributions.iloc[0].sum() == pytest.approx(44.0)


def test_zero_total_weight_gives_neutral_50(constant_factors):
    constant_factors.update(fa=(90.0, 0.0), fb=(10.0, 0.0))
    result = hybrid_scores(_table(), _config())
    assert result.table["dimension_d_score"].iloc[0] == 50.0
    assert result.table["base_score"].iloc[0] == 50.0


def test_failing_factor_falls_back_to_neutral_and_never_fails_the_wallet(constant_factors, monkeypatch):
    constant_factors.update(fb=(100.0, 1.0))

    def broken(frame):
        raise ZeroDivisionError("boom")

    monkeypatch.setitem(factors_module.FACTORS, "fa", factors_module.Factor(broken, "fa", "fa"))
    result = hybrid_scores(_table(3), _config())
    t = result.table
    assert (t["factor_fa_score"] == 50).all() and (t["factor_fa_confidence"] == FALLBACK_CONFIDENCE).all()
    assert t["factor_fa_failed"].all()
    assert "ZeroDivisionError: boom" in result.factor_errors["fa"]
    # (50·0.1 + 100·3) / 3.1
    assert t["base_score"].iloc[0] == pytest.approx((50 * 0.1 + 100 * 3) / 3.1)


def test_factor_returning_nan_for_one_wallet_falls_back_for_that_wallet_only(monkeypatch):
    def partly_nan(frame):
        return np.array([70.0, np.nan]), np.array([1.0, 1.0])

    monkeypatch.setitem(factors_module.FACTORS, "fa", factors_module.Factor(partly_nan, "fa", "fa"))
    monkeypatch.setitem(factors_module.FACTORS, "fb", factors_module.Factor(partly_nan, "fb", "fb"))
    t = hybrid_scores(_table(2), _config()).table
    assert t["factor_fa_failed"].tolist() == [False, True]
    assert t["base_score"].tolist() == pytest.approx([70.0, 50.0])


@pytest.mark.parametrize(
    "risk, confidence, expected_adjustment",
    [
        (0.0, 0.95, 15.0),  # p·100 = 100, base 40: (100 − 40)·0.3 = 18 → capped at +15
        (0.5, 0.95, 3.0),  # p·100 = 50: (50 − 40)·0.3 = 3
        (1.0, 0.95, -12.0),  # p·100 = 0: (0 − 40)·0.3 = −12
        (0.0, 0.80, 0.0),  # confidence not above the 0.8 gate → no adjustment
        (0.0, 0.81, 15.0),
    ],
)
def test_ml_adjustment_cap_and_confidence_gate(constant_factors, risk, confidence, expected_adjustment):
    constant_factors.update(fa=(40.0, 1.0), fb=(40.0, 1.0))
    t = hybrid_scores(_table(), _config(), _predictions(risk, confidence, 0.1)).table
    assert t["ml_adjustment"].iloc[0] == pytest.approx(expected_adjustment)
    assert t["hybrid_score"].iloc[0] == pytest.approx(40.0 + expected_adjustment)


def test_cap_is_symmetric_at_minus_15(constant_factors):
    constant_factors.update(fa=(90.0, 1.0), fb=(90.0, 1.0))
    t = hybrid_scores(_table(), _config(), _predictions(1.0, 0.99, 0.0)).table
    assert t["ml_adjustment"].iloc[0] == -15.0
    assert t["hybrid_score"].iloc[0] == 75.0


@pytest.mark.parametrize("anomaly, penalty", [(0.8, 0.0), (0.81, 10.0), (0.99, 10.0)])
def test_anomaly_penalty_applies_above_threshold_even_without_the_gate(constant_factors, anomaly, penalty):
    constant_factors.update(fa=(60.0, 1.0), fb=(60.0, 1.0))
    t = hybrid_scores(_table(), _config(), _predictions(0.2, 0.5, anomaly)).table
    assert t["ml_adjustment"].iloc[0] == 0.0  # gate closed
    assert t["anomaly_penalty"].iloc[0] == penalty
    assert t["hybrid_score"].iloc[0] == pytest.approx(60.0 - penalty)


def test_final_score_is_clamped(constant_factors):
    constant_factors.update(fa=(5.0, 1.0), fb=(5.0, 1.0))
    t = hybrid_scores(_table(), _config(), _predictions(1.0, 0.99, 0.95)).table
    assert t["hybrid_score"].iloc[0] == 0.0  # 5 − 1.5 − 10 → clamped


def test_no_champion_path_has_no_adjustment_and_lower_confidence(constant_factors):
    constant_factors.update(fa=(70.0, 1.0), fb=(70.0, 1.0))
    without = hybrid_scores(_table(), _config()).table
    with_model = hybrid_scores(_table(), _config(), _predictions(0.3, 1.0, 0.0)).table
    assert without["ml_adjustment"].iloc[0] == 0.0 and np.isnan(without["ml_prediction_score"].iloc[0])
    assert without["hybrid_score"].iloc[0] == 70.0
    assert without["confidence"].iloc[0] < with_model["confidence"].iloc[0]


def test_thin_history_gets_explicit_low_confidence(constant_factors):
    constant_factors.update(fa=(70.0, 1.0), fb=(70.0, 1.0))
    t = hybrid_scores(_table(2, transactions=2), _config(), _predictions([0.0, 0.0], 1.0, 0.0, ("w0", "w1"))).table
    assert (t["risk_level"] == INSUFFICIENT_HISTORY).all()
    assert (t["confidence"] <= 0.5).all() and t["thin_history"].all()


def test_risk_bands_follow_config(constant_factors):
    for score, level in [(85.0, "very_low"), (60.0, "low"), (45.0, "medium"), (20.0, "high"), (5.0, "very_high")]:
        constant_factors.update(fa=(score, 1.0), fb=(score, 1.0))
        assert hybrid_scores(_table(), _config()).table["risk_level"].iloc[0] == level


def test_config_rejects_unknown_factor_and_bad_bands():
    base = load_scoring_config().model_dump()
    with pytest.raises(ValueError, match="unknown factor"):
        ScoringConfig.model_validate({**base, "dimensions": {"d": {"weight": 1, "factors": {"nope": 1}}}})
    with pytest.raises(ValueError, match="risk_levels"):
        ScoringConfig.model_validate({**base, "risk_levels": [{"name": "a", "min_score": 10}]})


# --- end to end on generated wallets ------------------------------------------------------------


@pytest.fixture(scope="module")
def generated():
    data = generate_wallets(6000, seed=11)
    batch = normalise_messages(iter_messages(data))
    scores = score_wallet_table(batch.transactions, AS_OF)
    labels = data.wallets.assign(wallet=data.wallets["wallet_address"].str.lower()).set_index("wallet")
    return scores, scores.table.join(labels[["archetype", "is_risky"]])


def test_each_risky_archetype_is_caught_by_its_detector_and_benign_wallets_rarely_flagged(generated):
    _, table = generated
    for archetype, pattern in OWN_DETECTOR.items():
        recall = table.loc[table["archetype"] == archetype, f"{pattern}_counted"].mean()
        assert recall >= 0.9, (archetype, recall)
    benign = table[~table["is_risky"]]
    assert (benign["patterns_detected"] > 0).mean() <= 0.02


def test_benign_archetypes_outscore_risky_ones_by_20_points(generated):
    _, table = generated
    means = table.groupby("archetype")["hybrid_score"].mean()
    risky = means[list(OWN_DETECTOR)]
    benign = means.drop(list(RISKY_ARCHETYPES))
    assert benign.min() - risky.max() >= 20, means.round(1).to_dict()


def test_thin_wallets_have_low_confidence_and_everything_is_bounded(generated):
    _, table = generated
    thin = table[table["transaction_count"] < 3]
    assert len(thin) > 0 and (thin["confidence"] <= 0.5).all()
    assert table["hybrid_score"].between(0, 100).all() and table["confidence"].between(0, 1).all()


def test_reasons_are_signed_readable_sentences(generated):
    _, table = generated
    wash = table[table["archetype"] == "wash_trader"].iloc[0]
    assert wash["reason_1_points"] < 0 and "Detected wash trading" in wash["reason_1_text"]
    assert wash["reason_1_text"].endswith("points)")
    assert wash["alert_pattern"] == "wash_trading"


def test_with_a_champion_the_adjustment_and_model_reasons_appear():
    data = generate_wallets(400, seed=5)
    batch = normalise_messages(iter_messages(data))

    def champion(features):
        risk = np.where(features["round_trip_share"] > 0.5, 0.99, 0.01)
        predictions = pd.DataFrame(
            {"risk_probability": risk, "confidence": 0.95, "anomaly_score": 0.5}, index=features.index
        )
        contributions = pd.DataFrame(
            {"round_trip_share": np.where(risk > 0.5, 2.0, -1.0), "num_swaps": 0.1}, index=features.index
        )
        return ModelScores(predictions, "7", "test champion", contributions)

    scores = score_wallet_table(batch.transactions, AS_OF, model=champion)
    t = scores.table
    assert scores.model_version == "7" and (t["model_version"] == "7").all()
    assert (t["ml_adjustment"].abs() <= 15).all() and (t["ml_adjustment"] != 0).any()
    assert (t["model_reason_1_feature"] == "round_trip_share").all()


def test_success_message_carries_the_hybrid_fields_additively():
    import orjson

    from defi_scoring.core.batch_scoring import score_raw_messages
    from defi_scoring_tests.conftest import DEPOSIT_TIME, example_message

    data = generate_wallets(300, seed=2)
    lines = [orjson.dumps(example_message())] + [orjson.dumps(m) for m in iter_messages(data)]
    out = score_raw_messages(lines, as_of=DEPOSIT_TIME + 30 * 86400).messages()
    first = out[0]
    assert first["zscore"] == "308.000000000000000000"  # the reference fields are untouched
    assert [c["category"] for c in first["categories"]] == ["liquidity_provision", "trading"]
    assert first["risk_level"] == INSUFFICIENT_HISTORY and first["confidence"] <= 0.5  # 2 transactions
    assert set(first["breakdown"]) == {
        "liquidity_provision",
        "trading",
        "transfer_behaviour",
        "lending_behaviour",
        "longevity_consistency",
        "integrity",
    }
    factor = first["breakdown"]["liquidity_provision"]["factors"]["lp_capital"]
    assert factor["explanation"] == "Deposited $1,000 as liquidity"
    assert first["ml"]["available"] is False and first["ml"]["note"].startswith("ML analysis unavailable")
    assert first["model_version"] is None and first["patterns"] == []
    assert all(r["text"].endswith("points)") for r in first["reasons"])
    flagged = [m for m in out if any(p["counted"] for p in m.get("patterns", []))]
    assert flagged, "generated data contains risky wallets"
    pattern = next(p for p in flagged[0]["patterns"] if p["counted"])
    assert pattern["confidence"] > 0.6 and pattern["evidence"] and pattern["explanation"]
    assert any(a["type"] == "high_risk_pattern" for m in flagged for a in m["alerts"])
    orjson.dumps(out)  # every message is JSON-serialisable


def test_score_drop_alert_against_the_previous_score():
    data = generate_wallets(300, seed=4)
    batch = normalise_messages(iter_messages(data))
    first = score_wallet_table(batch.transactions, AS_OF)
    previous = first.table["hybrid_score"] + np.r_[20.0, 5.0, np.zeros(len(first.table) - 2)]
    again = score_wallet_table(batch.transactions, AS_OF, previous_scores=previous).table
    assert again["alert_score_drop"].iloc[0] == pytest.approx(20.0)
    assert np.isnan(again["alert_score_drop"].iloc[1])
    from defi_scoring.core.alerts import alerts_of

    alerts = alerts_of(again.iloc[0].to_dict() | {"hybrid_score": again["hybrid_score"].iloc[0]}, first.config.alerts)
    assert any(a["type"] == "score_drop" and a["severity"] == "warning" for a in alerts)
