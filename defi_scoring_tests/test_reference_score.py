"""CONTRACTS.md §4: the worked examples exactly, and the vectorised batch equal to the plain formulas."""

import math
from itertools import pairwise

import numpy as np
import orjson
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from defi_scoring.core.batch_scoring import score_raw_messages
from defi_scoring.core.features import STABLECOINS
from defi_scoring_tests.conftest import DAY, DEPOSIT_TIME, example_message


def _single(message: dict, as_of: int) -> dict:
    (out,) = score_raw_messages([orjson.dumps(message)], as_of=as_of).messages()
    return out


def test_worked_example_one_scores_308_at_any_as_of_30_days_on():
    for days in (30, 45, 365):
        out = _single(example_message(), DEPOSIT_TIME + days * DAY)
        assert out["zscore"] == "308.000000000000000000"
        lp, trading = out["categories"]
        assert (lp["category"], lp["score"], lp["transaction_count"]) == ("liquidity_provision", 470.0, 1)
        assert (trading["category"], trading["score"], trading["transaction_count"]) == ("trading", 65.0, 1)


def test_worked_example_one_features_match_the_contract_message():
    out = _single(example_message(), DEPOSIT_TIME + 30 * DAY)
    assert out["timestamp"] == DEPOSIT_TIME + 30 * DAY
    lp, trading = out["categories"]
    assert lp["features"] == {
        "total_deposit_usd": 1000.0,
        "total_withdraw_usd": 0.0,
        "num_deposits": 1,
        "num_withdraws": 0,
        "withdraw_ratio": 0.0,
        "account_age_days": lp["features"]["account_age_days"],
        "avg_holding_time_days": 30.0,
        "unique_pools": 1,
        "lp_frequency_score": 20.0,
    }
    assert math.isclose(lp["features"]["account_age_days"], 100 / 86400, abs_tol=1e-12)
    assert trading["features"] == {
        "total_swap_volume_usd": 1000.0,
        "num_swaps": 1,
        "unique_pools_swapped": 1,
        "avg_swap_size_usd": 1000.0,
        "token_diversity_score": 25.0,
        "swap_frequency_score": 0.0,
    }


def test_worked_example_one_tags_once_held_over_90_days():
    out = _single(example_message(), DEPOSIT_TIME + 91 * DAY)
    assert out["tags"] == ["Small LP", "Long-term Holder", "Casual Trader"]


def test_worked_example_two_with_fast_withdraw():
    out = _single(example_message(with_withdraw=True), DEPOSIT_TIME + 30 * DAY)
    assert out["zscore"] == "143.031250000000000000"
    lp, trading = out["categories"]
    assert abs(lp["score"] - 195.05208333333334) < 1e-9
    assert trading["score"] == 65.0
    assert lp["features"]["withdraw_ratio"] == 0.5
    assert abs(lp["features"]["avg_holding_time_days"] - 900 / 86400) < 1e-12
    assert out["tags"] == ["Small LP", "Short-term Holder", "Casual Trader"]


# ---------------------------------------------------------------------------------------------
# Property: the vectorised batch equals a plain per-wallet reading of the formulas.


