"""What the batch assets run on a cluster: features, scores and training features per partition.

Each job writes its per-wallet table as one Parquet part per partition into `<table>.parquet/`, the
folder form of the single file the local engine writes (pandas and pyarrow read both the same way).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import pandas as pd
from distributed import Client

from defi_scoring.core.cross_wallet import CrossWalletSignals
from defi_scoring.core.features import reference_features
from defi_scoring.core.model_features import model_features
from defi_scoring.core.scoring_config import ScoringConfig
from defi_scoring.core.wallet_scoring import ModelFn
from defi_scoring.distributed.engine import PartitionedBatches, map_partitions
from defi_scoring.feature_updates import with_as_of
from defi_scoring.score_store import shared_store
from defi_scoring.service.scoring_service import ScoringService


def fresh_table_dir(path: Path) -> Path:
    """An empty `<table>.parquet/` folder, replacing the file or folder of an earlier run."""
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()
    path.mkdir(parents=True)
    return path


def _part(out_dir: str, index: int) -> Path:
    return Path(out_dir) / f"part-{index:05d}.parquet"


def _features_part(
    index: int, transactions: pd.DataFrame, _: CrossWalletSignals, as_of: int | None, out_dir: str
) -> tuple[int, int]:
    if transactions.empty:
        return 0, 0
    features = with_as_of(reference_features(transactions, as_of), as_of)
    features.to_parquet(_part(out_dir, index))
    return len(features), len(transactions)


def features_on_cluster(
    client: Client, batches: PartitionedBatches, as_of: int | None, out_dir: Path
) -> tuple[int, int]:
    """The reference features (CONTRACTS.md §4; no cross-wallet input) of every wallet.
    Returns (wallets, distinct transactions)."""
    fresh_table_dir(out_dir)
    counts = map_partitions(client, batches, partial(_features_part, as_of=as_of, out_dir=str(out_dir)))
    return sum(c[0] for c in counts), sum(c[1] for c in counts)


@dataclass
class PartitionScores:
    wallets: int
    model_version: str | None
    model_note: str
    factor_errors: dict[str, str]


def _append_part(index: int, transactions: pd.DataFrame, _: CrossWalletSignals, store_url: str, config) -> int:
    """Phase 1: the partition's transactions appended to the stored histories and population index."""
    if transactions.empty:
        return 0
    return len(ScoringService(shared_store(store_url), config).append(transactions))


def _score_part(
    index: int,
    transactions: pd.DataFrame,
    _: CrossWalletSignals,
    as_of: int | None,
    config: ScoringConfig,
    model: ModelFn | None,
    out_dir: str,
    store_url: str,
    run_id: str,
) -> PartitionScores:
    """Phase 2: the partition's wallets scored on their stored histories against the stored population
    (every partition appended in phase 1), their messages recorded, their table part written."""
    if transactions.empty:
        return PartitionScores(0, None, "no transactions", {})
    wallets = pd.unique(transactions["wallet"].astype(object).to_numpy()).tolist()
    service = ScoringService(shared_store(store_url), config, model)
    scores, _messages = service.score_stored(wallets, source="batch", run_id=run_id, as_of=as_of)
    scores.table.to_parquet(_part(out_dir, index))
    return PartitionScores(len(scores.table), scores.model_version, scores.model_note, scores.factor_errors)


def score_on_cluster(
    client: Client,
    batches: PartitionedBatches,
    as_of: int | None,
    config: ScoringConfig,
    model: ModelFn | None,
    out_dir: Path,
    store_url: str,
    run_id: str = "",
) -> list[PartitionScores]:
    """Score every wallet through the scoring service, as the local asset does, in two phases: every
    partition appends its transactions to the store, then every partition scores its wallets on their
    stored histories against the stored population (the `scored_wallets` table, parts per partition;
    each partition's success messages recorded in the store)."""
    fresh_table_dir(out_dir)
    map_partitions(client, batches, partial(_append_part, store_url=store_url, config=config))
    job = partial(
        _score_part, as_of=as_of, config=config, model=model, out_dir=str(out_dir), store_url=store_url, run_id=run_id
    )
    return map_partitions(client, batches, job)


def _labelled_features(
    index: int, transactions: pd.DataFrame, signals: CrossWalletSignals, as_of: int, labels: pd.Series
) -> pd.DataFrame:
    if transactions.empty:
        return pd.DataFrame()
    features = model_features(transactions, as_of, peers=signals.peers)
    return features.join(labels, how="inner")


def training_features_on_cluster(
    client: Client, batches: PartitionedBatches, as_of: int, labels: pd.Series, config: ScoringConfig
) -> pd.DataFrame:
    """Model features of the labelled wallets (population-wide peers included), gathered."""
    parts = map_partitions(client, batches, partial(_labelled_features, as_of=as_of, labels=labels), config.patterns)
    parts = [p for p in parts if len(p)]
    return pd.concat(parts) if parts else pd.DataFrame()
