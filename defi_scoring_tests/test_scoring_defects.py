"""Issue #33, three defects of the scoring core: a rug pull needs a pool the wallet dominated and others
used; success messages carry one recommendation per detected pattern; an ensemble member failing on
some wallets degrades those wallets (bisected), not the batch."""

import math

import numpy as np
import orjson
import pandas as pd
import pytest

from defi_scoring.contracts.messages import SuccessMessage
from defi_scoring.core.batch_scoring import score_raw_messages
from defi_scoring.core.normalise import normalise_messages
from defi_scoring.core.patterns import PATTERNS
from defi_scoring.core.scoring_config import DEFAULT_RECOMMENDATIONS, ScoringConfig, load_scoring_config
from defi_scoring.core.wallet_scoring import score_wallet_table

AS_OF = 1_735_689_600
T0 = 1_720_000_000
HOUR = 3600
POOL = "0x" + "ab" * 20
OTHER_POOL = "0x" + "cd" * 20


def _address(i: int) -> str:
    return f"0x{i:040x}"


class _Wallet:
    """Builds one §1 message, transaction by transaction."""

    def __init__(self, i: int) -> None:
        self.address = _address(i)
        self.transactions: list[dict] = []

    def _add(self, action: str, ts: int, pool: str, **tokens) -> "_Wallet":
        number = len(self.transactions)
        self.transactions.append(
            {"document_id": f"{self.address[-6:]}-{number}", "action": action, "timestamp": int(ts), "poolId": pool}
            | tokens
        )
        return self

    def lp(self, action: str, ts: int, usd: float, pool: str = POOL) -> "_Wallet":
        half = {"amount": 1, "amountUSD": usd / 2}
        return self._add(action, ts, pool, token0=half | {"symbol": "WETH"}, token1=half | {"symbol": "RUG"})

    def swap(self, ts: int, usd: float, pool: str = POOL) -> "_Wallet":
        token = {"amount": 1, "amountUSD": usd}
        return self._add("swap", ts, pool, tokenIn=token | {"symbol": "WETH"}, tokenOut=token | {"symbol": "RUG"})

    def message(self) -> dict:
        return {"wallet_address": self.address, "data": [{"protocolType": "dexes", "transactions": self.transactions}]}


def _score(wallets: list[_Wallet], **kwargs):
    batch = normalise_messages([orjson.dumps(w.message()) for w in wallets])
    return score_wallet_table(batch.transactions, AS_OF, **kwargs)


def _round_tripper(i: int = 1) -> _Wallet:
    """$50k of liquidity added and removed within 6 h (plus a few swaps, so the history is not thin)."""
    w = _Wallet(i)
    for j in range(3):
        w.swap(T0 - (3 - j) * 24 * HOUR, 800.0, pool=OTHER_POOL)
    return w.lp("deposit", T0, 50_000).lp("withdraw", T0 + 6 * HOUR, 50_000)


def _traders(first: int, count: int, start: int, end: int) -> list[_Wallet]:
    """Wallets that trade in POOL between `start` and `end`, after a swap in a pool of their own (no two
    replay the same sequence: they are not a sybil farm)."""
    out = []
    for k in range(count):
        w = _Wallet(first + k).swap(start - (k + 2) * 24 * HOUR, 300.0, pool=_address(10_000 + first + k))
        for j, ts in enumerate(np.linspace(start, end, 3 + k % 2)):
            w.swap(int(ts) + j, 500.0 + 10 * k)
        out.append(w)
    return out


# --- 1. rug pull needs population evidence ---------------------------------------------------------------


