"""Kafka connection and topic settings as a Dagster resource (values from the environment by default)."""

import dagster as dg

from defi_scoring.streaming.settings import KafkaSettings


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
    security: dict = {}
    """kafka-python options such as security_protocol, sasl_mechanism, sasl_plain_username, ssl_cafile."""

    @classmethod
    def from_settings(cls, settings: KafkaSettings) -> "KafkaResource":
        return cls(bootstrap_servers=settings.bootstrap_servers, input_topic=settings.input_topic,
                   success_topic=settings.success_topic, failure_topic=settings.failure_topic,
                   alerts_topic=settings.alerts_topic, client_id=settings.client_id,
                   max_range_messages=settings.max_range_messages, max_ranges_per_tick=settings.max_ranges_per_tick,
                   security=dict(settings.security))

    def settings(self) -> KafkaSettings:
        return KafkaSettings(bootstrap_servers=self.bootstrap_servers, input_topic=self.input_topic,
                             success_topic=self.success_topic, failure_topic=self.failure_topic,
                             alerts_topic=self.alerts_topic, client_id=self.client_id, security=dict(self.security),
                             max_range_messages=self.max_range_messages, max_ranges_per_tick=self.max_ranges_per_tick)
