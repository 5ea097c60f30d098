import dagster as dg

# One partition per ingested batch: a landing file (sensor or CLI), later a Kafka offset range.
transaction_batch_partitions = dg.DynamicPartitionsDefinition(name="transaction_batches")
