"""The scoring service: scores from the store, scoring on demand (dynamically batched), admin actions.

A thin layer: storage is `score_store.ScoreStore`, scoring is `core.batch_scoring` (the same path as
the batch assets and the sensor runs), the champion comes from MLflow via `core.model_scoring`. No
scoring or store write runs on the event loop. Run it with `defi-scoring serve`; OpenAPI at /docs.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
import pathlib
import socket
import sys
import time
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import msgspec
import orjson
import pyarrow as pa
import pyarrow.ipc
from fastapi import Depends, FastAPI, Header, HTTPException, Path, Query, Request, Response
from fastapi.responses import ORJSONResponse
from starlette.concurrency import run_in_threadpool

from defi_scoring.api import metrics, schemas
from defi_scoring.api.batcher import DynamicBatcher
from defi_scoring.api.observability import RequestObservability, configure_access_log
from defi_scoring.api.scoring import StoreUnavailable, arrow_answer, score_bodies, score_table, table_wallets
from defi_scoring.api.state import ServiceState
from defi_scoring.api.subscriptions import router as subscriptions_router
from defi_scoring.api.subscriptions import start_dispatcher, stop_dispatcher, webhooks_health
from defi_scoring.config import Settings
from defi_scoring.core.table_decode import TableSchemaError
from defi_scoring.core.transaction_table import ARROW_STREAM_MEDIA_TYPE, REQUIRED_COLUMNS
from defi_scoring.process_hygiene import freeze_long_lived_objects
from defi_scoring.streaming.client import consumer_lag
from defi_scoring.streaming.offset_resets import latest_reset
from defi_scoring.streaming.settings import KafkaSettings

log = logging.getLogger("defi_scoring.api")
ADDRESS_PATTERN = r"^0x[0-9a-fA-F]{40}$"
ADMIN_KEY_ENV = "DEFI_SCORING_ADMIN_KEY"
STORE_HEALTH_TIMEOUT_S = 1.0

try:
    VERSION = version("defi-scoring")
except PackageNotFoundError:  # running from a source tree without installing
    VERSION = "0.0.0"


LAG_CACHE_SECONDS = 5.0
_lag_cache: dict[str, Any] = {}


def _kafka_status(kafka: KafkaSettings, home: pathlib.Path | None = None) -> dict[str, Any]:
    """Broker reachability, per input partition the messages the consumer group has not scored, and the
    last time the input offsets went backwards (broker restarted empty), if ever."""
    if not os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        return {"status": "not_configured", "detail": "set KAFKA_BOOTSTRAP_SERVERS to enable streaming"}
    host, _, port = kafka.bootstrap_servers.split(",")[0].rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=0.5):
            pass
    except OSError as exc:
        return {"status": "unreachable", "bootstrap_servers": kafka.bootstrap_servers, "detail": str(exc)}
    status: dict[str, Any] = {"status": "ok", "bootstrap_servers": kafka.bootstrap_servers}
    now = time.monotonic()
    if now - _lag_cache.get("at", -1e9) > LAG_CACHE_SECONDS:  # health is polled often; Kafka calls cost ~0.1 s
        try:
            lag = consumer_lag(kafka)
            _lag_cache.update(at=now, value={"consumer_group": kafka.consumer_group, "consumer_lag": lag})
        except Exception as exc:  # reachable but not answering: still show the broker as up
            _lag_cache.update(at=now, value={"consumer_lag_error": f"{type(exc).__name__}: {exc}"})
    reset = latest_reset(pathlib.Path(home)) if home is not None else None
    return {**status, **_lag_cache["value"], **({"last_offset_reset": reset} if reset else {})}


def _warm_up(state: ServiceState) -> None:
    """Load the champion (if any) and import what scoring imports before the first request, so that
    the first caller does not pay for it and the loaded objects are frozen with the rest."""
    import polars  # noqa: F401  (the encoder of large batches)

    try:
        state.champion_status()
        from defi_scoring.core.model_scoring import load_champion

        load_champion(state.mlflow, state.model_name)
    except Exception as exc:  # no MLflow, no champion, a broken one: /health reports it, scoring goes on
        log.warning("champion not preloaded: %s", exc)


async def _warm_up_then_freeze(state: ServiceState) -> None:
    await run_in_threadpool(_warm_up, state)
    freeze_long_lived_objects()


def _store_status(state: ServiceState) -> dict[str, Any]:
    try:
        state.store.ping()
        return {"status": "ok", "dialect": state.store.dialect}
    except Exception as exc:
        metrics.STORE_ERRORS.labels("ping").inc()
        return {"status": "error", "detail": str(exc)[:300]}


# A JSON array of messages as the raw bytes of each element: parsing the 13.5 MB array of 1,000 demo
# wallets into Python objects took 240 ms, as long as scoring them; this takes ~12 ms.
_RAW_ARRAY = msgspec.json.Decoder(list[msgspec.Raw])


def _unwrap_text(element: bytes) -> Any:
    """A JSON string element holds a message's text (as a line of the `score` CLI does)."""
    return orjson.loads(element) if element[:1] == b'"' else element


