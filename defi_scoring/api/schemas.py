"""Response models of the API for OpenAPI (client generators read these), with examples.

The scoring endpoints read the raw body themselves (bad input must become a failure message, not a
framework error), so their request schema, the §1 message of `defi_scoring.contracts`, is attached
to the OpenAPI document by `openapi_document`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import models_json_schema

from defi_scoring.contracts.messages import FailureMessage, Recommendation, SuccessMessage, WalletTransactionsMessage
from defi_scoring.core.transaction_table import ARROW_STREAM_MEDIA_TYPE, REQUIRED_COLUMNS, TABLE_COLUMNS

EXAMPLE_ADDRESS = "0x742d35Cc6634C0532925a3b8D4C9db96590e4265"

EXAMPLE_REQUEST = {
    "wallet_address": EXAMPLE_ADDRESS,
    "data": [
        {
            "protocolType": "dexes",
            "transactions": [
                {
                    "document_id": "65d8f3a2b1c4e5f6a7b8c9d0",
                    "action": "deposit",
                    "timestamp": 1703980900,
                    "protocol": "uniswap_v3",
                    "poolId": "0x88e6a0c2ddd26feeb64f039a2c41296fcb3f5640",
                    "token0": {"symbol": "USDC", "amountUSD": 5000.0},
                    "token1": {"symbol": "WETH", "amountUSD": 5000.0},
                }
            ],
        }
    ],
}


class ScoredWallet(SuccessMessage):
    """The success message (CONTRACTS.md §2) with the hybrid score fields (§5); extra fields are additive."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [
                {
                    "wallet_address": EXAMPLE_ADDRESS,
                    "zscore": "308.000000000000000000",
                    "timestamp": 1706572900,
                    "processing_time_ms": 3,
                    "categories": [],
                    "hybrid_score": 59.72,
                    "confidence": 0.147,
                    "risk_level": "insufficient_history",
                    "reasons": [{"text": "No manipulation pattern detected (+17.5 points)", "points": 17.51}],
                    "patterns": [],
                    "alerts": [],
                    "recommendations": [],
                    "model_version": None,
                }
            ]
        },
    )
    hybrid_score: float | None = Field(None, description="0–100, higher is more reputable")
    confidence: float | None = Field(None, description="0–1: how much evidence the score rests on")
    risk_level: str | None = Field(None, description="very_low … very_high, or insufficient_history")
    base_score: float | None = None
    thin_history: bool | None = None
    breakdown: dict[str, Any] | None = Field(None, description="per dimension: score, confidence, weight, factors")
    ml: dict[str, Any] | None = Field(None, description="champion model adjustment: available, version, note")
    reasons: list[dict[str, Any]] | None = Field(None, description="ranked, with their points")
    patterns: list[dict[str, Any]] | None = Field(None, description="detected manipulation patterns")
    alerts: list[dict[str, Any]] | None = None
    recommendations: list[Recommendation] | None = Field(
        None, description="one per detected pattern: pattern, action, severity, text ([] when none)"
    )
    tags: list[str] | None = None
    activity: dict[str, Any] | None = Field(None, description="per protocol type: count and readable features")
    model_version: str | None = None


class ScoreFailure(BaseModel):
    """A rejected message: the failure message of CONTRACTS.md §3 under `detail`."""

    detail: FailureMessage


class HistoryEntry(BaseModel):
    run_id: str | None = None
    source: str | None = Field(None, description="batch, kafka or api")
    status: str | None = Field(None, description="success or failure")
    zscore: float | None = None
    hybrid_score: float | None = None
    risk_level: str | None = None
    model_version: str | None = None
    scored_at: int | None = None


class WalletScore(ScoredWallet):
    """The wallet's latest success message plus its scoring history, newest first."""

    history: list[HistoryEntry] = Field(default_factory=list)


class Component(BaseModel):
    model_config = ConfigDict(extra="allow")
    status: str = Field(description="ok, missing, not_configured, unreachable, slow or error")
    detail: str | None = None


