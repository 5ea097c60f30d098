"""Training the ensemble with its boosted members on the cluster (`xgboost.dask`, `lightgbm.dask`).

The members without a distributed implementation (random forest, neural network, isolation forest)
train in the calling process on a stratified sample of at most `local_sample_rows` wallets. The
result is the same `TrainedEnsemble` — the distributed boosters are turned into their plain
scikit-learn wrappers — so it is logged, registered and served as the same kind of MLflow model.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from distributed import Client

from defi_scoring.core.ensemble import TrainedEnsemble, train_ensemble
from defi_scoring.core.ensemble_config import EnsembleConfig

DISTRIBUTED_KINDS = ("xgboost", "lightgbm")


def _xgboost(client: Client, params: dict, x, y):
    from xgboost import XGBClassifier
    from xgboost.dask import DaskXGBClassifier

    model = DaskXGBClassifier(**params)
    model.client = client
    model.fit(x, y)
    with tempfile.TemporaryDirectory() as folder:  # the saved file keeps the scikit-learn attributes
        path = Path(folder) / "booster.json"
        model.save_model(path)
        local = XGBClassifier(**params)
        local.load_model(path)
    return local


def _lightgbm(client: Client, params: dict, x, y):
    from lightgbm import DaskLGBMClassifier

    params.pop("n_jobs", None)  # lightgbm.dask uses the workers' threads
    return DaskLGBMClassifier(client=client, **params).fit(x, y).to_local()


def stratified_sample(y: np.ndarray, rows: int, seed: int = 0) -> np.ndarray:
    """Row positions of a sample with each class in its own share; all rows when there are few."""
    if len(y) <= rows:
        return np.arange(len(y))
    rng = np.random.default_rng(seed)
    keep = []
    for label in np.unique(y):
        members = np.flatnonzero(y == label)
        keep.append(rng.choice(members, size=max(1, round(rows * len(members) / len(y))), replace=False))
    return np.sort(np.concatenate(keep))


def train_ensemble_on_cluster(
    client: Client,
    config: EnsembleConfig,
    x_train: pd.DataFrame,
    y_train: np.ndarray,
    local_sample_rows: int = 200_000,
    progress=None,
) -> TrainedEnsemble:
    """The ensemble of `config`, boosted members trained on the cluster's workers."""
    import dask.array as da

    workers = max(len(client.scheduler_info(n_workers=-1)["workers"]), 1)
    x = x_train.to_numpy(dtype=np.float32)
    chunk = -(-len(x) // workers)
    x_dask, y_dask = client.persist([da.from_array(x, chunks=(chunk, -1)), da.from_array(y_train, chunks=chunk)])
    sample = stratified_sample(y_train, local_sample_rows)
    local_config = config.model_copy(update={"members": [m for m in config.members if m.kind not in DISTRIBUTED_KINDS]})
    local = train_ensemble(local_config, x_train.iloc[sample], y_train[sample], progress=progress)
    members, seconds = {}, dict(local.train_seconds)
    for member in config.classifiers:
        if member.kind not in DISTRIBUTED_KINDS:
            members[member.name] = local.members[member.name]
            continue
        if progress:
            progress(f"{member.name} (on the cluster)")
        started = time.perf_counter()
        train = _xgboost if member.kind == "xgboost" else _lightgbm
        members[member.name] = train(client, dict(member.params), x_dask, y_dask)
        seconds[member.name] = time.perf_counter() - started
    return TrainedEnsemble(
        feature_names=list(x_train.columns),
        members=members,
        weights={m.name: m.weight for m in config.classifiers},
        anomaly_model=local.anomaly_model,
        anomaly_reference=local.anomaly_reference,
        threshold=config.decision_threshold,
        train_seconds=seconds,
    )