def _read_arrow_stream(body: bytes) -> pa.Table:
    """The transactions table of an Arrow IPC stream body (zero-copy over the body's bytes)."""
    try:
        return pyarrow.ipc.open_stream(body).read_all()
    except (pa.ArrowException, OSError) as exc:  # a truncated body is an OSError
        raise HTTPException(
            422,
            f"body is not a readable Arrow IPC stream ({exc}); send a transactions table in the Arrow "
            f"stream format (not the file format) with at least the columns {', '.join(REQUIRED_COLUMNS)}",
        ) from exc


def _accepts_arrow(accept: str) -> bool:
    """Whether the Accept header names the Arrow stream type (q > 0) at least as high as JSON."""
    weights: dict[str, float] = {}
    for item in accept.lower().split(","):
        media, *params = (part.strip() for part in item.split(";"))
        q = 1.0
        for name, _, value in (param.partition("=") for param in params):
            if name.strip() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        weights[media] = max(q, weights.get(media, 0.0))
    arrow = weights.get(ARROW_STREAM_MEDIA_TYPE, 0.0)
    return arrow > 0 and arrow >= weights.get("application/json", 0.0)


def _batch_answer(values: list[bytes], summaries: list[dict[str, Any]], arrow: bool) -> Response:
    """The results of POST /score/batch, whatever the body was: a JSON array, or an Arrow stream."""
    if arrow:
        return Response(arrow_answer(values, summaries), media_type=ARROW_STREAM_MEDIA_TYPE)
    return Response(b"[" + b",".join(values) + b"]", media_type="application/json")


PERSIST_QUERY = Query(
    True,
    description="false: score the stored history plus this body and write nothing (a what-if); "
    "true: append the transactions to the wallet's stored history, then score the full history",
)
AS_OF_QUERY = Query(
    None,
    description="unix seconds to score at (open deposits are held until then); "
    "default: each wallet's newest stored transaction, so the same state always gives the same score",
)


def _score_json_batch(state: ServiceState, items: list[Any], arrow: bool, persist: bool, as_of: int | None) -> Response:
    scored = score_bodies(state, items, persist, as_of)
    return _batch_answer([value for value, _ in scored], [summary for _, summary in scored], arrow)


def _score_arrow_batch(state: ServiceState, body: bytes, arrow: bool, persist: bool, as_of: int | None) -> Response:
    """An Arrow transactions table: one result per wallet, the wallet count held to the batch limit. All of
    it in the scoring thread: a table of few wallets may still hold millions of rows to read and count."""
    table = _read_arrow_stream(body)
    try:
        wallets = table_wallets(table)
        if len(wallets) > state.limits.max_batch_messages:
            raise HTTPException(
                413, f"{len(wallets)} wallets exceed the limit of {state.limits.max_batch_messages} per request"
            )
        encoded = score_table(state, table, wallets, persist, as_of)
    except TableSchemaError as exc:  # a missing column, or one of a type that does not convert
        raise HTTPException(422, str(exc)) from exc
    return _batch_answer(encoded.values, encoded.summaries, arrow)