def test_ordinary_lp_round_trip_in_a_pool_others_fund_is_no_rug_pull():
    lps = [_Wallet(100 + k).lp("deposit", T0 - 30 * 24 * HOUR + k * HOUR, 150_000) for k in range(3)]
    wallets = [_round_tripper(), *lps, *_traders(200, 5, T0, T0 + 5 * HOUR)]
    scored = _score(wallets)
    row = scored.table.loc[wallets[0].address]
    # the wallet's own side alone is what used to fire: large, fully withdrawn, within hours
    assert row["total_deposit_usd"] >= 10_000 and row["withdraw_ratio"] >= 0.8 and row["exit_hours"] <= 6
    assert not row["rug_pull_detected"] and row["rug_pull_confidence"] == 0
    assert row["rug_pool_share"] == pytest.approx(50_000 / 500_000)  # others provide 90% of the pool
    assert row["alert_pattern"] == "" and row["patterns_detected"] == 0
    assert row["risk_level"] not in ("high", "very_high")
    message = score_raw_messages([orjson.dumps(w.message()) for w in wallets], as_of=AS_OF).messages()[0]
    assert message["patterns"] == [] and message["recommendations"] == []
    assert not any(a["severity"] == "critical" for a in message["alerts"])


def test_the_same_round_trip_scored_alone_or_without_other_users_is_no_rug_pull():
    alone = _score([_round_tripper()]).table.iloc[0]
    assert not alone["rug_pull_detected"]
    # dominating a pool nobody else touched hurts nobody: no rug pull either
    bystanders = [_Wallet(300 + k).swap(T0 - 90 * 24 * HOUR, 100.0, pool=OTHER_POOL) for k in range(5)]
    quiet = _score([_round_tripper(), *bystanders]).table.loc[_address(1)]
    assert quiet["rug_pool_share"] == 1 and quiet["rug_pool_other_wallets"] == 0
    assert not quiet["rug_pull_detected"]


def _rug_pull_population() -> tuple[list[_Wallet], _Wallet]:
    """A wallet opens a pool with $200k, small LPs join, traders buy in, and it pulls everything after 20 h."""
    puller = _Wallet(1)
    puller.swap(T0 - 48 * HOUR, 2_000.0, pool=OTHER_POOL)
    puller.lp("deposit", T0, 120_000).lp("deposit", T0 + 600, 80_000)
    puller.lp("withdraw", T0 + 20 * HOUR, 100_000).lp("withdraw", T0 + 20 * HOUR + 300, 98_000)
    small_lps = [_Wallet(400 + k).lp("deposit", T0 + (2 + k) * HOUR, 3_000.0) for k in range(2)]
    return [puller, *small_lps, *_traders(200, 6, T0 + HOUR, T0 + 19 * HOUR)], puller


def test_a_pull_that_drains_a_pool_others_deposited_into_and_traded_in_is_a_rug_pull():
    wallets, puller = _rug_pull_population()
    scored = _score(wallets)
    row = scored.table.loc[puller.address]
    assert row["rug_pull_counted"] and row["rug_pull_confidence"] > 0.6
    assert row["rug_pool_id"] == POOL
    assert row["rug_pool_share"] == pytest.approx(200_000 / 206_000)
    assert row["rug_pool_liquidity_usd"] == pytest.approx(206_000)
    assert row["rug_pool_other_wallets"] == 8  # two small LPs, six traders
    assert row["alert_pattern"] == "rug_pull"
    victims = scored.table.drop(puller.address)
    assert not victims["rug_pull_detected"].any()
    message = score_raw_messages([orjson.dumps(w.message()) for w in wallets], as_of=AS_OF).messages()[0]
    (pattern,) = [p for p in message["patterns"] if p["pattern"] == "rug_pull"]
    evidence = pattern["evidence"]
    assert evidence["rug_pool_id"] == POOL and evidence["rug_pool_other_wallets"] == 8
    assert evidence["rug_pool_share"] == pytest.approx(0.9709, abs=1e-4)
    assert "held 97% of the $206,000 of liquidity while 8 other wallets" in pattern["explanation"]
    (advice,) = [r for r in message["recommendations"] if r["pattern"] == "rug_pull"]
    assert advice["action"] == "exit_positions" and advice["severity"] == "critical"


