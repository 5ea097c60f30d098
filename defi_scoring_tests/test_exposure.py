"""Counterparty exposure in the core (issue 36): direct and two-hop exposure on hand-built histories,
a wallet's own listing never counted as exposure, a sanctioned owner critical whatever its behaviour,
a removal giving the score back, the shipped lists importable, and the offline `score --known-addresses`."""

import json
from pathlib import Path

import orjson
import pandas as pd
import pytest
from click.testing import CliRunner

from defi_scoring.core.exposure import exposure_table
from defi_scoring.core.normalise import normalise_messages
from defi_scoring.core.scoring_config import default_scoring_config
from defi_scoring.core.success_messages import encode_success_messages
from defi_scoring.core.wallet_scoring import score_wallet_table
from defi_scoring_tests.conftest import transfer, transfers_message

KNOWN_BAD = Path(__file__).resolve().parents[2] / "shared" / "data" / "known-bad"
A, B, C, D, E = ("0x" + c * 40 for c in "abcde")
X = "0x" + "1" * 40  # an exploiter
S = "0x" + "2" * 40  # a sanctioned address
CEX = "0x" + "3" * 40  # an exchange (benign context)
CONFIG = default_scoring_config()


def histories() -> pd.DataFrame:
    """A received 12.4 ETH from X; B dealt with A and C; C received from S; D only dealt with B;
    E sent to CEX only; S itself has a history (it sent to A)."""
    messages = [
        transfers_message(
            [
                transfer("1", counterparty=X, amount=12.4, usd=24_800),
                transfer("2", counterparty=B, usd=40_000, amount=20),
                transfer("3", "send", counterparty=CEX, usd=100, amount=0.05),
            ],
            wallet=A,
        ),
        transfers_message([transfer("1", counterparty=C), transfer("2", "send", counterparty=A)], wallet=B),
        transfers_message([transfer("1", counterparty=S), transfer("2", counterparty=B)], wallet=C),
        transfers_message([transfer("1", counterparty=B, ts=1703990000 + i) for i in range(4)], wallet=D),
        transfers_message([transfer("1", "send", counterparty=CEX)], wallet=E),
        transfers_message([transfer("1", "send", counterparty=A)], wallet=S),
    ]
    return normalise_messages([orjson.dumps(m) for m in messages]).transactions


def known(*extra: dict) -> pd.DataFrame:
    rows = [
        {"address": X, "category": "exploit", "source": "forta", "label": "Ronin Bridge Exploiter"},
        {"address": S.upper().replace("0X", "0x"), "category": "sanctioned", "source": "ofac", "label": ""},
        {"address": S, "category": "sanctioned", "source": "etherscan-labels", "label": "Tornado Cash"},
        {"address": CEX, "category": "exchange", "source": "etherscan-labels", "label": "Binance 14"},
        *extra,
    ]
    return pd.DataFrame(rows)


def test_direct_exposure_has_direction_value_share_and_times():
    table = exposure_table(histories(), known(), CONFIG)
    a = table.loc[A]
    detail = json.loads(a["exposure_json"])
    (direct,) = [d for d in detail["direct"] if d["category"] == "exploit"]
    assert direct["direction"] == "in" and direct["count"] == 1 and direct["usd"] == 24_800
    assert direct["share"] == pytest.approx(24_800 / 64_800, abs=1e-4)  # of A's inflow
    assert direct["first"] == direct["last"] == 1703980800 and direct["top"]["label"] == "Ronin Bridge Exploiter"
    assert (
        a["exposure_reason"]
        == "received 12.4 ETH ($24,800) from Ronin Bridge Exploiter (exploit, forta), 38% of inflow"
    )
    # the exchange shows as context (severity 0), never as risk
    context = [d for d in detail["direct"] if d["category"] == "exchange"]
    assert context and context[0]["severity"] == 0 and context[0]["direction"] == "out"
    assert table.loc[E, "exposure_score"] == 0 and json.loads(table.loc[E, "exposure_json"])["direct"]
    assert a["exposure_direct_score"] == pytest.approx(90 * (0.6 + 0.4 * min(1, (24_800 / 64_800) / 0.25)))


def test_indirect_exposure_at_one_and_two_hops_decays():
    table = exposure_table(histories(), known(), CONFIG)
    b = json.loads(table.loc[B, "exposure_json"])["indirect"]
    assert {(i["category"], i["hops"], i["example"]) for i in b} == {("sanctioned", 1, C), ("exploit", 1, A)}
    d = json.loads(table.loc[D, "exposure_json"])["indirect"]
    assert {(i["category"], i["hops"]) for i in d} == {("sanctioned", 2), ("exploit", 2)}
    assert table.loc[D, "exposure_direct_score"] == 0
    # D reaches S two hops away through B alone (its whole volume): 100 × 0.5² × full strength
    assert table.loc[D, "exposure_indirect_score"] == pytest.approx(25.0)
    assert table.loc[B, "exposure_indirect_score"] == pytest.approx(100 * 0.5 * 1.0)  # half of B's volume via C
    stronger_decay = CONFIG.model_copy(update={"exposure": CONFIG.exposure.model_copy(update={"hop_decay": 0.25})})
    assert exposure_table(histories(), known(), stronger_decay).loc[D, "exposure_indirect_score"] == pytest.approx(6.25)


def test_own_listing_is_ownership_never_exposure():
    table = exposure_table(histories(), known(), CONFIG)
    s = json.loads(table.loc[S, "exposure_json"])
    assert [o["category"] for o in s["ownership"]] == ["sanctioned"]
    assert sorted(s["ownership"][0]["sources"]) == ["etherscan-labels", "ofac"]  # both sources kept
    # S → A → … → S: its own listing does not come back as indirect exposure
    assert all(i["category"] != "sanctioned" for i in s["indirect"])
    assert table.loc[S, "exposure_risk_floor"] == "critical"