def create_app(settings: Settings | None = None) -> FastAPI:
    state = ServiceState(settings or Settings.from_env())
    # Scoring runs in a thread; a shorter GIL switch interval lets the event loop answer meanwhile.
    sys.setswitchinterval(0.001)
    batcher = DynamicBatcher(
        lambda bodies: score_bodies(state, bodies), state.limits.batch_max_size, state.limits.batch_max_wait_ms
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        await batcher.start()
        start_dispatcher(_app)  # webhook deliveries (docs/webhooks.md); DEFI_SCORING_WEBHOOK_DISPATCHER=0: off
        # In the background: the seed endpoints answer at once even if MLflow is slow or away.
        warming = asyncio.create_task(_warm_up_then_freeze(state))
        yield
        warming.cancel()
        await batcher.stop()
        await stop_dispatcher(_app)

    configure_access_log()
    app = FastAPI(
        title="defi-scoring",
        version=VERSION,
        default_response_class=ORJSONResponse,
        lifespan=lifespan,
        description="Wallet reputation and risk scores for DeFi: reference zscore (compatible), hybrid "
        "score 0–100 with confidence, risk level, reasons, patterns and alerts.",
    )
    app.state.service = state
    app.add_middleware(RequestObservability)
    app.include_router(subscriptions_router)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = schemas.openapi_document(app)
        return app.openapi_schema

    app.openapi = openapi

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
                "/metrics",
                "/api/v1/wallets/{address}",
                "/api/v1/score",
                "/api/v1/score/batch",
                "/api/v1/admin/reload-model",
            ],
        }

    async def health() -> dict[str, Any]:
        # The store is asked in a thread with a deadline: a slow or locked store is reported, not waited on.
        try:
            store = await asyncio.wait_for(run_in_threadpool(_store_status, state), STORE_HEALTH_TIMEOUT_S)
        except TimeoutError:
            store = {"status": "slow", "detail": f"no answer within {STORE_HEALTH_TIMEOUT_S}s"}
        # Only what may block goes to a thread: each hop costs a GIL hand-over while scoring runs.
        configured = bool(os.environ.get("KAFKA_BOOTSTRAP_SERVERS"))
        champion = state.cached_champion_status()
        components = {
            "store": store,
            "kafka": await run_in_threadpool(_kafka_status, state.kafka, state.settings.home)
            if configured
            else _kafka_status(state.kafka),
            "mlflow_champion": champion or await run_in_threadpool(state.champion_status),
            "webhooks": await webhooks_health(app),
        }
        # The service contract's shape: unhealthy without the store (nothing read or recorded), degraded
        # when scores still answer but without streaming or without the model, else healthy.
        if store["status"] != "ok":
            status = "unhealthy"
        elif components["kafka"]["status"] == "unreachable" or components["mlflow_champion"]["status"] == "error":
            status = "degraded"
        else:
            status = "healthy"
        body = {
            "status": status,
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),  # ISO 8601, UTC
            "version": VERSION,
            "uptime_seconds": state.uptime(),
            "components": components,
        }
        return body

    for path in ("/health", "/api/v1/health"):
        app.get(path, summary="Health of the service and its components", response_model=schemas.Health)(health)

    def stats() -> dict[str, Any]:
        try:
            return {**state.store.stats(), "uptime_seconds": state.uptime()}
        except Exception as exc:
            metrics.STORE_ERRORS.labels("read").inc()
            raise HTTPException(503, f"score store unavailable ({str(exc)[:200]}); see /health") from exc

    for path in ("/stats", "/api/v1/stats"):
        app.get(path, summary="Processing statistics (batch, sensor and API scoring)", response_model=schemas.Stats)(
            stats
        )

    @app.get("/metrics", summary="Prometheus metrics", response_class=Response)
    def prometheus_metrics() -> Response:
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)

    @app.get(
        "/api/v1/wallets/{address}",
        summary="Latest score of a wallet, with its history",
        response_model=schemas.WalletScore,
        responses={404: {"description": "wallet never scored"}, 503: {"description": "store unavailable"}},
    )
    async def wallet(
        address: str = Path(pattern=ADDRESS_PATTERN, description="0x + 40 hex digits, any case"),
        history_limit: int = Query(50, ge=1, le=1000),
    ) -> Response:
        # Two primary-key/index reads (well under a millisecond): cheaper inline than a threadpool hop.
        try:
            found = state.store.wallet_json(address, history_limit=history_limit)
        except Exception as exc:
            metrics.STORE_ERRORS.labels("read").inc()
            raise HTTPException(503, f"score store unavailable ({str(exc)[:200]}); see /health") from exc
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

    async def read_body(request: Request, limit: int) -> bytes:
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            raise HTTPException(413, f"body of {declared} bytes exceeds the {limit}-byte limit")
        body = await request.body()
        if len(body) > limit:
            raise HTTPException(413, f"body of {len(body)} bytes exceeds the {limit}-byte limit")
        return body

    @app.post(
        "/api/v1/score",
        summary="Score one wallet-transactions message now (CONTRACTS.md §1)",
        response_model=schemas.ScoredWallet,
        responses={
            413: {"description": "body too large"},
            422: {"model": schemas.ScoreFailure, "description": "invalid message: the §3 failure message"},
        },
    )
    async def score(request: Request, persist: bool = PERSIST_QUERY, as_of: int | None = AS_OF_QUERY) -> Response:
        body = await read_body(request, state.limits.max_body_bytes)
        try:
            if persist and as_of is None:  # the common case: batched with concurrent callers, one append
                value, summary = await batcher.submit(body)
            else:
                [(value, summary)] = await run_in_threadpool(score_bodies, state, [body], persist, as_of)
        except StoreUnavailable as exc:
            raise HTTPException(503, str(exc)) from exc
        if "error" in summary:
            raise HTTPException(422, orjson.loads(value))
        return Response(value, media_type="application/json")

    @app.post(
        "/api/v1/score/batch",
        summary="Score up to N messages (or an Arrow table of up to N wallets) in one request: one result per "
        "input, in order, failures included",
        response_model=list[schemas.ScoredWallet | schemas.FailureMessage],
        responses={
            200: schemas.ARROW_BATCH_ANSWER,
            413: {"description": "too many messages or wallets, or body too large"},
            422: {"description": "not a list, not JSON, or not a readable Arrow transactions table"},
        },
        openapi_extra={"requestBody": schemas.BATCH_REQUEST_BODY},
    )
    async def score_batch(request: Request, persist: bool = PERSIST_QUERY, as_of: int | None = AS_OF_QUERY) -> Response:
        try:
            return await _score_batch(request, persist, as_of)
        except StoreUnavailable as exc:
            raise HTTPException(503, str(exc)) from exc

    async def _score_batch(request: Request, persist: bool, as_of: int | None) -> Response:
        body = await read_body(request, state.limits.max_batch_bytes)
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        arrow = _accepts_arrow(request.headers.get("accept", ""))  # the answer's format, whatever the body's
        if content_type == ARROW_STREAM_MEDIA_TYPE:
            return await run_in_threadpool(_score_arrow_batch, state, body, arrow, persist, as_of)
        if content_type == "application/x-ndjson":
            items: list[Any] = [line for line in body.split(b"\n") if line.strip()]
        else:
            try:  # validated and cut, not built into Python objects: the decoder reads each message natively
                items = [_unwrap_text(bytes(raw)) for raw in _RAW_ARRAY.decode(body)]
            except msgspec.DecodeError as exc:
                raise HTTPException(422, f"body is not JSON ({exc}); send a JSON array of messages") from exc
            except msgspec.ValidationError as exc:
                raise HTTPException(422, "send a JSON array of messages (or application/x-ndjson lines)") from exc
        if len(items) > state.limits.max_batch_messages:
            raise HTTPException(
                413, f"{len(items)} messages exceed the limit of {state.limits.max_batch_messages} per request"
            )
        return await run_in_threadpool(_score_json_batch, state, items, arrow, persist, as_of)

    @app.post(
        "/api/v1/admin/reload-model",
        summary="Reload the champion model from MLflow, in every worker (admin)",
        response_model=schemas.ReloadResult,
        dependencies=[Depends(require_admin)],
    )
    def reload_model() -> dict[str, Any]:
        champion, reloaded = state.reload_model()
        return {"model": state.model_name, "champion_version": champion, "reloaded": reloaded}

    return app
