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
from defi_scoring.core.success_messages import encode_success_messages
from defi_scoring.core.wallet_scoring import ModelFn, score_wallet_table
from defi_scoring.distributed.engine import PartitionedBatches, map_partitions
from defi_scoring.score_store import shared_store


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
    index: int, transactions: pd.DataFrame, _: CrossWalletSignals, as_of: int, out_dir: str
) -> tuple[int, int]:
    if transactions.empty:
        return 0, 0
    features = reference_features(transactions, as_of).assign(as_of=as_of)
    features.to_parquet(_part(out_dir, index))
    return len(features), len(transactions)


def features_on_cluster(client: Client, batches: PartitionedBatches, as_of: int, out_dir: Path) -> tuple[int, int]:
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


def _previous_scores(path: str | None, wallets: pd.Index) -> pd.Series | None:
    if not path or not Path(path).exists():
        return None
    previous = pd.read_parquet(path, columns=["hybrid_score"])["hybrid_score"]
    return previous[previous.index.isin(wallets)]


def _score_part(
    index: int,
    transactions: pd.DataFrame,
    signals: CrossWalletSignals,
    as_of: int,
    config: ScoringConfig,
    model: ModelFn | None,
    out_dir: str,
    previous_path: str | None,
    store_url: str | None,
    run_id: str,
) -> PartitionScores:
    if transactions.empty:
        return PartitionScores(0, None, "no transactions", {})
    wallets = pd.Index(pd.unique(transactions["wallet"].astype(object)))
    scores = score_wallet_table(transactions, as_of, config, model, _previous_scores(previous_path, wallets), signals)
    scores.table.assign(as_of=as_of).to_parquet(_part(out_dir, index))
    if store_url:
        messages = encode_success_messages(scores.table, scores.table.index.tolist(), scores, as_of, 0)
        shared_store(store_url).record_messages(messages.summaries, run_id, "batch", encoded=messages.values)
    return PartitionScores(len(scores.table), scores.model_version, scores.model_note, scores.factor_errors)


def score_on_cluster(
    client: Client,
    batches: PartitionedBatches,
    as_of: int,
    config: ScoringConfig,
    model: ModelFn | None,
    out_dir: Path,
    previous_path: Path | None = None,
    store_url: str | None = None,
    run_id: str = "",
) -> list[PartitionScores]:
    """Score every wallet (the `scored_wallets` table, parts per partition); with `store_url` each
    partition also writes its wallets' success messages to the score store, as the local asset does."""
    fresh_table_dir(out_dir)
    job = partial(
        _score_part,
        as_of=as_of,
        config=config,
        model=model,
        out_dir=str(out_dir),
        previous_path=str(previous_path) if previous_path else None,
        store_url=store_url,
        run_id=run_id,
    )
    return map_partitions(client, batches, job, config.patterns)


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