class Health(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "status": "healthy",
                    "timestamp": "2024-01-30T00:01:40Z",
                    "version": "0.1.0",
                    "uptime_seconds": 12.5,
                    "components": {
                        "store": {"status": "ok", "dialect": "sqlite"},
                        "kafka": {"status": "not_configured"},
                        "mlflow_champion": {"status": "ok", "model": "defi-wallet-risk", "version": "3"},
                    },
                }
            ]
        }
    )
    status: Literal["healthy", "degraded", "unhealthy"] = Field(
        description="unhealthy: the score store does not answer (nothing can be read or recorded); degraded: "
        "scores answer but Kafka is configured and unreachable, or the champion cannot be loaded; else healthy"
    )
    timestamp: str = Field(description="when the answer was made, ISO 8601 in UTC")
    version: str
    uptime_seconds: float
    components: dict[str, Component]


class Stats(BaseModel):
    total_processed: int
    successful_processed: int
    failed_processed: int
    average_processing_time_ms: float
    last_processed_timestamp: int | None = None
    last_scored_as_of: int | None = None
    uptime_seconds: float


class ReloadResult(BaseModel):
    model: str
    champion_version: str | None
    reloaded: bool


def openapi_document(app) -> dict[str, Any]:
    """FastAPI's document plus the §1 message (the request body of POST /score; the batch endpoint
    declares its three body types itself, `BATCH_REQUEST_BODY`)."""
    from fastapi.openapi.utils import get_openapi

    document = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    _, definitions = models_json_schema(
        [(WalletTransactionsMessage, "validation")], ref_template="#/components/schemas/{model}"
    )
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas.update(definitions.get("$defs", {}))
    message = {"$ref": "#/components/schemas/WalletTransactionsMessage"}
    document["paths"]["/api/v1/score"]["post"]["requestBody"] = {
        "required": True,
        "content": {"application/json": {"schema": message, "example": EXAMPLE_REQUEST}},
    }
    return document


_MESSAGE_REF = {"$ref": "#/components/schemas/WalletTransactionsMessage"}
_TABLE_DESCRIPTION = (
    "An Arrow IPC stream (not the file format) of a transactions table, one row per transaction: "
    f"required columns {', '.join(REQUIRED_COLUMNS)}; optional (null when missing, extra columns ignored): "
    + "; ".join(f"{name} ({kind}): {meaning}" for name, kind, meaning in TABLE_COLUMNS if name not in REQUIRED_COLUMNS)
    + ". Scored as the §1 messages of its wallets: one result per distinct wallet_address, in order of first "
    "appearance; the wallet count is held to the batch limit."
)

# The request body of POST /api/v1/score/batch (its handler reads the raw body: bad input is a result).
BATCH_REQUEST_BODY: dict[str, Any] = {
    "required": True,
    "content": {
        "application/json": {"schema": {"type": "array", "items": _MESSAGE_REF}, "example": [EXAMPLE_REQUEST]},
        "application/x-ndjson": {"schema": {"type": "string", "description": "one §1 message per line"}},
        ARROW_STREAM_MEDIA_TYPE: {"schema": {"type": "string", "format": "binary", "description": _TABLE_DESCRIPTION}},
    },
}

# The Arrow answer of POST /api/v1/score/batch (`Accept: application/vnd.apache.arrow.stream`).
ARROW_BATCH_ANSWER: dict[str, Any] = {
    "description": "One result per input (per wallet for an Arrow body), in order: a JSON array of success and "
    f"failure messages, or with `Accept: {ARROW_STREAM_MEDIA_TYPE}` an Arrow IPC stream of one row per result",
    "content": {
        ARROW_STREAM_MEDIA_TYPE: {
            "schema": {
                "type": "string",
                "format": "binary",
                "description": "columns: wallet_address (string), ok (bool), zscore (string, as in the message), "
                "score (float64: the hybrid score, null on failure), confidence (float64), risk_level (string), "
                "error (string, null on success), message (string: the full JSON message)",
            }
        }
    },
}
