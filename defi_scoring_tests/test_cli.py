"""The `defi-scoring` command, run as a user runs it (a real subprocess)."""

import os
import subprocess
import sys

import orjson

from defi_scoring_tests.conftest import DAY, DEPOSIT_TIME, example_message

CLI = [sys.executable, "-m", "defi_scoring.cli"]


def run_cli(*args, cwd=None, env=None):
    result = subprocess.run([*CLI, *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    return result


def test_score_reproduces_the_worked_examples(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_bytes(orjson.dumps(example_message()) + b"\n")
    run_cli(
        "score", "--input", str(src), "--output", str(tmp_path / "out.jsonl"), "--as-of", str(DEPOSIT_TIME + 30 * DAY)
    )
    (out,) = [orjson.loads(line) for line in (tmp_path / "out.jsonl").read_bytes().splitlines()]
    assert out["zscore"] == "308.000000000000000000" and out["timestamp"] == DEPOSIT_TIME + 30 * DAY

    src.write_bytes(orjson.dumps(example_message(with_withdraw=True)) + b"\n")
    run_cli(
        "score", "--input", str(src), "--output", str(tmp_path / "out.jsonl"), "--as-of", str(DEPOSIT_TIME + 30 * DAY)
    )
    (out,) = [orjson.loads(line) for line in (tmp_path / "out.jsonl").read_bytes().splitlines()]
    assert out["zscore"] == "143.031250000000000000"


def test_score_writes_one_line_per_input_line_on_mixed_input(tmp_path):
    good = orjson.dumps(example_message())
    lines = [good, b"not json", b"", b'{"wallet_address": "0x1"}', b"\xff\xfe", good, b"[]"]
    src = tmp_path / "mixed.jsonl"
    src.write_bytes(b"\n".join(lines) + b"\n")
    result = run_cli("score", "--input", str(src), "--output", str(tmp_path / "out.jsonl"), "--as-of", "1735689600")
    out = [orjson.loads(line) for line in (tmp_path / "out.jsonl").read_bytes().splitlines()]
    assert len(out) == len(lines)
    assert ["error" in m for m in out] == [False, True, True, True, True, False, True]
    assert "2 messages, 5 failures" in result.stderr


def test_generate_then_score_accounts_for_every_message(tmp_path):
    run_cli(
        "generate", "--wallets", "300", "--seed", "4", "--bad-fraction", "0.05", "--output", str(tmp_path / "g.jsonl")
    )
    assert (tmp_path / "g.labels.csv").exists()
    run_cli("score", "--input", str(tmp_path / "g.jsonl"), "--output", str(tmp_path / "o.jsonl"))
    out = (tmp_path / "o.jsonl").read_bytes().splitlines()
    assert len(out) == 300
    failures = sum("error" in orjson.loads(line) for line in out)
    assert 3 <= failures <= 40


def test_demo_runs_end_to_end_and_prints_the_summary(tmp_path):
    env = {**os.environ, "DEFI_SCORING_HOME": str(tmp_path / "home")}
    env.pop("DAGSTER_HOME", None)
    result = run_cli("demo", "--wallets", "400", cwd=tmp_path, env=env)
    for heading in (
        "Batch",
        "zscore distribution",
        "Top wallets",
        "Bottom wallets",
        "Open the Dagster UI",
        "Ensemble on the holdout accounts",
        "neural_network",
        "defi-scoring mlflow-ui",
    ):
        assert heading in result.stdout
    # A person reads it: tables and one line per step, no event stream, banner or third-party warnings.
    printed = result.stdout + result.stderr
    for noise in (
        " - DEBUG - ",
        " - INFO - ",
        "Telemetry",
        "Welcome to Dagster",
        "Warning",
        "INFO mlflow",
        "Downloading artifacts",
        "Successfully registered model",
    ):
        assert noise not in printed, noise
    steps = [line for line in result.stderr.splitlines() if line.startswith("✓")]
    assert [s.split()[1] for s in steps[:5]] == [
        "generated",
        "ingest_batch",
        "score_wallets",
        "train_model",
        "score_wallets",
    ]
    # the streaming part ran on the stock Dagster daemon and answered every message, the bad ones included
    shown = " ".join(result.stdout.split())
    assert "launched by the Dagster daemon" in shown
    assert "all 503 input messages accounted for (500 success + 3 failure)" in shown
    # the second scoring saw no new batch: wallet_features kept every wallet's row, and says so
    said = " ".join(result.stderr.split())
    assert "— features full, " in said and "— features incremental, 0 of " in said
    # ... while everything is kept: the log file the demo names holds the runs' events and MLflow's lines.
    log_file = result.stdout.split("Logs of this demo: ")[1].split()[0]
    assert log_file.startswith(str(tmp_path / "home" / "logs"))
    with open(log_file) as handle:
        logged = handle.read()
    assert "train_model" in logged and "Finished execution of step" in logged
    assert "mlflow" in logged
    assert (tmp_path / "home" / "dagster").is_dir()  # the UI command's instance holds the demo's runs
    assert (tmp_path / "home" / "tables" / "reference_scores.parquet").exists()


def test_help_texts():
    for command in (
        [],
        ["generate"],
        ["score"],
        ["land"],
        ["train"],
        ["demo"],
        ["ui"],
        ["mlflow-ui"],
        ["serve"],
        ["config"],
        ["config", "init"],
    ):
        assert "Usage" in run_cli(*command, "--help").stdout


def test_score_and_evaluate_read_real_transfers_messages(tmp_path, real_sample):
    lines = (real_sample / "messages.jsonl").read_bytes().splitlines()[:40]
    source = tmp_path / "real.jsonl"
    source.write_bytes(
        b"\n".join(
            [
                *lines,
                b'{"wallet_address": "0x' + b"1" * 40 + b'", "data": [{"protocolType": '
                b'"transfers", "transactions": [{"document_id": "x", "action": "mint"}]}]}',
            ]
        )
        + b"\n"
    )
    run_cli("score", "--input", str(source), "--output", str(tmp_path / "out.jsonl"), "--no-model")
    out = [orjson.loads(line) for line in (tmp_path / "out.jsonl").read_bytes().splitlines()]
    assert len(out) == 41 and all("hybrid_score" in m for m in out[:40])
    assert "unknown action 'mint' for transfers" in out[40]["error"]
    env = {**os.environ, "DEFI_SCORING_HOME": str(tmp_path / "home")}
    result = subprocess.run(
        [*CLI, "evaluate", "--input", str(source), "--labels", str(real_sample / "labels.csv")],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode != 0 and "Train one first" in result.stderr  # no champion yet: says what to do


def test_bring_your_own_labels_land_train_evaluate(tmp_path, real_sample):
    """README "Real data": labelled messages + labels.csv → a registered champion → its evaluation."""
    env = {**os.environ, "DEFI_SCORING_HOME": str(tmp_path / "home")}
    messages, labels = real_sample / "messages.jsonl", real_sample / "labels.csv"
    missing = subprocess.run([*CLI, "train"], capture_output=True, text=True, env=env, timeout=300)
    assert missing.returncode != 0 and "--labels" in missing.stderr  # says what to pass
    run_cli("land", str(messages), "--key", "real", env=env)
    trained = run_cli("train", "--labels", str(labels), env=env)
    assert "registered version 1" in trained.stdout and "champion 1" in trained.stdout
    assert (tmp_path / "home" / "labels" / "labels.csv").exists()
    report = tmp_path / "evaluation.json"
    evaluated = run_cli("evaluate", "--input", str(messages), "--labels", str(labels), "--output", str(report), env=env)
    assert "calibration" in evaluated.stdout
    result = orjson.loads(report.read_bytes())
    assert result["model_version"] == "1"
    roc = result["ensemble"]["roc_auc"]
    assert roc["low"] <= roc["value"] <= roc["high"] and roc["value"] > 0.8  # mostly accounts it trained on
    assert result["hybrid"]["mean_score_risky"] < result["hybrid"]["mean_score_normal"]


def test_score_takes_good_and_bad_lending_and_transfer_messages(tmp_path):
    from defi_scoring_tests.conftest import lending_message, lending_rows, transfer, transfers_message

    deposit = lending_rows()[0]
    messages = [
        lending_message([deposit, {**deposit, "document_id": "l", "action": "liquidation", "liquidator": 42}]),
        lending_message([{"document_id": "x", "action": "stake", "timestamp": 1703980800}], wallet="0x" + "2" * 40),
        transfers_message([transfer("t", gasUsed=-1)], wallet="0x" + "3" * 40),
    ]
    source = tmp_path / "section_1b.jsonl"
    source.write_bytes(b"\n".join(orjson.dumps(m) for m in messages) + b"\n")
    run_cli("score", "--input", str(source), "--output", str(tmp_path / "out.jsonl"), "--no-model")
    good, bad_lending, bad_transfer = [
        orjson.loads(line) for line in (tmp_path / "out.jsonl").read_bytes().splitlines()
    ]
    # the liquidation with a liquidator that is not an address is dropped with a warning, the deposit scored
    assert good["activity"]["lending"]["transaction_count"] == 1 and "hybrid_score" in good
    assert "liquidator must be an address string, got 42" in good["warnings"][0]
    assert "'stake' for lending" in bad_lending["categories"][0]["error"]
    assert bad_transfer["error"].startswith("Processing failed: No valid transactions found")
    assert "gasUsed/gasPrice must be finite numbers >= 0" in bad_transfer["categories"][0]["error"]
