"""Score a features table with the champion ensemble, loaded once per process.

No champion yet is a normal state (first deployment): the result says so instead of raising. MLflow is
imported on the first champion lookup, not with this module: scoring without a model (and every
command that only imports the scoring path) does not pay its ~2 s and ~190 MB.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

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
    predictions: pd.DataFrame | None  # risk_probability, member_*, confidence, anomaly_score
    model_version: str | None
    note: str
    contributions: pd.DataFrame | None = None  # wallet × feature, log-odds of risk (XGBoost/LightGBM)

    @property
    def available(self) -> bool:
        return self.predictions is not None


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
    predictions = model.predict(inputs)
    predictions.index = features.index
    contribs = None
    if contributions and ensemble is not None:
        contribs = ensemble.feature_contributions(inputs, exact=exact_contributions)
    return ModelScores(predictions, version, f"scored with {name} version {version} ({CHAMPION})", contribs)
