"""The native (Arrow) decoder and the Python decoder give the same batch: the same table, the same
rejections, warnings and counts — on generated data and on random good and bad messages."""

import copy
import itertools
import json

import orjson
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from defi_scoring.core.normalise import normalise_messages
from defi_scoring.core.synthetic import generate_wallets, iter_messages

WALLETS = ["0x" + c * 40 for c in "abcdef"] + ["0xAbCdEf" + "1" * 34]
TOKEN = {"amount": 1.5e18, "amountUSD": 120.5, "address": "0xA0b86991c6218b36c1d19d4a2e9eb0ce3606eb48"}
TOKEN["symbol"] = "USDC"
BASE = {
    "dexes": {
        "document_id": "d1",
        "action": "swap",
        "timestamp": 1_703_980_800,
        "protocol": "uniswap_v3",
        "poolId": "0xpool",
        "tokenIn": TOKEN,
        "tokenOut": {**TOKEN, "symbol": "WETH", "amountUSD": 119.0},
        "token0": TOKEN,
        "token1": TOKEN,
    },
    "transfers": {
        "document_id": "t1",
        "action": "send",
        "timestamp": 1_703_980_900,
        "counterparty": "0xBEEF" + "0" * 36,
        "token": TOKEN,
        "method": "transfer",
        "failed": False,
        "gasUsed": 21000,
        "gasPrice": 3e10,
    },
    "lending": {
        "document_id": "l1",
        "action": "liquidation",
        "timestamp": 1_703_981_000,
        "protocol": "aave_v2",
        "asset": TOKEN,
        "collateral": {**TOKEN, "symbol": "WETH"},
        "debt": {**TOKEN, "symbol": "DAI"},
        "liquidator": "0xLiQ" + "1" * 37,
    },
}
FIELDS = sorted({k for tx in BASE.values() for k in tx} | {"amount", "amountUSD", "symbol", "address"})
ODD_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(
        [
            "",
            "swap",
            "deposit",
            "withdraw",
            "send",
            "receive",
            "borrow",
            "liquidation",
            "12.5",
            "1703980800",
            "x",
            "É",
            "İstanbul",
            "0xABC",
            "\u00e9\u00e8",
        ]
    ),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.sampled_from(["amountUSD", "symbol", "amount", "address"]), st.integers(), max_size=2),
)


@st.composite
def transaction(draw, kind: str):
    tx = copy.deepcopy(BASE[kind])
    tx["document_id"] = draw(st.sampled_from(["d1", "d2", "d3", "t1", "l1", "x9"]))
    tx["action"] = draw(st.sampled_from(["swap", "deposit", "withdraw", "send", "receive", "repay", "liquidation"]))
    tx["timestamp"] = draw(st.sampled_from([1_703_980_800, 1_703_990_000.5, 1_600_000_000, 1_703_980_800_000]))
    for _ in range(draw(st.integers(0, 3))):  # random damage: a field replaced or removed
        name = draw(st.sampled_from(FIELDS))
        target = tx
        if name in ("amount", "amountUSD", "symbol", "address"):
            token = draw(st.sampled_from(["tokenIn", "tokenOut", "token0", "token1", "token", "asset", "debt"]))
            target = tx.setdefault(token, {}) if isinstance(tx.get(token, {}), dict) else tx
        if draw(st.booleans()):
            target.pop(name, None)
        else:
            target[name] = draw(ODD_VALUES)
    return tx if draw(st.integers(0, 30)) else draw(ODD_VALUES)


