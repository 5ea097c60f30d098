"""`defi-scoring score` on a file larger than one chunk: bounded memory, the same output as whole."""

import orjson
import pytest

from defi_scoring.core.batch_scoring import score_raw_messages
from defi_scoring.core.synthetic import generate_wallets, write_dataset
from defi_scoring.file_scoring import read_chunks, score_file

AS_OF = 1_735_689_600


def _without_timing(message: dict) -> dict:
    return {k: v for k, v in message.items() if k != "processing_time_ms"}


@pytest.fixture(scope="module")
def messages_file(tmp_path_factory):
    """Generated wallets (sybil farms, pump-and-dump groups), 5% corrupted lines, blank lines, and
    resent messages whose transactions were already seen in an earlier chunk."""
    folder = tmp_path_factory.mktemp("file_scoring")
    path = folder / "messages.jsonl"
    write_dataset(generate_wallets(3_000, seed=21), path, bad_fraction=0.05, seed=21)
    lines = path.read_bytes().splitlines()
    lines += [b"", *lines[10:40]]  # a blank line; 30 messages sent again at the end of the file
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path, lines


def test_scoring_a_file_in_chunks_equals_scoring_it_whole(messages_file, tmp_path):
    path, lines = messages_file
    whole = [_without_timing(m) for m in score_raw_messages(lines, as_of=AS_OF).messages()]
    chunks = list(read_chunks(path, 256 << 10))
    assert len(chunks) >= 8 and sum(len(c) for c in chunks) == len(lines)

    out = tmp_path / "scores.jsonl"
    result = score_file(path, out, as_of=AS_OF, chunk_bytes=256 << 10, partition_rows=5_000)
    assert result.partitions >= 4
    chunked = [_without_timing(orjson.loads(line)) for line in out.read_bytes().splitlines()]
    assert len(chunked) == len(lines) == result.messages
    assert result.failures == sum("error" in m for m in whole) > 150
    resent = range(len(lines) - 30, len(lines))
    for line, (got, expected) in enumerate(zip(chunked, whole)):
        if line in resent:  # deduplicated the same way, but a resend in a later chunk is not warned about
            assert any("duplicate document_id" in w for w in expected.pop("warnings"))
            assert "warnings" not in got
        assert got == expected, f"line {line + 1} differs"
    assert sum(m.get("patterns", []) != [] for m in chunked) > 50  # cross-wallet detections included
    assert not list(tmp_path.glob("defi-scoring-score-*"))  # the scratch folder is removed


def test_the_cli_scores_a_large_file_in_chunks(messages_file, tmp_path):
    from click.testing import CliRunner

    from defi_scoring.cli import main

    path, lines = messages_file
    out = tmp_path / "scores.jsonl"
    args = ["score", "--input", str(path), "--output", str(out), "--as-of", str(AS_OF), "--no-model"]
    result = CliRunner().invoke(main, [*args, "--chunk-mb", "1"])
    assert result.exit_code == 0, result.output
    assert "partitions" in result.output and "Wallets by risk level" in result.output
    assert len(out.read_bytes().splitlines()) == len(lines)


def test_a_landing_file_is_ingested_in_chunks_with_the_same_rows(messages_file, tmp_home):
    """transaction_batches with 1 MB chunks (row groups) stores what one whole pass stores."""
    import dagster as dg
    import pandas as pd

    from defi_scoring.assets.partitions import transaction_batch_partitions
    from defi_scoring.batch_files import read_transactions
    from defi_scoring.config import Settings
    from defi_scoring.definitions import build_definitions

    path, lines = messages_file
    (tmp_home / "landing").mkdir(parents=True, exist_ok=True)
    for key in ("whole", "chunked"):
        (tmp_home / "landing" / f"{key}.jsonl").write_bytes(path.read_bytes())
    defs = build_definitions(Settings(home=tmp_home))
    metadata = {}
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(transaction_batch_partitions.name, ["whole", "chunked"])
        for key, chunk_mb in (("whole", 1024), ("chunked", 1)):
            config = {"ops": {"transaction_batches": {"config": {"chunk_mb": chunk_mb}}}}
            result = defs.resolve_job_def("ingest_batch").execute_in_process(
                instance=instance, partition_key=key, run_config=config
            )
            assert result.success
            meta = result.asset_materializations_for_node("transaction_batches")[0].metadata
            metadata[key] = {k: v.value for k, v in meta.items() if k in ("messages", "rejected_messages", "wallets")}
    batches = tmp_home / "batches"
    assert pq_row_groups(batches / "chunked" / "transactions.parquet") >= 5
    assert metadata["chunked"] == metadata["whole"] and metadata["whole"]["messages"] == len(lines) - 1  # blank
    whole = read_transactions([batches / "whole" / "transactions.parquet"]).drop(columns="batch_key")
    chunked = read_transactions([batches / "chunked" / "transactions.parquet"]).drop(columns="batch_key")
    pd.testing.assert_frame_equal(chunked, whole, check_dtype=False, check_categorical=False)
    rejected = [pd.read_parquet(batches / k / "rejections.parquet").drop(columns="batch_key") for k in metadata]
    pd.testing.assert_frame_equal(rejected[0], rejected[1], check_dtype=False)


def pq_row_groups(path) -> int:
    import pyarrow.parquet as pq

    return pq.ParquetFile(path).metadata.num_row_groups
