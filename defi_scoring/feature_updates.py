"""Which landed batches the last `wallet_features` saw: decides between an incremental and a full run.

The state file beside the table lists every batch it was computed from (size and modification time of
its Parquet file). Batches that only were added since → incremental (the wallets they touch are
recomputed); a batch changed or removed (re-landed, retention), another set of feature columns, another
version of the package or no state at all → full recompute.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path


@dataclass(frozen=True)
class FeaturePlan:
    incremental: bool
    reason: str
    new_files: list[Path] = field(default_factory=list)


def _package_version() -> str:
    try:
        return version("defi-scoring")
    except PackageNotFoundError:  # running from a source tree that is not installed
        return "source"


def _fingerprints(files: list[Path]) -> dict[str, list[int]]:
    return {f.parent.name: [f.stat().st_size, f.stat().st_mtime_ns] for f in files}


def plan_update(files: list[Path], state_path: Path, columns: list[str], wanted: bool) -> FeaturePlan:
    """Incremental when the previous run's batches are all still there, unchanged, and only new ones came."""
    if not wanted:
        return FeaturePlan(False, "incremental updates are off (config incremental: false)")
    if not state_path.exists():
        return FeaturePlan(False, "no record of the batches the previous table was computed from")
    state = json.loads(state_path.read_text())
    if state.get("package_version") != _package_version():
        return FeaturePlan(False, f"previous table was computed by defi-scoring {state.get('package_version')}")
    if state.get("columns") != columns:
        return FeaturePlan(False, "the feature columns changed since the previous table")
    now, before = _fingerprints(files), state.get("batches", {})
    changed = sorted(key for key, mark in before.items() if now.get(key) != mark)
    if changed:
        return FeaturePlan(False, f"batch {changed[0]!r} changed or was removed since the previous table")
    new_files = [f for f in files if f.parent.name not in before]
    return FeaturePlan(True, f"{len(new_files)} batches landed since the previous table", new_files)


def save_state(files: list[Path], state_path: Path, columns: list[str]) -> None:
    """Written after the table (the state is forgotten before it is written): a crash in between leaves
    no state, and the next run recomputes everything instead of trusting a half-written table."""
    state = {"package_version": _package_version(), "columns": columns, "batches": _fingerprints(files)}
    tmp = state_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=1))
    tmp.replace(state_path)


def forget_state(state_path: Path) -> None:
    state_path.unlink(missing_ok=True)