@st.composite
def message(draw):
    sections = []
    for _ in range(draw(st.integers(0, 3))):
        kind = draw(st.sampled_from(["dexes", "transfers", "lending"]))
        protocol_type = kind if draw(st.integers(0, 10)) else draw(st.sampled_from(["nft", None, 5]))
        txs = draw(st.lists(transaction(kind), max_size=4))
        sections.append({"protocolType": protocol_type, "transactions": txs if draw(st.integers(0, 15)) else {}})
    m = {"wallet_address": draw(st.sampled_from(WALLETS)), "data": sections}
    if not draw(st.integers(0, 15)):
        m["wallet_address"] = draw(st.sampled_from([None, 5, "0x12", "0x" + "g" * 40]))
    # the stdlib encoder: integers beyond 64 bits, and non-ASCII as \u escapes or as UTF-8
    line = json.dumps(m, separators=(",", ":"), ensure_ascii=draw(st.booleans())).encode()
    damage = draw(st.integers(0, 40))
    if damage == 0:
        return line[: len(line) // 2]  # truncated
    if damage == 1:
        return draw(st.sampled_from([b"null", b"[1]", b"42", b"", b" ", b'"x"', b"{}", line + b" ", b" " + line]))
    if damage == 2:
        return line.replace(b"120.5", b"NaN")
    if damage == 3:
        return line.replace(b'"timestamp"', b'"timestamp":1,"timestamp"', 1)  # duplicate key
    if damage == 4:
        return line + b"\n" + line
    if damage == 5:
        return line.replace(b"USDC", b"\xff\xfe")  # invalid UTF-8
    return line


def assert_same_batch(expected, actual) -> None:
    pd.testing.assert_frame_equal(expected.transactions, actual.transactions)
    assert [vars(r) for r in expected.rejections] == [vars(r) for r in actual.rejections]
    assert expected.warnings == actual.warnings
    assert expected.counts == actual.counts
    assert expected.wallet_addresses == actual.wallet_addresses


def assert_same(lines: list) -> None:
    assert_same_batch(normalise_messages(lines, decoder="python"), normalise_messages(lines, decoder="arrow"))


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(message(), min_size=1, max_size=12))
def test_native_and_python_decoders_agree_on_random_messages(lines):
    assert_same(lines)


def test_native_and_python_decoders_agree_on_generated_wallets_with_resends():
    data = generate_wallets(300, seed=3)
    lines = [orjson.dumps(m) for m in iter_messages(data)]
    lines += lines[:20] + [b"garbage", b"null"] + [line.replace(b"swap", b"stake", 1) for line in lines[20:25]]
    assert_same(lines)
    native = normalise_messages(lines, decoder="arrow")
    assert set(native.transactions["protocol_type"].cat.categories) == {"dexes", "transfers", "lending"}
    assert native.counts["duplicate_transactions"] > 0


def test_a_batch_with_bad_lines_still_decodes_the_good_ones_natively():
    """Bad lines cost only their own chunk: most of the batch stays on the native path."""
    from defi_scoring.core import arrow_decode

    lines = [orjson.dumps(m) for m in iter_messages(generate_wallets(400, seed=4))]
    lines[10] = b'{"wallet_address": 5}'
    lines[300] = b"[1, 2]"
    decoded = arrow_decode.decode(lines)
    assert {10, 300} <= set(decoded.rest.tolist())
    assert len(decoded.accepted) >= len(lines) - 2 * arrow_decode._SMALLEST_RETRY


def test_a_str_message_without_utf8_form_is_a_failure_record_not_a_crash():
    """A Python caller's str with a lone surrogate cannot be encoded: both decoders reject it."""
    good = json.dumps(
        {
            "wallet_address": WALLETS[0],
            "data": [{"protocolType": "transfers", "transactions": [{**BASE["transfers"], "document_id": "s1"}]}],
        }
    )
    lines = [good, '{"wallet_address": "\ud800", "data": []}'] * 3_000  # over 1 MB: "auto" runs the native path
    assert_same(lines)
    batch = normalise_messages(lines)
    assert batch.counts["rejected_messages"] == 3_000 and batch.counts["transactions"] == 1
    assert batch.rejections[0].error.startswith("Processing failed: invalid JSON")


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(message(), min_size=1, max_size=14), st.lists(st.integers(0, 14), max_size=4), st.booleans())
def test_decoding_in_chunks_equals_decoding_whole(lines, cuts, native):
    """Resends across chunks are duplicates as in one call; indices, warnings and rejections global."""
    from defi_scoring.core.normalise import normalise_in_chunks

    decoder = "arrow" if native else "python"
    bounds = [0, *sorted(c for c in cuts if c <= len(lines)), len(lines)]
    chunks = [lines[a:b] for a, b in itertools.pairwise(bounds)]
    assert_same_batch(normalise_messages(lines, decoder=decoder), normalise_in_chunks(chunks, decoder=decoder))
    assert_same_batch(normalise_messages([]), normalise_in_chunks([]))  # an empty file: no chunk at all


