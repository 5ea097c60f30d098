"""The API as a service under real conditions: uvicorn on a free port, a fresh or broken store,
concurrent callers, Prometheus scraping, OpenAPI for client generators."""

import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from defi_scoring.core.synthetic import generate_wallets, iter_messages
from defi_scoring.streaming.broker import free_port
from defi_scoring_tests.conftest import example_message, start_api, stop_api


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    home = tmp_path_factory.mktemp("svc") / "not" / "yet" / "created"
    process, client = start_api({"DEFI_SCORING_HOME": str(home), "DEFI_SCORING_API_MAX_BATCH": "100"})
    yield client, home
    stop_api(process)


def _messages(n, seed=8):
    return [orjson.dumps(m) for m in iter_messages(generate_wallets(n, seed=seed))][:n]


def test_starts_on_a_home_that_does_not_exist(service):
    client, home = service
    health = client.get("/health").json()
    assert health["status"] == "healthy" and health["components"]["store"]["status"] == "ok"
    assert health["components"]["mlflow_champion"]["status"] == "missing"
    assert (home / "scores.db").exists()
    assert client.get("/stats").json()["total_processed"] >= 0
    assert client.get(f"/api/v1/wallets/0x{'2' * 40}").status_code == 404


def test_concurrent_posts_are_batched_and_each_caller_gets_its_own_message(service):
    client, _ = service
    good = _messages(24)
    bad = [b"{not json", orjson.dumps({"data": []}), orjson.dumps({**example_message(), "wallet_address": "0x1"})]
    repeated = [good[0], good[0]]  # the same wallet twice in one window: scored as if alone, each time
    bodies = good + bad + repeated
    before = _batch_histogram(client)
    with ThreadPoolExecutor(len(bodies)) as pool:
        responses = list(pool.map(lambda b: client.post("/api/v1/score", content=b), bodies))
    for body, response in zip(bodies, responses):
        if body in bad:
            assert response.status_code == 422, response.text
            assert "error" in response.json()["detail"]
        else:
            assert response.status_code == 200, response.text
            assert response.json()["wallet_address"] == orjson.loads(body)["wallet_address"]
    assert responses[-1].json()["zscore"] == responses[-2].json()["zscore"] == responses[0].json()["zscore"]
    assert "wallet_address" in responses[len(good) + 1].json()["detail"]["error"]
    after = _batch_histogram(client)
    calls, scored = after[0] - before[0], after[1] - before[1]
    assert scored == len(bodies) and calls < len(bodies)  # fewer scoring calls than requests: batched


def _batch_histogram(client) -> tuple[float, float]:
    samples = {
        s.name: s.value
        for family in text_string_to_metric_families(client.get("/metrics").text)
        for s in family.samples
        if s.name.startswith("defi_scoring_scoring_batch_size")
    }
    return samples.get("defi_scoring_scoring_batch_size_count", 0.0), samples.get(
        "defi_scoring_scoring_batch_size_sum", 0.0
    )


