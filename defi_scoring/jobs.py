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
    selection=dg.AssetSelection.assets("wallet_features", "reference_scores"),
    description="Recompute features and reference scores over every landed batch.",
)
