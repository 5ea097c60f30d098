"""Hybrid scoring: throughput with patterns and reasons, and detector quality per archetype.

Generates wallets (not timed), normalises them, then times `score_wallet_table` (reference score,
behaviour features, five pattern detectors, factors, dimensions, reasons, alerts). Prints a readable
table per archetype to stderr and one JSON line to stdout.

  python bench/bench_hybrid.py [--wallets 100000] [--seed 42] [--champion]

--champion also trains the ensemble (models/ensemble.yaml) in-process on a separate 20,000-wallet
sample and scores with it, so the ML adjustment and the model reasons (XGBoost/LightGBM contribution
values) are part of the timed path.
"""

import argparse
import json
import resource
import sys
import time

import pandas as pd

from defi_scoring.core.ensemble import train_ensemble
from defi_scoring.core.ensemble_config import load_ensemble_config
from defi_scoring.core.model_features import MODEL_FEATURES, model_features
from defi_scoring.core.model_scoring import ModelScores
from defi_scoring.core.normalise import normalise_messages
from defi_scoring.core.patterns import PATTERNS
from defi_scoring.core.synthetic import (
    DEFAULT_END_TIME,
    OWN_DETECTOR,
    RISKY_ARCHETYPES,
    generate_wallets,
    iter_messages,
)
from defi_scoring.core.wallet_scoring import score_wallet_table


def _labels(data) -> pd.DataFrame:
    wallets = data.wallets
    return wallets.assign(wallet=wallets["wallet_address"].str.lower()).set_index("wallet")


def _champion(seed: int):
    """Train the configured ensemble on a separate sample; return a features → ModelScores function."""
    sample = generate_wallets(20_000, seed=seed + 1000)
    tx = normalise_messages(iter_messages(sample)).transactions
    features = model_features(tx, DEFAULT_END_TIME)
    y = _labels(sample).reindex(features.index)["is_risky"].to_numpy(int)
    model = train_ensemble(load_ensemble_config(), features[MODEL_FEATURES], y)

    def score(behaviour: pd.DataFrame) -> ModelScores:
        x = behaviour[MODEL_FEATURES]
        return ModelScores(model.predict(x), "bench", "in-process ensemble", model.feature_contributions(x))

    return score


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--wallets", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--champion", action="store_true")
    args = parser.parse_args()

    data = generate_wallets(args.wallets, seed=args.seed)
    t0 = time.perf_counter()
    batch = normalise_messages(iter_messages(data))
    t1 = time.perf_counter()
    model = _champion(args.seed) if args.champion else None
    t2 = time.perf_counter()
    scores = score_wallet_table(batch.transactions, DEFAULT_END_TIME, model=model)
    t3 = time.perf_counter()

    table = scores.table.join(_labels(data)[["archetype", "is_risky"]])
    rows = []
    for archetype, group in table.groupby("archetype"):
        row = {
            "archetype": archetype,
            "wallets": len(group),
            "risky": archetype in RISKY_ARCHETYPES,
            "mean_hybrid_score": round(float(group["hybrid_score"].mean()), 2),
            "mean_confidence": round(float(group["confidence"].mean()), 3),
            "any_pattern": round(float((group["patterns_detected"] > 0).mean()), 4),
        }
        for pattern in PATTERNS:
            row[pattern] = round(float(group[f"{pattern}_counted"].mean()), 4)
        if archetype in OWN_DETECTOR:
            row["own_detector_recall"] = row[OWN_DETECTOR[archetype]]
        rows.append(row)
    report = pd.DataFrame(rows).set_index("archetype")
    print(report.drop(columns=["risky"]).to_markdown(), file=sys.stderr)

    benign = table[~table["is_risky"]]
    means = report["mean_hybrid_score"]
    thin = table[table["transaction_count"] < 3]
    print(
        json.dumps(
            {
                "wallets": len(table),
                "transactions": len(batch.transactions),
                "champion": bool(args.champion),
                "seconds_normalise": round(t1 - t0, 3),
                "seconds_train_champion": round(t2 - t1, 3) if args.champion else None,
                "seconds_score": round(t3 - t2, 3),
                "wallets_per_s": round(len(table) / (t3 - t2)),
                "recall": {a: report.loc[a, "own_detector_recall"] for a in OWN_DETECTOR if a in report.index},
                "benign_false_positive_rate": round(float((benign["patterns_detected"] > 0).mean()), 4),
                "benign_fpr_by_archetype": {
                    a: report.loc[a, "any_pattern"] for a in report.index if not report.loc[a, "risky"]
                },
                "min_benign_minus_max_risky_mean_score": round(
                    float(means[~report["risky"]].min() - means[report["risky"]].max()), 2
                ),
                "thin_wallets": len(thin),
                "thin_max_confidence": round(float(thin["confidence"].max()), 3) if len(thin) else None,
                "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            }
        )
    )


if __name__ == "__main__":
    main()
