"""Score a features table with the champion ensemble, loaded once per process.

No champion yet is a normal state (first deployment): the result says so instead of raising.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import pandas as pd

from defi_scoring.core.model_features import MODEL_FEATURES, finite_features
from defi_scoring.core.model_registry import CHAMPION, MlflowStore, alias_version, load_version

_cache: dict[tuple[str, str, str], tuple[object, str]] = {}
_lock = threading.Lock()


@dataclass
class ModelScores:
    predictions: pd.DataFrame | None  # risk_probability, member_*, confidence, anomaly_score
    model_version: str | None
    note: str
    contributions: pd.DataFrame | None = None  # wallet × feature, log-odds of risk (XGBoost/LightGBM)

    @property
    def available(self) -> bool:
        return self.predictions is not None


def load_champion(store: MlflowStore, name: str, refresh: bool = False):
    """(pyfunc model, version) of `models:/<name>@champion`, cached per process; None if no champion."""
    version = alias_version(store, name, CHAMPION)
    if version is None:
        return None
    key = (store.tracking_uri, name, version)
    with _lock:
        if refresh or key not in _cache:
            _cache[key] = (load_version(store, name, version), version)
        return _cache[key]


def no_model(reason: str) -> ModelScores:
    return ModelScores(None, None, f"ML analysis unavailable: {reason}")


def score_with_model(
    features: pd.DataFrame, store: MlflowStore, name: str, contributions: bool = True, exact_contributions: bool = False
) -> ModelScores:
    """Champion predictions (and per-feature contributions for the reasons) for a features table."""
    champion = load_champion(store, name)
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
