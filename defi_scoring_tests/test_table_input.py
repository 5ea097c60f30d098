"""Columnar input through the doors that take JSON lines: `score`, `generate`/`convert`, `land` and the
landing sensor, against the same transactions as JSON (the real CLI, real Dagster execution)."""

import os
import re
import subprocess
import sys
import time

import dagster as dg
import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.feather as feather
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from defi_scoring import batch_files
from defi_scoring.assets.partitions import transaction_batch_partitions
from defi_scoring.cli import main
from defi_scoring.config import Settings
from defi_scoring.core.synthetic import generate_wallets, iter_messages
from defi_scoring.core.transaction_table import TABLE_SCHEMA, table_from_messages
from defi_scoring.definitions import build_definitions
from defi_scoring_tests.conftest import (
    dex_message,
    example_message,
    lending_message,
    lending_rows,
    swap,
    transfer,
    transfers_message,
)

AS_OF = 1_735_689_600


def _wallet(c: str) -> str:
    return "0x" + c * 40


def _invoke(*args: str):
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 0, result.output
    return result


def _score(source, out, *extra: str) -> list[dict]:
    """`defi-scoring score` (in process) → its output messages without processing_time_ms."""
    _invoke("score", "--input", str(source), "--output", str(out), "--as-of", str(AS_OF), "--no-model", *extra)
    messages = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    for message in messages:
        message.pop("processing_time_ms")
    return messages


def _jsonl(messages: list[dict], path):
    path.write_bytes(b"".join(orjson.dumps(m) + b"\n" for m in messages))
    return path


def _parquet(messages: list[dict], path, row_group_size: int | None = None, shuffle_seed: int | None = None):
    """The messages as a Parquet transactions table; `shuffle_seed`: the wallets' rows interleaved at
    random, each wallet's own rows in their message's order (that order decides float sums' last bits
    and the positions warnings name, as a message's order does)."""
    table = table_from_messages(messages)
    if shuffle_seed is not None:
        wallet = pd.factorize(table.column("wallet_address").to_numpy(zero_copy_only=False))[0]
        key = np.random.default_rng(shuffle_seed).random(table.num_rows)
        ordered = np.empty_like(key)  # each wallet's random keys, sorted, given to its rows in their order
        ordered[np.argsort(wallet, kind="stable")] = key[np.lexsort((key, wallet))]
        table = table.take(np.argsort(ordered))
    pq.write_table(table, path, row_group_size=row_group_size)
    return path


def _by_wallet(messages: list[dict]) -> dict[str, dict]:
    return {m["wallet_address"]: m for m in messages}


@pytest.fixture(scope="module")
def generated() -> list[dict]:
    """Generated wallets of every archetype (sybil farms, pump-and-dump groups, transfers, lending)."""
    return list(iter_messages(generate_wallets(400, seed=11)))


@pytest.mark.parametrize(
    ("row_group_size", "batch_rows", "shuffle_seed"),
    [(None, None, None), (97, 50, None), (1_000, 333, 5)],
    ids=["one-row-group", "wallets-span-row-groups", "rows-shuffled"],
)
def test_a_table_scores_as_the_same_messages_as_json(
    generated, tmp_path, monkeypatch, row_group_size, batch_rows, shuffle_seed
):
    if batch_rows:  # record batches smaller than a wallet's rows: every wallet spans several tables
        monkeypatch.setattr(batch_files, "TABLE_BATCH_ROWS", batch_rows)
    from_json = _score(_jsonl(generated, tmp_path / "in.jsonl"), tmp_path / "json.jsonl")
    table_file = _parquet(generated, tmp_path / "in.parquet", row_group_size, shuffle_seed)
    if row_group_size:
        assert pq.ParquetFile(table_file).num_row_groups > 5
    from_table = _score(table_file, tmp_path / "table.jsonl")
    assert len(from_table) == len(from_json) == len(generated)
    if shuffle_seed is None:  # one message per wallet, in order of first appearance
        assert from_table == from_json
    else:
        assert [m["wallet_address"] for m in from_table] != [m["wallet_address"] for m in from_json]
        assert _by_wallet(from_table) == _by_wallet(from_json)
    assert sum(m.get("patterns", []) != [] for m in from_table) > 10  # cross-wallet detections included