def test_sanctioned_owner_is_critical_and_a_direct_sanctioned_link_at_least_high():
    tx = histories()
    scores = score_wallet_table(tx, None, CONFIG, exposure=exposure_table(tx, known(), CONFIG)).table
    assert scores.loc[S, "risk_level"] == "critical" and scores.loc[S, "hybrid_score"] <= 10
    worse = {"high", "very_high", "critical"}
    assert scores.loc[C, "risk_level"] in worse and scores.loc[C, "hybrid_score"] < 40
    messages = encode_success_messages(
        scores,
        scores.index.tolist(),
        score_wallet_table(tx, None, CONFIG, exposure=exposure_table(tx, known(), CONFIG)),
        0,
        0,
    )
    by_wallet = {m["wallet_address"]: m for m in map(orjson.loads, messages.values)}
    assert by_wallet[S]["exposure"]["ownership"][0]["category"] == "sanctioned"
    alert = next(a for a in by_wallet[S]["alerts"] if a["type"] == "exposure")
    assert alert["severity"] == "critical" and alert["risk_floor"] == "critical"
    reason = by_wallet[A]["reasons"][0]
    assert reason["factor"] == "counterparty_exposure" and "Ronin Bridge Exploiter" in reason["text"]
    assert reason["points"] < 0
    assert "exposure" not in by_wallet[A]["breakdown"]  # reported in its own object, breakdown unchanged


def test_without_lists_the_score_is_unchanged_and_a_removal_gives_it_back():
    tx = histories()
    plain = score_wallet_table(tx, None, CONFIG)
    listed = score_wallet_table(tx, None, CONFIG, exposure=exposure_table(tx, known(), CONFIG))
    assert listed.table.loc[A, "hybrid_score"] < plain.table.loc[A, "hybrid_score"] - 10
    removal = {"address": X, "category": "exploit", "source": "forta", "removed": True}
    rows = known().assign(removed=False)
    after = pd.concat([rows[rows["address"] != X], pd.DataFrame([removal])], ignore_index=True)
    removed = score_wallet_table(tx, None, CONFIG, exposure=exposure_table(tx, after, CONFIG))
    # A's score goes back to its behaviour's (what is left: context and B's path to S at 2 hops)
    assert removed.table.loc[A, "hybrid_score"] > listed.table.loc[A, "hybrid_score"] + 10
    empty = score_wallet_table(tx, None, CONFIG, exposure=exposure_table(tx, known().iloc[:0], CONFIG))
    columns = ["hybrid_score", "confidence", "risk_level", "base_score"]
    pd.testing.assert_frame_equal(empty.table[columns], plain.table[columns])
    encode = lambda s: encode_success_messages(s.table, s.table.index.tolist(), s, 0, 0).values
    assert encode(empty) == encode(plain)  # bytes for bytes


def test_exposure_is_not_a_model_feature():
    seen = []

    def model(features):
        seen.append(set(features.columns))
        from defi_scoring.core.model_scoring import no_model

        return no_model("test")

    tx = histories()
    score_wallet_table(tx, None, CONFIG, model, exposure=exposure_table(tx, known(), CONFIG))
    assert seen and not any(c.startswith("exposure") for c in seen[0])


@pytest.mark.skipif(not KNOWN_BAD.exists(), reason="shared known-bad lists not present")
def test_the_shipped_lists_read_as_their_readme_counts():
    from defi_scoring.adapters.importers.known_lists import read_known_list

    combined = read_known_list(KNOWN_BAD / "known_addresses.csv")
    assert combined.layout == "combined" and len(combined.rows) == 47_777 and combined.invalid == 0
    assert combined.rows.groupby("category")["address"].nunique()["sanctioned"] == 158
    usdt = read_known_list(KNOWN_BAD / "ofac" / "sanctioned_addresses_USDT.txt")
    assert (usdt.layout, len(usdt.rows), usdt.invalid) == ("ofac", 8, 18)
    forta = read_known_list(KNOWN_BAD / "forta" / "etherscan_malicious_labels.csv")
    assert forta.rows["category"].value_counts().to_dict() == {"phishing": 7049, "exploit": 210}
    labels = read_known_list(KNOWN_BAD / "etherscan-labels" / "combinedAllLabels.json")
    counts = labels.rows["category"].value_counts()
    assert len(labels.rows) == 32_902 and counts["other-risk"] == 1_406 and counts["sanctioned"] == 72


def test_offline_score_with_a_list(tmp_path, tmp_home):
    from defi_scoring.cli import main

    tx_messages = tmp_path / "wallets.jsonl"
    plain_messages = [
        transfers_message([transfer("1", counterparty=S), transfer("2", counterparty=B)], wallet=C),
        transfers_message([transfer("1", counterparty=C), transfer("2", "send", counterparty=A)], wallet=B),
    ]
    tx_messages.write_bytes(b"\n".join(orjson.dumps(m) for m in plain_messages) + b"\n")
    listing = tmp_path / "list.csv"
    known().to_csv(listing, index=False)
    out = tmp_path / "scores.jsonl"
    result = CliRunner().invoke(
        main,
        ["score", "--input", str(tx_messages), "--output", str(out), "--no-model", "--known-addresses", str(listing)],
    )
    assert result.exit_code == 0, result.output
    c, b = map(orjson.loads, out.read_bytes().splitlines())
    assert c["exposure"]["direct"][0]["category"] == "sanctioned" and c["risk_level"] in {"high", "very_high"}
    assert b["exposure"]["indirect"][0]["hops"] == 1  # through C, whose history is in the file
