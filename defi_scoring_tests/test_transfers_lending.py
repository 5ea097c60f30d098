"""`transfers` and `lending` (CONTRACTS.md §1b): scoring, bad input, time-shift invariance, real accounts."""

import copy

import numpy as np
import orjson
import pandas as pd
import pytest
from pydantic import ValidationError

from defi_scoring.contracts.messages import FailureMessage, LendingTransaction, SuccessMessage, TransferTransaction
from defi_scoring.core.batch_scoring import score_raw_messages
from defi_scoring.core.ensemble import account_split, classification_metrics, train_ensemble
from defi_scoring.core.ensemble_config import load_ensemble_config
from defi_scoring.core.model_features import MODEL_FEATURES, model_features
from defi_scoring.core.normalise import normalise_messages
from defi_scoring.core.training import load_labels
from defi_scoring.core.wallet_scoring import score_wallet_table
from defi_scoring_tests.conftest import example_message, lending_message, lending_rows, transfer, transfers_message

AS_OF = 1_735_689_600
EMPTY_SECTIONS_ZSCORE = "150.000000000000000000"  # §4 with no DEX rows: LP = 250 retention points, swap = 0


def run(*messages):
    out = score_raw_messages([orjson.dumps(m) for m in messages], as_of=AS_OF).messages()
    assert len(out) == len(messages)
    for message in out:
        (FailureMessage if "error" in message else SuccessMessage).model_validate(message)
    return out


def history(n=12):
    """A wallet receiving from many senders and forwarding each amount within minutes."""
    txs = []
    for i in range(n):
        txs.append(transfer(f"r{i}", "receive", ts=1703980800 + i * 3600, counterparty=f"0x{i + 1:040x}"))
        txs.append(
            transfer(
                f"s{i}",
                "send",
                ts=1703980800 + i * 3600 + 120,
                counterparty="0x" + "c" * 40,
                method="transfer",
                failed=False,
                gasUsed=21000,
                gasPrice=30_000_000_000,
            )
        )
    return txs


def test_transfer_only_wallet_gets_the_empty_section_reference_score_and_a_full_hybrid_score():
    (out,) = run(transfers_message(history()))
    assert out["zscore"] == EMPTY_SECTIONS_ZSCORE
    assert [c["transaction_count"] for c in out["categories"]] == [0, 0]
    assert 0 <= out["hybrid_score"] <= 100 and out["risk_level"] != "insufficient_history"
    assert out["activity"]["transfers"]["transaction_count"] == 24
    assert out["activity"]["transfers"]["features"]["sweep_share_1h"] == 1.0


def test_lending_only_wallet_and_a_liquidation():
    txs = [
        {
            "document_id": "d",
            "action": "deposit",
            "timestamp": 1703980800,
            "protocol": "aave_v2",
            "asset": {"amount": 2, "amountUSD": 4000, "symbol": "WETH"},
        },
        {
            "document_id": "b",
            "action": "borrow",
            "timestamp": 1703990800,
            "protocol": "aave_v2",
            "asset": {"amount": 3000, "amountUSD": 3000, "symbol": "USDC"},
        },
        {
            "document_id": "l",
            "action": "liquidation",
            "timestamp": 1704990800,
            "protocol": "aave_v2",
            "collateral": {"amountUSD": 1800, "symbol": "WETH"},
            "debt": {"amountUSD": 1500, "symbol": "USDC"},
            "liquidator": "0x" + "d" * 40,
        },
    ]
    (out,) = run(lending_message(txs))
    assert out["zscore"] == EMPTY_SECTIONS_ZSCORE
    lending = out["activity"]["lending"]
    assert lending["transaction_count"] == 3 and lending["features"]["liquidations"] == 1
    assert lending["features"]["borrow_to_supply_ratio"] == 0.75