def test_a_large_table_is_scored_through_wallet_partitions_with_the_same_messages(generated, tmp_path, monkeypatch):
    """Above --chunk-mb (rows at 450 B each) the table goes through wallet partitions on disk: the same
    messages as scored whole, cross-wallet signals (sybil peers, pump groups) included."""
    from defi_scoring.file_scoring import score_table_file

    monkeypatch.setattr(batch_files, "TABLE_BATCH_ROWS", 1_000)
    table_file = _parquet(generated, tmp_path / "in.parquet", row_group_size=2_000, shuffle_seed=3)
    whole = _score(table_file, tmp_path / "whole.jsonl")
    args = ["--input", str(table_file), "--output", str(tmp_path / "cli.jsonl"), "--as-of", str(AS_OF)]
    result = CliRunner().invoke(main, ["score", *args, "--no-model", "--chunk-mb", "1"])
    assert result.exit_code == 0, result.output
    assert "wallet partitions" in result.output and "Wallets by risk level" in result.output

    out = tmp_path / "parts.jsonl"
    done = score_table_file(table_file, out, as_of=AS_OF, partition_rows=2_000, batch_rows=700)
    assert done.partitions >= 4 and done.messages == len(generated) and done.failures == 0
    for path in (tmp_path / "cli.jsonl", out):
        parts = [orjson.loads(line) for line in path.read_bytes().splitlines()]
        for message in parts:
            message.pop("processing_time_ms")
        assert parts == whole
    assert not list(tmp_path.glob("defi-scoring-score-*"))  # the scratch folder is removed


def test_arrow_ipc_and_feather_files_score_like_parquet(generated, tmp_path):
    table = table_from_messages(generated[:60])
    pq.write_table(table, tmp_path / "in.parquet")
    with pa.ipc.new_file(str(tmp_path / "in.arrow"), table.schema) as writer:
        writer.write_table(table, max_chunksize=100)
    feather.write_feather(table, tmp_path / "in.feather", chunksize=250)  # lz4-compressed batches
    expected = _score(tmp_path / "in.parquet", tmp_path / "p.jsonl")
    assert _score(tmp_path / "in.arrow", tmp_path / "a.jsonl") == expected
    assert _score(tmp_path / "in.feather", tmp_path / "f.jsonl") == expected


def bad_messages() -> list[dict]:
    """One wallet per kind of bad row (docs/bad_input.md), beside good rows where the case allows."""
    stake = {**swap("a2"), "action": "stake"}
    no_document_id = {k: v for k, v in swap("d2").items() if k != "document_id"}
    staking = {"protocolType": "staking", "transactions": [{"document_id": "f2", "action": "stake", "timestamp": 1}]}
    return [
        example_message(),
        dex_message([swap("a1"), stake], wallet=_wallet("1")),  # unknown action
        dex_message([swap("b1"), swap("b2", ts=1_703_980_800_000)], wallet=_wallet("2")),  # milliseconds
        dex_message([swap("c1"), swap("c2", usd_in=-5.0)], wallet=_wallet("3")),  # negative USD
        dex_message([swap("d1"), no_document_id], wallet=_wallet("4")),
        dex_message([swap("e1")], wallet="0x123"),  # invalid wallet_address
        {"wallet_address": _wallet("6"), "data": [dex_message([swap("f1")])["data"][0], staking]},
        dex_message([swap("g1"), swap("g1", ts=1_703_990_800)], wallet=_wallet("7")),  # duplicate document_id
        dex_message([{**stake, "document_id": "h1"}, swap("h2", ts=5)], wallet=_wallet("8")),  # all rows bad
        {"wallet_address": _wallet("9"), "data": [staking]},  # only an unknown protocol type
        transfers_message([transfer("t1"), transfer("t2", counterparty=None)], wallet=_wallet("a")),
        lending_message([*lending_rows(), {"document_id": "x", "action": "stake", "timestamp": 1}], _wallet("b")),
    ]


def test_bad_rows_get_the_verdicts_and_texts_of_the_same_transactions_as_json(tmp_path):
    messages = bad_messages()
    from_json = _score(_jsonl(messages, tmp_path / "bad.jsonl"), tmp_path / "json.jsonl")
    from_table = _score(_parquet(messages, tmp_path / "bad.parquet"), tmp_path / "table.jsonl")
    assert from_table == from_json
    failures = [m for m in from_table if "error" in m]
    successes = [m for m in from_table if "error" not in m]
    assert len(failures) + len(successes) == len(messages)  # every wallet accounted for
    assert {m["wallet_address"] for m in failures} == {"0x123", _wallet("8"), _wallet("9")}
    texts = orjson.dumps(from_table).decode()
    for expected in (
        "unknown action 'stake' (expected one of swap, deposit, withdraw)",
        "between 2015-07-30 and 2100-01-01",
        "amountUSD must be a finite number >= 0",
        "missing required field 'document_id'",
        "invalid wallet_address '0x123'",
        "protocolType 'staking' has no features yet; ignored",
        "duplicate document_id (kept the first occurrence)",
        "Processing failed: No valid transactions found",
        "missing required field 'counterparty'",
        "unknown action 'stake' for lending",
    ):
        assert expected in texts, expected