def test_generated_wallets_resent_in_a_later_chunk_are_duplicates_there():
    from defi_scoring.core.normalise import normalise_in_chunks

    lines = [orjson.dumps(m) for m in iter_messages(generate_wallets(300, seed=8))]
    lines += [*lines[:30], b"garbage"]
    chunks = [lines[i : i + 70] for i in range(0, len(lines), 70)]
    whole = normalise_messages(lines)
    assert_same_batch(whole, normalise_in_chunks(chunks))
    assert whole.counts["duplicate_transactions"] > 0


def test_a_large_batch_in_memory_is_decoded_in_chunks_to_the_same_batch(monkeypatch):
    """Over DECODE_CHUNK_BYTES of text, normalise_messages decodes a chunk at a time (bounded memory):
    the batch equals the one decoded in one piece, resends and a bad line included."""
    from defi_scoring.core import normalise

    lines = [orjson.dumps(m) for m in iter_messages(generate_wallets(200, seed=9))]
    lines += [*lines[:20], b"garbage", b""]
    whole = normalise_messages(lines)
    chunk_sizes = []
    original = normalise._decode_part
    monkeypatch.setattr(normalise, "DECODE_CHUNK_BYTES", 50_000)
    monkeypatch.setattr(normalise, "_decode_part", lambda raws, d: chunk_sizes.append(len(raws)) or original(raws, d))
    chunked = normalise_messages(lines)
    assert len(chunk_sizes) > 5 and sum(chunk_sizes) == len(lines)
    assert_same_batch(whole, chunked)
    assert whole.counts["duplicate_transactions"] > 0 and whole.counts["rejected_messages"] >= 2


def test_short_columns_become_the_categoricals_pandas_builds():
    """column_checks.categorical builds short columns by a dict: the same codes, categories and dtype."""
    import random

    import numpy as np

    from defi_scoring.core.column_checks import SHORT_COLUMN, categorical

    rng = random.Random(3)
    words = ["swap", "deposit", "Withdraw", "ETH", "eth", "", "é", "0xAb", "z" * 40]
    for n in [0, 1, 2, 5, 20, SHORT_COLUMN, SHORT_COLUMN + 1]:
        for none_share in (0.0, 0.3, 1.0):
            drawn = [None if rng.random() < none_share else rng.choice(words) for _ in range(n)]
            values = np.array(drawn, dtype=object)
            ours, theirs = categorical(values), pd.Categorical(values)
            assert ours.equals(theirs) and ours.categories.equals(theirs.categories)
            assert ours.categories.dtype == theirs.categories.dtype and ours.codes.dtype == theirs.codes.dtype
    for distinct in (126, 127, 200):  # pandas' int8 codes end below 127 categories
        values = np.array([f"t{i % distinct}" for i in range(SHORT_COLUMN)], dtype=object)
        ours, theirs = categorical(values), pd.Categorical(values)
        assert ours.equals(theirs) and ours.codes.dtype == theirs.codes.dtype, distinct
    mixed = np.array(["a", 1, None], dtype=object)  # not only str: pandas decides
    assert categorical(mixed).equals(pd.Categorical(mixed))
