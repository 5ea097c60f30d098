"""The per-wallet history blob and the merge of new transactions into it (core.wallet_history)."""

import lz4.block
import numpy as np
import orjson
import pandas as pd
import pytest

from defi_scoring.core.normalise import normalise_messages
from defi_scoring.core.synthetic import generate_wallets, iter_messages
from defi_scoring.core.wallet_history import TX_COLUMNS, decode_histories, encode_histories, merge_history


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame[TX_COLUMNS].astype({c: object for c in TX_COLUMNS if c not in ("timestamp",)})
    frame = frame.where(frame.notna(), "<missing>")  # None and NaN both mean missing
    return frame.sort_values(["wallet", "document_id"]).reset_index(drop=True)


def test_blobs_round_trip_every_column_including_missing_values_and_unicode():
    tx = normalise_messages(iter_messages(generate_wallets(40, seed=4))).transactions
    tx = tx.astype({"token_b_symbol": object, "pool_id": object})
    tx.loc[0, "token_b_symbol"] = None
    tx.loc[1, "pool_id"] = "pool-ü-€"
    tx.loc[2, "token_a_usd"] = np.nan
    encoded = encode_histories(tx)
    assert sum(n for n, _ in encoded.values()) == len(tx)
    wallets = list(encoded)
    decoded = decode_histories(wallets, [encoded[w][1] for w in wallets])
    assert isinstance(decoded["wallet"].dtype, pd.CategoricalDtype) and decoded["timestamp"].dtype == np.int64
    pd.testing.assert_frame_equal(_sorted(decoded), _sorted(tx), check_dtype=False)


DEX_NUMBERS = ["timestamp", "amount_usd", "token_a_usd", "token_b_usd"]
DEX_STRINGS = ["document_id", "protocol_type", "action", "protocol", "pool_id", "token_a_symbol", "token_b_symbol"]


def _old_layout_blob(frame: pd.DataFrame, compressed: bool) -> bytes:
    """A blob as versions 0x01 (plain) and 0x02 (lz4) wrote it: DEX columns only."""
    numbers = np.vstack(
        [frame["timestamp"].to_numpy(np.int64).view("<f8")] + [frame[c].to_numpy(float) for c in DEX_NUMBERS[1:]]
    )
    strings = [[None if pd.isna(v) else v for v in frame[c].astype(object)] for c in DEX_STRINGS]
    body = len(frame).to_bytes(4, "little") + numbers.astype("<f8").tobytes() + orjson.dumps(strings)
    return b"\x02" + lz4.block.compress(body) if compressed else b"\x01" + body


def test_blobs_are_compressed_and_older_dex_only_blobs_still_read():
    tx = normalise_messages(iter_messages(generate_wallets(20, seed=5))).transactions
    encoded = encode_histories(tx)
    wallets = list(encoded)
    blobs = [encoded[w][1] for w in wallets]
    assert all(b[:1] == b"\x03" for b in blobs)
    assert sum(map(len, blobs)) < sum(len(lz4.block.decompress(b[1:])) for b in blobs) / 2
    dex = tx[(tx["protocol_type"] == "dexes").to_numpy()]
    by_wallet = {w: g for w, g in dex.groupby(dex["wallet"].astype(object), sort=False)}
    for compressed in (False, True):
        old = [_old_layout_blob(by_wallet[w], compressed) for w in by_wallet]
        decoded = decode_histories(list(by_wallet), old)
        pd.testing.assert_frame_equal(_sorted(decoded), _sorted(dex), check_dtype=False)
        assert decoded["counterparty"].isna().all() and decoded["token_amount"].isna().all()


def test_an_unknown_blob_version_is_refused_with_a_clear_error():
    with pytest.raises(ValueError, match="unknown wallet history format"):
        decode_histories(["0xabc"], [b"\x09rest"])


def test_merge_keeps_the_stored_row_and_adds_only_new_document_ids():
    tx = normalise_messages(iter_messages(generate_wallets(5, seed=6))).transactions
    history, new = tx.iloc[: len(tx) // 2], tx.iloc[len(tx) // 3 :].copy()  # overlapping halves
    new["amount_usd"] = -1.0  # a resent transaction with other values must not replace the stored one
    merged = merge_history(history, new)
    assert len(merged) == len(tx)
    assert not merged.duplicated(["wallet", "document_id"]).any()
    stored = merged.set_index("document_id").loc[history["document_id"], "amount_usd"]
    assert (stored.to_numpy() == history["amount_usd"].to_numpy()).all()
    assert merge_history(history.iloc[:0], new).shape[0] == len(new)
