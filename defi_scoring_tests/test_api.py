"""The REST API against a real uvicorn process on a free port, backed by a real SQLite score store."""

from datetime import datetime, timedelta

import orjson
import pytest

from defi_scoring.core.batch_scoring import score_raw_messages
from defi_scoring.core.synthetic import generate_wallets, iter_messages
from defi_scoring.score_store import ScoreStore
from defi_scoring_tests.conftest import (
    WALLET,
    example_message,
    lending_message,
    lending_rows,
    start_api,
    stop_api,
    transfer,
    transfers_message,
)

ADMIN_KEY = "test-admin-key"


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    home = tmp_path_factory.mktemp("api-home")
    store = ScoreStore(f"sqlite:///{home / 'scores.db'}")
    lines = [orjson.dumps(m) for m in iter_messages(generate_wallets(20, seed=5))] + [b"{broken"]
    messages = score_raw_messages(lines, as_of=1_735_689_600).messages()
    store.record_messages(messages, run_id="batch-1", source="batch")
    process, client = start_api(
        {
            "DEFI_SCORING_HOME": str(home),
            "DEFI_SCORING_ADMIN_KEY": ADMIN_KEY,
            "DEFI_SCORING_API_MAX_BODY_BYTES": "200000",
        }
    )
    yield client, messages
    stop_api(process)


def test_root_and_docs(api):
    client, _ = api
    assert client.get("/").json()["service"] == "defi-scoring"
    assert client.get("/docs").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/api/v1/wallets/{address}", "/api/v1/score", "/api/v1/health", "/api/v1/stats"} <= set(paths)


@pytest.mark.parametrize("path", ["/health", "/api/v1/health"])
def test_health_reports_each_component(api, path):
    client, _ = api
    body = client.get(path).json()
    assert body["status"] == "healthy" and body["uptime_seconds"] >= 0 and body["version"]
    assert datetime.fromisoformat(body["timestamp"]).utcoffset() == timedelta(0)  # ISO 8601, UTC
    assert body["components"]["store"]["status"] == "ok"
    assert body["components"]["kafka"]["status"] == "not_configured"
    assert body["components"]["mlflow_champion"]["status"] == "missing"


@pytest.mark.parametrize("path", ["/stats", "/api/v1/stats"])
def test_stats_come_from_the_store(api, path):
    client, messages = api
    body = client.get(path).json()
    assert body["total_processed"] >= len(messages)
    assert body["failed_processed"] >= 1
    assert body["successful_processed"] == body["total_processed"] - body["failed_processed"]
    assert {"average_processing_time_ms", "uptime_seconds", "last_processed_timestamp"} <= set(body)


def test_wallet_latest_and_history_404_and_422(api):
    client, messages = api
    address = messages[0]["wallet_address"]
    body = client.get(f"/api/v1/wallets/{address.lower()}").json()
    assert body["zscore"] == messages[0]["zscore"] and body["hybrid_score"] == messages[0]["hybrid_score"]
    assert body["history"][0]["run_id"] == "batch-1"
    missing = client.get(f"/api/v1/wallets/0x{'1' * 40}")
    assert missing.status_code == 404 and "not been scored" in missing.json()["detail"]
    assert client.get("/api/v1/wallets/not-an-address").status_code == 422


def test_post_score_then_read_it_back(api):
    client, _ = api
    before = client.get("/api/v1/stats").json()["total_processed"]
    as_of = 1703980900 + 30 * 86_400  # CONTRACTS.md §4: 30 days after the deposit
    response = client.post(f"/api/v1/score?as_of={as_of}", content=orjson.dumps(example_message()))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["zscore"] == "308.000000000000000000" and body["timestamp"] == as_of
    assert body["risk_level"] and "breakdown" in body and body["ml"]["available"] is False
    assert client.get(f"/api/v1/wallets/{WALLET}").json()["zscore"] == body["zscore"]
    assert client.get("/api/v1/stats").json()["total_processed"] == before + 1


