"""What the endpoints share: the store (opened lazily, so a missing or down store is a health finding,
not a crash), the champion's source in MLflow, the limits, and the cross-worker model reload marker."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from defi_scoring.api import metrics
from defi_scoring.config import Settings
from defi_scoring.core.ensemble_config import load_ensemble_config
from defi_scoring.core.model_registry import CHAMPION, alias_version, configured_store
from defi_scoring.core.model_scoring import ChampionUnloadable, load_champion, score_with_model, unloadable_reason
from defi_scoring.core.normalise import MAX_MESSAGE_BYTES
from defi_scoring.score_store import ScoreStore
from defi_scoring.streaming.settings import KafkaSettings

CHAMPION_RECHECK_SECONDS = 10.0  # a champion promoted without reload-model serves within this long


@dataclass(frozen=True)
class ApiLimits:
    """Request limits and dynamic batching, from the environment (README, "Configuration")."""

    max_body_bytes: int = MAX_MESSAGE_BYTES
    max_batch_messages: int = 1_000
    max_batch_bytes: int = 256 * 1024 * 1024
    batch_max_size: int = 64  # POST /score requests scored together at most
    batch_max_wait_ms: float = 20.0  # cap on how long the first request of a window waits for company

    @classmethod
    def from_env(cls) -> ApiLimits:
        env = os.environ
        return cls(
            max_body_bytes=int(env.get("DEFI_SCORING_API_MAX_BODY_BYTES", MAX_MESSAGE_BYTES)),
            max_batch_messages=int(env.get("DEFI_SCORING_API_MAX_BATCH", 1_000)),
            max_batch_bytes=int(env.get("DEFI_SCORING_API_MAX_BATCH_BYTES", 256 * 1024 * 1024)),
            batch_max_size=int(env.get("DEFI_SCORING_API_BATCH_MAX_SIZE", 64)),
            batch_max_wait_ms=float(env.get("DEFI_SCORING_API_BATCH_MAX_WAIT_MS", 20.0)),
        )


class ServiceState:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.started = time.time()
        self.kafka = KafkaSettings.from_env()
        self.limits = ApiLimits.from_env()
        self.mlflow = configured_store(settings.home)
        self.model_name = load_ensemble_config().registered_model_name
        self.reload_marker = settings.home / "api" / "reload-model"
        self._reload_seen = _mtime(self.reload_marker)
        self._store: ScoreStore | None = None
        self._store_lock = threading.Lock()
        self._champion_status: tuple[float, dict] | None = None

    @property
    def store(self) -> ScoreStore:
        """The score store, opened on first use; raises (and is retried next time) while it is down."""
        if self._store is None:
            with self._store_lock:
                if self._store is None:
                    self._store = ScoreStore(self.settings.store_url)
        return self._store

    def model(self, behaviour):
        # Exact contributions are cheap for the handful of wallets of one request. Which version is
        # the champion is asked of MLflow at most every CHAMPION_RECHECK_SECONDS (reload-model: at once).
        self._reload_if_asked()
        scores = score_with_model(
            behaviour, self.mlflow, self.model_name, exact_contributions=True, alias_max_age_s=CHAMPION_RECHECK_SECONDS
        )
        if scores.model_version:
            metrics.CHAMPION.labels(self.model_name, scores.model_version).set(1)
        for member, wallets in scores.member_failures.items():
            metrics.MODEL_DEGRADED.labels(member).inc(wallets)
        return scores

    def reload_model(self) -> tuple[str | None, bool]:
        """Reload the champion here and ask every other worker to (they watch the marker's mtime)."""
        self.reload_marker.parent.mkdir(parents=True, exist_ok=True)
        self.reload_marker.touch()
        self._reload_seen = _mtime(self.reload_marker)
        self._champion_status = None
        try:
            champion = load_champion(self.mlflow, self.model_name, refresh=True)
        except ChampionUnloadable:  # /health says why; scoring goes on without the model
            return alias_version(self.mlflow, self.model_name, CHAMPION), False
        return (champion[1] if champion else None), champion is not None

    def _reload_if_asked(self) -> None:
        seen = _mtime(self.reload_marker)
        if seen != self._reload_seen:
            self._reload_seen = seen
            self._champion_status = None
            with contextlib.suppress(ChampionUnloadable):
                load_champion(self.mlflow, self.model_name, refresh=True)

    def cached_champion_status(self, max_age_s: float = 5.0) -> dict | None:
        if self._champion_status and time.monotonic() - self._champion_status[0] < max_age_s:
            return self._champion_status[1]
        return None

    def champion_status(self, max_age_s: float = 5.0) -> dict:
        """The champion as /health reports it, looked up at most every few seconds (MLflow is slow)."""
        now = time.monotonic()
        if self._champion_status and now - self._champion_status[0] < max_age_s:
            return self._champion_status[1]
        try:
            version = alias_version(self.mlflow, self.model_name, CHAMPION)
            broken = unloadable_reason(self.mlflow, self.model_name, version) if version else None
            status = (
                {"status": "error", "model": self.model_name, "version": version, "detail": broken}
                if broken
                else {"status": "ok", "model": self.model_name, "version": version}
                if version
                else {
                    "status": "missing",
                    "detail": "no champion yet: scores carry no ML adjustment (train with "
                    "`defi-scoring demo` or the train_model job)",
                }
            )
        except Exception as exc:
            status = {"status": "error", "detail": str(exc)[:300]}
        self._champion_status = (now, status)
        return status

    def uptime(self) -> float:
        return round(time.time() - self.started, 3)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0
