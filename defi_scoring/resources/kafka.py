"""Kafka connection and topic settings as a Dagster resource (values from the environment by default)."""

import dataclasses
import os

import dagster as dg
from pydantic import Field

from defi_scoring.streaming.settings import KafkaSettings

PASSWORD_OPTION = "sasl_plain_password"


_DEFAULTS = KafkaSettings()  # the one place the defaults are written (streaming/settings.py)


class KafkaResource(dg.ConfigurableResource):
    """Every KafkaSettings field, with its defaults: bootstrap servers, topics, consumer group, bounds of
    one sensor tick, message size, and SASL/SSL pass-through options (the password apart)."""

    bootstrap_servers: str
    input_topic: str = _DEFAULTS.input_topic
    success_topic: str = _DEFAULTS.success_topic
    failure_topic: str = _DEFAULTS.failure_topic
    alerts_topic: str = _DEFAULTS.alerts_topic
    client_id: str = _DEFAULTS.client_id
    consumer_group: str = _DEFAULTS.consumer_group
    max_range_messages: int = _DEFAULTS.max_range_messages
    max_ranges_per_tick: int = _DEFAULTS.max_ranges_per_tick
    sensor_interval_seconds: int = _DEFAULTS.sensor_interval_seconds
    max_message_bytes: int = _DEFAULTS.max_message_bytes
    security: dict[str, str] = Field(default_factory=dict)
    """kafka-python options such as security_protocol, sasl_mechanism, sasl_plain_username, ssl_cafile."""
    sasl_password: str = ""
    """The SASL password; pass `dg.EnvVar("KAFKA_SASL_PASSWORD")` so the UI shows the variable, never the value."""

    @classmethod
    def from_settings(cls, settings: KafkaSettings) -> "KafkaResource":
        fields = {f.name: getattr(settings, f.name) for f in dataclasses.fields(settings) if f.name != "security"}
        return cls(
            **fields,
            security={k: v for k, v in settings.security.items() if k != PASSWORD_OPTION},
            sasl_password=_password(settings),
        )

    def settings(self) -> KafkaSettings:
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(KafkaSettings) if f.name != "security"}
        password = {PASSWORD_OPTION: self.sasl_password} if self.sasl_password else {}
        return KafkaSettings(**fields, security={**self.security, **password})


def _password(settings: KafkaSettings):
    """The password as an EnvVar when it came from KAFKA_SASL_PASSWORD (the UI then shows only the name)."""
    password = settings.security.get(PASSWORD_OPTION, "")
    if password and os.environ.get("KAFKA_SASL_PASSWORD") == password:
        return dg.EnvVar("KAFKA_SASL_PASSWORD")
    return password
