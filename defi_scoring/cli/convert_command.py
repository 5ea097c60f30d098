"""`convert`: JSON lines of §1 messages → a transactions table (Parquet or Arrow IPC), and the table
file writer `generate` shares.

Why: the columnar input (core/transaction_table.py) is read without parsing JSON, and a file of it is
what DuckDB, Polars and Arrow tools hand over. A line that cannot become rows (not JSON, not a message)
is counted and reported, never stops the conversion: the rest of the file is still worth converting.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import orjson

from defi_scoring.cli.console import console

ROW_GROUP_ROWS = 1_048_576  # Parquet row groups of ~1M rows; Arrow record batches are smaller (below)
ARROW_BATCH_ROWS = 131_072  # uncompressed, so a memory-mapped read takes slices without copying
MESSAGES_PER_TABLE = 20_000  # messages turned into one table at a time (bounded memory)
REPORTED_LINES = 20  # skipped lines listed one by one on stderr, the rest only counted


class TableFileWriter:
    """Tables appended to a Parquet file (zstd, row groups of ROW_GROUP_ROWS) or an Arrow IPC file
    (by the path's suffix), buffered so that many small tables still make full row groups."""

    def __init__(self, path: Path) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        from defi_scoring.core.transaction_table import TABLE_SCHEMA

        self.path, self.rows = path, 0
        self._pending: list = []
        self._pending_rows = 0
        path.parent.mkdir(parents=True, exist_ok=True)
        self._parquet = path.suffix.lower() in (".parquet", ".pq")
        if self._parquet:
            self._writer = pq.ParquetWriter(str(path), TABLE_SCHEMA, compression="zstd")
        else:
            self._writer = pa.ipc.new_file(str(path), TABLE_SCHEMA)

    def write(self, table) -> None:
        self._pending.append(table)
        self._pending_rows += table.num_rows
        self.rows += table.num_rows
        if self._pending_rows >= ROW_GROUP_ROWS:
            self._flush(final=False)

    def _flush(self, final: bool) -> None:
        import pyarrow as pa

        if not self._pending:
            return
        table = pa.concat_tables(self._pending)
        full = table.num_rows if final else table.num_rows - table.num_rows % ROW_GROUP_ROWS
        if full:
            self._write(table.slice(0, full))
        self._pending = [table.slice(full)] if full < table.num_rows else []
        self._pending_rows = table.num_rows - full

    def _write(self, table) -> None:
        if self._parquet:
            self._writer.write_table(table, row_group_size=ROW_GROUP_ROWS)
        else:
            self._writer.write_table(table, max_chunksize=ARROW_BATCH_ROWS)

    def close(self) -> None:
        self._flush(final=True)
        self._writer.close()

    def __enter__(self) -> TableFileWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def write_messages_table(messages, path: Path, progress=None) -> int:
    """§1 messages (dicts) written as a transactions table, MESSAGES_PER_TABLE at a time; returns rows."""
    from defi_scoring.core.transaction_table import table_from_messages

    with TableFileWriter(path) as writer:
        chunk: list[dict] = []
        for i, message in enumerate(messages, 1):
            chunk.append(message)
            if len(chunk) == MESSAGES_PER_TABLE:
                writer.write(table_from_messages(chunk))
                chunk = []
                if progress is not None:
                    progress(i)
        if chunk:
            writer.write(table_from_messages(chunk))
    return writer.rows


def unusable(message: Any) -> str | None:
    """Why a parsed line cannot become rows of the table, or None. Values are not judged here: a bad
    action or timestamp becomes a row and gets its verdict when scored (docs/bad_input.md)."""
    if not isinstance(message, dict):
        return "not a JSON object"
    if not isinstance(message.get("wallet_address"), str):
        return "no wallet_address string"
    data = message.get("data")
    if not isinstance(data, list):
        return "no data list"
    rows = 0
    for section in data:
        if not isinstance(section, dict):
            return "a data section that is not an object"
        transactions = section.get("transactions") or []
        if not isinstance(transactions, list) or not all(isinstance(tx, dict) for tx in transactions):
            return "transactions that are not a list of objects"
        rows += len(transactions)
    return None if rows else "no transactions"


def _tables(lines: Iterator[tuple[int, bytes]], skipped: Counter, report) -> Iterator[tuple[Any, int]]:
    """(table, messages) per MESSAGES_PER_TABLE usable messages; `report(line, reason)` for the rest."""
    chunk: list[tuple[int, dict]] = []
    for number, line in lines:
        try:
            message = orjson.loads(line)
        except orjson.JSONDecodeError as error:
            report(number, f"not valid JSON ({error})", skipped)
            continue
        reason = unusable(message)
        if reason is not None:
            report(number, reason, skipped)
            continue
        chunk.append((number, message))
        if len(chunk) == MESSAGES_PER_TABLE:
            yield _table_of(chunk, skipped, report)
            chunk = []
    if chunk:
        yield _table_of(chunk, skipped, report)


def _table_of(chunk: list[tuple[int, dict]], skipped: Counter, report) -> tuple[Any, int]:
    """The chunk's table; when a value cannot take its column's type (a string timestamp, a number as
    document_id), the chunk again message by message, leaving out the messages that fail."""
    import pyarrow as pa

    from defi_scoring.core.transaction_table import TABLE_SCHEMA, table_from_messages

    errors = (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, TypeError)
    try:
        return table_from_messages([m for _, m in chunk]), len(chunk)
    except errors:
        pass
    tables = []
    for number, message in chunk:  # the rare chunk with a badly typed value
        try:
            tables.append(table_from_messages([message]))
        except errors as error:
            report(number, f"a value of the wrong type for the table ({type(error).__name__}: {error})", skipped)
    return (pa.concat_tables(tables) if tables else TABLE_SCHEMA.empty_table()), len(tables)


def _numbered_lines(path: Path, counts: Counter) -> Iterator[tuple[int, bytes]]:
    with open(path, "rb") as handle:
        for number, line in enumerate(handle, 1):
            counts["lines"] += 1
            if not line.strip():
                counts["blank_lines"] += 1
                continue
            yield number, line


def convert_file(source: Path, target: Path) -> dict[str, Any]:
    """Convert; returns the counts (lines, blank_lines, messages, rows, skipped_lines, skipped by reason)."""
    counts: Counter = Counter()
    skipped: Counter = Counter()

    def report(number: int, reason: str, reasons: Counter) -> None:
        reasons[reason.split(" (")[0]] += 1
        if sum(reasons.values()) <= REPORTED_LINES:
            console.print(f"line {number}: skipped, {reason}", markup=False, highlight=False)

    with TableFileWriter(target) as writer:
        for table, messages in _tables(_numbered_lines(source, counts), skipped, report):
            writer.write(table)
            counts["messages"] += messages
    listed = sum(skipped.values())
    if listed > REPORTED_LINES:
        console.print(f"… and {listed - REPORTED_LINES:,} more skipped lines", markup=False)
    return {
        "input": str(source),
        "output": str(target),
        "lines": counts["lines"],
        "blank_lines": counts["blank_lines"],
        "messages": counts["messages"],
        "rows": writer.rows,
        "skipped_lines": listed,
        "skipped": dict(sorted(skipped.items())),
    }


@click.command()
@click.argument("source", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("target", type=click.Path(dir_okay=False, path_type=Path))
def convert(source: Path, target: Path) -> None:
    """Convert JSON lines of wallet-transactions messages (SOURCE) into a transactions table (TARGET:
    .parquet, or .arrow/.feather for Arrow IPC), one row per transaction (README "Columnar input").

    Lines that are not JSON or not a message with transactions are skipped and reported on stderr; bad
    values (an unknown action, a negative USD value) are kept and get their verdicts when scored. Ends
    with one JSON line of counts on stdout."""
    from defi_scoring.core.transaction_table import is_table_file

    if not is_table_file(target) or is_table_file(source):
        raise click.UsageError("convert takes a JSON lines SOURCE and a TARGET ending in .parquet, .arrow or .feather")
    counts = convert_file(source, target)
    sys.stdout.write(orjson.dumps(counts).decode() + "\n")
