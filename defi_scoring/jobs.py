import dagster as dg

from defi_scoring.assets.partitions import transaction_batch_partitions

ingest_batch_job = dg.define_asset_job(
    "ingest_batch",
    selection=dg.AssetSelection.assets("transaction_batches"),
    partitions_def=transaction_batch_partitions,
    description="Normalise one landed batch (wallet_features and reference_scores follow by automation).",
)
score_wallets_job = dg.define_asset_job(
    "score_wallets",
    selection=dg.AssetSelection.assets("wallet_features", "reference_scores", "scored_wallets"),
    description="Recompute features, reference scores and hybrid scores over every landed batch.",
)
train_model_job = dg.define_asset_job(
    "train_model",
    selection=dg.AssetSelection.assets("training_set", "ensemble_model", "champion_model"),
    description="Build the training set, train and register a challenger, promote it if it beats the champion.",
)
