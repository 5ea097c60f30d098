"""Scoring a JSONL file or a transactions table of any size with bounded memory, with the same output
as scoring it whole.

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
import itertools
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
import pyarrow.compute as pc
import pyarrow.parquet as pq

from defi_scoring.batch_files import read_table_file, read_transactions, table_file_rows
from defi_scoring.core.batch_scoring import failure_outcome, with_warnings
from defi_scoring.core.cross_wallet import CrossWalletSignals, PumpTotals, dex_fingerprints, peer_counts, stable_hash
from defi_scoring.core.normalise import NormalisedBatch, normalise_messages, normalise_tables
from defi_scoring.core.patterns import PoolTotals, pool_totals, pump_totals
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


def _message_table(batch: NormalisedBatch, order: np.ndarray) -> pd.DataFrame:
    """The messages that succeed: output position (`order` per message), wallet (lower case), address
    as received, warnings."""
    rejected = {r.message_index for r in batch.rejections}
    index = np.array([i for i in range(batch.message_count) if i not in rejected], dtype=np.int64)
    addresses = [batch.wallet_addresses[i] for i in index]
    return pd.DataFrame(
        {
            "message_index": order[index],
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


class _Spread:
    """Step 1's output for a JSONL file: normalised chunks' transactions and successful messages in
    wallet partitions on disk, failures encoded at once; every message keyed by its output position."""

    def __init__(self, work: Path, partitions: int) -> None:
        self.work, self.partitions = work, partitions
        self.tx_pieces: list[list[str]] = [[] for _ in range(partitions)]
        self.message_pieces: list[list[str]] = [[] for _ in range(partitions)]
        self.failures: list[tuple[int, bytes]] = []

    def add(self, batch: NormalisedBatch, name: str, order: np.ndarray, as_of: int, ms: int) -> None:
        """`order[i]`: the output position of the batch's message i."""
        self.failures += _failures(batch, order, as_of, ms)
        tx = batch.transactions
        transactions = tx.assign(batch_key=name, message_index=order[tx["message_index"].to_numpy(np.int64)])
        for p, path in write_pieces(transactions, self.work / "transactions", self.partitions, name):
            self.tx_pieces[p].append(path)
        for p, path in write_pieces(_message_table(batch, order), self.work / "messages", self.partitions, name):
            self.message_pieces[p].append(path)

    def transactions(self, p: int) -> pd.DataFrame:
        return read_transactions(self.tx_pieces[p])

    def messages(self, p: int) -> pd.DataFrame | None:
        pieces = self.message_pieces[p]
        return pd.concat([pd.read_parquet(path) for path in pieces], ignore_index=True) if pieces else None

    def release(self, p: int) -> None:
        """(Nothing held in memory.)"""


class _HeldSpread:
    """Step 1's output for a table: each wallet partition normalised whole and held as it is (the
    normalised rows are the one thing held whole; no second trip through the disk), failures encoded."""

    def __init__(self, work: Path, partitions: int) -> None:
        self.work, self.partitions = work, partitions
        self._transactions: list[pd.DataFrame | None] = [None] * partitions
        self._messages: list[pd.DataFrame | None] = [None] * partitions
        self.failures: list[tuple[int, bytes]] = []

    def add(self, batch: NormalisedBatch, p: int, order: np.ndarray, as_of: int, ms: int) -> None:
        self.failures += _failures(batch, order, as_of, ms)
        if len(batch.transactions):
            self._transactions[p] = batch.transactions
        messages = _message_table(batch, order)
        self._messages[p] = messages if len(messages) else None

    def transactions(self, p: int) -> pd.DataFrame:
        frame = self._transactions[p]
        return frame if frame is not None else pd.DataFrame()

    def messages(self, p: int) -> pd.DataFrame | None:
        return self._messages[p]

    def release(self, p: int) -> None:
        self._transactions[p] = self._messages[p] = None


def _failures(batch: NormalisedBatch, order: np.ndarray, as_of: int, ms: int) -> list[tuple[int, bytes]]:
    return [(int(order[r.message_index]), failure_outcome(r, as_of, ms).value) for r in batch.rejections]


