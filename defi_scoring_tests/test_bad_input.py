"""Every row of docs/bad_input.md, in order: what each kind of bad input gets."""

import copy

import orjson
import pytest
from pydantic import ValidationError

from defi_scoring.contracts.messages import DexTransaction, FailureMessage, SuccessMessage
from defi_scoring.core.batch_scoring import score_raw_messages
from defi_scoring.core.normalise import MAX_MESSAGE_BYTES, normalise_messages
from defi_scoring_tests.conftest import WALLET, dex_message, example_message, swap

AS_OF = 1_735_689_600


def run(*messages):
    raw = [m if isinstance(m, (bytes, str)) else orjson.dumps(m) for m in messages]
    out = score_raw_messages(raw, as_of=AS_OF).messages()
    assert len(out) == len(raw)  # every input accounted for
    for message in out:
        (FailureMessage if "error" in message else SuccessMessage).model_validate(message)
    return out


def only(*messages):
    (out,) = run(*messages)
    return out


def with_tx(**changes):
    tx = swap("bad")
    tx.update(changes)
    return dex_message([swap("good"), tx])


def warnings_of(message) -> str:
    assert "error" not in message, message
    return " | ".join(message.get("warnings", []))


def test_row01_malformed_json_is_rejected_and_wallet_recovered_when_visible():
    raw = orjson.dumps(example_message())
    truncated, garbage = raw[: len(raw) // 2], b"\xff\xfe not json"
    a, b = run(truncated, garbage)
    assert a["error"].startswith("Processing failed: invalid JSON") and a["wallet_address"] == WALLET
    assert b["error"].startswith("Processing failed: invalid JSON") and b["wallet_address"] == ""
    assert a["categories"] == []


@pytest.mark.parametrize("raw", [b"[1, 2]", b"42", b'"hello"', b"null"])
def test_row02_json_that_is_not_an_object(raw):
    assert "message must be a JSON object" in only(raw)["error"]


def test_row03_oversized_message_is_rejected_unparsed():
    raw = b'{"wallet_address": "' + WALLET.encode() + b'", "pad": "' + b"x" * MAX_MESSAGE_BYTES + b'"}'
    out = only(raw)
    assert "exceeds the 5000000-byte limit" in out["error"] and out["wallet_address"] == WALLET


def test_row04_missing_wallet_address():
    message = example_message()
    del message["wallet_address"]
    assert only(message)["error"] == "Processing failed: missing required field 'wallet_address'"


@pytest.mark.parametrize("address", ["0x742d", "742d35Cc6634C0532925a3b8D4C9db96590e4265", "0x" + "g" * 40, 12])
def test_row05_invalid_address(address):
    message = example_message()
    message["wallet_address"] = address
    assert "invalid wallet_address" in only(message)["error"]


def test_row06_missing_or_non_list_data():
    a = {"wallet_address": WALLET}
    b = {"wallet_address": WALLET, "data": {"protocolType": "dexes"}}
    out_a, out_b = run(a, b)
    assert out_a["error"] == "Processing failed: missing required field 'data'"
    assert "field 'data' must be a list" in out_b["error"]


def test_row07_empty_data_or_no_transactions():
    a = {"wallet_address": WALLET, "data": []}
    b = dex_message([])
    for out in run(a, b):
        assert out["error"].startswith("Processing failed: No valid transactions found")


def test_row08_unknown_protocol_type_beside_dexes_is_ignored_with_a_warning():
    message = example_message()
    message["data"].append({"protocolType": "nft", "transactions": [{"document_id": "x", "action": "mint"}]})
    out = only(message)
    assert out["zscore"] == "308.000000000000000000"
    assert "protocolType 'nft' has no features yet; ignored" in warnings_of(out)


def test_row09_only_unknown_protocol_types_is_a_failure():
    message = {"wallet_address": WALLET, "data": [{"protocolType": "staking", "transactions": [{"a": 1}]}]}
    out = only(message)
    assert out["error"].startswith("Processing failed: No valid transactions found (section 0: protocolType")


@pytest.mark.parametrize("field", ["document_id", "action", "timestamp"])
def test_row10_missing_required_transaction_field_drops_the_transaction(field):
    message = with_tx()
    del message["data"][0]["transactions"][1][field]
    out = only(message)
    assert f"missing required field '{field}'" in warnings_of(out)
    assert out["categories"][1]["transaction_count"] == 1  # only the good swap counted


def test_row11_transaction_not_an_object():
    out = only(dex_message([swap("good"), "oops", 7]))
    assert warnings_of(out).count("transaction is not a JSON object") == 2


@pytest.mark.parametrize("action", ["stake", "SWAP", 5, [1]])
def test_row12_unknown_action(action):
    out = only(with_tx(action=action))
    assert f"unknown action {action!r} (expected one of swap, deposit, withdraw)" in warnings_of(out)


@pytest.mark.parametrize("value", ["abc", True, [1], {"t": 1}])
def test_row13_wrong_type_timestamp(value):
    out = only(with_tx(timestamp=value))
    assert "is not a unix-seconds time" in warnings_of(out)


def test_row14_numeric_strings_are_coerced():
    tx = swap("s", ts="1703980800", usd_in="1000.0", usd_out=1000.0)
    out = only(dex_message([tx]))
    assert "warnings" not in out
    assert out["categories"][1]["features"]["total_swap_volume_usd"] == 1000.0


@pytest.mark.parametrize("ts", [1703980800000, 1_000_000_000, -5])
def test_row15_absurd_timestamp(ts):
    out = only(with_tx(timestamp=ts))
    text = warnings_of(out)
    assert "between 2015-07-30 and 2100-01-01" in text
    assert ("milliseconds?" in text) == (ts > 4_102_444_800)


@pytest.mark.parametrize("usd", [-1.0, float("inf"), float("nan")])
def test_row16_negative_or_non_finite_amount(usd):
    message = with_tx(tokenIn={"amountUSD": usd, "symbol": "USDC"})
    (out,) = score_raw_messages([message], as_of=AS_OF).messages()  # a dict (API input) can carry NaN/inf
    assert "amountUSD must be a finite number >= 0" in warnings_of(out)


def test_row16_non_finite_in_a_raw_line_is_invalid_json():
    raw = orjson.dumps(with_tx()).replace(b'"amountUSD":100.0', b'"amountUSD":1e999', 1)
    assert only(raw)["error"].startswith("Processing failed: invalid JSON")


def test_row17_non_numeric_amount():
    out = only(with_tx(tokenOut={"amountUSD": "lots", "symbol": "WETH"}))
    assert "amountUSD must be a finite number >= 0" in warnings_of(out)


def test_row18_missing_token_or_amount_counts_zero():
    tx = {"document_id": "d", "action": "deposit", "timestamp": 1703980800, "token0": {"symbol": "USDC"}}
    out = only(dex_message([tx]))
    assert out["categories"][0]["features"]["total_deposit_usd"] == 0.0
    assert out["categories"][0]["features"]["num_deposits"] == 1


def test_row19_duplicate_document_id_within_a_message_keeps_the_first():
    out = only(dex_message([swap("same", usd_in=100.0), swap("same", usd_in=900.0)]))
    assert "duplicate document_id (kept the first occurrence)" in warnings_of(out)
    assert out["categories"][1]["features"]["total_swap_volume_usd"] == 100.0


def test_row20_history_resent_across_messages_is_deduplicated_and_both_succeed():
    first = example_message()
    resent = example_message(with_withdraw=True)  # full history again plus one new transaction
    a, b = run(first, resent)
    assert a["zscore"] == b["zscore"] == "143.031250000000000000"  # the wallet's batch-wide score
    batch = normalise_messages([orjson.dumps(first), orjson.dumps(resent)])
    assert batch.counts["transactions"] == 3 and batch.counts["duplicate_transactions"] == 2


def test_row21_addresses_compare_case_insensitively_and_echo_as_received():
    lower = example_message()
    lower["wallet_address"] = WALLET.lower()
    a, b = run(example_message(), lower)
    assert a["wallet_address"] == WALLET and b["wallet_address"] == WALLET.lower()
    assert a["zscore"] == b["zscore"] == "308.000000000000000000"


def test_row22_extra_fields_are_ignored():
    message = example_message()
    message["extra"] = {"nested": [1, 2]}
    message["data"][0]["transactions"][0]["gas"] = 21000
    assert only(message)["zscore"] == "308.000000000000000000"


def test_all_bad_transactions_fail_the_message_with_per_category_reasons():
    message = dex_message(
        [
            {**swap("a"), "action": "stake"},
            {**swap("b"), "timestamp": "x"},
            {"document_id": "c", "action": "deposit", "timestamp": 1},
        ]
    )
    out = only(message)
    assert out["error"].startswith("Processing failed: No valid transactions found")
    by_category = {c["category"]: c for c in out["categories"]}
    assert by_category["liquidity_provision"]["transaction_count"] == 1
    assert by_category["trading"]["transaction_count"] == 1
    assert by_category["dexes"]["transaction_count"] == 1  # unknown action: no category


def test_mixed_batch_never_crashes_and_accounts_for_every_line():
    good = orjson.dumps(example_message())
    lines = [good, b"", b"{", b"[]", orjson.dumps({"wallet_address": WALLET}), good, orjson.dumps(with_tx(action=None))]
    out = run(*lines)
    assert ["error" in m for m in out] == [False, True, True, True, True, False, False]


# The pydantic contract and the column-wise fast path agree on transaction-level verdicts.
@pytest.mark.parametrize(
    "changes, accepted",
    [
        ({}, True),
        ({"action": "stake"}, False),
        ({"timestamp": "abc"}, False),
        ({"timestamp": "1703980800"}, True),
        ({"timestamp": 1703980800000}, False),
        ({"timestamp": 1_000_000_000}, False),
        ({"tokenIn": {"amountUSD": -1.0}}, False),
        ({"tokenIn": {"amountUSD": float("inf")}}, False),
        ({"tokenIn": {"amountUSD": "12.5"}}, True),
        ({"tokenIn": {"amountUSD": "lots"}}, False),
        ({"tokenIn": None}, True),
        ({"document_id": None}, False),
    ],
)
def test_fast_path_and_pydantic_contract_agree(changes, accepted):
    tx = copy.deepcopy(swap("t"))
    tx.update(changes)
    try:
        DexTransaction.model_validate(tx)
        pydantic_ok = True
    except ValidationError:
        pydantic_ok = False
    batch = normalise_messages([dex_message([tx])])
    assert pydantic_ok == accepted
    assert (batch.counts["transactions"] == 1) == accepted


def test_an_integer_beyond_float_range_from_a_python_caller_is_dropped_not_a_crash():
    """JSON cannot carry it (orjson refuses infinite numbers), but a dict from Python code can."""
    message = example_message(with_withdraw=True)
    message["data"][0]["transactions"][1]["timestamp"] = 10**400
    batch = normalise_messages([message])
    assert batch.counts["transactions"] == 2 and batch.counts["dropped_transactions"] == 1
    assert any("timestamp" in w for w in batch.warnings[0])


def test_string_columns_have_no_category_without_a_row():
    """A wallet whose every transaction was dropped must not linger as a category (group-bys over
    categories would give it an empty row of features)."""
    bad_only = dex_message([swap("only", ts="yesterday")], wallet="0x" + "ab" * 20)
    batch = normalise_messages([example_message(), bad_only, example_message()])  # a duplicate too
    table = batch.transactions
    for column in ("wallet", "action", "pool_id", "token_a_symbol", "protocol_type"):
        assert set(table[column].cat.categories) == set(table[column].dropna().unique()), column
    assert "0x" + "ab" * 20 not in set(table["wallet"].cat.categories)