def test_rug_pull_thresholds_come_from_the_configuration():
    wallets, puller = _rug_pull_population()
    base = load_scoring_config().model_dump()
    base["patterns"]["rug_pull"]["min_other_wallets"] = 9  # one more than the pool has
    strict = ScoringConfig.model_validate(base)
    assert not _score(wallets, config=strict).table.loc[puller.address, "rug_pull_detected"]
    base["patterns"]["rug_pull"]["min_other_wallets"] = 3
    base["patterns"]["rug_pull"]["min_pool_share"] = 0.99
    assert not _score(wallets, config=ScoringConfig.model_validate(base)).table.loc[puller.address, "rug_pull_detected"]
    for field, bad in (("min_pool_share", 0), ("min_pool_share", 1.5), ("min_other_wallets", 0)):
        broken = load_scoring_config().model_dump()
        broken["patterns"]["rug_pull"][field] = bad
        with pytest.raises(ValueError, match=field):
            ScoringConfig.model_validate(broken)


def test_every_pattern_has_a_default_recommendation():
    assert set(DEFAULT_RECOMMENDATIONS) == set(PATTERNS)
    base = load_scoring_config().model_dump()
    base["recommendations"] = {"rug_pull": {"action": "leave_now", "text": "Leave."}}  # others keep their default
    config = ScoringConfig.model_validate(base)
    assert config.recommendations["rug_pull"].action == "leave_now"
    assert config.recommendations["mev_bot"] == DEFAULT_RECOMMENDATIONS["mev_bot"]
    base["recommendations"] = {"rugpull": {"action": "x", "text": "y"}}
    with pytest.raises(ValueError, match="unknown pattern"):
        ScoringConfig.model_validate(base)


def test_generated_rug_pulls_that_drain_a_pool_others_use_are_caught_and_benign_lps_are_not():
    from defi_scoring.core.synthetic import RISKY_ARCHETYPES, generate_wallets, iter_messages

    data = generate_wallets(3000, seed=11)
    # the generator's rug pullers launch a pool of their own that 3–10 benign traders buy into
    batch = normalise_messages(list(iter_messages(data)))
    table = score_wallet_table(batch.transactions, AS_OF).table
    archetype = data.wallets.set_index(data.wallets["wallet_address"].str.lower())["archetype"].reindex(table.index)
    assert table.loc[archetype == "rug_puller", "rug_pull_counted"].mean() >= 0.9
    benign = ~archetype.isin(list(RISKY_ARCHETYPES))
    assert table.loc[benign, "rug_pull_counted"].mean() <= 0.005  # was 2.3% of whale LPs before the pool evidence
    assert (table.loc[benign, "patterns_detected"] > 0).mean() <= 0.02


# --- 2. recommendations -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def generated_messages():
    from defi_scoring.core.synthetic import generate_wallets, iter_messages

    data = generate_wallets(400, seed=31)
    return [orjson.dumps(m) for m in iter_messages(data)]


def test_one_recommendation_per_detected_pattern_in_every_encoder(generated_messages):
    from defi_scoring.core.success_messages import encode_success_messages

    batch = normalise_messages(generated_messages)
    scored = score_wallet_table(batch.transactions, AS_OF)
    table = scored.table
    addresses = table.index.tolist()
    by_polars = encode_success_messages(table, addresses, scored, AS_OF, 3, backend="polars")
    by_dicts = encode_success_messages(table, addresses, scored, AS_OF, 3, backend="python")
    assert by_polars.values == by_dicts.values
    seen = set()
    for raw in by_polars.values:
        message = orjson.loads(raw)
        SuccessMessage.model_validate(message)
        advice = message["recommendations"]
        assert [r["pattern"] for r in advice] == [p["pattern"] for p in message["patterns"]]
        for record, pattern in zip(advice, message["patterns"]):
            expected = scored.config.recommendations[record["pattern"]]
            assert record["action"] == expected.action and record["text"] == expected.text
            critical = pattern["counted"] and pattern["risk_score"] >= scored.config.alerts.high_risk_pattern_score
            assert record["severity"] == ("critical" if critical else "warning" if pattern["counted"] else "info")
            seen.add(record["pattern"])
        if not message["patterns"]:
            assert advice == []
    assert {"wash_trading", "mev_bot", "sybil_cluster", "pump_and_dump"} <= seen


