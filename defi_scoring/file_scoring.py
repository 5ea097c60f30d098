"""Scoring a JSONL file of any size with bounded memory, with the same output as scoring it whole.

`defi-scoring score` on a file larger than one chunk runs this plan on disk, one piece at a time:

1. normalise the file chunk by chunk (`chunk_bytes` of lines at a time): failures are encoded at
   once; transactions and the successful messages' (wallet, address, warnings) go to wallet
   partitions (`distributed.partitions.write_pieces`) under a scratch folder;
2. per partition, its cross-wallet contributions (`core.cross_wallet`): the fingerprints are kept
   (tens of bytes per wallet), the pump-and-dump totals added up; then the peer counts;
3. per partition, the unchanged core with those population-wide signals: each message of the
   partition gets its wallet's success message, written sorted by input line;
4. the partitions' outputs and the failures merged back into input order as they are written out.

Transactions repeated across chunks are deduplicated as in one batch (the earliest kept), because
every transaction of a wallet lands in its partition in chunk order. What differs from scoring the
file whole: `processing_time_ms` (measured per chunk and per partition), and a message that resends
transactions already seen in an *earlier chunk* has no "duplicate document_id" warning (within a
chunk it has, as in the whole file; the scores are the same either way).
"""

from __future__ import annotations

import heapq
import math
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from defi_scoring.batch_files import read_transactions
from defi_scoring.core.batch_scoring import failure_message, with_warnings
from defi_scoring.core.cross_wallet import CrossWalletSignals, PumpTotals, dex_fingerprints, peer_counts
from defi_scoring.core.normalise import NormalisedBatch, normalise_messages
from defi_scoring.core.patterns import pump_totals
from defi_scoring.core.scoring_config import ScoringConfig, default_scoring_config
from defi_scoring.core.success_messages import encode_success_messages
from defi_scoring.core.wallet_scoring import ModelFn, score_wallet_table
from defi_scoring.distributed.partitions import write_pieces

BYTES_PER_TRANSACTION = 450  # of §1 JSON, measured on generated data: sizes the partitions up front
_OUTPUT_SCHEMA = pa.schema([("message_index", pa.int64()), ("value", pa.binary())])


@dataclass
class FileScoringResult:
    messages: int = 0
    failures: int = 0
    partitions: int = 0
    seconds: float = 0.0
    model_note: str = ""
    risk_levels: Counter = field(default_factory=Counter)
    hybrid_sum: Counter = field(default_factory=Counter)  # per risk level, for the mean


def read_chunks(path: Path, chunk_bytes: int, skip_blank: bool = False) -> Iterator[list[bytes]]:
    """Lines of the file (line ends removed), about `chunk_bytes` at a time; blank lines included
    (each is a message that fails, as in the whole-file path) unless `skip_blank` (landing files)."""
    chunk, size = [], 0
    with open(path, "rb") as handle:
        for line in handle:
            if skip_blank and not line.strip():
                continue
            chunk.append(line.rstrip(b"\r\n"))
            size += len(line)
            if size >= chunk_bytes:
                yield chunk
                chunk, size = [], 0
    if chunk:
        yield chunk


def normalised_chunks(path: Path, chunk_bytes: int, skip_blank: bool = False) -> Iterator[tuple[int, NormalisedBatch]]:
    """(index of the chunk's first message, its normalised batch) for every chunk of the file."""
    offset = 0
    for lines in read_chunks(path, chunk_bytes, skip_blank):
        yield offset, normalise_messages(lines)
        offset += len(lines)


def _failure_values(batch: NormalisedBatch, offset: int, as_of: int, ms: int) -> list[tuple[int, bytes]]:
    return [(offset + r.message_index, orjson.dumps(failure_message(r, as_of, ms))) for r in batch.rejections]


def _message_table(batch: NormalisedBatch, offset: int) -> pd.DataFrame:
    """The messages that succeed: global index, wallet (lower case), address as received, warnings."""
    rejected = {r.message_index for r in batch.rejections}
    index = np.array([i for i in range(batch.message_count) if i not in rejected], dtype=np.int64)
    addresses = [batch.wallet_addresses[i] for i in index]
    return pd.DataFrame(
        {
            "message_index": index + offset,
            "wallet": [a.lower() for a in addresses],
            "address": addresses,
            "warnings": [orjson.dumps(batch.warnings[i]) if i in batch.warnings else None for i in index],
        }
    )


def _write_sorted(path: Path, rows: list[tuple[int, bytes]]) -> None:
    rows.sort(key=lambda r: r[0])
    table = pa.table({"message_index": [r[0] for r in rows], "value": [r[1] for r in rows]}, schema=_OUTPUT_SCHEMA)
    pq.write_table(table, path, row_group_size=1_000)  # read back 1,000 rows at a time by the merge


