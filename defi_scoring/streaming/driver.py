"""Drive the Kafka sensor and its runs in this process, as the Dagster daemon would.

Used by `defi-scoring demo` and `bench/bench_stream.py`: evaluate `kafka_scoring_sensor` with the
instance's cursor handling, register the dynamic partitions it asks for, and execute each requested
run with `execute_in_process` (the in-process executor the job declares).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import dagster as dg

from defi_scoring.assets.partitions import kafka_offset_ranges


QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}  # the run's events stay in the instance


@dataclass
class SensorDriver:
    defs: dg.Definitions
    instance: dg.DagsterInstance
    cursor: str | None = None
    runs: list = field(default_factory=list)

    def tick(self) -> list[dg.ExecuteInProcessResult]:
        """One sensor evaluation and the runs it requested; [] when there was nothing new."""
        sensor = self.defs.resolve_sensor_def("kafka_scoring_sensor")
        context = dg.build_sensor_context(instance=self.instance, cursor=self.cursor,
                                          resources={"kafka": self.defs.resources["kafka"]})
        result = sensor(context)
        if not isinstance(result, dg.SensorResult):
            return []
        for request in result.dynamic_partitions_requests:
            self.instance.add_dynamic_partitions(kafka_offset_ranges.name, list(request.partition_keys))
        self.cursor = result.cursor
        job = self.defs.resolve_job_def("kafka_scoring")
        done = [job.execute_in_process(instance=self.instance, partition_key=r.partition_key, run_config=QUIET,
                                       tags={"dagster/sensor_name": "kafka_scoring_sensor", **r.tags})
                for r in result.run_requests]
        self.runs.extend(done)
        return done


def latencies_s(inputs: list, outputs: list) -> list[float]:
    """Seconds from each input record's timestamp to the first output record with the same key."""
    produced: dict[bytes, list[int]] = {}
    for record in inputs:
        produced.setdefault(record.key or b"", []).append(record.timestamp)
    out = []
    for record in sorted(outputs, key=lambda r: r.timestamp):
        times = produced.get(record.key or b"")
        if times:
            out.append((record.timestamp - times.pop(0)) / 1000)
    return out