def test_health_answers_quickly_while_posts_are_in_flight(service):
    client, _ = service
    bodies = _messages(50, seed=9)
    done = threading.Event()
    latencies = []

    def probe():
        with httpx.Client(base_url=str(client.base_url), timeout=10) as own:
            own.get("/health")  # warm connection
            while not done.is_set():
                started = time.perf_counter()
                assert own.get("/health").status_code == 200
                latencies.append((time.perf_counter() - started) * 1000)
                time.sleep(0.01)

    prober = threading.Thread(target=probe)
    prober.start()
    with ThreadPoolExecutor(50) as pool:
        statuses = list(pool.map(lambda b: client.post("/api/v1/score", content=b).status_code, bodies))
    done.set()
    prober.join()
    assert statuses == [200] * 50
    assert len(latencies) >= 3
    assert sorted(latencies)[len(latencies) // 2] <= 50, latencies  # median under load
    assert max(latencies) <= 250, latencies


def test_score_batch_one_result_per_input_in_order(service):
    client, _ = service
    lines = _messages(30, seed=10)
    lines.insert(5, b"{broken")
    as_json = client.post("/api/v1/score/batch", content=b"[" + b",".join(lines[:5] + lines[6:]) + b"]")
    assert as_json.status_code == 200 and len(as_json.json()) == 30
    # an element may also be a message's text as a JSON string; an invalid body is refused whole
    text_element = orjson.dumps(lines[0].decode())
    as_text = client.post("/api/v1/score/batch", content=b"[" + text_element + b"," + lines[1] + b"]")
    assert [m["wallet_address"] for m in as_text.json()] == [m["wallet_address"] for m in as_json.json()[:2]]
    broken = client.post("/api/v1/score/batch", content=b"[" + lines[0] + b", {broken}]")
    assert broken.status_code == 422 and "not JSON" in broken.json()["detail"]
    as_lines = client.post(
        "/api/v1/score/batch", content=b"\n".join(lines), headers={"content-type": "application/x-ndjson"}
    )
    out = as_lines.json()
    assert len(out) == 31 and "error" in out[5] and "JSON" in out[5]["error"]
    assert [m["wallet_address"].lower() for m in out if "zscore" in m] == [
        orjson.loads(line)["wallet_address"].lower() for i, line in enumerate(lines) if i != 5
    ]
    too_many = client.post("/api/v1/score/batch", content=orjson.dumps([orjson.loads(lines[0])] * 101))
    assert too_many.status_code == 413 and "limit of 100" in too_many.json()["detail"]
    assert client.post("/api/v1/score/batch", content=b'{"a": 1}').status_code == 422


def test_metrics_parse_and_request_ids_are_echoed(service):
    client, _ = service
    response = client.get(f"/api/v1/wallets/0x{'3' * 40}", headers={"X-Request-ID": "trace-123"})
    assert response.headers["x-request-id"] == "trace-123"
    assert len(client.get("/").headers["x-request-id"]) == 32
    families = {f.name: f for f in text_string_to_metric_families(client.get("/metrics").text)}
    assert {
        "defi_scoring_http_requests",
        "defi_scoring_http_request_duration_seconds",
        "defi_scoring_store_errors",
    } <= set(families)
    requests = [s for s in families["defi_scoring_http_requests"].samples if s.name.endswith("_total")]
    assert any(s.labels == {"method": "GET", "route": "/api/v1/wallets/{address}", "status": "404"} for s in requests)


def test_openapi_has_request_and_response_models(service):
    client, _ = service
    document = client.get("/openapi.json").json()
    schemas = document["components"]["schemas"]
    assert {
        "WalletTransactionsMessage",
        "DexTransaction",
        "ScoredWallet",
        "FailureMessage",
        "Health",
        "Stats",
        "WalletScore",
        "HistoryEntry",
    } <= set(schemas)
    post = document["paths"]["/api/v1/score"]["post"]
    body = post["requestBody"]["content"]["application/json"]
    assert body["schema"]["$ref"].endswith("/WalletTransactionsMessage") and body["example"]["wallet_address"]
    assert post["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/ScoredWallet")
    assert "/api/v1/score/batch" in document["paths"] and "/metrics" in document["paths"]
    assert schemas["Health"]["examples"][0]["components"]["store"]["status"] == "ok"


def _black_hole() -> tuple[socket.socket, int]:
    """A port that accepts connections and never answers: a store that hangs."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    return server, server.getsockname()[1]


def test_failing_and_hanging_stores_show_in_health_and_scoring_says_why_it_cannot(tmp_path):
    closed = free_port()
    process, client = start_api(
        {
            "DEFI_SCORING_HOME": str(tmp_path / "a"),
            "DEFI_SCORING_STORE_URL": f"postgresql+psycopg://scorer@127.0.0.1:{closed}/scores",
        }
    )
    try:
        health = client.get("/health").json()
        assert health["status"] == "unhealthy" and health["components"]["store"]["status"] == "error"
        assert client.get("/stats").status_code == 503 and "see /health" in client.get("/stats").json()["detail"]
        # a score is a function of the stored state: without the store there is none to give, and the
        # caller is told why (not a 500, not a score of the body alone)
        scored = client.post("/api/v1/score", content=orjson.dumps(example_message()))
        assert scored.status_code == 503 and "score store unavailable" in scored.json()["detail"]
        errors = [
            s
            for f in text_string_to_metric_families(client.get("/metrics").text)
            if f.name == "defi_scoring_store_errors"
            for s in f.samples
            if s.name.endswith("_total")
        ]
        assert {s.labels["operation"] for s in errors if s.value > 0} >= {"ping", "read"}
    finally:
        stop_api(process)

    hole, port = _black_hole()
    process, client = start_api(
        {
            "DEFI_SCORING_HOME": str(tmp_path / "b"),
            "DEFI_SCORING_STORE_URL": f"postgresql+psycopg://scorer@127.0.0.1:{port}/scores",
        }
    )
    try:
        started = time.perf_counter()
        health = client.get("/health").json()
        assert time.perf_counter() - started < 3
        assert health["components"]["store"]["status"] == "slow" and health["status"] == "unhealthy"
    finally:
        stop_api(process)
        hole.close()


def test_access_log_has_one_json_line_per_request(tmp_path):
    process, client = start_api({"DEFI_SCORING_HOME": str(tmp_path)})
    client.get("/", headers={"X-Request-ID": "log-me"})
    client.get(f"/api/v1/wallets/0x{'4' * 40}")
    output = stop_api(process)
    lines = [orjson.loads(line) for line in output.splitlines() if line.startswith("{")]
    mine = [line for line in lines if line["request_id"] == "log-me"]
    assert len(mine) == 1 and mine[0]["status"] == 200 and mine[0]["route"] == "/"
    assert any(line["route"] == "/api/v1/wallets/{address}" and line["status"] == 404 for line in lines)
