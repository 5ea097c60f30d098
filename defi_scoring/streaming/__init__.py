"""Kafka side of the platform: settings, client helpers, the embedded broker, offset-range scoring."""
