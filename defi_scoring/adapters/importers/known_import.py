"""List files → the store's known addresses, one store transaction per call: what the CLI's
`known-addresses import` and the `known_addresses` asset both run."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from defi_scoring.adapters.importers.known_lists import ListRead, read_known_list
from defi_scoring.score_store import KnownImport, ScoreStore


@dataclass
class ListImport:
    reads: list[ListRead] = field(default_factory=list)
    stored: KnownImport = field(default_factory=KnownImport)
    by_category: dict[str, int] = field(default_factory=dict)
    by_source: dict[str, int] = field(default_factory=dict)

    def summary(self) -> dict:
        return {
            "files": len(self.reads),
            "read": sum(r.read for r in self.reads),
            "invalid": sum(r.invalid for r in self.reads),
            "rows": self.stored.rows,
            "added": self.stored.added,
            "removed": self.stored.removed,
            "unchanged": self.stored.unchanged,
            "changed_addresses": len(self.stored.changed_addresses),
        }


def import_list_files(
    store: ScoreStore,
    files: list[Path] | tuple[Path, ...],
    source: str | None = None,
    layout: str = "auto",
    replace: bool = False,
    listed_at: int | None = None,
) -> ListImport:
    """Read every file, then upsert all their rows in one transaction."""
    outcome = ListImport()
    for path in files:
        outcome.reads.append(read_known_list(Path(path), source, layout, listed_at))
    rows = pd.concat([r.rows for r in outcome.reads], ignore_index=True) if outcome.reads else pd.DataFrame()
    if rows.empty:
        return outcome
    outcome.stored = store.import_known_addresses(rows, replace=replace)
    active = rows[~rows["removed"].astype(bool).to_numpy()]
    outcome.by_category = dict(Counter(active["category"]))
    outcome.by_source = dict(Counter(active["source"]))
    return outcome
