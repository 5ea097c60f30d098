"""Data-quality measures and their verdicts: rejection rate, score drift, non-finite feature values.

Pure functions over frames; the Dagster asset checks (`assets/checks.py`) only attach the verdicts.
Thresholds come from `data_checks.yaml` (see `config_files.resolve_config`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator
from scipy.stats import ks_2samp

from defi_scoring.core.config_files import load_validated


class Thresholds(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    warn: float = Field(ge=0)
    error: float = Field(ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> Thresholds:
        if self.error < self.warn:
            raise ValueError("error must be at least warn")
        return self


class DataChecksConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    rejection_rate: Thresholds
    score_drift_psi: Thresholds
    feature_non_finite_rate: Thresholds
    scored_wallets_max_age_hours: float = Field(gt=0)
    champion_max_age_days: float = Field(gt=0)


def load_data_checks_config(path: str | Path | None = None) -> DataChecksConfig:
    return load_validated("data_checks.yaml", DataChecksConfig, path)


@dataclass(frozen=True)
class Verdict:
    """passed, and when not, whether it is a warning or an error."""

    value: float
    passed: bool
    severity: Literal["WARN", "ERROR"]
    description: str


def judge(name: str, value: float, limits: Thresholds) -> Verdict:
    if not np.isfinite(value) or value > limits.error:
        return Verdict(value, False, "ERROR", f"{name} {value:.4g} above the error level {limits.error:g}")
    if value > limits.warn:
        return Verdict(value, False, "WARN", f"{name} {value:.4g} above the warning level {limits.warn:g}")
    return Verdict(value, True, "WARN", f"{name} {value:.4g} within {limits.warn:g}")


def rejection_rate(messages: int, rejected: int) -> float:
    return rejected / messages if messages else 0.0


def non_finite_rates(frame: pd.DataFrame) -> pd.DataFrame:
    """Per numeric column: share of null values and share of ±inf, worst first."""
    numeric = frame.select_dtypes(include="number")
    values = numeric.to_numpy(dtype=float, na_value=np.nan)
    rows = max(len(numeric), 1)
    rates = pd.DataFrame(
        {"null": np.isnan(values).sum(axis=0) / rows, "inf": np.isinf(values).sum(axis=0) / rows}, index=numeric.columns
    )
    rates["non_finite"] = rates["null"] + rates["inf"]
    return rates.sort_values("non_finite", ascending=False)


def population_stability_index(before: np.ndarray, after: np.ndarray, bins: int = 10) -> float:
    """PSI of `after` against `before`, on decile bins of `before` (ties merged); 0 means the same shape."""
    before = np.asarray(before, dtype=float)
    after = np.asarray(after, dtype=float)
    before, after = before[np.isfinite(before)], after[np.isfinite(after)]
    if len(before) == 0 or len(after) == 0:
        return 0.0
    edges = np.unique(np.quantile(before, np.linspace(0, 1, bins + 1)[1:-1]))
    expected = np.bincount(np.searchsorted(edges, before, side="right"), minlength=len(edges) + 1) / len(before)
    actual = np.bincount(np.searchsorted(edges, after, side="right"), minlength=len(edges) + 1) / len(after)
    expected, actual = np.clip(expected, 1e-4, None), np.clip(actual, 1e-4, None)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def score_drift(before: pd.DataFrame, after: pd.DataFrame, columns: tuple[str, ...]) -> pd.DataFrame:
    """PSI and the two-sample KS statistic of each score column, previous vs current materialisation."""
    rows = {}
    for column in columns:
        a, b = before[column].to_numpy(dtype=float), after[column].to_numpy(dtype=float)
        ks = ks_2samp(a, b).statistic if len(a) and len(b) else 0.0
        rows[column] = {
            "psi": population_stability_index(a, b),
            "ks": float(ks),
            "mean_before": float(np.nanmean(a)) if len(a) else np.nan,
            "mean_after": float(np.nanmean(b)) if len(b) else np.nan,
        }
    return pd.DataFrame.from_dict(rows, orient="index")
