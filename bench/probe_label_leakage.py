"""Why the models do not read who a wallet dealt with: the collection artifact of the real labelled set.

Usage: python bench/probe_label_leakage.py [--data DIR] [--folds 5]   (prints one JSON line, ~2 min)

On the shared training accounts (README "Real data"), 5-fold cross-validation by account of one
LightGBM member of ensemble.yaml on the product's 122 behavioural features, then with label-derived
features added, each computed inside the folds from the training fold's labels only (the validation
fold never sees its own labels; training rows get theirs from inner folds):
- counterparty labels: per wallet, the mean/max smoothed risky rate of the labelled wallets that share
  each of its counterparties, and the share of its counterparties any labelled wallet touched;
- token labels: the same over the token contracts it moved;
- direct links: the share of its transfers with a labelled risky (or normal) training account.
Also printed: how many accounts of each class deal directly with another labelled account, and the
classes' median years. Counterparty labels lift F1 far past 0.95 while direct links to *risky*
accounts add nothing: the lift comes from the normal accounts having been collected as one
neighbourhood of each other in one period, not from exposure to fraud.
"""

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
from lightgbm import LGBMClassifier
from sklearn.metrics import f1_score, roc_auc_score
from sklearn.model_selection import StratifiedKFold

from defi_scoring.core.ensemble_config import load_ensemble_config
from defi_scoring.core.model_features import MODEL_FEATURES, finite_features, model_features
from defi_scoring.core.normalise import normalise_messages
from defi_scoring.core.training import load_labels

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "eltontay-train"


def _pairs(transactions: pd.DataFrame, column: str) -> pd.DataFrame:
    pairs = transactions[["wallet", column]].astype(str).drop_duplicates()
    pairs.columns = ["wallet", "key"]
    return pairs


def _encode(pairs: pd.DataFrame, labels: pd.Series, fit: np.ndarray, apply: np.ndarray) -> np.ndarray:
    """Per wallet of `apply`: mean and max smoothed risky rate of its keys, share of known keys."""
    fitted = pairs[pairs["wallet"].isin(fit)]
    fitted = fitted.assign(y=labels.reindex(fitted["wallet"]).to_numpy())
    rates = fitted.groupby("key")["y"].agg(["sum", "count"])
    prior = float(labels.reindex(fit).mean())
    used = pairs[pairs["wallet"].isin(apply)].join(rates, on="key").fillna({"sum": 0.0, "count": 0.0})
    used = used.assign(rate=(used["sum"] + 2 * prior) / (used["count"] + 2), known=used["count"] > 0)
    grouped = used.groupby("wallet").agg(mean=("rate", "mean"), max=("rate", "max"), known=("known", "mean"))
    return grouped.reindex(apply).fillna(-1).to_numpy(np.float32)


def _encode_oof(pairs, labels, fit, apply, seed) -> np.ndarray:
    """Training rows get their encoding from inner folds (never from their own label)."""
    if apply is not fit:
        return _encode(pairs, labels, fit, apply)
    out = np.zeros((len(fit), 3), np.float32)
    for a, b in StratifiedKFold(5, shuffle=True, random_state=seed).split(fit, labels.reindex(fit)):
        out[b] = _encode(pairs, labels, fit[a], fit[b])
    return out


def _direct(transactions: pd.DataFrame, listed: set, apply: np.ndarray) -> np.ndarray:
    hit = transactions["counterparty"].astype(str).isin(listed)
    share = hit.groupby(transactions["wallet"].astype(str)).mean()
    return share.reindex(apply).fillna(0).to_numpy(np.float32)[:, None]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--cache", type=Path, default=Path(".defi_scoring/real/messages.jsonl"))
    parser.add_argument("--folds", type=int, default=5)
    args = parser.parse_args()
    if not args.cache.exists():
        raise SystemExit(f"{args.cache} does not exist: run bench/bench_real.py first (it converts the folder)")
    transactions = normalise_messages(args.cache.read_bytes().splitlines()).transactions
    labels = load_labels([args.data / "labels.csv"])
    features = model_features(transactions, int(transactions["timestamp"].max())).join(labels, how="inner")
    wallets = features.index.to_numpy().astype(str)
    x, y = finite_features(features[MODEL_FEATURES]).to_numpy(np.float32), features["is_risky"].to_numpy()
    labels = pd.Series(y, index=wallets)
    params = next(m for m in load_ensemble_config().classifiers if m.kind == "lightgbm").params
    counterparties, tokens = _pairs(transactions, "counterparty"), _pairs(transactions, "token_address")

    variants = {
        "behaviour only": lambda fit, apply, seed: np.zeros((len(apply), 0), np.float32),
        "+ counterparty labels": lambda fit, apply, seed: _encode_oof(counterparties, labels, fit, apply, seed),
        "+ token labels": lambda fit, apply, seed: _encode_oof(tokens, labels, fit, apply, seed),
        "+ direct links to risky accounts": lambda fit, apply, seed: _direct(
            transactions, set(fit[labels.reindex(fit).to_numpy() == 1]), apply
        ),
        "+ direct links to normal accounts": lambda fit, apply, seed: _direct(
            transactions, set(fit[labels.reindex(fit).to_numpy() == 0]), apply
        ),
    }
    results = {}
    for name, extra in variants.items():
        p = np.zeros(len(y))
        for a, b in StratifiedKFold(args.folds, shuffle=True, random_state=0).split(x, y):
            fit = wallets[a]
            x_fit = np.hstack([x[a], extra(fit, fit, 1)])
            x_val = np.hstack([x[b], extra(fit, wallets[b], 1)])
            p[b] = LGBMClassifier(**params).fit(x_fit, y[a]).predict_proba(x_val)[:, 1]
        results[name] = {"roc_auc": round(roc_auc_score(y, p), 4), "f1": round(f1_score(y, p >= 0.5), 4)}

    linked = _direct(transactions, set(wallets), wallets)[:, 0] > 0
    median_year = pd.to_datetime(transactions.groupby("wallet", observed=True)["timestamp"].median(), unit="s").dt.year
    years = median_year.reindex(wallets).to_numpy()
    print(
        json.dumps(
            {
                "accounts": len(y),
                "risky": int(y.sum()),
                "cv_folds": args.folds,
                "lightgbm_oof": results,
                "normal_accounts_dealing_with_another_labelled_account": round(float(linked[y == 0].mean()), 3),
                "risky_accounts_dealing_with_another_labelled_account": round(float(linked[y == 1].mean()), 3),
                "median_year_normal": int(np.median(years[y == 0])),
                "median_year_risky": int(np.median(years[y == 1])),
            }
        )
    )


if __name__ == "__main__":
    main()
