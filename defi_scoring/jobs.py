import dagster as dg

from defi_scoring.assets.freshness import champion_is_fresh, scored_wallets_is_fresh
from defi_scoring.assets.partitions import kafka_offset_ranges, transaction_batch_partitions

ingest_batch_job = dg.define_asset_job(
    "ingest_batch",
    selection=dg.AssetSelection.assets("transaction_batches"),
    partitions_def=transaction_batch_partitions,
    description="Normalise one landed batch (wallet_features, reference_scores and scored_wallets follow by "
    "automation).",
)
score_wallets_job = dg.define_asset_job(
    "score_wallets",
    selection=dg.AssetSelection.assets("wallet_features", "reference_scores", "scored_wallets"),
    description="Recompute features and reference scores over every landed batch, and score every landed "
    "wallet through the scoring service (checked against the reference scores).",
)
train_model_job = dg.define_asset_job(
    "train_model",
    selection=dg.AssetSelection.assets("training_set", "ensemble_model", "champion_model", "model_evaluation"),
    description="Build the training set, train and register a challenger, promote it if it beats the champion, "
    "evaluate the champion on the labelled wallets it was not trained on.",
    tags={"dagster/max_retries": "0"},  # a losing challenger fails the run on purpose: no retry
)
kafka_scoring_job = dg.define_asset_job(
    "kafka_scoring",
    selection=dg.AssetSelection.assets("kafka_scored_ranges"),
    partitions_def=kafka_offset_ranges,
    executor_def=dg.in_process_executor,  # one step: skip the per-step subprocess for latency
    description="Score one Kafka offset range and publish the results (launched by kafka_scoring_sensor).",
)
data_freshness_job = dg.define_asset_job(
    "data_freshness",
    selection=dg.AssetSelection.checks(scored_wallets_is_fresh, champion_is_fresh),
    description="Evaluate the freshness checks of scored_wallets and the champion (no materialisation).",
)