def _plain_reference(txs: list[dict], as_of: float) -> float:
    """The formulas of CONTRACTS.md §4 read literally, one wallet at a time."""

    def usd(tx):
        if tx["action"] == "swap":
            return max(tx["tokenIn"]["amountUSD"], tx["tokenOut"]["amountUSD"])
        return tx["token0"]["amountUSD"] + tx["token1"]["amountUSD"]

    deps = [t for t in txs if t["action"] == "deposit"]
    wds = [t for t in txs if t["action"] == "withdraw"]
    swaps = [t for t in txs if t["action"] == "swap"]
    total_dep, total_wd = sum(map(usd, deps)), sum(map(usd, wds))
    ratio = total_wd / total_dep if deps and total_dep > 0 else 0.0
    holds = []
    for d in deps:
        later = [w["timestamp"] for w in wds if w["timestamp"] > d["timestamp"]]
        holds.append(((min(later) if later else as_of) - d["timestamp"]) / 86400)
    hold = sum(holds) / len(holds) if holds else 0.0
    pools = {t["poolId"] for t in txs}
    lp = (
        min(total_dep / 10000 * 300, 300)
        + min(len(deps) * 20, 200)
        + max(0, (1 - ratio) * 250)
        + min(hold / 30 * 150, 150)
        + min(len(pools) * 20, 100)
    )
    volume = sum(map(usd, swaps))
    symbols = {t["tokenIn"]["symbol"] for t in swaps} | {t["tokenOut"]["symbol"] for t in swaps}
    diversity = min(sum(10 if s in STABLECOINS else 15 for s in symbols), 150)
    if len(swaps) < 2:
        freq = 0
    else:
        times = sorted(t["timestamp"] for t in swaps)
        gap = sum(b - a for a, b in pairwise(times)) / (len(times) - 1) / 3600
        freq = 100 if gap <= 1 else 80 if gap <= 24 else 60 if gap <= 168 else 40 if gap <= 720 else 20
    swap_pools = {t["poolId"] for t in swaps}
    swap = (
        min(volume / 50000 * 250, 250) + min(len(swaps) * 10, 200) + diversity + freq + min(len(swap_pools) * 25, 100)
    )
    return 0.6 * lp + 0.4 * swap


_symbols = st.sampled_from(["USDC", "USDT", "DAI", "WETH", "WBTC", "LINK", "UNI", "PEPE", "FRAX"])
_pools = st.sampled_from([f"0x{i:040x}" for i in range(6)])
_usd = st.floats(min_value=0, max_value=2_000_000, allow_nan=False)


@st.composite
def _transaction(draw, doc: str):
    action = draw(st.sampled_from(["swap", "deposit", "withdraw"]))
    tx = {
        "document_id": doc,
        "action": action,
        "timestamp": draw(st.integers(1_600_000_000, 1_700_000_000)),
        "poolId": draw(_pools),
    }
    keys = ("tokenIn", "tokenOut") if action == "swap" else ("token0", "token1")
    for key in keys:
        tx[key] = {"amountUSD": draw(_usd), "symbol": draw(_symbols)}
    return tx


@st.composite
def _wallets(draw):
    n_wallets = draw(st.integers(1, 6))
    wallets = []
    for w in range(n_wallets):
        n_tx = draw(st.integers(1, 12))
        wallets.append([draw(_transaction(f"w{w}t{i}")) for i in range(n_tx)])
    return wallets


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(wallets=_wallets(), as_of_offset=st.integers(0, 400 * 86400))
def test_vectorised_batch_equals_plain_per_wallet_formulas(wallets, as_of_offset):
    as_of = 1_700_000_000 + as_of_offset
    addresses = [f"0x{i + 1:040x}" for i in range(len(wallets))]
    lines = [
        orjson.dumps({"wallet_address": a, "data": [{"protocolType": "dexes", "transactions": t}]})
        for a, t in zip(addresses, wallets)
    ]
    out = score_raw_messages(lines, as_of=as_of).messages()
    for txs, message in zip(wallets, out):
        expected = _plain_reference(txs, as_of)
        assert abs(float(message["zscore"]) - expected) <= 1e-9 * max(1.0, abs(expected)), (txs, message)


def test_scores_do_not_depend_on_batch_composition():
    """A wallet scored alone and scored among others gets the same result (no cross-wallet leakage)."""
    from defi_scoring.core.synthetic import generate_wallets, iter_messages

    data = generate_wallets(300, seed=7)
    lines = [orjson.dumps(m) for m in iter_messages(data)]
    together = score_raw_messages(lines, as_of=1_735_689_600).messages()
    alone = [score_raw_messages([line], as_of=1_735_689_600).messages()[0] for line in lines[:25]]
    assert [m["zscore"] for m in together[:25]] == [m["zscore"] for m in alone]
    assert pd.Series([float(m["zscore"]) for m in together]).between(0, 920).all()
    assert np.isfinite([float(m["zscore"]) for m in together]).all()