def test_recommendation_texts_come_from_the_configuration(generated_messages):
    base = load_scoring_config().model_dump()
    base["recommendations"]["wash_trading"] = {"action": "ignore_volume", "text": "Ignore its volume."}
    messages = score_raw_messages(generated_messages, as_of=AS_OF, config=ScoringConfig.model_validate(base)).messages()
    advice = [r for m in messages for r in m["recommendations"] if r["pattern"] == "wash_trading"]
    assert advice and all(r == {**r, "action": "ignore_volume", "text": "Ignore its volume."} for r in advice)


# --- 3. a model member failing on some wallets -----------------------------------------------------------


def _poisoned(member, value: float, calls: list):
    """The fitted member, its predict_proba raising on any batch that holds a row whose first feature is
    `value` (a subclass in the member's own module: the contribution code still knows it as XGBoost)."""
    import copy

    base, value = type(member), np.float32(value)

    def predict_proba(self, x, *args, **kwargs):
        calls.append(len(x))
        if (x[:, 0] == value).any():
            raise ValueError("poisoned row")
        return base.predict_proba(self, x, *args, **kwargs)

    poisoned = copy.copy(member)
    poisoned.__class__ = type(
        f"Poisoned{base.__name__}", (base,), {"predict_proba": predict_proba, "__module__": base.__module__}
    )
    return poisoned


@pytest.fixture(scope="module")
def trained(generated_messages):
    from defi_scoring.core.ensemble import train_ensemble
    from defi_scoring.core.ensemble_config import load_ensemble_config
    from defi_scoring.core.model_features import MODEL_FEATURES, finite_features, model_features

    transactions = normalise_messages(generated_messages).transactions
    features = finite_features(model_features(transactions, AS_OF)[MODEL_FEATURES])
    labels = (features["round_trip_share"] > 0.3).to_numpy(int)  # any separable target will do
    return transactions, features, train_ensemble(load_ensemble_config(), features, labels)


def _poisoned_copy(ensemble, members: list[str], value: float, calls: list):
    import copy

    poisoned = copy.copy(ensemble)
    poisoned.members = {
        name: _poisoned(model, value, calls) if name in members else model for name, model in ensemble.members.items()
    }
    return poisoned


def _champion(ensemble):
    from defi_scoring.core.model_features import MODEL_FEATURES, finite_features
    from defi_scoring.core.model_scoring import model_scores

    def model(behaviour):
        x = finite_features(behaviour[MODEL_FEATURES])
        return model_scores(ensemble.predict(x), "7", "scored with test version 7", ensemble.feature_contributions(x))

    return model


