"""`wallet_features` over the landed batches: incremental after new batches, full otherwise.

The state file beside the table lists every batch it was computed from (size and modification time of
its Parquet file). Batches that only were added since → incremental (the wallets they touch are
recomputed); a batch changed or removed (re-landed, retention), another version of the package, no
state or an unreadable one, or recomputed rows whose columns differ from the previous table's (a table
of an earlier feature set) → full recompute.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import pandas as pd

from defi_scoring.batch_files import read_transactions, wallets_in_order
from defi_scoring.core.features import reference_features
from defi_scoring.core.incremental_features import updated_features

STATE_NAME = "wallet_features.batches.json"  # beside the table in the data home's tables/


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


def plan_update(files: list[Path], state_path: Path, wanted: bool) -> FeaturePlan:
    """Incremental when the previous run's batches are all still there, unchanged, and only new ones came."""
    if not wanted:
        return FeaturePlan(False, "incremental updates are off (config incremental: false)")
    if not state_path.exists():
        return FeaturePlan(False, "no record of the batches the previous table was computed from")
    try:
        state = json.loads(state_path.read_text())
        before = dict(state["batches"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return FeaturePlan(False, f"the record of the previous table's batches is unreadable ({exc})")
    if state.get("package_version") != _package_version():
        return FeaturePlan(False, f"previous table was computed by defi-scoring {state.get('package_version')}")
    now = _fingerprints(files)
    changed = sorted(key for key, mark in before.items() if now.get(key) != mark)
    if changed:
        return FeaturePlan(False, f"batch {changed[0]!r} changed or was removed since the previous table")
    new_files = [f for f in files if f.parent.name not in before]
    return FeaturePlan(True, f"{len(new_files)} batches landed since the previous table", new_files)


def save_state(files: list[Path], state_path: Path) -> None:
    """Written after the table (the state is forgotten before it is written): a crash in between leaves
    no state, and the next run recomputes everything instead of trusting a half-written table."""
    state = {"package_version": _package_version(), "batches": _fingerprints(files)}
    tmp = state_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=1))
    tmp.replace(state_path)


def forget_state(tables_dir: Path) -> None:
    (tables_dir / STATE_NAME).unlink(missing_ok=True)


def with_as_of(features: pd.DataFrame, as_of: int | None) -> pd.DataFrame:
    """The table's `as_of` column: the explicit time, or each wallet's newest transaction (None)."""
    return features.assign(as_of=features["last_timestamp"] if as_of is None else as_of)


def _per_wallet_as_of(table: pd.DataFrame) -> bool:
    return bool(len(table)) and bool((table["as_of"].to_numpy() == table["last_timestamp"].to_numpy()).all())


def update_wallet_features(data_home: Any, files: list[Path], as_of: int | None, incremental: bool):
    """(features, transactions read, update summary) of the data home's batches, written to its
    `wallet_features` table: only the touched wallets recomputed when only new batches landed.
    as_of None: each wallet at its newest transaction (an untouched wallet's row then never moves)."""
    state_path = data_home.settings.tables_dir / STATE_NAME
    previous = data_home.read_table("wallet_features") if data_home.table_exists("wallet_features") else None
    plan = plan_update(files, state_path, incremental) if previous is not None else None
    features, reason = None, plan.reason if plan is not None else "no previous table"
    if plan is not None and plan.incremental:
        transactions = read_transactions(files, wallets=wallets_in_order(plan.new_files))
        recomputed = reference_features(transactions, as_of) if len(transactions) else None
        kept = previous.drop(columns="as_of")
        if recomputed is not None and list(recomputed.columns) != list(kept.columns):
            reason = "the previous table has other feature columns (an earlier version's)"
        elif (as_of is None) != _per_wallet_as_of(previous):
            reason = "the previous table was computed at a fixed as-of and this one per wallet, or the reverse"
        else:
            previous_as_of = 0.0 if as_of is None else float(previous["as_of"].iloc[0])
            recomputed = kept.iloc[:0] if recomputed is None else recomputed
            target = 0.0 if as_of is None else float(as_of)
            features = updated_features(kept, previous_as_of, recomputed, target, wallets_in_order(files))
            features = with_as_of(features, as_of)
            update = {"mode": "incremental", "reason": plan.reason, "recomputed_wallets": len(recomputed)}
    if features is None:
        transactions = data_home.read_all_transactions()
        features = with_as_of(reference_features(transactions, as_of), as_of)
        update = {"mode": "full", "reason": reason, "recomputed_wallets": len(features)}
    forget_state(state_path.parent)
    data_home.write_table("wallet_features", features)
    save_state(files, state_path)
    return features, len(transactions), update
