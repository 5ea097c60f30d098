"""`transaction_batches`: one landed JSONL file → normalised transactions + rejected messages."""

import dagster as dg

from defi_scoring.assets.metadata import check_result, frame_table, table_metadata
from defi_scoring.assets.partitions import transaction_batch_partitions
from defi_scoring.core.data_checks import judge, load_data_checks_config, rejection_rate
from defi_scoring.core.normalise import normalise_messages
from defi_scoring.resources.data_home import DataHomeResource


@dg.asset(
    partitions_def=transaction_batch_partitions,
    group_name="ingestion",
    kinds={"python", "parquet"},
    description="Normalised transactions of one landed batch (every protocol type, deduplicated by wallet and "
    "document_id) plus the messages rejected with their reasons.",
    check_specs=[
        dg.AssetCheckSpec(
            "rejection_rate",
            asset="transaction_batches",
            description="Share of the batch's messages rejected, against data_checks.yaml (warn / error).",
        )
    ],
)
def transaction_batches(context: dg.AssetExecutionContext, data_home: DataHomeResource) -> dg.MaterializeResult:
    key = context.partition_key
    source = data_home.landing_file(key)
    if not source.exists():
        raise dg.Failure(
            description=f"Landing file {source} not found for batch {key!r}.",
            metadata={"hint": "Land it with `defi-scoring land FILE` or copy it into the landing folder."},
        )
    with open(source, "rb") as handle:
        batch = normalise_messages(line.rstrip(b"\r\n") for line in handle if line.strip())
    rejections = batch.rejections_frame()
    out = data_home.write_batch(key, batch.transactions, rejections)
    sample = rejections.head(10).assign(
        line=lambda f: f["message_index"] + 1, error=lambda f: f["error"].astype(str).str[:200]
    )
    limits = load_data_checks_config().rejection_rate
    rate = rejection_rate(batch.counts["messages"], batch.counts["rejected_messages"])
    verdict = judge("rejection rate", rate, limits)
    return dg.MaterializeResult(
        metadata={
            **table_metadata(batch.transactions),
            **{k: dg.MetadataValue.int(v) for k, v in batch.counts.items()},
            "wallets": dg.MetadataValue.int(int(batch.transactions["wallet"].nunique())),
            "rejection_rate": dg.MetadataValue.float(rate),
            "path": dg.MetadataValue.path(str(out)),
            "rejected_sample": frame_table(sample[["line", "wallet_address", "error"]]),
        },
        check_results=[
            check_result(
                "rejection_rate",
                verdict,
                messages=batch.counts["messages"],
                rejected=batch.counts["rejected_messages"],
                warn=limits.warn,
                error=limits.error,
            )
        ],
    )
