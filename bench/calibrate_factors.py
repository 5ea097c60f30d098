"""Fit the anchored transfer factors and the fan-in collector detector on labelled accounts.

Usage: python bench/calibrate_factors.py --input MESSAGES.jsonl --labels labels.csv [--holdout 0.3]

Only the training side of the account split is used (the same split as training). For each anchored
transfer factor: `bad` = median of the risky accounts, `good` = median of the normal ones, weight
∝ |single-feature ROC-AUC − 0.5|. For the collector detector: the smallest sender count and fan-in
ratio whose false-positive rate on normal accounts stays within --max-fpr. Prints the YAML to paste
into models/scoring.yaml (stderr) and one JSON line with the figures (stdout).
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

from defi_scoring.core.ensemble import account_split
from defi_scoring.core.factors import FACTORS
from defi_scoring.core.model_features import model_features
from defi_scoring.core.normalise import normalise_messages
from defi_scoring.core.training import load_labels
from defi_scoring.core.transfer_features import transfer_summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", required=True)
    parser.add_argument("--labels", required=True)
    parser.add_argument("--holdout", type=float, default=0.3)
    parser.add_argument("--max-fpr", type=float, default=0.02)
    args = parser.parse_args()
    batch = normalise_messages(Path(args.input).read_bytes().splitlines())
    features = model_features(batch.transactions, 0)
    table = features.join(transfer_summary(features)).join(load_labels([Path(args.labels)]), how="inner")
    train = table[~account_split(table.index, table["is_risky"].to_numpy(), args.holdout)]
    train = train[train["transfer_count"] > 0]
    y = train["is_risky"].to_numpy()

    anchors, auc = {}, {}
    for name, factor in FACTORS.items():
        metric = factor.compute
        if not factor.anchored or metric.evidence != "transfer_count":
            continue
        x = train[metric.feature].to_numpy(float)
        auc[name] = float(roc_auc_score(y, x))
        anchors[name] = {"bad": round(float(np.median(x[y == 1])), 4), "good": round(float(np.median(x[y == 0])), 4)}
    total = sum(abs(a - 0.5) for a in auc.values())
    weights = {name: round(abs(a - 0.5) / total, 3) for name, a in auc.items()}

    senders, ratio = train["fan_in"].to_numpy(), train["fan_in_out_log_ratio"].to_numpy()
    best = None
    for min_senders in (5, 8, 10, 15, 20, 30, 50):
        for min_ratio in (0.5, 1.0, 1.5, 2.0, 2.5, 3.0):
            hit = (senders >= min_senders) & (ratio >= min_ratio)
            fpr, recall = hit[y == 0].mean(), hit[y == 1].mean()
            if fpr <= args.max_fpr and (best is None or recall > best["recall"]):
                best = {
                    "min_senders": min_senders,
                    "min_fan_ratio": min_ratio,
                    "fpr": round(float(fpr), 4),
                    "recall": round(float(recall), 4),
                }

    source = f"medians of {int((y == 1).sum())} risky / {int((y == 0).sum())} normal labelled accounts"
    print("anchors:", file=sys.stderr)
    for name, anchor in anchors.items():
        print(f'  {name}: {{bad: {anchor["bad"]}, good: {anchor["good"]}, source: "{source}"}}', file=sys.stderr)
    print("weights:", weights, file=sys.stderr)
    print("fan_in_collector:", best, file=sys.stderr)
    print(
        json.dumps(
            {
                "accounts": len(train),
                "single_feature_auc": {k: round(v, 4) for k, v in auc.items()},
                "weights": weights,
                "anchors": anchors,
                "fan_in_collector": best,
            }
        )
    )


if __name__ == "__main__":
    main()
