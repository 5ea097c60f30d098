import dagster as dg

# One partition per ingested batch: a landing file (sensor or CLI). Kafka ranges have their own below.
transaction_batch_partitions = dg.DynamicPartitionsDefinition(name="transaction_batches")

kafka_offset_ranges = dg.DynamicPartitionsDefinition(name="kafka_offset_ranges")
"""One partition per Kafka offset range the sensor saw: `{topic}.{partition}.{start}-{end}`."""
