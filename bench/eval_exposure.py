"""Counterparty exposure on the real labelled accounts (issue 36), reported apart from the model.

Usage: python bench/eval_exposure.py [--data ../shared/data/eltontay-train] [--lists ../shared/data/known-bad]

1. A list is built from the risky accounts of the TRAINING split (core.ensemble.account_split, the
   split training uses, holdout share from ensemble.yaml). Every account is screened against it on the
   accounts' own transfers, with the other labelled accounts as the intermediates whose histories are
   known. The exposure score's ROC-AUC is reported on the accounts NOT in the list (training normals and
   every holdout account; a wallet's own listing never counts: ownership is kept apart), and on the
   holdout alone, with how many accounts have any exposure.
2. The public lists (known_addresses.csv) name many of the same accounts (both come from Etherscan's
   flags): their ownership hits on risky and normal accounts are reported separately, and their
   exposure (own listing excluded) too. Nothing here trains anything.
USD values as the folder's to_messages.py gives them (ETH/WETH at 2,000, USD stablecoins at 1).
Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from defi_scoring.core.ensemble import account_split
from defi_scoring.core.ensemble_config import load_ensemble_config
from defi_scoring.core.exposure import exposure_table
from defi_scoring.core.scoring_config import default_scoring_config

ROOT = Path(__file__).resolve().parents[1]
STABLE = {"USDC", "USDT", "DAI", "BUSD", "TUSD", "USDP"}


def transactions(path: Path) -> pd.DataFrame:
    """transfers.parquet in the normalised columns screening reads."""
    t = pd.read_parquet(path, columns=["wallet", "timestamp", "action", "counterparty", "token_symbol", "amount"])
    symbol = t["token_symbol"].astype(object)
    price = np.where(symbol.isin(["ETH", "WETH"]), 2000.0, np.where(symbol.isin(list(STABLE)), 1.0, 0.0))
    wallet = (
        t["wallet"].cat.rename_categories(lambda s: s.lower())
        if t["wallet"].cat.categories.str.lower().is_unique
        else t["wallet"].astype(str).str.lower()
    )
    parties = t["counterparty"]
    if not parties.cat.categories.str.lower().is_unique:
        parties = parties.astype(object).str.lower().astype("category")
    else:
        parties = parties.cat.rename_categories(lambda s: s.lower())
    return pd.DataFrame(
        {
            "wallet": wallet,
            "timestamp": t["timestamp"].to_numpy(np.int64),
            "action": t["action"],
            "counterparty": parties,
            "amount_usd": t["amount"].fillna(0).to_numpy() * price,
            "token_amount": t["amount"].to_numpy(float),
            "token_a_symbol": t["token_symbol"],
        }
    )


def auc(labels: np.ndarray, scores: np.ndarray) -> float | None:
    return round(float(roc_auc_score(labels, scores)), 4) if len(np.unique(labels)) == 2 else None


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "eltontay-train"))
    parser.add_argument("--lists", default=str(ROOT.parent / "shared" / "data" / "known-bad"))
    args = parser.parse_args()
    data, lists = Path(args.data), Path(args.lists)
    config = default_scoring_config()
    started = time.perf_counter()
    tx = transactions(data / "transfers.parquet")
    labels = pd.read_csv(data / "labels.csv")
    labels["wallet"] = labels["wallet_address"].str.lower()
    labels = labels.set_index("wallet")["is_risky"].astype(int)
    present = pd.Index(pd.unique(tx["wallet"].astype(object)))
    labels = labels[labels.index.isin(present)]
    holdout = account_split(labels.index, labels.to_numpy(), load_ensemble_config().holdout_fraction)
    listed = labels.index[(~holdout) & (labels.to_numpy() == 1)]
    own_list = pd.DataFrame({"address": listed, "category": "phishing", "source": "training-risky", "label": ""})
    t0 = time.perf_counter()
    screened = exposure_table(tx, own_list, config).reindex(labels.index)
    screen_s = time.perf_counter() - t0
    dealing = np.maximum(screened["exposure_direct_score"], screened["exposure_indirect_score"]).to_numpy()
    not_listed = ~labels.index.isin(listed)
    y = labels.to_numpy()
    result = {
        "accounts": len(labels),
        "risky": int(y.sum()),
        "list_from_training_risky": len(listed),
        "evaluated_not_in_list": int(not_listed.sum()),
        "evaluated_risky": int(y[not_listed].sum()),
        "exposure_roc_auc_not_in_list": auc(y[not_listed], dealing[not_listed]),
        "exposure_roc_auc_holdout": auc(y[holdout], dealing[holdout]),
        "any_exposure_not_in_list": int((dealing[not_listed] > 0).sum()),
        "any_exposure_not_in_list_risky": int((dealing[not_listed & (y == 1)] > 0).sum()),
        "any_exposure_not_in_list_normal": int((dealing[not_listed & (y == 0)] > 0).sum()),
        "direct_exposure_not_in_list": int((screened["exposure_direct_score"].to_numpy()[not_listed] > 0).sum()),
        "indirect_only_not_in_list": int(
            (
                (screened["exposure_direct_score"].to_numpy() == 0)
                & (screened["exposure_indirect_score"].to_numpy() > 0)
            )[not_listed].sum()
        ),
        "screening_seconds": round(screen_s, 2),
        "transactions": len(tx),
    }
    public_path = lists / "known_addresses.csv"
    if public_path.exists():
        public = pd.read_csv(public_path, dtype=str, keep_default_na=False)
        risk = public[public["category"] != "benign-context"]
        owned_any = labels.index.isin(set(public["address"]))
        owned_risk = labels.index.isin(set(risk["address"]))
        screened_public = exposure_table(tx, public, config).reindex(labels.index)
        public_dealing = np.maximum(
            screened_public["exposure_direct_score"], screened_public["exposure_indirect_score"]
        ).to_numpy()
        result["public_lists"] = {
            "ownership_risky_accounts": int((owned_risk & (y == 1)).sum()),
            "ownership_normal_accounts": int((owned_risk & (y == 0)).sum()),
            "listed_any_category_risky": int((owned_any & (y == 1)).sum()),
            "listed_any_category_normal": int((owned_any & (y == 0)).sum()),
            "exposure_roc_auc_own_listing_excluded": auc(y, public_dealing),
            "exposure_roc_auc_accounts_not_listed": auc(y[~owned_risk], public_dealing[~owned_risk]),
            "any_exposure": int((public_dealing > 0).sum()),
        }
    result["seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
