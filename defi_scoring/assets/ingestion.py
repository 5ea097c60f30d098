"""`transaction_batches`: one landed JSONL file → normalised transactions + rejected messages."""


import dagster as dg

from defi_scoring.assets.partitions import transaction_batch_partitions
from defi_scoring.core.normalise import normalise_messages
from defi_scoring.resources.data_home import DataHomeResource


@dg.asset(
    partitions_def=transaction_batch_partitions,
    group_name="ingestion",
    kinds={"python", "parquet"},
    description="Normalised DEX transactions of one landed batch (deduplicated by wallet and "
    "document_id) plus the messages rejected with their reasons.",
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
    sample = rejections.head(10)
    table = "\n".join(
        ["| line | wallet | error |", "|---:|---|---|"]
        + [f"| {r.message_index + 1} | `{r.wallet_address}` | {r.error[:200]} |" for r in sample.itertuples()]
    )
    return dg.MaterializeResult(
        metadata={
            **{k: dg.MetadataValue.int(v) for k, v in batch.counts.items()},
            "wallets": dg.MetadataValue.int(int(batch.transactions["wallet"].nunique())),
            "path": dg.MetadataValue.path(str(out)),
            "rejected_sample": dg.MetadataValue.md(table if len(sample) else "no rejected messages"),
        }
    )
