"""Per request: a request id (taken from X-Request-ID or made), echoed in the response header; one
structured access-log line (JSON); request count and latency by route template and status.

A plain ASGI middleware: Starlette's BaseHTTPMiddleware would add a task and a copy per request.
"""

from __future__ import annotations

import logging
import os
import sys
import time
import uuid

import orjson

from defi_scoring.api import metrics

access_log = logging.getLogger("defi_scoring.access")


def configure_access_log() -> None:
    """One JSON object per line on stdout unless the application configured the logger itself;
    DEFI_SCORING_API_ACCESS_LOG=0 turns it off."""
    if os.environ.get("DEFI_SCORING_API_ACCESS_LOG") == "0":
        access_log.disabled = True
        return
    if not access_log.handlers:
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("%(message)s"))
        access_log.addHandler(handler)
        access_log.setLevel(logging.INFO)
        access_log.propagate = False


class RequestObservability:
    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"x-request-id"), None)
        request_id = (request_id or uuid.uuid4().hex)[:128]
        status = 500

        async def send_with_id(message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode("latin-1"))]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            method = scope["method"]
            metrics.REQUESTS.labels(method, route, str(status)).inc()
            metrics.LATENCY.labels(method, route).observe(elapsed)
            if access_log.isEnabledFor(logging.INFO):
                access_log.info(
                    orjson.dumps(
                        {
                            "ts": round(time.time(), 3),
                            "request_id": request_id,
                            "method": method,
                            "path": scope["path"],
                            "route": route,
                            "status": status,
                            "duration_ms": round(elapsed * 1000, 3),
                            "client": (scope.get("client") or ("", 0))[0],
                        }
                    ).decode()
                )
