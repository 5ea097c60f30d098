"""The landing folder: which files are complete batches, which are still being written, which are
not batches at all (no Dagster import; `landing_folder_sensor` acts on what this decides).

A file is taken when it has not been modified for `settle_seconds` (writers that cannot rename may
simply write in place), or at once when it was written under a temporary name and renamed to
`*.jsonl` (then it is older than the settle time anyway, or the writer sets its mtime). Hidden files
(`.name.jsonl`) and other suffixes (`*.jsonl.part`, `*.tmp`) are never taken. Empty and binary files
are moved to `landing/rejected/` with a `<name>.reason.txt` beside them; names are made key-safe
without ever overwriting another file.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

KEY_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")
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


def why_not_a_batch(path: Path) -> str | None:
    size = path.stat().st_size
    if size == 0:
        return "empty file: a batch needs at least one JSON line"
    with open(path, "rb") as handle:
        head = handle.read(BINARY_PROBE_BYTES)
    if b"\x00" in head:
        return "binary file (NUL bytes in its first 64 KiB): expected JSON lines, one message per line"
    return None


def scan_landing(folder: Path, known_keys: set[str], settle_s: float | None = None, now: float | None = None):
    """Sort the folder's `*.jsonl` files into ready batches, files still settling and rejected files."""
    settle_s = settle_seconds() if settle_s is None else settle_s
    now = time.time() if now is None else now
    scan = LandingScan()
    for path in sorted(folder.glob("*.jsonl")):
        if path.name.startswith(".") or not path.is_file():
            continue
        if now - path.stat().st_mtime < settle_s:
            scan.waiting.append(path)
            continue
        reason = why_not_a_batch(path)
        if reason is not None:
            scan.rejected.append((_reject(path, reason), reason))
            continue
        key = batch_key_for(path)
        if key in known_keys:
            continue
        if key != path.stem:  # keys must be path-safe: give the file its key's name, never over another file
            key, path = _safe_rename(path, key, known_keys)
        scan.ready.append((key, path))
        known_keys.add(key)
    return scan


def _safe_rename(path: Path, key: str, known_keys: set[str]) -> tuple[str, Path]:
    candidate, n = key, 1
    while candidate in known_keys or path.with_name(f"{candidate}.jsonl").exists():
        n += 1
        candidate = f"{key}-{n}"
    target = path.with_name(f"{candidate}.jsonl")
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
