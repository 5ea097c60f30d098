"""The columnar input (core/transaction_table.py) decodes to exactly the batch its §1 messages give."""

from __future__ import annotations

import copy

import numpy as np
import orjson
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

from defi_scoring.core.batch_scoring import score_raw_messages, score_tables
from defi_scoring.core.normalise import normalise_messages, normalise_tables
from defi_scoring.core.synthetic import generate_wallets
from defi_scoring.core.synthetic_messages import iter_messages
from defi_scoring.core.table_decode import TableSchemaError
from defi_scoring.core.transaction_table import TABLE_SCHEMA, table_from_messages

AS_OF = 1_735_689_600


@pytest.fixture(scope="module")
def messages() -> list[dict]:
    return list(iter_messages(generate_wallets(300, seed=11)))


def _same_batch(json_batch, table_batch, *, message_index: bool = True) -> None:
    left, right = json_batch.transactions, table_batch.transactions
    if not message_index:
        left, right = left.drop(columns="message_index"), right.drop(columns="message_index")
    pd.testing.assert_frame_equal(left, right, check_exact=True)
    assert [(r.message_index, r.error, r.categories) for r in json_batch.rejections] == [
        (r.message_index, r.error, r.categories) for r in table_batch.rejections
    ]
    assert json_batch.counts == table_batch.counts
    assert json_batch.warnings == table_batch.warnings


def test_generated_wallets_decode_as_their_messages(messages):
    lines = [orjson.dumps(m) for m in messages]
    table = table_from_messages(messages)
    assert table.schema == TABLE_SCHEMA
    _same_batch(normalise_messages(lines), normalise_tables([table]))


def test_rows_in_any_order_and_any_split_give_the_same_batch(messages):
    """Wallets' rows interleaved and cut into several tables (a Parquet file's row groups)."""
    table = table_from_messages(messages)
    expected = normalise_tables([table])
    rng = np.random.default_rng(0)
    # interleave wallets but keep each wallet's own rows in order (the order inside a section counts)
    wallet_of_row = pa.compute.utf8_lower(table.column("wallet_address")).to_numpy(zero_copy_only=False)
    keys = rng.random(len(set(wallet_of_row)))
    rank = dict(zip(dict.fromkeys(wallet_of_row), keys))
    shuffled = table.take(pa.array(np.lexsort((np.arange(table.num_rows), [rank[w] for w in wallet_of_row]))))
    shuffled_batch = normalise_tables([shuffled])
    first_order = list(dict.fromkeys(pa.compute.utf8_lower(shuffled.column("wallet_address")).to_pylist()))
    assert [a.lower() for a in shuffled_batch.wallet_addresses] == first_order
    by_wallet = lambda b: b.transactions.drop(columns="message_index").sort_values(["wallet", "document_id"])
    pd.testing.assert_frame_equal(
        by_wallet(expected).reset_index(drop=True), by_wallet(shuffled_batch).reset_index(drop=True), check_exact=True
    )
    cuts = sorted(rng.choice(np.arange(1, table.num_rows), size=5, replace=False).tolist())
    pieces = [table.slice(a, b - a) for a, b in zip([0, *cuts], [*cuts, table.num_rows])]
    _same_batch(expected, normalise_tables(pieces))


def test_scored_messages_equal_the_json_path(messages):
    lines = [orjson.dumps(m) for m in messages]
    strip = lambda values: [orjson.loads(v) | {"processing_time_ms": 0} for v in values]
    from_json = strip(score_raw_messages(lines, as_of=AS_OF).encoded().values)
    from_table = strip(score_tables([table_from_messages(messages)], as_of=AS_OF).encoded().values)
    assert from_json == from_table


def test_bad_rows_get_the_json_paths_verdicts(messages):
    bad = copy.deepcopy(messages[:40])
    txs = lambda m: [t for s in m["data"] for t in s["transactions"]]
    txs(bad[0])[0]["action"] = "fly"
    txs(bad[1])[0]["timestamp"] = 99
    for t in txs(bad[2]):  # every transaction bad: the wallet fails
        t["document_id"] = None
    bad[3]["wallet_address"] = "0xnothex"
    bad[4]["data"].append({"protocolType": "nft", "transactions": [{"document_id": "n1", "action": "mint"}]})
    txs(bad[5])[1]["document_id"] = txs(bad[5])[0]["document_id"]
    first = txs(bad[6])[0]
    for slot in ("tokenIn", "token0", "token", "asset", "collateral"):
        if isinstance(first.get(slot), dict):
            first[slot]["amountUSD"] = -5.0
    bad[7]["wallet_address"] = bad[7]["wallet_address"].upper().replace("0X", "0x")
    json_batch = normalise_messages([orjson.dumps(m) for m in bad], decoder="python")
    table_batch = normalise_tables([table_from_messages(bad)])
    _same_batch(json_batch, table_batch)
    assert table_batch.counts["rejected_messages"] == 2
    assert len(table_batch.wallet_addresses) == 40  # every wallet accounted for


