"""Landing-folder sensor: every new JSONL file becomes a `transaction_batches` partition and a run."""


import dagster as dg

from defi_scoring.assets.partitions import transaction_batch_partitions
from defi_scoring.jobs import ingest_batch_job
from defi_scoring.resources.data_home import DataHomeResource, batch_key_for


@dg.sensor(job=ingest_batch_job, minimum_interval_seconds=15, default_status=dg.DefaultSensorStatus.RUNNING)
def landing_folder_sensor(context: dg.SensorEvaluationContext, data_home: DataHomeResource) -> dg.SensorResult:
    landing = data_home.settings.landing_dir
    landing.mkdir(parents=True, exist_ok=True)
    known = set(context.instance.get_dynamic_partitions(transaction_batch_partitions.name))
    new_keys = []
    for path in sorted(landing.glob("*.jsonl")):
        key = batch_key_for(path)
        if key != path.stem:  # keys must be path-safe: give the file its key's name
            path = path.rename(path.with_name(f"{key}.jsonl"))
        if key not in known:
            new_keys.append(key)
    return dg.SensorResult(
        run_requests=[dg.RunRequest(partition_key=k, run_key=k) for k in new_keys],
        dynamic_partitions_requests=[transaction_batch_partitions.build_add_request(new_keys)] if new_keys else [],
    )
