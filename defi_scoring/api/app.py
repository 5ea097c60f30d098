"""The scoring service: read scores from the store, score one message on demand, admin actions.

A thin layer: storage is `score_store.ScoreStore`, scoring is `core.batch_scoring` (the same path as
the batch assets and the sensor runs), the champion comes from MLflow via `core.model_scoring`.
Run it with `defi-scoring serve`; OpenAPI docs at /docs.
"""

from __future__ import annotations

import hmac
import os
import socket
import time
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from fastapi import Depends, FastAPI, Header, HTTPException, Path, Query, Request, Response
from fastapi.responses import ORJSONResponse

from defi_scoring.config import Settings
from defi_scoring.core.batch_scoring import score_raw_messages
from defi_scoring.core.ensemble_config import load_ensemble_config
from defi_scoring.core.model_registry import CHAMPION, MlflowStore, alias_version, embedded_store
from defi_scoring.core.model_scoring import load_champion, score_with_model
from defi_scoring.core.normalise import MAX_MESSAGE_BYTES
from defi_scoring.core.scoring_config import default_scoring_config
from defi_scoring.score_store import ScoreStore
from defi_scoring.streaming.settings import KafkaSettings

ADDRESS_PATTERN = r"^0x[0-9a-fA-F]{40}$"
ADMIN_KEY_ENV = "DEFI_SCORING_ADMIN_KEY"

try:
    VERSION = version("defi-scoring")
except PackageNotFoundError:  # running from a source tree without installing
    VERSION = "0.0.0"


