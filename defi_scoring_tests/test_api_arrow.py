"""POST /api/v1/score/batch with Arrow: a transactions table in (core/transaction_table.py), JSON or an
Arrow stream out, against a real `defi-scoring serve` process and SQLite store (as test_api.py)."""

import orjson
import pyarrow as pa
import pyarrow.ipc
import pytest

from defi_scoring.api.app import _accepts_arrow
from defi_scoring.core.synthetic import generate_wallets, iter_messages
from defi_scoring.core.synthetic_messages import corrupt
from defi_scoring.core.transaction_table import ARROW_STREAM_MEDIA_TYPE, table_from_messages
from defi_scoring_tests.conftest import (
    lending_message,
    lending_rows,
    start_api,
    stop_api,
    transfer,
    transfers_message,
)

ARROW = ARROW_STREAM_MEDIA_TYPE
MAX_WALLETS = 60
MAX_BYTES = 4_000_000
ANSWER_COLUMNS = ["wallet_address", "ok", "zscore", "score", "confidence", "risk_level", "error", "message"]


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    home = tmp_path_factory.mktemp("arrow-api-home")
    process, client = start_api(
        {
            "DEFI_SCORING_HOME": str(home),
            "DEFI_SCORING_API_MAX_BATCH": str(MAX_WALLETS),
            "DEFI_SCORING_API_MAX_BATCH_BYTES": str(MAX_BYTES),
        }
    )
    yield client
    stop_api(process)


