"""`transaction_batches`: one landed JSONL file → normalised transactions + rejected messages."""

import dagster as dg

from defi_scoring.assets.metadata import check_result, frame_table, table_metadata
from defi_scoring.assets.partitions import transaction_batch_partitions
from defi_scoring.core.data_checks import judge, load_data_checks_config, rejection_rate
from defi_scoring.file_scoring import normalised_chunks
from defi_scoring.resources.data_home import DataHomeResource


class IngestConfig(dg.Config):
    chunk_mb: int = 64
    """The landing file is normalised this many MB of lines at a time (one Parquet row group each), so a
    file of any size is ingested in bounded memory. A transaction resent in a later chunk is stored
    again and dropped when the batches are read (counted in `duplicate_transactions` only within a chunk)."""


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
def transaction_batches(
    context: dg.AssetExecutionContext, config: IngestConfig, data_home: DataHomeResource
) -> dg.MaterializeResult:
    key = context.partition_key
    source = data_home.landing_file(key)
    if not source.exists():
        raise dg.Failure(
            description=f"Landing file {source} not found for batch {key!r}.",
            metadata={"hint": "Land it with `defi-scoring land FILE` or copy it into the landing folder."},
        )
    writer = data_home.batch_writer(key)
    for offset, batch in normalised_chunks(source, max(config.chunk_mb, 1) << 20, skip_blank=True):
        writer.add(batch, offset)
        context.log.info("normalised %d messages", offset + batch.message_count)
    rejections, counts, out = writer.close(), writer.counts, data_home.batch_dir(key)
    sample = rejections.head(10).assign(
        line=lambda f: f["message_index"] + 1, error=lambda f: f["error"].astype(str).str[:200]
    )
    limits = load_data_checks_config().rejection_rate
    rate = rejection_rate(counts["messages"], counts["rejected_messages"])
    verdict = judge("rejection rate", rate, limits)
    return dg.MaterializeResult(
        metadata={
            **table_metadata(writer.columns),
            "dagster/row_count": dg.MetadataValue.int(counts["transactions"]),
            **{k: dg.MetadataValue.int(v) for k, v in counts.items()},
            "wallets": dg.MetadataValue.int(len(writer.wallets)),
            "rejection_rate": dg.MetadataValue.float(rate),
            "path": dg.MetadataValue.path(str(out)),
            "rejected_sample": frame_table(sample[["line", "wallet_address", "error"]]),
        },
        check_results=[
            check_result(
                "rejection_rate",
                verdict,
                messages=counts["messages"],
                rejected=counts["rejected_messages"],
                warn=limits.warn,
                error=limits.error,
            )
        ],
    )
