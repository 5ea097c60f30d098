"""The risk ensemble: train members, combine by weighted vote, evaluate on a holdout.

Pure (no Dagster, no MLflow): `defi_scoring.core.model_registry` logs and registers what this trains.
A member that raises on some wallets (a poisoned row, a library bug) is retried on halves of them
(core/model_scoring.isolate_failures): those wallets are combined from the members that worked, weights
renormalised, or get no probability when none did; `coverage` and `note` say so per wallet.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.ensemble import IsolationForest, RandomForestClassifier
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    f1_score,
    log_loss,
    roc_auc_score,
    roc_curve,
)
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from defi_scoring.core.ensemble_config import EnsembleConfig, MemberConfig
from defi_scoring.core.model_scoring import isolated_values


def _build_member(member: MemberConfig) -> Any:
    params = dict(member.params)
    if member.kind == "xgboost":
        from xgboost import XGBClassifier

        return XGBClassifier(**params)
    if member.kind == "lightgbm":
        from lightgbm import LGBMClassifier

        return LGBMClassifier(**params)
    if member.kind == "random_forest":
        return RandomForestClassifier(**params)
    if member.kind == "mlp":
        params["hidden_layer_sizes"] = tuple(params.get("hidden_layer_sizes", (100,)))
        return make_pipeline(StandardScaler(), MLPClassifier(**params))
    if member.kind == "isolation_forest":
        return IsolationForest(**params)
    raise ValueError(f"unknown member kind {member.kind!r}")


@dataclass
class TrainedEnsemble:
    """Fitted members + how to combine them. `predict` is what the registered pyfunc returns."""

    feature_names: list[str]
    members: dict[str, Any]
    weights: dict[str, float]
    anomaly_model: Any | None
    anomaly_reference: np.ndarray | None  # sorted training anomaly raw scores → percentile
    threshold: float
    train_seconds: dict[str, float] = field(default_factory=dict)

    def member_probabilities(self, features: pd.DataFrame) -> pd.DataFrame:
        """Each member's probability of risk per wallet; NaN where the member failed on the wallet."""
        return self._member_probabilities(features)[0]

    def _member_probabilities(self, features: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, str]]:
        x = features[self.feature_names].to_numpy(dtype=np.float32)
        columns, errors = {}, {}
        for name, model in self.members.items():
            columns[name], error = isolated_values(lambda rows, m=model: m.predict_proba(x[rows])[:, 1], len(x))
            if error:
                errors[name] = error
        return pd.DataFrame(columns, index=features.index), errors

    def predict(self, features: pd.DataFrame) -> pd.DataFrame:
        """risk_probability, member_<name> probabilities, confidence, anomaly_score, coverage (share of
        the members' weight that scored the wallet) and note (what failed on it; "" when nothing did)."""
        members, errors = self._member_probabilities(features)
        probabilities = members.to_numpy()
        w = np.array([self.weights[name] for name in members.columns])
        p = probabilities @ (w / w.sum())
        spread = probabilities.std(axis=1)
        coverage = np.ones(len(features))
        if errors:  # the wallets a member failed on: the members that scored them, weights renormalised
            rows = np.flatnonzero(~np.isfinite(probabilities).all(axis=1))
            ok = np.isfinite(probabilities[rows])
            scored = np.where(ok, probabilities[rows], 0.0)
            weight, count = ok @ w, ok.sum(axis=1)
            p[rows] = np.divide(scored @ w, weight, out=np.full(len(rows), np.nan), where=weight > 0)
            mean = np.divide(scored.sum(axis=1), count, out=np.full(len(rows), np.nan), where=count > 0)
            deviation = np.where(ok, scored - mean[:, None], 0.0)
            spread[rows] = np.sqrt((deviation**2).sum(axis=1) / np.maximum(count, 1))
            coverage[rows] = weight / w.sum()
        agreement = np.clip(1 - 2 * spread, 0, 1)  # 1 = members agree; 0 = maximal disagreement
        certainty = np.abs(2 * p - 1)  # 1 at p = 0 or 1; 0 at 0.5
        out = pd.DataFrame({"risk_probability": p}, index=features.index)
        for name in members.columns:
            out[f"member_{name}"] = members[name].to_numpy()
        out["confidence"] = np.sqrt(agreement * certainty)
        anomaly, anomaly_error = isolated_values(lambda rows: self.anomaly_scores(features.iloc[rows]), len(features))
        out["anomaly_score"] = anomaly
        out["coverage"] = coverage
        out["note"] = _failure_notes(members, errors, np.isnan(anomaly) if anomaly_error else None, anomaly_error)
        return out

    def feature_contributions(self, features: pd.DataFrame, exact: bool = False) -> pd.DataFrame | None:
        """Per wallet × feature contribution to the log-odds of risk (positive pushes towards risky).

        Default: XGBoost's path-based (Saabas) contributions — ~15× faster than exact SHAP and enough to
        name the strongest features. exact=True: mean of XGBoost and LightGBM exact TreeSHAP values
        (seconds per 10k wallets; fine for single wallets). None when neither member exists.
        """
        x = features[self.feature_names].to_numpy(dtype=np.float32)
        parts = []
        for model in self.members.values():
            module = type(model).__module__
            if module.startswith("xgboost"):
                from xgboost import DMatrix

                def contribs(rows, m=model):
                    booster = m.get_booster()
                    return booster.predict(DMatrix(x[rows]), pred_contribs=True, approx_contribs=not exact)[:, :-1]

            elif module.startswith("lightgbm") and exact:

                def contribs(rows, m=model):
                    return np.asarray(m.predict(x[rows], pred_contrib=True))[:, :-1]

            else:
                continue
            part, _ = isolated_values(contribs, len(x))  # a wallet a member fails on: NaN, the others stand
            parts.append(part)
        if not parts:
            return None
        stacked = np.stack(parts)
        if len(parts) == 1 or np.isfinite(stacked).all():
            mean = np.mean(stacked, axis=0)
        else:  # the members that worked on each wallet
            ok = np.isfinite(stacked)
            count = ok.sum(axis=0)
            total = np.where(ok, stacked, 0.0).sum(axis=0)
            mean = np.divide(total, count, out=np.full(total.shape, np.nan), where=count > 0)
        return pd.DataFrame(mean, index=features.index, columns=self.feature_names)

    def anomaly_scores(self, features: pd.DataFrame) -> np.ndarray:
        """Percentile (0–1) of the IsolationForest outlier score among the training wallets."""
        if self.anomaly_model is None or self.anomaly_reference is None:
            return np.zeros(len(features))
        raw = -self.anomaly_model.score_samples(features[self.feature_names].to_numpy(dtype=np.float32))
        return np.searchsorted(self.anomaly_reference, raw, side="right") / len(self.anomaly_reference)


