"""`wallet_features` and `reference_scores`: per-wallet tables over every landed batch."""


import time

import dagster as dg
import pandas as pd

from defi_scoring.assets.ingestion import transaction_batches
from defi_scoring.core.features import reference_features
from defi_scoring.core.reference_score import reference_scores as compute_reference_scores
from defi_scoring.core.summary import describe, distribution_markdown, extremes, tag_counts
from defi_scoring.resources.data_home import DataHomeResource


class FeaturesConfig(dg.Config):
    as_of: int | None = None
    """Unix seconds the features are computed at (holding times run to it); default: run start."""


@dg.asset(
    deps=[transaction_batches],
    group_name="scoring",
    kinds={"python", "parquet"},
    automation_condition=dg.AutomationCondition.eager(),
    description="Reference features (CONTRACTS.md §4) of every wallet over all its distinct transactions.",
)
def wallet_features(
    context: dg.AssetExecutionContext, config: FeaturesConfig, data_home: DataHomeResource
) -> dg.MaterializeResult:
    as_of = config.as_of if config.as_of is not None else int(time.time())
    transactions = data_home.read_all_transactions()
    if transactions.empty:
        raise dg.Failure(description="No transaction batches have been materialised yet.",
                         metadata={"hint": "Materialise `transaction_batches` first (defi-scoring land FILE)."})
    features = reference_features(transactions, as_of).assign(as_of=as_of)
    path = data_home.write_table("wallet_features", features)
    context.log.info("features for %d wallets from %d transactions", len(features), len(transactions))
    return dg.MaterializeResult(
        metadata={
            "wallets": dg.MetadataValue.int(len(features)),
            "transactions": dg.MetadataValue.int(len(transactions)),
            "batches": dg.MetadataValue.int(int(transactions["batch_key"].nunique())),
            "as_of": dg.MetadataValue.timestamp(float(as_of)),
            "path": dg.MetadataValue.path(str(path)),
        }
    )


@dg.asset(
    deps=[wallet_features],
    group_name="scoring",
    kinds={"python", "parquet"},
    automation_condition=dg.AutomationCondition.eager(),
    description="Reference LP score, swap score, zscore and tags per wallet (CONTRACTS.md §4).",
)
def reference_scores(data_home: DataHomeResource) -> dg.MaterializeResult:
    features = data_home.read_table("wallet_features")
    scores = compute_reference_scores(features).assign(as_of=features["as_of"])
    path = data_home.write_table("reference_scores", scores)
    top, bottom = extremes(scores)
    tags = tag_counts(scores)
    stats = describe(scores)
    return dg.MaterializeResult(
        metadata={
            **{k: dg.MetadataValue.float(float(v)) for k, v in stats.items() if k != "wallets"},
            "wallets": dg.MetadataValue.int(stats["wallets"]),
            "zscore_distribution": dg.MetadataValue.md(distribution_markdown(scores)),
            "tags": dg.MetadataValue.md(pd.DataFrame({"wallets": tags}).to_markdown()),
            "top_wallets": dg.MetadataValue.md(top.round(2).to_markdown()),
            "bottom_wallets": dg.MetadataValue.md(bottom.round(2).to_markdown()),
            "path": dg.MetadataValue.path(str(path)),
        }
    )