def test_dex_scores_are_unchanged_by_transfers_beside_them():
    mixed = example_message()
    mixed["data"].append({"protocolType": "transfers", "transactions": history(3)})
    plain, with_transfers = run(example_message(), mixed)
    assert plain["zscore"] == with_transfers["zscore"] == "308.000000000000000000"
    assert plain["categories"] == with_transfers["categories"]


def _bad(**changes):
    tx = transfer("bad")
    tx.update(changes)
    return tx


@pytest.mark.parametrize(
    "tx, warning",
    [
        (_bad(action="mint"), "unknown action 'mint' for transfers (expected one of send, receive)"),
        (_bad(counterparty=None), "missing required field 'counterparty'"),
        (_bad(counterparty=42), "counterparty must be an address string, got 42"),
        (_bad(token={"amount": -1, "amountUSD": 5}), "token amount must be a finite number >= 0, got -1"),
        (_bad(token={"amount": 1, "amountUSD": -5}), "amountUSD must be a finite number >= 0"),
        (_bad(failed="yes"), "failed must be true or false, got 'yes'"),
        (_bad(gasUsed=-1), "gasUsed/gasPrice must be finite numbers >= 0"),
        (_bad(timestamp=1703980800000), "(milliseconds? expected unix seconds)"),
    ],
)
def test_bad_transfers_are_dropped_with_a_warning_and_the_rest_scored(tx, warning):
    (out,) = run(transfers_message([transfer("good"), tx]))
    assert "error" not in out and warning in " | ".join(out["warnings"])


def test_a_liquidator_that_is_not_an_address_drops_the_liquidation_with_its_own_words():
    deposit = lending_rows()[0]
    liquidation = {**deposit, "document_id": "l", "action": "liquidation", "liquidator": 42}
    (out,) = run(lending_message([deposit, liquidation]))
    assert out["activity"]["lending"]["transaction_count"] == 1
    assert out["warnings"] == ["transaction 1 (document_id 'l') dropped: liquidator must be an address string, got 42"]


def test_a_message_of_only_bad_lending_rows_fails_per_category():
    (out,) = run(lending_message([{"document_id": "x", "action": "stake", "timestamp": 1703980800}]))
    assert out["error"].startswith("Processing failed: No valid transactions found")
    assert out["categories"] == [
        {
            "category": "lending",
            "transaction_count": 1,
            "error": "unknown action 'stake' for lending (expected one of deposit, withdraw, "
            "borrow, repay, liquidation)",
        }
    ]


@pytest.mark.parametrize(
    "model, tx, accepted",
    [
        (TransferTransaction, transfer("t"), True),
        (TransferTransaction, {**transfer("t"), "failed": True, "gasUsed": "21000", "method": "approve"}, True),
        (TransferTransaction, {**transfer("t"), "action": "swap"}, False),
        (TransferTransaction, {**transfer("t"), "counterparty": None}, False),
        (TransferTransaction, {**transfer("t"), "failed": "true"}, False),
        (TransferTransaction, {**transfer("t"), "gasPrice": -3}, False),
        (TransferTransaction, {**transfer("t"), "token": {"amount": float("inf")}}, False),
        (TransferTransaction, {**transfer("t"), "token": None}, True),
        (
            LendingTransaction,
            {"document_id": "l", "action": "repay", "timestamp": 1703980800, "asset": {"amountUSD": "12.5"}},
            True,
        ),
        (LendingTransaction, {"document_id": "l", "action": "flashloan", "timestamp": 1703980800}, False),
        (
            LendingTransaction,
            {"document_id": "l", "action": "borrow", "timestamp": 1703980800, "asset": {"amountUSD": -1}},
            False,
        ),
    ],
)
def test_fast_path_and_pydantic_contract_agree_on_section_1b(model, tx, accepted):
    try:
        model.model_validate(copy.deepcopy(tx))
        pydantic_ok = True
    except ValidationError:
        pydantic_ok = False
    maker = transfers_message if model is TransferTransaction else lending_message
    batch = normalise_messages([maker([copy.deepcopy(tx)])])
    assert pydantic_ok == accepted
    assert (batch.counts["transactions"] == 1) == accepted


