"""Score a features table with the champion ensemble, loaded once per process.

No champion yet is a normal state (first deployment): the result says so instead of raising. MLflow is
imported on the first champion lookup, not with this module: scoring without a model (and every
command that only imports the scoring path) does not pay its ~2 s and ~190 MB.

A model (or one ensemble member, core/ensemble.py) that raises on some wallets does not fail the batch:
`isolate_failures` retries it on halves of the rows to find them, those wallets are scored without it
(the remaining members, or the rules alone) and say so, and ModelScores counts them for the caller's
metrics.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from defi_scoring.core.model_aliases import CHAMPION
from defi_scoring.core.model_features import MODEL_FEATURES, finite_features

if TYPE_CHECKING:
    from defi_scoring.core.model_registry import MlflowStore


_cache: dict[tuple[str, str, str], tuple[object, str]] = {}
_unloadable: dict[tuple[str, str, str], tuple[float, str]] = {}  # key → (when it failed, why)
_aliases: dict[tuple[str, str], tuple[float, str | None]] = {}  # (store, model) → (when looked up, version)
_lock = threading.Lock()
UNLOADABLE_RETRY_SECONDS = 60.0
logger = logging.getLogger(__name__)


@dataclass
class ModelScores:
    predictions: pd.DataFrame | None  # risk_probability, member_*, confidence, anomaly_score[, coverage, note]
    model_version: str | None
    note: str
    contributions: pd.DataFrame | None = None  # wallet × feature, log-odds of risk (XGBoost/LightGBM)
    # For the caller's metrics (the API and stream layers export them; the core has no Prometheus):
    degraded_wallets: int = 0  # wallets a member (or the whole model) failed on, scored without it
    member_failures: dict[str, int] = field(default_factory=dict)  # member ("model": all of it) → wallets

    @property
    def available(self) -> bool:
        return self.predictions is not None


@dataclass
class Isolated:
    """What `isolate_failures` got: the calls that worked and the rows no call could score."""

    pieces: list[tuple[np.ndarray, Any]]  # (row positions, fn's result for them)
    failed: np.ndarray  # bool per row
    error: str | None  # the first failure, "ExceptionType: message"


def isolate_failures(fn: Callable[[np.ndarray], Any], n: int, max_calls: int | None = None) -> Isolated:
    """fn(row positions) on all `n` rows; when it raises, again on each half, level by level, so a
    poisoned row fails alone and the rest are scored. Bounded: at most 1 + 4·⌈log2 n⌉ calls by default
    (one bad row takes two calls per halving; a few take more, and when the calls run out the halves
    still untried, all of one size, count as failed)."""
    failed = np.zeros(n, dtype=bool)
    if n == 0:
        return Isolated([], failed, None)
    budget = max_calls if max_calls is not None else 1 + 4 * max(1, math.ceil(math.log2(n)))
    pieces: list[tuple[np.ndarray, Any]] = []
    error = None
    pending, calls = deque([np.arange(n)]), 0
    while pending:
        rows = pending.popleft()
        if calls >= budget:
            failed[rows] = True
            continue
        calls += 1
        try:
            pieces.append((rows, fn(rows)))
        except Exception as exc:
            error = error or f"{type(exc).__name__}: {exc}"[:300]
            if len(rows) == 1:
                failed[rows] = True
            else:
                half = len(rows) // 2
                pending += [rows[:half], rows[half:]]
    return Isolated(pieces, failed, error)


def isolated_values(fn: Callable[[np.ndarray], Any], n: int) -> tuple[np.ndarray, str | None]:
    """fn's numbers per row (1-D, or rows × columns), NaN on the rows it failed on or gave non-finite
    values for, and why (None: every row scored). One call when nothing fails."""
    got = isolate_failures(fn, n)
    if len(got.pieces) == 1 and not got.failed.any():
        values = np.asarray(got.pieces[0][1])
    else:
        parts = [np.asarray(part) for _, part in got.pieces]
        shape = parts[0].shape[1:] if parts else ()
        values = np.full((n, *shape), np.nan, dtype=np.result_type(np.float32, *parts))  # the members' own dtype
        for (rows, _), part in zip(got.pieces, parts):
            values[rows] = part.reshape(len(rows), *shape)
    bad = ~np.isfinite(values) if values.ndim == 1 else ~np.isfinite(values).all(axis=1)
    if not bad.any():
        return values, None
    return values.astype(np.result_type(values, np.float32)), got.error or "returned non-finite values"


def model_scores(
    predictions: pd.DataFrame,
    version: str | None,
    note: str,
    contributions: pd.DataFrame | None = None,
    model_failed: np.ndarray | None = None,
) -> ModelScores:
    """ModelScores of a prediction frame, with the degraded wallets and member failures counted from it
    (member_<name> NaN: that member failed on the wallet; coverage < 1 or a note: degraded).
    model_failed: rows the whole model raised on (counted as "model", not as each member)."""
    failed = np.zeros(len(predictions), dtype=bool) if model_failed is None else model_failed
    members = [c for c in predictions.columns if c.startswith("member_")]
    counts = predictions[members].isna().to_numpy()[~failed].sum(axis=0) if members else []
    failures = {name.removeprefix("member_"): int(k) for name, k in zip(members, counts) if k}
    if failed.any():
        failures["model"] = int(failed.sum())
    degraded = ~np.isfinite(predictions["risk_probability"].to_numpy(float))
    if "coverage" in predictions:
        degraded |= predictions["coverage"].to_numpy(float) < 1
    if "note" in predictions:
        degraded |= predictions["note"].fillna("").to_numpy(object) != ""
    return ModelScores(predictions, version, note, contributions, int(degraded.sum()), failures)


class ChampionUnloadable(RuntimeError):
    """The champion version exists but its artifacts cannot be loaded (missing, corrupt, incompatible)."""


def load_champion(store: MlflowStore, name: str, refresh: bool = False, alias_max_age_s: float = 0.0):
    """(pyfunc model, version) of `models:/<name>@champion`, cached per process; None if no champion.
    Raises ChampionUnloadable when its artifacts cannot be loaded; that verdict is kept for
    UNLOADABLE_RETRY_SECONDS so that a broken model is not fetched again for every call.
    `alias_max_age_s`: reuse this process's last answer to "which version is the champion" for that
    long (the lookup is an MLflow query, ~2 ms: a tenth of one API call); `refresh` always asks."""
    version = champion_version(store, name, 0.0 if refresh else alias_max_age_s)
    if version is None:
        return None
    key = (store.tracking_uri, name, version)
    with _lock:
        failed = _unloadable.get(key)
        if failed and not refresh and time.monotonic() - failed[0] < UNLOADABLE_RETRY_SECONDS:
            raise ChampionUnloadable(failed[1])
        if refresh or key not in _cache:
            from defi_scoring.core.model_registry import load_version

            try:
                _cache[key] = (load_version(store, name, version), version)
            except Exception as exc:
                reason = f"champion version {version} of '{name}' cannot be loaded ({type(exc).__name__}: {exc})"
                _unloadable[key] = (time.monotonic(), reason[:500])
                logger.error("ALERT %s; scoring continues without the model", reason)
                raise ChampionUnloadable(reason[:500]) from exc
            _unloadable.pop(key, None)
        return _cache[key]


def champion_version(store: MlflowStore, name: str, max_age_s: float = 0.0) -> str | None:
    """The champion's version (None: no champion), looked up again once the last answer is older
    than `max_age_s`."""
    from defi_scoring.core.model_registry import alias_version

    key = (store.tracking_uri, name)
    seen = _aliases.get(key)
    if seen is not None and max_age_s > 0 and time.monotonic() - seen[0] < max_age_s:
        return seen[1]
    version = alias_version(store, name, CHAMPION)
    _aliases[key] = (time.monotonic(), version)
    return version


def unloadable_reason(store: MlflowStore, name: str, version: str) -> str | None:
    """Why this process could not load that champion version (None: it could, or did not try)."""
    failed = _unloadable.get((store.tracking_uri, name, version))
    return failed[1] if failed else None


def no_model(reason: str) -> ModelScores:
    return ModelScores(None, None, f"ML analysis unavailable: {reason}")


def score_with_model(
    features: pd.DataFrame,
    store: MlflowStore,
    name: str,
    contributions: bool = True,
    exact_contributions: bool = False,
    alias_max_age_s: float = 0.0,
) -> ModelScores:
    """Champion predictions (and per-feature contributions for the reasons) for a features table;
    `alias_max_age_s` as in load_champion."""
    try:
        champion = load_champion(store, name, alias_max_age_s=alias_max_age_s)
    except ChampionUnloadable as exc:
        return no_model(f"{exc}; retrain (defi-scoring train) or point the alias at a good version")
    if champion is None:
        return no_model(f"no '{CHAMPION}' version of model '{name}' yet")
    model, version = champion
    ensemble = getattr(model.unwrap_python_model(), "ensemble", None)
    names = ensemble.feature_names if ensemble is not None else MODEL_FEATURES  # the champion's own features
    missing = sorted(set(names) - set(features.columns))
    if missing:
        return no_model(
            f"champion version {version} needs features this build does not compute ({missing[:3]}…); "
            "retrain to register a compatible version"
        )
    inputs = finite_features(features[names])
    predictions, failed = _predict_isolated(model, inputs)
    predictions.index = features.index
    contribs = None
    if contributions and ensemble is not None:
        try:
            contribs = ensemble.feature_contributions(inputs, exact=exact_contributions)
        except Exception as exc:  # the reasons lose the model's features; the scores stand
            logger.warning("feature contributions of version %s failed (%s: %s)", version, type(exc).__name__, exc)
    scores = model_scores(predictions, version, f"scored with {name} version {version} ({CHAMPION})", contribs, failed)
    if scores.degraded_wallets:
        logger.warning(
            "version %s of '%s' could not fully score %d of %d wallets (failures: %s); they are scored without it",
            version,
            name,
            scores.degraded_wallets,
            len(features),
            scores.member_failures,
        )
    return scores


def _predict_isolated(model, inputs: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    """model.predict(inputs), with the rows it raises on isolated (isolate_failures) and returned as NaN
    with a note; plus those rows. (An ensemble isolates its own members' failures first.)"""
    got = isolate_failures(lambda rows: model.predict(inputs.iloc[rows]), len(inputs))
    if len(got.pieces) == 1 and not got.failed.any():
        return got.pieces[0][1], got.failed
    parts = [part.set_axis(rows) for rows, part in got.pieces]
    columns = parts[0].columns if parts else pd.Index(["risk_probability", "confidence", "anomaly_score"])
    predictions = (
        pd.concat(parts).reindex(np.arange(len(inputs)))
        if parts
        else pd.DataFrame(np.nan, index=np.arange(len(inputs)), columns=columns)
    )
    failed = got.failed
    coverage = predictions["coverage"].to_numpy(float) if "coverage" in predictions else np.ones(len(inputs))
    predictions["coverage"] = np.where(failed, 0.0, coverage)
    notes = (
        predictions["note"].fillna("").to_numpy(object)
        if "note" in predictions
        else np.full(len(inputs), "", dtype=object)
    )
    notes[failed] = f"the model failed on this wallet ({got.error}); no ML adjustment, scored by the rules alone"
    predictions["note"] = notes
    return predictions, failed
