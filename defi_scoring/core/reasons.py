"""Reasons: the largest signed contributions to a wallet's score, as sentences a person can read.

Factor reasons come from the exact factor contributions of the hybrid score; model reasons from the
champion's XGBoost/LightGBM contribution values. The top-k selection is one argpartition over the
contribution matrix; text is formatted only for the factors that made some wallet's top k.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from defi_scoring.core.factors import FACTORS
from defi_scoring.core.frame_columns import column, frame_of
from defi_scoring.core.templates import template_fields


def _top_k(matrix: np.ndarray, k: int) -> np.ndarray:
    """Column indices of the k largest |values| per row, largest first."""
    k = min(k, matrix.shape[1])
    if k == 0:
        return np.zeros((len(matrix), 0), dtype=np.int64)
    magnitude = np.abs(matrix)
    idx = np.argpartition(-magnitude, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(magnitude, idx, axis=1), axis=1, kind="stable")
    return np.take_along_axis(idx, order, axis=1)


def sign_points(points: float) -> str:
    return f"+{points:.1f}" if points >= 0 else f"−{abs(points):.1f}"


def factor_reason_columns(contributions: pd.DataFrame, wallet_table: pd.DataFrame, k: int) -> pd.DataFrame:
    """Columns reason_{i}_factor / _points / _text for the k largest |contributions| per wallet.

    Text is formatted per factor over the rows where that factor is in the top k (one template per
    factor, a comprehension over its rows), so the cost is ~k string formats per wallet.
    """
    names = np.asarray(contributions.columns, dtype=object)
    matrix = contributions.to_numpy(float)
    top = _top_k(matrix, k)
    points = np.take_along_axis(matrix, top, axis=1)
    out: dict[str, np.ndarray] = {}
    for slot in range(top.shape[1]):
        text = np.empty(len(matrix), dtype=object)
        for j in np.unique(top[:, slot]).tolist():  # the factors in this slot (one for a lone wallet)
            name = names[j]
            rows = np.flatnonzero(top[:, slot] == j)
            template = FACTORS[name].explanation
            fields = template_fields(template)
            sentence = template + " ({_points:+.1f} points)"
            values = [points[rows, slot].tolist()]
            try:
                values += [np.asarray(column(wallet_table, f))[rows].tolist() for f in fields]
                keys = ["_points", *fields]
                text[rows] = [sentence.format(**dict(zip(keys, v))) for v in zip(*values)]
            except (KeyError, ValueError, TypeError):
                text[rows] = [f"{FACTORS[name].description} ({p:+.1f} points)" for p in values[0]]
        out[f"reason_{slot + 1}_factor"] = names[top[:, slot]]
        out[f"reason_{slot + 1}_points"] = points[:, slot]
        out[f"reason_{slot + 1}_text"] = text
    return frame_of(out, contributions.index)


def model_reason_columns(contributions: pd.DataFrame | None, index: pd.Index, k: int) -> pd.DataFrame:
    """Columns model_reason_{i}_feature / _log_odds for the champion's k strongest feature pushes."""
    if contributions is None or k == 0:
        return frame_of({}, index)  # (no columns: pandas' own constructor costs ~70 µs)
    out: dict[str, np.ndarray] = {}
    contributions = contributions.reindex(index)
    names = np.asarray(contributions.columns, dtype=object)
    matrix = contributions.to_numpy(float)
    top = _top_k(np.nan_to_num(matrix), k)
    for slot in range(top.shape[1]):
        out[f"model_reason_{slot + 1}_feature"] = names[top[:, slot]]
        out[f"model_reason_{slot + 1}_log_odds"] = np.take_along_axis(matrix, top[:, slot : slot + 1], axis=1)[:, 0]
    return frame_of(out, index)