def _real(real_sample):
    lines = (real_sample / "messages.jsonl").read_bytes().splitlines()
    labels = load_labels([real_sample / "labels.csv"])
    return lines, labels


def _small_config():
    config = load_ensemble_config()
    members = [
        m.model_copy(update={"params": {**m.params, "n_estimators": min(m.params.get("n_estimators", 100), 150)}})
        if "n_estimators" in m.params
        else m
        for m in config.members
    ]
    return config.model_copy(update={"members": members})


def test_shifting_every_timestamp_changes_no_feature_and_no_prediction(real_sample):
    lines, labels = _real(real_sample)
    shift = 987_654_321  # not a multiple of an hour, a day or a week
    messages = [orjson.loads(line) for line in lines]
    messages.append(
        lending_message(
            [
                {
                    "document_id": f"l{i}",
                    "action": a,
                    "timestamp": 1_600_000_000 + i * 7777,
                    "asset": {"amountUSD": 100.0 * (i + 1)},
                }
                for i, a in enumerate(["deposit", "borrow", "repay", "borrow", "repay"])
            ]
        )
    )
    messages.append(example_message(with_withdraw=True))
    shifted = copy.deepcopy(messages)
    for message in shifted:
        for section in message["data"]:
            for tx in section["transactions"]:
                tx["timestamp"] += shift
    before = normalise_messages([orjson.dumps(m) for m in messages]).transactions
    after = normalise_messages([orjson.dumps(m) for m in shifted]).transactions
    as_of = int(before["timestamp"].max()) + 86_400
    f_before, f_after = model_features(before, as_of), model_features(after, as_of + shift)
    pd.testing.assert_frame_equal(f_before, f_after.loc[f_before.index])

    labelled = f_before.join(labels, how="inner")
    model = train_ensemble(_small_config(), labelled[MODEL_FEATURES], labelled["is_risky"].to_numpy())
    p_before = model.predict(f_before)
    p_after = model.predict(f_after.loc[f_before.index])
    pd.testing.assert_frame_equal(p_before, p_after)
    s_before = score_wallet_table(before, as_of).table["hybrid_score"]
    s_after = score_wallet_table(after, as_of + shift).table["hybrid_score"].loc[s_before.index]
    np.testing.assert_array_equal(s_before.to_numpy(), s_after.to_numpy())


def test_training_on_a_few_hundred_real_accounts_beats_a_constant_predictor(real_sample):
    lines, labels = _real(real_sample)
    batch = normalise_messages(lines)
    assert batch.counts["rejected_messages"] == 0 and batch.counts["dropped_transactions"] == 0
    features = model_features(batch.transactions, int(batch.transactions["timestamp"].max())).join(labels, how="inner")
    assert len(features) == 400
    y = features["is_risky"].to_numpy()
    holdout = account_split(features.index, y, 0.3)
    model = train_ensemble(_small_config(), features.loc[~holdout, MODEL_FEATURES], y[~holdout])
    p = model.predict(features.loc[holdout, MODEL_FEATURES])["risk_probability"].to_numpy()
    metrics = classification_metrics(y[holdout], p, 0.5)
    constant = classification_metrics(y[holdout], np.full(holdout.sum(), y[~holdout].mean()), 0.5)
    assert metrics["roc_auc"] >= 0.85 > constant["roc_auc"]
    assert metrics["brier"] < constant["brier"] * 0.6


def test_account_split_is_stratified_and_fixed_per_wallet():
    wallets = pd.Index([f"0x{i:040x}" for i in range(1000)])
    y = (np.arange(1000) % 4 == 0).astype(int)
    holdout = account_split(wallets, y, 0.3)
    assert abs(holdout.mean() - 0.3) < 0.01 and abs(y[holdout].mean() - 0.25) < 0.01
    again = account_split(wallets[::-1], y[::-1], 0.3)[::-1]  # order does not matter
    np.testing.assert_array_equal(holdout, again)