def test_bad_rows_of_wallets_spanning_row_groups_name_the_positions_json_names(tmp_path, monkeypatch):
    monkeypatch.setattr(batch_files, "TABLE_BATCH_ROWS", 4)
    messages = bad_messages()
    from_json = _score(_jsonl(messages, tmp_path / "bad.jsonl"), tmp_path / "json.jsonl")
    from_table = _score(_parquet(messages, tmp_path / "bad.parquet", row_group_size=3), tmp_path / "table.jsonl")
    assert re.search(rb"(transaction|section) [1-9]", orjson.dumps(from_json))  # positions past a row group
    assert from_table == from_json


def test_a_table_that_is_not_a_transactions_table_is_a_clear_error(tmp_path):
    """The installed command in a real process: non-zero exit, what is wrong and what the schema needs."""
    table = table_from_messages([example_message()]).drop_columns(["timestamp"])
    pq.write_table(table, tmp_path / "no_timestamp.parquet")
    (tmp_path / "garbage.parquet").write_bytes(b"PAR1 not really")
    text_timestamps = table_from_messages([example_message()]).set_column(4, "timestamp", pa.array(["soon", "later"]))
    pq.write_table(text_timestamps, tmp_path / "text_timestamps.parquet")
    for name, expected in [
        ("no_timestamp.parquet", "missing required column(s) timestamp; a transactions table needs wallet_address"),
        ("garbage.parquet", "garbage.parquet is not a readable Parquet file"),
        ("text_timestamps.parquet", "column 'timestamp' is string, expected int64"),
    ]:
        args = ["--input", str(tmp_path / name), "--output", str(tmp_path / "out.jsonl"), "--no-model"]
        run = subprocess.run(
            [sys.executable, "-m", "defi_scoring.cli", "score", *args],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert run.returncode != 0 and expected in " ".join(run.stderr.split()), run.stderr
        assert "Traceback" not in run.stderr


def test_generate_writes_a_table_and_convert_turns_json_lines_into_one(tmp_path):
    _invoke("generate", "--wallets", "40", "--seed", "2", "--output", str(tmp_path / "g.parquet"))
    _invoke("generate", "--wallets", "40", "--seed", "2", "--output", str(tmp_path / "g.jsonl"))
    generated = pq.read_table(tmp_path / "g.parquet")
    assert generated.schema.equals(TABLE_SCHEMA) and (tmp_path / "g.labels.csv").exists()
    messages = [orjson.loads(line) for line in (tmp_path / "g.jsonl").read_bytes().splitlines()]
    assert generated.equals(table_from_messages(messages))
    runner = CliRunner()
    for args in (["--format", "jsonl", "--output", "x.parquet"], ["--output", "x.parquet", "--bad-fraction", "0.1"]):
        assert runner.invoke(main, ["generate", "--wallets", "5", *args]).exit_code == 2
    with runner.isolated_filesystem(temp_dir=tmp_path):
        assert runner.invoke(main, ["generate", "--wallets", "5", "--format", "parquet"]).exit_code == 0
        assert pq.read_table("wallets.parquet").num_rows > 0

    lines = [orjson.dumps(m) for m in messages[:10]]
    lines[3:3] = [b"not json", b"[1, 2]", b"", b'{"wallet_address": "0x1"}', b'{"wallet_address": "0x1", "data": []}']
    lines.append(orjson.dumps(dex_message([swap("s1", ts="soon")], wallet=_wallet("c"))))  # a string timestamp
    (tmp_path / "mixed.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    result = runner.invoke(main, ["convert", str(tmp_path / "mixed.jsonl"), str(tmp_path / "mixed.parquet")])
    assert result.exit_code == 0, result.output
    counts = orjson.loads(result.stdout.splitlines()[-1])
    assert counts["lines"] == 16 and counts["blank_lines"] == 1 and counts["messages"] == 10
    assert counts["skipped_lines"] == 5 and counts["skipped"] == {
        "a value of the wrong type for the table": 1,
        "no data list": 1,
        "no transactions": 1,
        "not a JSON object": 1,
        "not valid JSON": 1,
    }
    assert "line 4: skipped, not valid JSON" in result.stderr and "line 16: skipped" in result.stderr
    assert pq.read_table(tmp_path / "mixed.parquet").equals(table_from_messages(messages[:10]))
    assert counts["rows"] == pq.read_metadata(tmp_path / "mixed.parquet").num_rows


def _land(runner: CliRunner, monkeypatch, home, source, key: str) -> pd.DataFrame:
    """`defi-scoring land` into its own data home: real Dagster runs on the home's instance."""
    monkeypatch.setenv("DEFI_SCORING_HOME", str(home))
    monkeypatch.setenv("DAGSTER_HOME", str(home / "dagster"))
    (home / "dagster").mkdir(parents=True)
    result = runner.invoke(main, ["land", str(source), "--key", key, "--as-of", str(AS_OF)])
    assert result.exit_code == 0, result.output
    return pd.read_parquet(home / "tables" / "scored_wallets.parquet")


def test_land_a_parquet_file_scores_the_batch_as_its_json_lines(generated, tmp_path, monkeypatch):
    messages = generated[:150] + bad_messages()
    runner = CliRunner()
    from_json = _land(runner, monkeypatch, tmp_path / "json", _jsonl(messages, tmp_path / "b.jsonl"), "batch")
    table_file = _parquet(messages, tmp_path / "b.parquet", row_group_size=500)
    from_table = _land(runner, monkeypatch, tmp_path / "table", table_file, "batch")
    assert (tmp_path / "table" / "landing" / "batch.parquet").exists()
    assert len(from_table) == len(messages) - 3
    pd.testing.assert_frame_equal(from_table, from_json)
    rejected = [pd.read_parquet(tmp_path / h / "batches" / "batch" / "rejections.parquet") for h in ("json", "table")]
    pd.testing.assert_frame_equal(rejected[1], rejected[0])
    assert len(rejected[1]) == 3 and rejected[1]["error"].str.startswith("Processing failed").all()

    # landing the same key again as JSON lines replaces the batch's table file
    _invoke("land", str(tmp_path / "b.jsonl"), "--key", "batch", "--as-of", str(AS_OF))
    assert not (tmp_path / "table" / "landing" / "batch.parquet").exists()
    bad = tmp_path / "bad.parquet"
    pq.write_table(table_from_messages(messages[:3]).drop_columns(["wallet_address"]), bad)
    refused = runner.invoke(main, ["land", str(bad)])
    assert refused.exit_code != 0 and "missing required column(s) wallet_address" in refused.output


def _settled(path):
    os.utime(path, (time.time() - 60, time.time() - 60))
    return path


def test_the_landing_sensor_takes_a_dropped_parquet_file(tmp_home, generated):
    defs = build_definitions(Settings(home=tmp_home))
    landing = tmp_home / "landing"
    landing.mkdir(parents=True)
    _settled(_parquet(generated[:50], landing / "drop.parquet"))
    _settled(_jsonl(generated[:5], landing / "twin.jsonl"))
    _settled(_parquet(generated[5:10], landing / "twin.parquet"))  # same stem: a batch of its own
    pq.write_table(table_from_messages(generated[:2]).drop_columns(["action"]), landing / "no_action.parquet")
    _settled(landing / "no_action.parquet")
    _settled(_parquet(generated[:2], landing / ".hidden.parquet"))
    sensor = defs.resolve_sensor_def("landing_folder_sensor")
    resources = {"data_home": defs.resources["data_home"]}
    with dg.instance_for_test() as instance:
        result = sensor(dg.build_sensor_context(instance=instance, resources=resources))
        keys = sorted(r.partition_key for r in result.run_requests)
        assert keys == ["drop", "twin", "twin-2"]
        assert (landing / "twin.jsonl").exists() and (landing / "twin-2.parquet").exists()
        reason = (landing / "rejected" / "no_action.parquet.reason.txt").read_text()
        assert "not a transactions table: missing required column(s) action" in reason
        assert (landing / ".hidden.parquet").exists()

        instance.add_dynamic_partitions(transaction_batch_partitions.name, keys)
        ingest = defs.resolve_job_def("ingest_batch")
        for key, wallets in (("drop", 50), ("twin", 5), ("twin-2", 5)):
            run = ingest.execute_in_process(instance=instance, partition_key=key)
            meta = run.asset_materializations_for_node("transaction_batches")[0].metadata
            assert meta["messages"].value == wallets and meta["rejected_messages"].value == 0
        stored = pd.read_parquet(tmp_home / "batches" / "drop" / "transactions.parquet")
        assert len(stored) == pq.read_metadata(landing / "drop.parquet").num_rows
        again = sensor(dg.build_sensor_context(instance=instance, resources=resources))
        assert isinstance(again, dg.SkipReason) and again.skip_message == "no new batch"
