"""The landing folder: which files are complete batches, which are still being written, which are
not batches at all (no Dagster import; `landing_folder_sensor` acts on what this decides).

A batch is a JSON lines file (`*.jsonl`) or a transactions table (`*.parquet`, `*.pq`, `*.arrow`,
`*.feather`; core/transaction_table.py). A file is taken when it has not been modified for
`settle_seconds` (writers that cannot rename may simply write in place), or at once when it was written
under a temporary name and renamed (then it is older than the settle time anyway, or the writer sets
its mtime). Hidden files (`.name.jsonl`) and other suffixes (`*.jsonl.part`, `*.tmp`) are never taken.
Empty files, binary "JSON lines" and tables that are not transactions tables are moved to
`landing/rejected/` with a `<name>.reason.txt` beside them; names are made key-safe without ever
overwriting another file. A batch's file is the oldest of its key's names (`landed_file`): a newer file
with the same stem in another format is a new batch under a new key, never a replacement.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

KEY_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")
LANDING_SUFFIXES = (".jsonl", ".parquet", ".pq", ".arrow", ".feather")  # JSON lines, then table files
BINARY_PROBE_BYTES = 65_536
DEFAULT_SETTLE_SECONDS = 10.0


def settle_seconds() -> float:
    return float(os.environ.get("DEFI_SCORING_LANDING_SETTLE_SECONDS", DEFAULT_SETTLE_SECONDS))


@dataclass
class LandingScan:
    ready: list[tuple[str, Path]] = field(default_factory=list)  # (batch key, file) not yet known
    waiting: list[Path] = field(default_factory=list)  # modified too recently: maybe still being written
    rejected: list[tuple[Path, str]] = field(default_factory=list)  # (where it was moved, why)


def batch_key_for(path: Path) -> str:
    """Partition key of a landing file: its stem, restricted to characters safe in keys and paths."""
    return KEY_UNSAFE.sub("_", path.stem) or "_"


def landed_file(folder: Path, key: str) -> Path:
    """The landing file of batch `key`: of `<key>.jsonl`, `<key>.parquet`, … the oldest (it was there
    when the batch was taken); `<key>.jsonl` when there is none."""
    candidates = [folder / f"{key}{suffix}" for suffix in LANDING_SUFFIXES]
    existing = [path for path in candidates if path.is_file()]
    if not existing:
        return candidates[0]
    return min(existing, key=lambda path: (path.stat().st_mtime, candidates.index(path)))


def _is_table(path: Path) -> bool:
    return path.suffix != ".jsonl"


def why_not_a_batch(path: Path) -> str | None:
    size = path.stat().st_size
    if size == 0:
        return "empty file: a batch needs at least one JSON line" + (" or a table's rows" if _is_table(path) else "")
    if _is_table(path):  # a binary format: what it must have is the transactions table's schema
        from defi_scoring.batch_files import table_file_schema
        from defi_scoring.core.table_decode import TableSchemaError

        try:
            table_file_schema(path)
        except TableSchemaError as error:
            return f"not a transactions table: {error}"
        return None
    with open(path, "rb") as handle:
        head = handle.read(BINARY_PROBE_BYTES)
    if b"\x00" in head:
        return "binary file (NUL bytes in its first 64 KiB): expected JSON lines, one message per line"
    return None


def scan_landing(folder: Path, known_keys: set[str], settle_s: float | None = None, now: float | None = None):
    """Sort the folder's batch files (LANDING_SUFFIXES) into ready batches, files still settling and
    rejected files."""
    settle_s = settle_seconds() if settle_s is None else settle_s
    now = time.time() if now is None else now
    scan = LandingScan()
    for path in sorted(p for suffix in LANDING_SUFFIXES for p in folder.glob(f"*{suffix}")):
        if path.name.startswith(".") or not path.is_file():
            continue
        key = batch_key_for(path)
        is_its_batch = key == path.stem and landed_file(folder, key) == path
        if key in known_keys and is_its_batch:  # landed before: not read again on every tick
            continue
        if now - path.stat().st_mtime < settle_s:
            scan.waiting.append(path)
            continue
        reason = why_not_a_batch(path)
        if reason is not None:
            scan.rejected.append((_reject(path, reason), reason))
            continue
        if key == path.stem and not is_its_batch:  # the key's batch is another file: a batch of its own
            key, path = _safe_rename(path, key, known_keys | {key})
        if key in known_keys:
            continue
        if key != path.stem:  # keys must be path-safe: give the file its key's name, never over another file
            key, path = _safe_rename(path, key, known_keys)
        scan.ready.append((key, path))
        known_keys.add(key)
    return scan


def _safe_rename(path: Path, key: str, known_keys: set[str]) -> tuple[str, Path]:
    candidate, n = key, 1
    while candidate in known_keys or any(path.with_name(f"{candidate}{s}").exists() for s in LANDING_SUFFIXES):
        n += 1
        candidate = f"{key}-{n}"
    target = path.with_name(f"{candidate}{path.suffix}")
    path.rename(target)
    return candidate, target


def _reject(path: Path, reason: str) -> Path:
    folder = path.parent / "rejected"
    folder.mkdir(exist_ok=True)
    target = folder / path.name
    n = 1
    while target.exists():
        n += 1
        target = folder / f"{path.stem}-{n}{path.suffix}"
    path.rename(target)
    target.with_name(target.name + ".reason.txt").write_text(reason + "\n")
    return target
