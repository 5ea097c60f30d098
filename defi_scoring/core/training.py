"""Labels and the training set: model features joined with is_risky, split by account."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from defi_scoring.core.ensemble import account_split
from defi_scoring.core.model_features import MODEL_FEATURES, finite_features, model_features


def load_labels(paths: list[Path]) -> pd.Series:
    """is_risky (0/1) per lower-cased wallet from CSV/Parquet files with wallet_address, is_risky."""
    frames = []
    for path in paths:
        frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
        missing = {"wallet_address", "is_risky"} - set(frame.columns)
        if missing:
            raise ValueError(f"{path}: labels need columns wallet_address and is_risky (missing {sorted(missing)})")
        frames.append(frame[["wallet_address", "is_risky"]])
    if not frames:
        return pd.Series(dtype=np.int64, name="is_risky")
    labels = pd.concat(frames, ignore_index=True)
    risky = labels["is_risky"].map(lambda v: str(v).strip().lower() in ("1", "true", "yes")).astype(np.int64)
    series = pd.Series(risky.to_numpy(), index=labels["wallet_address"].str.lower(), name="is_risky")
    return series[~series.index.duplicated(keep="last")]


def label_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*") if p.suffix in (".csv", ".parquet")) if folder.exists() else []


def build_training_set(
    transactions: pd.DataFrame, labels: pd.Series, as_of: float, holdout_fraction: float
) -> pd.DataFrame:
    """Model features of the labelled wallets, with `is_risky` and a boolean `holdout` column."""
    return with_holdout(model_features(transactions, as_of).join(labels, how="inner"), holdout_fraction)


def with_holdout(labelled: pd.DataFrame, holdout_fraction: float) -> pd.DataFrame:
    """The labelled features with the boolean `holdout` column (account split, fixed per wallet)."""
    labelled = labelled.copy()
    labelled["holdout"] = account_split(labelled.index, labelled["is_risky"].to_numpy(), holdout_fraction)
    return labelled


def split_xy(training_set: pd.DataFrame, holdout: bool) -> tuple[pd.DataFrame, np.ndarray]:
    part = training_set[training_set["holdout"] == holdout]
    return finite_features(part[MODEL_FEATURES]), part["is_risky"].to_numpy()