def _stream(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def _read(response) -> pa.Table:
    assert response.headers["content-type"] == ARROW, response.text[:300]
    return pa.ipc.open_stream(response.content).read_all()


def _without_time(messages: list[dict]) -> list[dict]:
    return [{k: v for k, v in m.items() if k != "processing_time_ms"} for m in messages]


def _json_and_arrow(client, messages: list[dict], table: pa.Table | None = None) -> tuple[list, list]:
    """The answers to the messages as a JSON array and as an Arrow table, scored in the same second
    (the scoring time is in every message): retried when a second boundary fell between them."""
    body = _stream(table_from_messages(messages) if table is None else table)
    for _ in range(5):
        as_json = client.post("/api/v1/score/batch", content=orjson.dumps(messages))
        as_arrow = client.post("/api/v1/score/batch", content=body, headers={"Content-Type": ARROW})
        assert as_json.status_code == 200, as_json.text[:300]
        assert as_arrow.status_code == 200, as_arrow.text[:300]
        a, b = as_json.json(), as_arrow.json()
        if {m["timestamp"] for m in a} == {m["timestamp"] for m in b}:
            return a, b
    pytest.fail("could not score both batches within one second")


def test_the_same_wallets_as_json_and_as_arrow_give_the_same_messages(client):
    messages = list(iter_messages(generate_wallets(40, seed=11)))
    as_json, as_arrow = _json_and_arrow(client, messages)
    assert len(as_arrow) == len(messages)
    assert [m["wallet_address"] for m in as_arrow] == [m["wallet_address"] for m in messages]
    assert _without_time(as_arrow) == _without_time(as_json)
    assert all("zscore" in m for m in as_arrow)


def test_rows_of_one_wallet_anywhere_in_the_table_are_one_result_in_order_of_first_appearance(client):
    messages = list(iter_messages(generate_wallets(12, seed=12)))
    table = table_from_messages(messages)
    shuffled = table.take(pa.array(list(range(0, table.num_rows, 2)) + list(range(1, table.num_rows, 2))))
    first_seen = list(dict.fromkeys(shuffled.column("wallet_address").to_pylist()))
    response = client.post("/api/v1/score/batch", content=_stream(shuffled), headers={"Content-Type": ARROW})
    assert response.status_code == 200, response.text[:300]
    assert [m["wallet_address"] for m in response.json()] == first_seen


def test_bad_rows_give_the_failures_and_warnings_json_gives(client):
    good = list(iter_messages(generate_wallets(8, seed=13)))
    bad = [orjson.loads(corrupt(good[i], kind)) for i, kind in enumerate(["timestamp_ms", "negative_usd"])]
    bad += [orjson.loads(corrupt(good[i + 2], kind)) for i, kind in enumerate(["unknown_action", "invalid_wallet"])]
    # -5.5, not -5: the warning quotes the value, and a float64 column holds -5 as -5.0 where JSON says -5
    mixed = transfers_message([transfer("ok"), transfer("neg", usd=-5.5)], wallet="0x" + "8" * 40)
    only_bad = transfers_message([transfer("m", action="mint")], wallet="0x" + "9" * 40)
    bad_lending = lending_message([{"document_id": "x", "action": "stake", "timestamp": 1703980800}], "0x" + "6" * 40)
    messages = bad + good[4:] + [mixed, only_bad, lending_message(lending_rows(), "0x" + "7" * 40), bad_lending]
    as_json, as_arrow = _json_and_arrow(client, messages)
    assert _without_time(as_arrow) == _without_time(as_json)
    failed = [m["wallet_address"] for m in as_arrow if "error" in m]
    assert set(failed) >= {only_bad["wallet_address"], bad_lending["wallet_address"], bad[3]["wallet_address"]}
    warned = next(m for m in as_arrow if m["wallet_address"] == mixed["wallet_address"])
    assert "amountUSD must be a finite number >= 0" in " | ".join(warned["warnings"])


def test_arrow_answer_columns_hold_the_values_of_the_messages(client):
    messages = list(iter_messages(generate_wallets(10, seed=14)))
    messages.append(transfers_message([transfer("m", action="mint")], wallet="0x" + "5" * 40))
    body = _stream(table_from_messages(messages))
    headers = {"Content-Type": ARROW, "Accept": ARROW}
    table = _read(client.post("/api/v1/score/batch", content=body, headers=headers))
    assert table.column_names == ANSWER_COLUMNS
    assert [str(t) for t in table.schema.types] == ["string", "bool", "string", "double", "double", "string"] + [
        "string"
    ] * 2
    for row in table.to_pylist():
        message = orjson.loads(row["message"])
        assert row["wallet_address"] == message["wallet_address"]
        assert row["ok"] is ("error" not in message)
        assert row["zscore"] == message.get("zscore")
        assert row["score"] == message.get("hybrid_score")
        assert row["confidence"] == message.get("confidence")
        assert row["risk_level"] == message.get("risk_level")
        assert row["error"] == message.get("error")
    assert table.column("ok").to_pylist() == [True] * 10 + [False]
    assert table.column("score").null_count == 1 and table.column("error").null_count == 10


def test_a_json_batch_can_be_answered_in_arrow_too(client):
    lines = [orjson.dumps(m) for m in iter_messages(generate_wallets(5, seed=15))] + [b"{broken"]
    response = client.post(
        "/api/v1/score/batch",
        content=b"\n".join(lines),
        headers={"Content-Type": "application/x-ndjson", "Accept": f"application/json;q=0.5, {ARROW}"},
    )
    table = _read(response)
    assert table.num_rows == 6 and table.column("ok").to_pylist() == [True] * 5 + [False]
    assert "JSON" in table.column("error")[5].as_py()
    as_json = client.post(
        "/api/v1/score/batch", content=b"\n".join(lines), headers={"Content-Type": "application/x-ndjson"}
    )
    assert as_json.headers["content-type"] == "application/json" and len(as_json.json()) == 6


@pytest.mark.parametrize(
    "accept, arrow",
    [
        ("", False),
        ("*/*", False),
        ("application/json", False),
        (ARROW, True),
        (f"{ARROW}; q=0.9, */*;q=0.1", True),
        (f"application/json, {ARROW};q=0.5", False),
        (f"{ARROW};q=0", False),
    ],
)
def test_accept_negotiation(accept, arrow):
    assert _accepts_arrow(accept) is arrow


def _stream_file_format(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def test_a_body_that_is_not_a_readable_transactions_stream_is_422(client):
    table = table_from_messages(list(iter_messages(generate_wallets(2, seed=18))))
    cases = [
        (b"not arrow at all", "not a readable Arrow IPC stream"),
        (_stream(table)[:-40], "not a readable Arrow IPC stream"),  # truncated
        (_stream_file_format(table), "stream format (not the file format)"),
        (
            _stream(table.drop_columns(["document_id", "timestamp"])),
            "missing required column(s) document_id, timestamp",
        ),
        (_stream(table.drop_columns(["wallet_address"])), "missing required column(s) wallet_address"),
        (
            _stream(table.set_column(4, "timestamp", pa.array([[1]] * table.num_rows))),
            "column 'timestamp' is list<item: int64>",
        ),
    ]
    for body, fragment in cases:
        response = client.post("/api/v1/score/batch", content=body, headers={"Content-Type": ARROW})
        assert response.status_code == 422, response.text[:300]
        assert fragment in response.json()["detail"]
    schema_only = client.post(
        "/api/v1/score/batch", content=_stream(table.slice(0, 0)), headers={"Content-Type": ARROW}
    )
    assert schema_only.status_code == 200 and schema_only.json() == []


def test_the_batch_limit_counts_wallets_not_rows(client):
    messages = list(iter_messages(generate_wallets(MAX_WALLETS + 1, seed=16)))
    table = table_from_messages(messages)
    assert table.num_rows > MAX_WALLETS + 1
    too_many = client.post("/api/v1/score/batch", content=_stream(table), headers={"Content-Type": ARROW})
    assert too_many.status_code == 413
    assert too_many.json()["detail"] == f"{MAX_WALLETS + 1} wallets exceed the limit of {MAX_WALLETS} per request"
    # the same wallet in upper and lower case is one wallet, as the decoder keys it
    last = messages[-1]["wallet_address"]
    keys = table.column("wallet_address").to_pylist()
    folded = table.set_column(
        0, "wallet_address", pa.array([k.upper().replace("0X", "0x") if k == last else k for k in keys])
    )
    within = table.filter(pa.array([k != messages[0]["wallet_address"] for k in keys]))
    assert (
        client.post("/api/v1/score/batch", content=_stream(within), headers={"Content-Type": ARROW}).status_code == 200
    )
    assert (
        client.post("/api/v1/score/batch", content=_stream(folded), headers={"Content-Type": ARROW}).status_code == 413
    )


def test_the_body_size_limit_holds_for_arrow_bodies(client):
    table = table_from_messages(list(iter_messages(generate_wallets(3, seed=19))))
    padded = table.append_column("notes", pa.array(["x" * (MAX_BYTES // table.num_rows + 1)] * table.num_rows))
    body = _stream(padded)
    assert len(body) > MAX_BYTES
    response = client.post("/api/v1/score/batch", content=body, headers={"Content-Type": ARROW})
    assert response.status_code == 413 and f"{MAX_BYTES}-byte limit" in response.json()["detail"]
    # an extra column is ignored when the body is within the limit
    within = client.post(
        "/api/v1/score/batch",
        content=_stream(table.append_column("notes", pa.array(["x"] * table.num_rows))),
        headers={"Content-Type": ARROW},
    )
    assert within.status_code == 200 and len(within.json()) == 3


def test_arrow_results_are_recorded_in_the_store(client):
    messages = list(iter_messages(generate_wallets(6, seed=17)))
    address = messages[0]["wallet_address"]
    assert client.get(f"/api/v1/wallets/{address}").status_code == 404
    before = client.get("/api/v1/stats").json()["total_processed"]
    response = client.post(
        "/api/v1/score/batch", content=_stream(table_from_messages(messages)), headers={"Content-Type": ARROW}
    )
    assert response.status_code == 200, response.text[:300]
    stored = client.get(f"/api/v1/wallets/{address.lower()}").json()
    assert stored["zscore"] == response.json()[0]["zscore"]
    assert stored["hybrid_score"] == response.json()[0]["hybrid_score"]
    assert stored["history"][0]["source"] == "api" and stored["history"][0]["run_id"] == "api"
    assert client.get("/api/v1/stats").json()["total_processed"] == before + len(messages)


def test_openapi_documents_the_arrow_body_and_answer(client):
    operation = client.get("/openapi.json").json()["paths"]["/api/v1/score/batch"]["post"]
    body = operation["requestBody"]["content"]
    assert set(body) == {"application/json", "application/x-ndjson", ARROW}
    assert body["application/json"]["schema"]["items"] == {"$ref": "#/components/schemas/WalletTransactionsMessage"}
    assert "wallet_address" in body[ARROW]["schema"]["description"]
    answer = operation["responses"]["200"]["content"]
    assert set(answer) == {"application/json", ARROW} and "message" in answer[ARROW]["schema"]["description"]
