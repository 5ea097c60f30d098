"""The models on the real labelled accounts (../shared/data/eltontay-train). Prints one JSON line.

Usage: python bench/bench_real.py [--data DIR] [--holdout 0.3] [--rounds 500]

Messages are made by the data folder's own `to_messages.py` (cached next to the data home), then go
through the product's path: normalise → model features → account split (stratified, fixed per
wallet) → ensemble from ensemble.yaml → holdout metrics with bootstrap 95% intervals → every
wallet scored with the hybrid score and the trained ensemble. No feature reads absolute time.
"""

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

from defi_scoring.core.ensemble import train_ensemble
from defi_scoring.core.ensemble_config import load_ensemble_config
from defi_scoring.core.evaluation import bootstrap_metrics, point_metrics
from defi_scoring.core.model_scoring import ModelScores
from defi_scoring.core.normalise import normalise_messages
from defi_scoring.core.training import build_training_set, load_labels, split_xy
from defi_scoring.core.wallet_scoring import score_wallet_table

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "eltontay-train"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--holdout", type=float, default=None, help="[default: holdout_fraction of ensemble.yaml]")
    parser.add_argument("--rounds", type=int, default=500)
    parser.add_argument("--cache", type=Path, default=Path(".defi_scoring/real/messages.jsonl"))
    args = parser.parse_args()
    if not args.cache.exists():
        args.cache.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [sys.executable, str(args.data / "to_messages.py"), str(args.data / "transfers.parquet"), str(args.cache)],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    lines = args.cache.read_bytes().splitlines()
    labels = load_labels([args.data / "labels.csv"])
    config = load_ensemble_config()
    holdout_fraction = args.holdout or config.holdout_fraction

    t0 = time.perf_counter()
    batch = normalise_messages(lines)
    t1 = time.perf_counter()
    as_of = int(batch.transactions["timestamp"].max())
    frame = build_training_set(batch.transactions, labels, as_of, holdout_fraction)
    t2 = time.perf_counter()
    x_train, y_train = split_xy(frame, holdout=False)
    x_hold, y_hold = split_xy(frame, holdout=True)
    model = train_ensemble(config, x_train, y_train)
    t3 = time.perf_counter()

    def champion(features):
        return ModelScores(
            model.predict(features), "bench", "trained in this bench", model.feature_contributions(features)
        )

    scored = score_wallet_table(batch.transactions, as_of, model=champion).table
    t4 = time.perf_counter()
    p = model.predict(x_hold)["risk_probability"].to_numpy()
    metrics = bootstrap_metrics(y_hold, p, config.decision_threshold, rounds=args.rounds)
    members = {
        name: round(
            point_metrics(y_hold, model.member_probabilities(x_hold)[name].to_numpy(), config.decision_threshold)[
                "roc_auc"
            ],
            4,
        )
        for name in model.members
    }
    hold = scored.loc[x_hold.index]
    hybrid = hold["hybrid_score"].to_numpy()
    base = hold["base_score"].to_numpy()
    risky = y_hold == 1
    print(
        json.dumps(
            {
                "transfers": len(batch.transactions),
                "wallets": len(scored),
                "messages": batch.message_count,
                "train_wallets": len(x_train),
                "holdout_wallets": len(x_hold),
                "holdout_risky": int(risky.sum()),
                "features": len(model.feature_names),
                **{f"ensemble_{k}": round(v["value"], 4) for k, v in metrics.items()},
                **{f"ensemble_{k}_95ci": [round(v["low"], 4), round(v["high"], 4)] for k, v in metrics.items()},
                "member_roc_auc": members,
                "hybrid_roc_auc_100_minus_score": round(point_metrics(y_hold, (100 - hybrid) / 100, 0.5)["roc_auc"], 4),
                "hybrid_mean_risky": round(float(hybrid[risky].mean()), 2),
                "hybrid_mean_normal": round(float(hybrid[~risky].mean()), 2),
                "base_score_roc_auc_100_minus_score": round(
                    point_metrics(y_hold, (100 - base) / 100, 0.5)["roc_auc"], 4
                ),
                "fan_in_collector_recall": round(float(hold["fan_in_collector_counted"].to_numpy()[risky].mean()), 4),
                "fan_in_collector_fpr": round(float(hold["fan_in_collector_counted"].to_numpy()[~risky].mean()), 4),
                "normalise_seconds": round(t1 - t0, 2),
                "features_seconds": round(t2 - t1, 2),
                "train_seconds": round(t3 - t2, 2),
                "score_all_seconds": round(t4 - t3, 2),
                "train_member_seconds": {k: round(v, 2) for k, v in model.train_seconds.items()},
                "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            }
        )
    )


if __name__ == "__main__":
    main()