def _iter_sorted(path: Path, rows: int = 1_000) -> Iterator[tuple[int, bytes]]:
    """(input line, output) pairs of one sorted file, `rows` at a time: the merge holds one batch of
    every partition at once, so a batch must stay small (success messages are ~4 KB)."""
    for batch in pq.ParquetFile(path).iter_batches(batch_size=rows):
        yield from zip(batch.column(0).to_pylist(), batch.column(1).to_pylist())


def score_file(
    input_path: Path,
    output_path: Path,
    as_of: int | None = None,
    config: ScoringConfig | None = None,
    model: ModelFn | None = None,
    chunk_bytes: int = 64 << 20,
    partition_rows: int = 250_000,
    progress: Callable[[str], None] | None = None,
) -> FileScoringResult:
    """Score `input_path` into `output_path` (one line per input line, same order); see module docstring."""
    started = time.perf_counter()
    as_of = int(time.time()) if as_of is None else int(as_of)
    config = config or default_scoring_config()
    say = progress or (lambda _: None)
    size = input_path.stat().st_size
    partitions = max(1, math.ceil(size / (BYTES_PER_TRANSACTION * partition_rows)))
    result = FileScoringResult(partitions=partitions)
    work = Path(tempfile.mkdtemp(prefix="defi-scoring-score-", dir=output_path.parent))
    try:
        tx_pieces: list[list[str]] = [[] for _ in range(partitions)]
        message_pieces: list[list[str]] = [[] for _ in range(partitions)]
        failures: list[tuple[int, bytes]] = []
        offset = 0
        for number, lines in enumerate(read_chunks(input_path, chunk_bytes)):
            chunk_started = time.perf_counter()
            batch = normalise_messages(lines)
            ms = round((time.perf_counter() - chunk_started) * 1000 / max(len(lines), 1))
            failures += _failure_values(batch, offset, as_of, ms)
            name = f"chunk-{number:08d}"
            transactions = batch.transactions.assign(
                batch_key=name, message_index=batch.transactions["message_index"].to_numpy(np.int64) + offset
            )
            for p, path in write_pieces(transactions, work / "transactions", partitions, name):
                tx_pieces[p].append(path)
            for p, path in write_pieces(_message_table(batch, offset), work / "messages", partitions, name):
                message_pieces[p].append(path)
            offset += len(lines)
            say(f"normalised {offset:,} messages")
        result.messages, result.failures = offset, len(failures)
        _write_sorted(work / "failures.parquet", failures)
        del failures

        fingerprints, totals = [], PumpTotals.empty()
        for p in range(partitions):
            transactions = read_transactions(tx_pieces[p])
            if transactions.empty:
                continue
            fingerprints.append(dex_fingerprints(transactions))
            wallets = pd.Index(pd.unique(transactions["wallet"].astype(object)))
            totals = totals + pump_totals(transactions, wallets, config.patterns)
            say(f"cross-wallet signals: partition {p + 1}/{partitions}")
        peers = peer_counts(pd.concat(fingerprints)) if fingerprints else None
        signals = CrossWalletSignals(peers, totals)

        outputs = [work / "failures.parquet"]
        for p in range(partitions):
            if message_pieces[p]:  # a partition without successful messages has nothing to write
                outputs.append(work / f"scored-{p:05d}.parquet")
                _score_partition(tx_pieces[p], message_pieces[p], as_of, config, model, signals, result, outputs[-1])
            say(f"scored partition {p + 1}/{partitions}")

        parts = work / "out.part"
        with open(parts, "wb") as out:
            merged = heapq.merge(*(_iter_sorted(p) for p in outputs), key=lambda r: r[0])
            for written, (index, value) in enumerate(merged):
                if index != written:
                    raise RuntimeError(f"output for input line {written + 1} is missing (found {index + 1})")
                out.write(value + b"\n")
        shutil.move(parts, output_path)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result.seconds = time.perf_counter() - started
    return result


def _score_partition(
    tx_pieces: list[str],
    message_pieces: list[str],
    as_of: int,
    config: ScoringConfig,
    model: ModelFn | None,
    signals: CrossWalletSignals,
    result: FileScoringResult,
    out: Path,
) -> None:
    """Success messages of the partition's input lines, written sorted by line to `out`."""
    started = time.perf_counter()
    scores = score_wallet_table(read_transactions(tx_pieces), as_of, config, model, None, signals)
    messages = pd.concat([pd.read_parquet(p) for p in message_pieces], ignore_index=True)
    ms = round((time.perf_counter() - started) * 1000 / max(len(messages), 1))
    rows = scores.table.loc[messages["wallet"].tolist()]
    encoded = encode_success_messages(rows, messages["address"].tolist(), scores, as_of, ms)
    values = []
    for value, warnings in zip(encoded.values, messages["warnings"].tolist()):
        values.append(value if warnings is None else with_warnings(value, warnings))
    _write_sorted(out, list(zip(messages["message_index"].tolist(), values)))
    table = scores.table
    result.model_note = scores.model_note
    result.risk_levels.update(table["risk_level"].value_counts().to_dict())
    result.hybrid_sum.update(table.groupby("risk_level")["hybrid_score"].sum().to_dict())
