"""Typed outcomes: one encoder per kind, whatever the door (core.outcomes)."""

import orjson

from defi_scoring.core.batch_scoring import score_raw_messages
from defi_scoring.core.outcomes import alert_for, failure, outcomes_of, with_alerts
from defi_scoring.core.synthetic import generate_wallets, iter_messages


def test_a_failure_is_the_contract_message():
    outcome = failure("0xabc", "no usable transactions", 1_700_000_000, 3, ["dexes"])
    assert outcome.kind == "failure" and outcome.wallet == "0xabc"
    assert orjson.loads(outcome.value) == {
        "wallet_address": "0xabc",
        "error": "no usable transactions",
        "timestamp": 1_700_000_000,
        "processing_time_ms": 3,
        "categories": ["dexes"],
    }
    assert failure(None, "unreadable", 0).wallet == ""  # keyed by nothing, still answered


def test_scored_messages_become_successes_and_failures_in_input_order():
    tiny_messages = [orjson.dumps(m) for m in iter_messages(generate_wallets(5, seed=3))]
    bad = b'{"wallet_address": "0x12", "data": []}'
    scored = score_raw_messages([*tiny_messages, bad])
    encoded = scored.encoded()
    outcomes = list(outcomes_of(encoded.values, encoded.summaries))
    assert [o.kind for o in outcomes] == ["success"] * len(tiny_messages) + ["failure"]
    assert [o.value for o in outcomes] == encoded.values
    assert orjson.loads(outcomes[-1].value)["error"]


def test_only_published_alert_types_make_an_alert_record():
    summary = {"wallet_address": "0xa", "zscore": "1", "timestamp": 5, "hybrid_score": 20.0, "risk_level": "high"}
    quiet = next(outcomes_of([b"{}"], [{**summary, "alerts": [{"type": "low_confidence"}]}]))
    loud = next(outcomes_of([b"{}"], [{**summary, "alerts": [{"type": "score_drop", "points": 30}]}]))
    assert alert_for(quiet) is None
    alert = alert_for(loud)
    assert alert.kind == "alert" and orjson.loads(alert.value)["alerts"] == [{"type": "score_drop", "points": 30}]
    records, count = with_alerts([quiet, loud])
    assert [r.kind for r in records] == ["success", "success", "alert"] and count == 1
