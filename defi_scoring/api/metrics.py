"""Prometheus metrics of the API (served at /metrics).

With several workers (`serve --workers N`) each worker is its own process; `serve` then sets
PROMETHEUS_MULTIPROC_DIR so /metrics, answered by any worker, aggregates all of them.
"""

from __future__ import annotations

import os

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, multiprocess
from prometheus_client import generate_latest as _generate

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

REQUESTS = Counter(
    "defi_scoring_http_requests", "HTTP requests answered, by route template and status", ["method", "route", "status"]
)
LATENCY = Histogram(
    "defi_scoring_http_request_duration_seconds",
    "Time from request to response, by route template",
    ["method", "route"],
    buckets=LATENCY_BUCKETS,
)
BATCH_SIZE = Histogram(
    "defi_scoring_scoring_batch_size",
    "Messages scored in one vectorised call (dynamic batches of POST /score, and /score/batch)",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096),
)
SCORING_SECONDS = Histogram(
    "defi_scoring_scoring_seconds", "Time of one vectorised scoring call", buckets=LATENCY_BUCKETS
)
STORE_ERRORS = Counter("defi_scoring_store_errors", "Score store operations that failed", ["operation"])
MODEL_DEGRADED = Counter(
    "defi_scoring_model_degraded_wallets",
    "Wallets a model member (member=model: the whole champion) failed on, scored without it",
    ["member"],
)
CHAMPION = Gauge(
    "defi_scoring_champion_version",
    "Champion model version in use (label version; value 1)",
    ["model", "version"],
    multiprocess_mode="liveall",
)


def render() -> tuple[bytes, str]:
    """The exposition text of this process, or of all workers when PROMETHEUS_MULTIPROC_DIR is set."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return _generate(registry), CONTENT_TYPE_LATEST
    return _generate(REGISTRY), CONTENT_TYPE_LATEST