def _failure_notes(
    members: pd.DataFrame, errors: dict[str, str], anomaly_failed: np.ndarray | None, anomaly_error: str | None
) -> np.ndarray:
    """Per wallet, which members failed on it and why ("" for a wallet nothing failed on): one sentence
    per distinct combination of failed members, looked up by bitmask (no per-wallet formatting)."""
    n = len(members)
    if not errors and anomaly_error is None:
        return np.full(n, "", dtype=object)
    names = list(members.columns)
    failed = ~np.isfinite(members.to_numpy())
    bits = (failed.astype(np.int64) << np.arange(len(names), dtype=np.int64)).sum(axis=1)
    if anomaly_failed is not None:
        bits |= anomaly_failed.astype(np.int64) << len(names)
    combos, inverse = np.unique(bits, return_inverse=True)
    texts = []
    for combo in combos.tolist():
        lost = [name for i, name in enumerate(names) if combo >> i & 1]
        kept = [name for name in names if name not in lost]
        why = "; ".join(
            errors.get(name, "no probability") if len(lost) == 1 else f"{name}: {errors.get(name, 'no probability')}"
            for name in lost
        )
        parts = []
        if lost and kept:
            parts.append(
                f"{'member' if len(lost) == 1 else 'members'} {', '.join(lost)} failed on this wallet ({why}); "
                f"scored by {', '.join(kept)} with their weights renormalised"
            )
        elif lost:
            parts.append(f"every member failed on this wallet ({why}); no ML adjustment, scored by the rules alone")
        if combo >> len(names) & 1:
            parts.append(f"anomaly member failed ({anomaly_error}); no anomaly penalty")
        texts.append("; ".join(parts))
    return np.asarray(texts, dtype=object)[inverse.reshape(-1)]


