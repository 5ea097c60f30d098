"""Kafka connection and topic settings as a Dagster resource (values from the environment by default)."""

import os

import dagster as dg
from pydantic import Field

from defi_scoring.streaming.settings import KafkaSettings

PASSWORD_OPTION = "sasl_plain_password"


class KafkaResource(dg.ConfigurableResource):
    """Bootstrap servers, topic names, bounds of one sensor tick, and SASL/SSL pass-through options."""

    bootstrap_servers: str
    input_topic: str = "wallet-transactions"
    success_topic: str = "wallet-scores-success"
    failure_topic: str = "wallet-scores-failure"
    alerts_topic: str = "wallet-score-alerts"
    client_id: str = "defi-scoring"
    max_range_messages: int = 5_000
    max_ranges_per_tick: int = 20
    security: dict[str, str] = Field(default_factory=dict)
    """kafka-python options such as security_protocol, sasl_mechanism, sasl_plain_username, ssl_cafile."""
    sasl_password: str = ""
    """The SASL password; pass `dg.EnvVar("KAFKA_SASL_PASSWORD")` so the UI shows the variable, never the value."""

    @classmethod
    def from_settings(cls, settings: KafkaSettings) -> "KafkaResource":
        return cls(
            bootstrap_servers=settings.bootstrap_servers,
            input_topic=settings.input_topic,
            success_topic=settings.success_topic,
            failure_topic=settings.failure_topic,
            alerts_topic=settings.alerts_topic,
            client_id=settings.client_id,
            max_range_messages=settings.max_range_messages,
            max_ranges_per_tick=settings.max_ranges_per_tick,
            security={k: v for k, v in settings.security.items() if k != PASSWORD_OPTION},
            sasl_password=_password(settings),
        )

    def settings(self) -> KafkaSettings:
        return KafkaSettings(
            bootstrap_servers=self.bootstrap_servers,
            input_topic=self.input_topic,
            success_topic=self.success_topic,
            failure_topic=self.failure_topic,
            alerts_topic=self.alerts_topic,
            client_id=self.client_id,
            security={**self.security, **({PASSWORD_OPTION: self.sasl_password} if self.sasl_password else {})},
            max_range_messages=self.max_range_messages,
            max_ranges_per_tick=self.max_ranges_per_tick,
        )


def _password(settings: KafkaSettings):
    """The password as an EnvVar when it came from KAFKA_SASL_PASSWORD (the UI then shows only the name)."""
    password = settings.security.get(PASSWORD_OPTION, "")
    if password and os.environ.get("KAFKA_SASL_PASSWORD") == password:
        return dg.EnvVar("KAFKA_SASL_PASSWORD")
    return password