def _score_spread(
    spread: _Spread | _HeldSpread,
    expected: Iterator[int],
    output_path: Path,
    as_of: int | None,
    config: ScoringConfig,
    model: ModelFn | None,
    result: FileScoringResult,
    say: Callable[[str], None],
) -> None:
    """Steps 2–4: cross-wallet signals over the partitions, each partition scored, every output merged
    into `output_path` in the order of `expected` (the output positions, ascending)."""
    work, partitions = spread.work, spread.partitions
    result.failures = len(spread.failures)
    _write_sorted(work / "failures.parquet", spread.failures)
    spread.failures = []

    fingerprints, totals, pools = [], PumpTotals.empty(), PoolTotals.empty()
    for p in range(partitions):
        transactions = spread.transactions(p)
        if transactions.empty:
            continue
        fingerprints.append(dex_fingerprints(transactions))
        wallets = pd.Index(pd.unique(transactions["wallet"].astype(object)))
        totals = totals + pump_totals(transactions, wallets, config.patterns)
        pools = pools + pool_totals(transactions, wallets)
        say(f"cross-wallet signals: partition {p + 1}/{partitions}")
    del transactions
    peers = peer_counts(pd.concat(fingerprints)) if fingerprints else None
    signals = CrossWalletSignals(peers, totals, pools)

    outputs = [work / "failures.parquet"]
    for p in range(partitions):
        messages = spread.messages(p)
        if messages is not None:  # a partition without successful messages has nothing to write
            outputs.append(work / f"scored-{p:05d}.parquet")
            started = time.perf_counter()
            scores = score_wallet_table(spread.transactions(p), as_of, config, model, None, signals)
            spread.release(p)
            _write_scored(scores, messages, started, as_of, result, outputs[-1])
        say(f"scored partition {p + 1}/{partitions}")

    parts = work / "out.part"
    with open(parts, "wb") as out:
        merged = heapq.merge(*(_iter_sorted(p) for p in outputs), key=lambda r: r[0])
        for want, got in itertools.zip_longest(expected, merged):
            if got is None or got[0] != want:
                raise RuntimeError(f"output for input {want} is missing or out of order (found {got and got[0]})")
            out.write(got[1] + b"\n")
    shutil.move(parts, output_path)


def _write_scored(
    scores, messages: pd.DataFrame, started: float, as_of: int | None, result: FileScoringResult, out: Path
) -> None:
    """Success messages of a scored partition's messages, written sorted by output position to `out`."""
    ms = round((time.perf_counter() - started) * 1000 / max(len(messages), 1))
    rows = scores.table.loc[messages["wallet"].tolist()]
    encoded = encode_success_messages(rows, messages["address"].tolist(), scores, as_of or 0, ms)
    values = []
    for value, warnings in zip(encoded.values, messages["warnings"].tolist()):
        values.append(value if warnings is None else with_warnings(value, warnings))
    _write_sorted(out, list(zip(messages["message_index"].tolist(), values)))
    table = scores.table
    result.model_note = scores.model_note
    result.risk_levels.update(table["risk_level"].value_counts().to_dict())
    result.hybrid_sum.update(table.groupby("risk_level")["hybrid_score"].sum().to_dict())


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
    failed_at = int(time.time()) if as_of is None else int(as_of)  # failures have no history to date them
    config = config or default_scoring_config()
    say = progress or (lambda _: None)
    size = input_path.stat().st_size
    partitions = max(1, math.ceil(size / (BYTES_PER_TRANSACTION * partition_rows)))
    result = FileScoringResult(partitions=partitions)
    work = Path(tempfile.mkdtemp(prefix="defi-scoring-score-", dir=output_path.parent))
    try:
        spread = _Spread(work, partitions)
        offset = 0
        for number, lines in enumerate(read_chunks(input_path, chunk_bytes)):
            chunk_started = time.perf_counter()
            batch = normalise_messages(lines)
            ms = round((time.perf_counter() - chunk_started) * 1000 / max(len(lines), 1))
            spread.add(
                batch, f"chunk-{number:08d}", np.arange(offset, offset + len(lines), dtype=np.int64), failed_at, ms
            )
            offset += len(lines)
            say(f"normalised {offset:,} messages")
        result.messages = offset
        _score_spread(spread, iter(range(offset)), output_path, as_of, config, model, result, say)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result.seconds = time.perf_counter() - started
    return result