@pytest.mark.parametrize(
    "payload, fragment",
    [
        (b"{not json", "JSON"),
        (orjson.dumps({"data": []}), "wallet_address"),
        (orjson.dumps({**example_message(), "wallet_address": "0x123"}), "wallet_address"),
    ],
)
def test_invalid_score_request_is_422_with_the_specific_error(api, payload, fragment):
    client, _ = api
    response = client.post("/api/v1/score", content=payload)
    assert response.status_code == 422
    assert fragment in response.json()["detail"]["error"]


def test_oversized_body_is_413(api):
    client, _ = api
    response = client.post("/api/v1/score", content=b"x" * 300_000)
    assert response.status_code == 413 and "limit" in response.json()["detail"]


def test_admin_requires_the_api_key(api):
    client, _ = api
    assert client.post("/api/v1/admin/reload-model").status_code == 401
    assert client.post("/api/v1/admin/reload-model", headers={"X-API-Key": "wrong"}).status_code == 401
    ok = client.post("/api/v1/admin/reload-model", headers={"X-API-Key": ADMIN_KEY})
    assert ok.status_code == 200 and ok.json()["reloaded"] is False  # no champion in this store


def test_post_score_of_a_transfers_message(api):
    client, _ = api
    message = transfers_message(
        [transfer(f"t{i}", "receive" if i % 2 else "send", ts=1703980800 + 600 * i) for i in range(6)],
        wallet="0x" + "6" * 40,  # a wallet of its own: the API scores the stored history too
    )
    response = client.post("/api/v1/score", content=orjson.dumps(message))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["zscore"] == "150.000000000000000000" and body["activity"]["transfers"]["transaction_count"] == 6
    assert "transfer_behaviour" in body["breakdown"]


def test_lending_and_bad_section_1b_messages_through_score_and_batch(api):
    client, _ = api
    lending_wallet, bad_wallet = "0x" + "7" * 40, "0x" + "8" * 40
    good_lending = lending_message(lending_rows(), wallet=lending_wallet)
    response = client.post("/api/v1/score", content=orjson.dumps(good_lending))
    assert response.status_code == 200, response.text
    lending = response.json()["activity"]["lending"]
    assert lending["transaction_count"] == 2 and lending["features"]["borrow_to_supply_ratio"] == 0.25

    # a lending message whose only row has an unknown action: 422 with the §3 failure per category
    bad_lending = lending_message([{"document_id": "x", "action": "stake", "timestamp": 1703980800}], wallet=bad_wallet)
    response = client.post("/api/v1/score", content=orjson.dumps(bad_lending))
    assert response.status_code == 422
    failure = response.json()["detail"]
    assert failure["error"].startswith("Processing failed: No valid transactions found")
    assert (
        failure["categories"][0]["category"] == "lending" and "'stake' for lending" in failure["categories"][0]["error"]
    )

    # a transfers message with one bad row: the row is dropped with a warning, the rest scored
    mixed = transfers_message([transfer("ok"), transfer("neg", usd=-5)], wallet=bad_wallet)
    response = client.post("/api/v1/score", content=orjson.dumps(mixed))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["activity"]["transfers"]["transaction_count"] == 1
    assert "amountUSD must be a finite number >= 0" in " | ".join(body["warnings"])

    # the same four in one batch request: one result per input, in order, failures included
    only_bad_transfers = transfers_message([transfer("m", action="mint")], wallet="0x" + "9" * 40)
    batch = [good_lending, bad_lending, mixed, only_bad_transfers]
    response = client.post("/api/v1/score/batch", content=orjson.dumps(batch))
    assert response.status_code == 200, response.text
    results = response.json()
    assert [r["wallet_address"] for r in results] == [m["wallet_address"] for m in batch]
    assert ["error" in r for r in results] == [False, True, False, True]
    assert "unknown action 'mint' for transfers" in results[3]["categories"][0]["error"]
