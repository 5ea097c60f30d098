"""A list of known addresses prepared for screening: one entry per (address, category) with its
severity, the sources that list it and a label, so that screening is one hash lookup per distinct
counterparty and a small merge of the rows that hit.

Why entries per (address, category) and not per row: an address listed by two sources under one
category is one exposure (with both sources named), while two categories are two exposures.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from defi_scoring.core.scoring_config import ExposureConfig

KNOWN_COLUMNS = ["address", "category", "source", "label", "listed_at", "removed"]
ENTRY_COLUMNS = ["address", "category", "severity", "sources", "label"]


def empty_known() -> pd.DataFrame:
    """A known-addresses frame without rows (the columns KNOWN_COLUMNS)."""
    return pd.DataFrame(
        {
            "address": pd.Series([], dtype=object),
            "category": pd.Series([], dtype=object),
            "source": pd.Series([], dtype=object),
            "label": pd.Series([], dtype=object),
            "listed_at": pd.Series([], dtype="Int64"),
            "removed": pd.Series([], dtype=bool),
        }
    )


@dataclass(frozen=True)
class KnownList:
    """Screening entries: `entries` has one row per (address, category) of the rows not removed."""

    entries: pd.DataFrame  # ENTRY_COLUMNS; address lower-cased
    addresses: pd.Index  # distinct listed addresses (any category)
    risky: pd.Index  # distinct addresses with a category of severity > 0

    @classmethod
    def of(cls, known: pd.DataFrame | KnownList | None, config: ExposureConfig) -> KnownList:
        """From a known-addresses frame (KNOWN_COLUMNS; `listed_at`, `removed`, `label` optional)."""
        if isinstance(known, KnownList):
            return known
        frame = empty_known() if known is None else known
        if "removed" in frame.columns:
            frame = frame[~frame["removed"].astype("boolean").fillna(False).to_numpy(bool)]
        address = frame["address"].astype(str).str.lower().to_numpy(object)
        category = frame["category"].astype(str).to_numpy(object)
        source = frame["source"].astype(str).to_numpy(object) if "source" in frame else np.full(len(frame), "")
        label = frame["label"].fillna("").astype(str).to_numpy(object) if "label" in frame else np.full(len(frame), "")
        rows = pd.DataFrame({"address": address, "category": category, "source": source, "label": label})
        rows = rows.drop_duplicates(["address", "category", "source"]).sort_values(["address", "category", "source"])
        grouped = rows.groupby(["address", "category"], sort=False)
        first = grouped.head(1).reset_index(drop=True)
        counts = grouped.size().to_numpy()
        if (counts > 1).any():  # sources joined only where an entry has several (most have one)
            sources = grouped["source"].agg(", ".join).to_numpy(object)
            labels = grouped["label"].agg(_first_label).to_numpy(object)
        else:
            sources, labels = first["source"].to_numpy(object), first["label"].to_numpy(object)
        severities = {c: config.severity(c) for c in pd.unique(first["category"])}
        entries = pd.DataFrame(
            {
                "address": first["address"].to_numpy(object),
                "category": first["category"].to_numpy(object),
                "severity": first["category"].map(severities).to_numpy(float),
                "sources": sources,
                "label": labels,
            }
        )
        risky = entries["address"][entries["severity"].to_numpy() > 0]
        return cls(
            entries, pd.Index(pd.unique(entries["address"]), dtype=object), pd.Index(pd.unique(risky), dtype=object)
        )

    def __len__(self) -> int:
        return len(self.entries)


def _first_label(labels: pd.Series) -> str:
    named = [x for x in labels.tolist() if x]
    return named[0] if named else ""