def score_table_file(
    input_path: Path,
    output_path: Path,
    as_of: int | None = None,
    config: ScoringConfig | None = None,
    model: ModelFn | None = None,
    partition_rows: int = 250_000,
    batch_rows: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> FileScoringResult:
    """Score a transactions table file into `output_path` (one line per wallet, in order of its first
    row) through wallet partitions; see module docstring. Raises TableSchemaError."""
    started = time.perf_counter()
    failed_at = int(time.time()) if as_of is None else int(as_of)  # failures have no history to date them
    config = config or default_scoring_config()
    say = progress or (lambda _: None)
    partitions = max(1, math.ceil(table_file_rows(input_path) / partition_rows))
    result = FileScoringResult(partitions=partitions)
    work = Path(tempfile.mkdtemp(prefix="defi-scoring-score-", dir=output_path.parent))
    try:
        rows = read_table_file(input_path, batch_rows, dictionaries=False)  # scratch files take plain columns
        files, first_rows = _split_table(rows, work / "rows", partitions)
        say(f"split {sum(len(f) for f in first_rows):,} wallets into {partitions} partitions")
        spread = _HeldSpread(work, len(files))
        for p, path in enumerate(files):
            if path is None:
                continue
            part_started = time.perf_counter()
            batch = normalise_tables(read_table_file(path, batch_rows))
            if batch.message_count != len(first_rows[p]):
                raise RuntimeError(f"partition {p}: {batch.message_count} messages for {len(first_rows[p])} wallets")
            ms = round((time.perf_counter() - part_started) * 1000 / max(batch.message_count, 1))
            spread.add(batch, p, first_rows[p], failed_at, ms)
            del batch
            path.unlink()
            say(f"normalised partition {p + 1}/{len(files)}")
        expected = np.sort(np.concatenate(first_rows))
        result.messages = len(expected)
        _score_spread(spread, iter(expected.tolist()), output_path, as_of, config, model, result, say)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result.seconds = time.perf_counter() - started
    return result


def _split_table(tables: Iterator[pa.Table], folder: Path, partitions: int) -> tuple[list[Path | None], list]:
    """The tables' rows written to one Arrow file per wallet partition (wallets by a hash of the
    lower-cased address; rows without an address in one more file), in their order. Returns the files
    (None: no rows) and per partition the row number at which each of its wallets first appears, in
    that order — the order `normalise_tables` gives the partition's messages."""
    folder.mkdir(parents=True, exist_ok=True)
    count = partitions + 1
    writers: list[pa.ipc.RecordBatchStreamWriter | None] = [None] * count
    options = pa.ipc.IpcWriteOptions(compression="lz4")  # scratch: fast to write and read back
    firsts: list[pa.Table] = []  # per table: (key, first row, partition) of its distinct wallets
    null_first: int | None = None
    row0 = 0
    try:
        for table in tables:
            key = pc.utf8_lower(table.column("wallet_address").combine_chunks().cast(pa.string()))
            encoded = pc.dictionary_encode(key)
            codes = pc.fill_null(encoded.indices.cast(pa.int64()), -1).to_numpy(zero_copy_only=False)
            entries = encoded.dictionary
            entry_part = (stable_hash(entries.to_numpy(zero_copy_only=False)) % np.uint64(partitions)).astype(np.int64)
            row_part = np.where(codes >= 0, entry_part[codes.clip(0)] if len(entry_part) else 0, partitions)
            codes_seen, first = np.unique(codes, return_index=True)
            named = codes_seen >= 0
            seen = {"key": entries, "first": first[named] + row0, "part": entry_part[codes_seen[named]]}
            firsts.append(pa.table(seen))
            if null_first is None and not named.all():
                null_first = int(first[0]) + row0
            order = np.argsort(row_part, kind="stable")
            bounds = np.searchsorted(row_part[order], np.arange(count + 1))
            for p in range(count):
                if bounds[p] == bounds[p + 1]:
                    continue
                if writers[p] is None:
                    writers[p] = pa.ipc.new_stream(str(folder / f"part-{p:05d}.arrow"), table.schema, options=options)
                writers[p].write_table(table.take(pa.array(order[bounds[p] : bounds[p + 1]])))
            row0 += table.num_rows
    finally:
        for writer in writers:
            if writer is not None:
                writer.close()
    wallets = pa.concat_tables(firsts).group_by("key").aggregate([("first", "min"), ("part", "min")])
    part, first = wallets.column("part_min").to_numpy(), wallets.column("first_min").to_numpy()
    first_rows = [np.sort(first[part == p]) for p in range(partitions)]
    first_rows.append(np.array([] if null_first is None else [null_first], dtype=np.int64))
    files = [folder / f"part-{p:05d}.arrow" if writers[p] is not None else None for p in range(count)]
    return files, first_rows