def _target(features) -> tuple[str, float]:
    """A wallet whose first feature value no other wallet shares (the poisoned row)."""
    first = features.iloc[:, 0]
    unique = first[~first.duplicated(keep=False)]
    return unique.index[len(unique) // 2], float(unique.iloc[len(unique) // 2])


def test_a_member_failing_on_one_wallet_degrades_only_that_wallet(trained):
    transactions, features, ensemble = trained
    wallet, value = _target(features)
    calls: list = []
    healthy = score_wallet_table(transactions, AS_OF, model=_champion(ensemble))
    member = next(iter(ensemble.members))
    broken = score_wallet_table(transactions, AS_OF, model=_champion(_poisoned_copy(ensemble, [member], value, calls)))
    before, after = healthy.table, broken.table
    others = before.index != wallet
    # every other wallet scores as before (its failing member re-ran in sub-batches: equal up to float32 ulps)
    for name in ("hybrid_score", "confidence", "ml_adjustment", "ml_prediction_score"):
        np.testing.assert_allclose(before.loc[others, name], after.loc[others, name], atol=1e-6, err_msg=name)
    assert before.loc[others, "risk_level"].equals(after.loc[others, "risk_level"])
    # the poisoned wallet: scored by the remaining members, says which member failed and why, lower confidence
    row = after.loc[wallet]
    assert row["ml_degraded"] and row["ml_available"] and np.isfinite(row["ml_prediction_score"])
    assert f"member {member} failed on this wallet (ValueError: poisoned row)" in row["ml_note"]
    assert row["confidence"] < before.loc[wallet, "confidence"]
    # bisection: one call on the batch, then two per halving, not one per wallet
    assert len(calls) <= 1 + 2 * math.ceil(math.log2(len(features)))
    assert not after.loc[others, "ml_degraded"].any()
    # the message says so, the other messages are unchanged
    from defi_scoring.core.success_messages import encode_success_messages

    addresses = before.index.tolist()
    old = encode_success_messages(before, addresses, healthy, AS_OF, 3).values
    new = encode_success_messages(after, addresses, broken, AS_OF, 3).values
    position = addresses.index(wallet)
    assert [v for i, v in enumerate(new) if i != position] == [v for i, v in enumerate(old) if i != position]
    ml = orjson.loads(new[position])["ml"]
    assert ml["available"] is True and ml["note"].startswith("scored with test version 7; member ")


def test_every_member_failing_on_a_wallet_leaves_it_to_the_rules(trained):
    from defi_scoring.core.model_scoring import model_scores

    transactions, features, ensemble = trained
    wallet, value = _target(features)
    poisoned = _poisoned_copy(ensemble, list(ensemble.members), value, [])
    predictions = poisoned.predict(features)
    scores = model_scores(predictions, "7", "test")
    assert scores.degraded_wallets == 1 and scores.member_failures == {name: 1 for name in ensemble.members}
    assert np.isnan(predictions.loc[wallet, "risk_probability"]) and predictions.loc[wallet, "coverage"] == 0
    healthy = ensemble.predict(features)
    pd.testing.assert_frame_equal(predictions.drop(index=wallet), healthy.drop(index=wallet))
    before = score_wallet_table(transactions, AS_OF, model=_champion(ensemble)).table.loc[wallet]
    row = score_wallet_table(transactions, AS_OF, model=_champion(poisoned)).table.loc[wallet]
    assert row["ml_adjustment"] == 0 and row["anomaly_penalty"] == before["anomaly_penalty"]
    assert not row["ml_available"] and row["ml_note"].startswith("every member failed on this wallet")
    assert row["hybrid_score"] == pytest.approx(row["base_score"] - row["anomaly_penalty"])
    assert row["confidence"] < before["confidence"]


def test_weights_of_the_members_that_worked_are_renormalised(trained):
    _, features, ensemble = trained
    wallet, value = _target(features)
    names = list(ensemble.members)
    lost = names[0]
    predictions = _poisoned_copy(ensemble, [lost], value, []).predict(features)
    row = predictions.loc[wallet]
    kept = {n: ensemble.weights[n] for n in names[1:]}
    expected = sum(row[f"member_{n}"] * w for n, w in kept.items()) / sum(kept.values())
    assert np.isnan(row[f"member_{lost}"]) and row["risk_probability"] == pytest.approx(expected)
    assert row["coverage"] == pytest.approx(sum(kept.values()) / sum(ensemble.weights.values()))


def test_a_model_that_raises_on_a_wallet_through_the_champion_path(monkeypatch, trained):
    """score_with_model (the path of the API, sensor runs and the CLI): a whole model that raises on one
    wallet's features is bisected as well, and the batch does not raise."""
    from defi_scoring.core import model_scoring

    _, features, ensemble = trained
    wallet, value = _target(features)
    calls = []

    class Pyfunc:
        def predict(self, x):
            calls.append(len(x))
            if (x.iloc[:, 0] == value).any():
                raise RuntimeError("bad input row")
            return ensemble.predict(x)

        def unwrap_python_model(self):
            return type("Wrapped", (), {"ensemble": ensemble})()

    monkeypatch.setattr(model_scoring, "load_champion", lambda *a, **k: (Pyfunc(), "3"))
    scores = model_scoring.score_with_model(features, store=None, name="m")
    p = scores.predictions
    assert scores.available and scores.degraded_wallets == 1 and scores.member_failures == {"model": 1}
    assert np.isnan(p.loc[wallet, "risk_probability"]) and p.loc[wallet, "coverage"] == 0
    assert "the model failed on this wallet (RuntimeError: bad input row)" in p.loc[wallet, "note"]
    healthy = ensemble.predict(features).drop(index=wallet)
    # the other wallets were predicted in sub-batches: the same values up to a float32 ulp of XGBoost's
    np.testing.assert_allclose(p.drop(index=wallet)["risk_probability"], healthy["risk_probability"], atol=1e-6)
    assert len(calls) <= 1 + 2 * math.ceil(math.log2(len(features)))


def test_isolation_is_bounded_when_a_member_fails_everywhere():
    from defi_scoring.core.model_scoring import isolate_failures

    calls = []

    def broken(rows):
        calls.append(len(rows))
        raise MemoryError("no")

    got = isolate_failures(broken, 1000)
    assert got.failed.all() and got.error == "MemoryError: no" and not got.pieces
    assert len(calls) <= 1 + 4 * math.ceil(math.log2(1000))

    def four_bad_rows(rows):
        if (rows % 250 == 7).any():
            raise ValueError("bad")
        return rows

    scattered = isolate_failures(four_bad_rows, 1000)
    assert scattered.failed[[7, 257, 507, 757]].all() and scattered.failed.sum() < 100
    assert (
        sorted(np.concatenate([rows for rows, _ in scattered.pieces]).tolist())
        == np.flatnonzero(~scattered.failed).tolist()
    )


def test_pool_evidence_of_partitions_with_summed_totals_equals_the_whole():
    """PoolTotals add up over disjoint wallet sets: a partition scored against the population's totals
    gets the evidence it gets in one process (the chunked-file and cluster paths rely on it)."""
    from defi_scoring.core.patterns import PoolTotals, detect_patterns, pool_totals

    wallets, puller = _rug_pull_population()
    round_trip = [_round_tripper(2), *[_Wallet(500 + k).lp("deposit", T0 - 40 * HOUR, 90_000) for k in range(2)]]
    transactions = normalise_messages([orjson.dumps(w.message()) for w in [*wallets, *round_trip]]).transactions
    config = load_scoring_config().patterns

    def table(tx):  # the wallet table the detectors read
        return score_wallet_table(tx, AS_OF).table

    whole = detect_patterns(table(transactions), transactions, config)
    names = transactions["wallet"].astype(str)
    halves = [transactions[(names.str[-1] < "8").to_numpy() == side].reset_index(drop=True) for side in (True, False)]
    totals = PoolTotals.empty()
    for half in halves:
        totals = totals + pool_totals(half, pd.Index(half["wallet"].astype(str).unique()))
    columns = [
        "rug_pool_id",
        "rug_pool_share",
        "rug_pool_liquidity_usd",
        "rug_pool_other_wallets",
        "rug_pull_confidence",
    ]
    parts = pd.concat([detect_patterns(table(h), h, config, pools=totals)[columns] for h in halves])
    pd.testing.assert_frame_equal(parts.loc[whole.index], whole[columns])
    assert whole.loc[puller.address, "rug_pull_confidence"] > 0.6 and whole["rug_pull_confidence"].gt(0).sum() == 1
    # at its withdrawal (T0 + 6 h) the pool holds the puller's 200k, the two 90k LPs and the small LPs' 6k
    assert whole.loc[_address(2), "rug_pool_share"] == pytest.approx(50_000 / 436_000)
