"""Ensemble training and inference speed on generated wallets. Prints one JSON line.

Usage: python bench/bench_train.py [--wallets N]   (generation and feature building are not timed)
"""

import json
import resource
import time

from _common import generated_lines  # bench/ helper (scripts run from this folder)

from defi_scoring.core.ensemble import evaluate, train_ensemble
from defi_scoring.core.ensemble_config import load_ensemble_config
from defi_scoring.core.normalise import normalise_messages
from defi_scoring.core.synthetic import DEFAULT_END_TIME
from defi_scoring.core.training import build_training_set, split_xy


def main() -> None:
    data, lines = generated_lines(__doc__)
    batch = normalise_messages(lines)
    labels = data.wallets.set_index(data.wallets["wallet_address"].str.lower())["is_risky"].astype(int)
    config = load_ensemble_config()
    t0 = time.perf_counter()
    frame = build_training_set(batch.transactions, labels, DEFAULT_END_TIME, config.holdout_fraction)
    features_seconds = time.perf_counter() - t0
    x_train, y_train = split_xy(frame, holdout=False)
    x_hold, y_hold = split_xy(frame, holdout=True)
    t1 = time.perf_counter()
    model = train_ensemble(config, x_train, y_train)
    train_seconds = time.perf_counter() - t1
    x_all = frame[x_train.columns]
    t2 = time.perf_counter()
    model.predict(x_all)
    inference_seconds = time.perf_counter() - t2
    metrics = evaluate(model, x_hold, y_hold)
    print(
        json.dumps(
            {
                "wallets": len(frame),
                "train_wallets": len(x_train),
                "features_seconds": round(features_seconds, 2),
                "train_seconds": round(train_seconds, 2),
                "member_train_seconds": {k: round(v, 2) for k, v in model.train_seconds.items()},
                "inference_wallets_per_s": round(len(x_all) / inference_seconds),
                "holdout_roc_auc": {k: round(v["roc_auc"], 5) for k, v in metrics.items()},
                "holdout_metrics": {k: {m: round(x, 4) for m, x in v.items()} for k, v in metrics.items()},
                "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            }
        )
    )


if __name__ == "__main__":
    main()
