"""Reading an input file (CSV, JSON, Parquet) as chunks of columns, with the line each row came from.

Why: the importers convert column by column and report rejected rows by `FILE:LINE`; large files are
read in chunks so that memory stays bounded whatever the file size. CSV cells are read as text (amounts
in wei overflow 64-bit integers; addresses and hashes must keep their leading zeros).
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

BLOCK_BYTES = 4 << 20  # CSV bytes parsed per chunk (the reader holds several: memory ∝ this)
PARQUET_BATCH_ROWS = 256_000


class UnreadableFile(Exception):
    """The file as a whole cannot be read; the message says why (and what would do)."""


@dataclass
class Chunk:
    """Rows of a file: the columns, the line of each row, and the rows that could not even be parsed."""

    table: pa.Table
    lines: np.ndarray
    errors: list[tuple[int, str]] = field(default_factory=list)


def file_format(path: Path) -> str:
    """`parquet`, `json` or `csv`, by content (not by the file name)."""
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError as e:
        raise UnreadableFile(f"cannot open: {e.strerror or e}") from e
    if head.startswith(b"PAR1"):
        return "parquet"
    text = head.removeprefix(b"\xef\xbb\xbf").lstrip()
    return "json" if text[:1] in (b"{", b"[") else "csv"


def column_names(path: Path) -> list[str]:
    """The columns of a CSV or Parquet file without reading its rows (an empty file has none)."""
    if file_format(path) == "parquet":
        try:
            return list(pq.read_schema(path).names)
        except (pa.ArrowException, OSError) as e:
            raise UnreadableFile(f"not a readable Parquet file: {e}") from e
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            header = next(csv.reader(f), [])
    except (UnicodeDecodeError, csv.Error) as e:
        raise UnreadableFile(f"not a UTF-8 CSV file: {e}") from e
    return _unique([name.strip() for name in header])


def _unique(names: list[str]) -> list[str]:
    """Unnamed columns (a pandas index written with the data) and repeated names get names of their own."""
    seen: dict[str, int] = {}
    out = []
    for i, name in enumerate(names):
        name = name or f"Unnamed: {i}"
        if name in seen:
            seen[name] += 1
            name = f"{name}.{seen[name]}"
        seen.setdefault(name, 0)
        out.append(name)
    return out


def read_chunks(path: Path, wanted: set[str] | None = None) -> Iterator[Chunk]:
    """The rows of a CSV or Parquet file chunk by chunk; only the `wanted` columns that exist are read."""
    if file_format(path) == "parquet":
        yield from _parquet_chunks(path, wanted)
    else:
        yield from _csv_chunks(path, wanted)


def _parquet_chunks(path: Path, wanted: set[str] | None) -> Iterator[Chunk]:
    try:
        source = pq.ParquetFile(path)
        names = source.schema_arrow.names
        columns = [n for n in names if wanted is None or n in wanted]
        first = 1
        for batch in source.iter_batches(batch_size=PARQUET_BATCH_ROWS, columns=columns):
            table = pa.Table.from_batches([batch])
            yield Chunk(table, np.arange(first, first + table.num_rows, dtype=np.int64))
            first += table.num_rows
    except (pa.ArrowException, OSError) as e:
        raise UnreadableFile(f"not a readable Parquet file: {e}") from e


def _csv_chunks(path: Path, wanted: set[str] | None) -> Iterator[Chunk]:
    names = column_names(path)
    if not names:
        return
    skipped: list[int] = []  # physical lines the reader left out (malformed or white space), in file order
    errors: list[tuple[int, str]] = []

    def on_invalid_row(row) -> str:
        skipped.append(row.number if row.number is not None else -1)
        if row.text.strip():
            errors.append(
                (row.number or 0, f"malformed CSV line: {row.actual_columns} fields, expected {row.expected_columns}")
            )
        return "skip"

    columns = [n for n in names if wanted is None or n in wanted]
    try:
        reader = pacsv.open_csv(
            path,
            read_options=pacsv.ReadOptions(
                skip_rows=1, column_names=names, use_threads=False, block_size=BLOCK_BYTES, encoding="utf8"
            ),
            parse_options=pacsv.ParseOptions(invalid_row_handler=on_invalid_row, ignore_empty_lines=False),
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(names, pa.string()),
                include_columns=columns,
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except pa.ArrowInvalid as e:
        if "Could not skip initial" in str(e):  # a header without a newline: no rows
            return
        raise UnreadableFile(f"not a readable CSV file: {e}") from e
    kept = 0
    try:
        for batch in reader:
            table = pa.Table.from_batches([batch])
            rows = np.arange(kept, kept + table.num_rows, dtype=np.int64)
            kept += table.num_rows
            blank = _blank(table)  # blank lines are read as rows (so that line numbers stay right), then dropped
            table, lines = table.filter(pa.array(~blank)), _lines(rows, skipped)[~blank]
            yield Chunk(table, lines, errors[:])
            errors.clear()
    except pa.ArrowException as e:
        raise UnreadableFile(f"CSV unreadable after {kept:,} rows: {e}") from e
    if errors:
        yield Chunk(pa.table({n: pa.array([], pa.string()) for n in columns}), np.zeros(0, np.int64), errors[:])


def _blank(table: pa.Table) -> np.ndarray:
    """Rows whose cells are all empty (a blank line)."""
    blank = np.ones(table.num_rows, dtype=bool)
    for col in table.columns:
        blank &= np.asarray(pc.fill_null(pc.equal(col, ""), True).to_numpy(zero_copy_only=False), dtype=bool)
    return blank


def _lines(rows: np.ndarray, skipped: list[int]) -> np.ndarray:
    """The physical line of each kept row (header = line 1), given the lines the reader left out."""
    if not skipped:
        return rows + 2
    s = np.asarray(skipped, dtype=np.int64)
    before = s - 2 - np.arange(len(s))  # kept rows before each left-out line
    return rows + 2 + np.searchsorted(before, rows, side="right")


def read_etherscan_json(path: Path) -> Chunk:
    """The `result` rows of an Etherscan API answer (or a bare list of them) as text columns.

    "No transactions found" is an empty answer, not an error; an answer whose `result` is a message
    (a wrong key, a rate limit) cannot be imported and says so.
    """
    try:
        data = orjson.loads(Path(path).read_bytes().removeprefix(b"\xef\xbb\xbf"))
    except (orjson.JSONDecodeError, OSError) as e:
        raise UnreadableFile(f"not readable JSON: {e}") from e
    if isinstance(data, dict):
        result = data.get("result")
        message = str(data.get("message", ""))
        if isinstance(result, str) or result is None:
            if "no transactions found" in message.lower() or "no transactions found" in str(result).lower():
                result = []
            else:
                raise UnreadableFile(
                    f"Etherscan answered {message!r}: {result!r} — nothing to import; fetch the account again"
                )
        data = result
    if not isinstance(data, list):
        raise UnreadableFile('not an Etherscan API answer: expected {"status", "message", "result": [...]}')
    objects = [row for row in data if isinstance(row, dict)]
    errors = [(i + 1, "not a JSON object") for i, row in enumerate(data) if not isinstance(row, dict)]
    lines = np.array([i + 1 for i, row in enumerate(data) if isinstance(row, dict)], dtype=np.int64)
    return Chunk(_text_table(objects), lines, errors)


def _text_table(objects: list[dict]) -> pa.Table:
    """JSON objects as a table of text columns (the union of their keys; a missing key is null)."""
    schema = pa.schema([(key, pa.string()) for key in dict.fromkeys(chain.from_iterable(objects))])
    try:
        return pa.Table.from_pylist(objects, schema=schema)
    except (pa.ArrowException, TypeError):  # numbers or nested values written by hand become text
        return pa.Table.from_pandas(pd.DataFrame.from_records(objects).astype("string"), preserve_index=False)