def test_a_wallet_in_several_messages_is_one_wallet_of_the_table(messages):
    """The table has no messages: a wallet's rows are its one message (its first spelling kept)."""
    twice = [messages[0], messages[1], {**messages[0], "wallet_address": messages[0]["wallet_address"].lower()}]
    batch = normalise_tables([table_from_messages(twice)])
    assert batch.message_count == 2
    assert batch.wallet_addresses[0] == messages[0]["wallet_address"]
    assert batch.counts["duplicate_transactions"] == sum(len(s["transactions"]) for s in messages[0]["data"])


def test_column_types_people_write_are_read(messages):
    """Dictionary-encoded strings (Parquet), large strings (polars), integer document ids, missing
    optional columns, extra columns."""
    table = table_from_messages(messages[:50])
    expected = normalise_tables([table])
    dictionary = table.set_column(
        table.schema.get_field_index("counterparty"),
        "counterparty",
        pa.compute.dictionary_encode(table.column("counterparty")),
    )
    _same_batch(expected, normalise_tables([dictionary]))
    from_polars = pl.from_arrow(table).to_arrow()  # large_string columns
    _same_batch(expected, normalise_tables([from_polars.append_column("label", pa.array(["x"] * table.num_rows))]))
    numbered = pa.table(
        {
            "wallet_address": ["0x" + "ab" * 20] * 2,
            "protocol_type": ["transfers"] * 2,
            "document_id": [1, 2],
            "action": ["send", "receive"],
            "timestamp": [1_700_000_000, 1_700_000_100],
            "counterparty": ["0x" + "cd" * 20] * 2,
        }
    )
    batch = normalise_tables([numbered])
    assert batch.transactions["document_id"].tolist() == ["1", "2"]
    assert batch.counts["rejected_messages"] == 0


def test_a_table_without_a_required_column_is_refused_with_what_it_needs():
    with pytest.raises(TableSchemaError, match=r"missing required column.*document_id"):
        normalise_tables([pa.table({"wallet_address": ["0x" + "ab" * 20], "protocol_type": ["dexes"]})])
    with pytest.raises(TableSchemaError, match="timestamp"):
        normalise_tables(
            [
                pa.table(
                    {
                        "wallet_address": ["0x" + "ab" * 20],
                        "protocol_type": ["dexes"],
                        "document_id": ["a"],
                        "action": ["swap"],
                        "timestamp": ["yesterday"],
                    }
                )
            ]
        )


def test_an_empty_table_is_an_empty_batch():
    batch = normalise_tables([TABLE_SCHEMA.empty_table()])
    assert batch.message_count == 0 and len(batch.transactions) == 0


def test_wallets_are_numbered_by_their_first_row_whatever_the_dictionary(messages):
    """A dictionary-encoded wallet column (pandas categoricals saved to Parquet) may list wallets in any
    order and hold values no row uses; a row without an address is a wallet of its own, at its row."""
    table = table_from_messages(messages[:5])
    addresses = table.column("wallet_address").to_pylist()
    order = list(dict.fromkeys(addresses))
    dictionary = pa.array([*reversed(order), "0x" + "ee" * 20], pa.string())  # reversed, one unused
    indices = pa.array([dictionary.to_pylist().index(a) for a in addresses], pa.int32())
    encoded = table.set_column(0, "wallet_address", pa.DictionaryArray.from_arrays(indices, dictionary))
    expected = normalise_tables([table])
    batch = normalise_tables([encoded])
    assert batch.wallet_addresses == order
    _same_batch(expected, batch)
    with_null = pa.concat_tables(
        [table.slice(0, 3), table.slice(3, 1).set_column(0, "wallet_address", pa.nulls(1, pa.string())), table.slice(4)]
    )
    batch = normalise_tables([with_null])
    assert batch.wallet_addresses[1] == "" and batch.rejections[0].message_index == 1
    assert "wallet_address" in batch.rejections[0].error


def test_datetime_timestamps_and_null_dictionary_entries(messages):
    """A timestamp column of datetimes (pandas, DuckDB) reads as unix seconds; a dictionary holding a
    null value is a null, not a string."""
    table = table_from_messages(messages[:10])
    expected = normalise_tables([table])
    as_datetimes = table.set_column(
        4, "timestamp", table.column("timestamp").cast(pa.timestamp("s")).cast(pa.timestamp("ns", tz="UTC"))
    )
    _same_batch(expected, normalise_tables([as_datetimes]))
    methods = table.column("method").combine_chunks()
    dictionary = pa.array([None, *sorted({m for m in methods.to_pylist() if m is not None})], pa.string())
    indices = pa.array([dictionary.to_pylist().index(m) for m in methods.to_pylist()], pa.int32())
    with_null_entry = table.set_column(8, "method", pa.DictionaryArray.from_arrays(indices, dictionary))
    _same_batch(expected, normalise_tables([with_null_entry]))
