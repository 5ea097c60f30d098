"""`transaction_batches`: one landed file (JSON lines or a transactions table) → normalised transactions
+ rejected messages."""

from collections.abc import Iterator
from pathlib import Path

import dagster as dg

from defi_scoring.assets.metadata import check_result, frame_table, table_metadata
from defi_scoring.assets.partitions import transaction_batch_partitions
from defi_scoring.batch_files import read_table_file
from defi_scoring.core.data_checks import judge, load_data_checks_config, rejection_rate
from defi_scoring.core.normalise import NormalisedBatch, normalise_tables
from defi_scoring.core.table_decode import TableSchemaError
from defi_scoring.core.transaction_table import is_table_file
from defi_scoring.file_scoring import normalised_chunks
from defi_scoring.landing import landed_file
from defi_scoring.resources.data_home import DataHomeResource


class IngestConfig(dg.Config):
    chunk_mb: int = 64
    """The landing file is normalised this many MB of lines at a time (one Parquet row group each), so a
    file of any size is ingested in bounded memory. A transaction resent in a later chunk is stored
    again and dropped when the batches are read (counted in `duplicate_transactions` only within a chunk).
    A transactions table is read a record batch at a time and normalised as one batch (a wallet's rows
    may be in any row group), so only its normalised rows are held whole."""


def _normalised(source: Path, chunk_bytes: int) -> Iterator[tuple[int, NormalisedBatch]]:
    """(index of the first message, normalised batch) per piece of the landed file: chunks of JSON lines,
    or the whole table (message indices are then wallets in order of first appearance)."""
    if is_table_file(source):
        yield 0, normalise_tables(read_table_file(source))
    else:
        yield from normalised_chunks(source, chunk_bytes, skip_blank=True)


@dg.asset(
    partitions_def=transaction_batch_partitions,
    group_name="ingestion",
    kinds={"python", "parquet"},
    description="Normalised transactions of one landed batch (JSON lines or a transactions table; every protocol "
    "type, deduplicated by wallet and document_id) plus the messages rejected with their reasons.",
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
    source = landed_file(data_home.settings.landing_dir, key)
    if not source.exists():
        raise dg.Failure(
            description=f"Landing file {source} not found for batch {key!r}.",
            metadata={"hint": "Land it with `defi-scoring land FILE` or copy it into the landing folder."},
        )
    writer = data_home.batch_writer(key)
    try:
        for offset, batch in _normalised(source, max(config.chunk_mb, 1) << 20):
            writer.add(batch, offset)
            context.log.info("normalised %d messages", offset + batch.message_count)
    except TableSchemaError as error:
        raise dg.Failure(
            description=f"Landing file {source.name} of batch {key!r} is not a transactions table: {error}",
            metadata={"hint": "The columns a table needs are in the README, 'Columnar input'."},
        ) from None
    rejections, counts, out = writer.close(), writer.counts, data_home.batch_dir(key)
    number = "wallet" if is_table_file(source) else "line"  # what a message index counts in this file
    sample = rejections.head(10).assign(error=lambda f: f["error"].astype(str).str[:200])
    sample[number] = sample["message_index"] + 1
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
            "rejected_sample": frame_table(sample[[number, "wallet_address", "error"]]),
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
