"""Kafka settings from the environment, with the documented defaults (README, "Configuration")."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

DEFAULT_BOOTSTRAP = "127.0.0.1:9092"


@dataclass(frozen=True)
class KafkaSettings:
    bootstrap_servers: str = DEFAULT_BOOTSTRAP
    input_topic: str = "wallet-transactions"
    success_topic: str = "wallet-scores-success"
    failure_topic: str = "wallet-scores-failure"
    alerts_topic: str = "wallet-score-alerts"
    client_id: str = "defi-scoring"
    consumer_group: str = "defi-scoring"  # committed end offsets of scored ranges, for lag tools
    security: dict[str, Any] = field(default_factory=dict)  # SASL/SSL (kafka-python names; librdkafka mapped)
    max_range_messages: int = (
        25_000  # one run scores at most this many messages (fewer, larger runs drain a backlog faster)
    )
    max_ranges_per_tick: int = 20
    sensor_interval_seconds: int = 2
    max_message_bytes: int = 5 * 1024 * 1024

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> KafkaSettings:
        env = dict(os.environ if env is None else env)
        security = {}
        for name, key in (
            ("KAFKA_SECURITY_PROTOCOL", "security_protocol"),
            ("KAFKA_SASL_MECHANISM", "sasl_mechanism"),
            ("KAFKA_SASL_USERNAME", "sasl_plain_username"),
            ("KAFKA_SASL_PASSWORD", "sasl_plain_password"),
            ("KAFKA_SSL_CAFILE", "ssl_cafile"),
            ("KAFKA_SSL_CERTFILE", "ssl_certfile"),
            ("KAFKA_SSL_KEYFILE", "ssl_keyfile"),
        ):
            if env.get(name):
                security[key] = env[name]
        default = cls()  # the defaults are the fields' (one place: the resource reads them too)
        return cls(
            bootstrap_servers=env.get("KAFKA_BOOTSTRAP_SERVERS", default.bootstrap_servers),
            input_topic=env.get("KAFKA_INPUT_TOPIC", default.input_topic),
            success_topic=env.get("KAFKA_SUCCESS_TOPIC", default.success_topic),
            failure_topic=env.get("KAFKA_FAILURE_TOPIC", default.failure_topic),
            alerts_topic=env.get("KAFKA_ALERTS_TOPIC", default.alerts_topic),
            client_id=env.get("KAFKA_CLIENT_ID", default.client_id),
            consumer_group=env.get("KAFKA_CONSUMER_GROUP", default.consumer_group),
            security=security,
            max_range_messages=int(env.get("KAFKA_MAX_RANGE_MESSAGES", default.max_range_messages)),
            max_ranges_per_tick=int(env.get("KAFKA_MAX_RANGES_PER_TICK", default.max_ranges_per_tick)),
            sensor_interval_seconds=int(env.get("KAFKA_SENSOR_INTERVAL_SECONDS", default.sensor_interval_seconds)),
        )

    @property
    def output_topics(self) -> list[str]:
        return [self.success_topic, self.failure_topic, self.alerts_topic]

    def client_options(self) -> dict[str, Any]:
        return {"bootstrap_servers": self.bootstrap_servers.split(","), "client_id": self.client_id, **self.security}