class ServiceState:
    """What the endpoints share: store, champion model source, Kafka settings, start time."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.store = ScoreStore(settings.store_url)
        self.started = time.time()
        self.kafka = KafkaSettings.from_env()
        embedded = embedded_store(settings.home)
        uri = os.environ.get("MLFLOW_TRACKING_URI")
        self.mlflow = MlflowStore(uri, embedded.artifact_root, embedded.experiment_name) if uri else embedded
        self.model_name = load_ensemble_config().registered_model_name
        self.max_body_bytes = int(os.environ.get("DEFI_SCORING_API_MAX_BODY_BYTES", MAX_MESSAGE_BYTES))

    def model(self, behaviour):
        # Exact contributions are cheap for the handful of wallets of one request.
        return score_with_model(behaviour, self.mlflow, self.model_name, exact_contributions=True)

    def uptime(self) -> float:
        return round(time.time() - self.started, 3)


def _kafka_status(kafka: KafkaSettings) -> dict[str, Any]:
    if not os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        return {"status": "not_configured", "detail": "set KAFKA_BOOTSTRAP_SERVERS to enable streaming"}
    host, _, port = kafka.bootstrap_servers.split(",")[0].rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=0.5):
            return {"status": "ok", "bootstrap_servers": kafka.bootstrap_servers}
    except OSError as exc:
        return {"status": "unreachable", "bootstrap_servers": kafka.bootstrap_servers, "detail": str(exc)}


def create_app(settings: Settings | None = None) -> FastAPI:
    state = ServiceState(settings or Settings.from_env())
    app = FastAPI(
        title="defi-scoring",
        version=VERSION,
        default_response_class=ORJSONResponse,
        description="Wallet reputation and risk scores for DeFi: reference zscore (compatible), hybrid "
        "score 0–100 with confidence, risk level, reasons, patterns and alerts.",
    )
    app.state.service = state

    def require_admin(x_api_key: str | None = Header(default=None, description=f"the value of ${ADMIN_KEY_ENV}")):
        expected = os.environ.get(ADMIN_KEY_ENV)
        if not expected:
            raise HTTPException(503, f"admin endpoints are disabled: set {ADMIN_KEY_ENV} on the server")
        if not x_api_key or not hmac.compare_digest(x_api_key, expected):
            raise HTTPException(401, "missing or wrong X-API-Key header")

    @app.get("/", summary="Service information")
    def root() -> dict[str, Any]:
        return {
            "service": "defi-scoring",
            "version": VERSION,
            "docs": "/docs",
            "endpoints": [
                "/health",
                "/stats",
                "/api/v1/wallets/{address}",
                "/api/v1/score",
                "/api/v1/admin/reload-model",
            ],
        }

    def health() -> dict[str, Any]:
        components: dict[str, Any] = {}
        try:
            state.store.ping()
            components["store"] = {"status": "ok", "dialect": state.store.dialect}
        except Exception as exc:
            components["store"] = {"status": "error", "detail": str(exc)}
        components["kafka"] = _kafka_status(state.kafka)
        try:
            champion = alias_version(state.mlflow, state.model_name, CHAMPION)
            components["mlflow_champion"] = (
                {"status": "ok", "model": state.model_name, "version": champion}
                if champion
                else {
                    "status": "missing",
                    "detail": "no champion yet: scores carry no ML "
                    "adjustment (train with `defi-scoring demo` or the train_model job)",
                }
            )
        except Exception as exc:
            components["mlflow_champion"] = {"status": "error", "detail": str(exc)}
        healthy = components["store"]["status"] == "ok"
        return {
            "status": "ok" if healthy else "error",
            "timestamp": int(time.time()),
            "version": VERSION,
            "uptime_seconds": state.uptime(),
            "components": components,
        }

    app.get("/health", summary="Health of the service and its components")(health)
    app.get("/api/v1/health", summary="Health of the service and its components")(health)

    def stats() -> dict[str, Any]:
        return {**state.store.stats(), "uptime_seconds": state.uptime()}

    app.get("/stats", summary="Processing statistics (batch, sensor and API scoring)")(stats)
    app.get("/api/v1/stats", summary="Processing statistics (batch, sensor and API scoring)")(stats)

    @app.get(
        "/api/v1/wallets/{address}",
        summary="Latest score of a wallet, with its history",
        responses={
            200: {"description": "the latest success message (CONTRACTS.md §2) plus `history`"},
            404: {"description": "wallet never scored"},
        },
    )
    async def wallet(
        address: str = Path(pattern=ADDRESS_PATTERN, description="0x + 40 hex digits, any case"),
        history_limit: int = Query(50, ge=1, le=1000),
    ) -> Response:
        # Two primary-key/index reads (well under a millisecond): cheaper inline than a threadpool hop.
        found = state.store.wallet_json(address, history_limit=history_limit)
        if found is None:
            raise HTTPException(
                404,
                f"wallet {address} has not been scored yet; POST its transactions to "
                f"/api/v1/score or send them to the {state.kafka.input_topic} topic",
            )
        latest, history = found
        # The stored message is already JSON: splice the history in instead of parsing and re-encoding.
        body = latest.encode()[:-1] + b',"history":' + history + b"}"
        return Response(body, media_type="application/json")

    @app.post(
        "/api/v1/score",
        summary="Score one wallet-transactions message now (CONTRACTS.md §1)",
        responses={413: {"description": "body too large"}, 422: {"description": "invalid message"}},
    )
    async def score(request: Request) -> dict[str, Any]:
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > state.max_body_bytes:
            raise HTTPException(413, f"body of {declared} bytes exceeds the {state.max_body_bytes}-byte limit")
        body = await request.body()
        if len(body) > state.max_body_bytes:
            raise HTTPException(413, f"body of {len(body)} bytes exceeds the {state.max_body_bytes}-byte limit")
        return _score_body(body)

    def _score_body(body: bytes) -> dict[str, Any]:
        scored = score_raw_messages(
            [body], config=default_scoring_config(), model=state.model, previous_scores=_previous(body)
        )
        (message,) = scored.messages()
        if "error" in message:
            raise HTTPException(
                422,
                {
                    "error": message["error"],
                    "categories": message["categories"],
                    "wallet_address": message["wallet_address"],
                },
            )
        state.store.record_messages([message], run_id="api", source="api")
        return message

    def _previous(body: bytes):
        try:
            import orjson

            address = orjson.loads(body).get("wallet_address")
        except Exception:
            return None
        return state.store.latest_hybrid_scores([address.lower()]) if isinstance(address, str) else None

    @app.post(
        "/api/v1/admin/reload-model",
        summary="Reload the champion model from MLflow (admin)",
        dependencies=[Depends(require_admin)],
    )
    def reload_model() -> dict[str, Any]:
        champion = load_champion(state.mlflow, state.model_name, refresh=True)
        return {
            "model": state.model_name,
            "champion_version": champion[1] if champion else None,
            "reloaded": champion is not None,
        }

    return app