def train_ensemble(
    config: EnsembleConfig, x_train: pd.DataFrame, y_train: np.ndarray, progress=None
) -> TrainedEnsemble:
    x = x_train.to_numpy(dtype=np.float32)
    members, seconds = {}, {}
    for member in config.classifiers:
        if progress:
            progress(member.name)
        started = time.perf_counter()
        members[member.name] = _build_member(member).fit(x, y_train)
        seconds[member.name] = time.perf_counter() - started
    anomaly_model, reference = None, None
    if config.anomaly_member is not None:
        started = time.perf_counter()
        anomaly_model = _build_member(config.anomaly_member).fit(x)
        reference = np.sort(-anomaly_model.score_samples(x))
        seconds[config.anomaly_member.name] = time.perf_counter() - started
    return TrainedEnsemble(
        feature_names=list(x_train.columns),
        members=members,
        weights={m.name: m.weight for m in config.classifiers},
        anomaly_model=anomaly_model,
        anomaly_reference=reference,
        threshold=config.decision_threshold,
        train_seconds=seconds,
    )


def classification_metrics(y_true: np.ndarray, p: np.ndarray, threshold: float) -> dict[str, float]:
    """ROC-AUC, PR-AUC, KS, Brier, F1 at the threshold, log-loss."""
    fpr, tpr, _ = roc_curve(y_true, p)
    clipped = np.clip(p, 1e-7, 1 - 1e-7)
    return {
        "roc_auc": float(roc_auc_score(y_true, p)),
        "pr_auc": float(average_precision_score(y_true, p)),
        "ks": float(np.max(tpr - fpr)),
        "brier": float(brier_score_loss(y_true, p)),
        "f1": float(f1_score(y_true, p >= threshold)),
        "log_loss": float(log_loss(y_true, clipped, labels=[0, 1])),
    }


def evaluate(model: TrainedEnsemble, x: pd.DataFrame, y: np.ndarray) -> dict[str, dict[str, float]]:
    """Metrics for the ensemble and for each member on the same rows."""
    prediction = model.predict(x)
    out = {"ensemble": classification_metrics(y, prediction["risk_probability"].to_numpy(), model.threshold)}
    for name in model.members:
        out[name] = classification_metrics(y, prediction[f"member_{name}"].to_numpy(), model.threshold)
    return out


def account_split(wallets: pd.Index, labels: np.ndarray, holdout_fraction: float) -> np.ndarray:
    """Boolean holdout mask by account, stratified by label and fixed per wallet.

    Each wallet's side comes from a hash of its address ranked within its class, so one account is
    never on both sides, the risky share is the same on both, and a wallet keeps its side across
    retrains (champion and challenger are compared on the same accounts). Not a split by time: in
    public fraud sets the classes were often collected in different periods, and a time split would
    put one class in the holdout.
    """
    digest = pd.util.hash_pandas_object(pd.Series(np.asarray(wallets, dtype=object)), index=False).to_numpy()
    frame = pd.DataFrame({"label": np.asarray(labels), "digest": digest})
    rank = frame.groupby("label")["digest"].rank(method="first", pct=True).to_numpy()
    return rank <= holdout_fraction
