"""Settings that were resolved in two places and disagreed: the Kafka resource against the streaming
settings, `train` against MLFLOW_TRACKING_URI, and /health against the service contract's shape."""

import dataclasses
import importlib
from datetime import datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import mlflow
import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from defi_scoring.api.app import create_app
from defi_scoring.cli import main
from defi_scoring.config import Settings
from defi_scoring.resources.kafka import KafkaResource
from defi_scoring.streaming.broker import free_port
from defi_scoring.streaming.settings import KafkaSettings


def test_the_kafka_resource_passes_every_setting_through():
    """Each field set to something that is not its default comes back from the resource unchanged."""
    changed = {}
    for field in dataclasses.fields(KafkaSettings):
        value = getattr(KafkaSettings(), field.name)
        changed[field.name] = (
            {"security_protocol": "SASL_SSL", "sasl_plain_password": "secret"}
            if field.name == "security"
            else value + 7
            if isinstance(value, int)
            else f"{value}-changed"
        )
    settings = KafkaSettings(**changed)
    assert KafkaResource.from_settings(settings).settings() == settings


def test_the_kafka_resource_defaults_are_the_streaming_settings_defaults():
    resource = KafkaResource(bootstrap_servers="broker:9092")
    assert resource.settings() == KafkaSettings(bootstrap_servers="broker:9092")
    assert resource.max_range_messages == KafkaSettings().max_range_messages == 25_000
    assert KafkaSettings.from_env({}) == KafkaSettings()


def test_train_uses_mlflow_tracking_uri_not_the_embedded_store(tmp_home, tmp_path, monkeypatch):
    """The train_model job logs to MLFLOW_TRACKING_URI when it is set; `train` must read the run back
    from there (it opened the embedded store under the data home and found nothing)."""
    train_module = importlib.import_module("defi_scoring.cli.train")  # (the package's `train` is the command)
    uri = f"sqlite:///{tmp_path / 'elsewhere' / 'mlflow.db'}"
    (tmp_path / "elsewhere").mkdir()
    client = mlflow.MlflowClient(tracking_uri=uri)
    experiment = client.create_experiment("defi-scoring", artifact_location=(tmp_path / "artifacts").as_uri())
    run = client.create_run(experiment)
    client.log_metric(run.info.run_id, "ensemble.roc_auc", 0.8765)
    client.set_terminated(run.info.run_id)

    def job_logged_to_the_tracking_uri(*_args, **_kwargs):
        meta = {"mlflow_run_id": SimpleNamespace(value=run.info.run_id), "model_version": SimpleNamespace(value="1")}
        node = SimpleNamespace(metadata=meta)
        return SimpleNamespace(run_id="f" * 36, asset_materializations_for_node=lambda _name: [node])

    monkeypatch.setattr(train_module, "execute_job", job_logged_to_the_tracking_uri)
    monkeypatch.setattr(train_module, "send_logs_to_file", lambda home: Path(home) / "logs" / "test.log")
    labels = tmp_path / "labels.csv"
    labels.write_text("wallet_address,is_risky\n0x" + "1" * 40 + ",1\n")
    result = CliRunner().invoke(main, ["train", "--labels", str(labels)], env={"MLFLOW_TRACKING_URI": uri})
    assert result.exit_code == 0, result.output
    assert "0.8765" in result.output  # the run's metrics, read from the tracking URI
    assert not (tmp_home / "mlflow" / "mlflow.db").exists()  # the embedded store was never opened


@pytest.fixture
def api(tmp_home, monkeypatch):
    def client(**env) -> TestClient:
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        return TestClient(create_app(Settings(home=tmp_home)))

    return client


def test_health_has_the_contract_shape(api):
    with api() as client:
        body = client.get("/api/v1/health").json()
    assert body["status"] == "healthy"
    assert datetime.fromisoformat(body["timestamp"]).utcoffset() == timedelta(0)
    assert body["version"] and body["uptime_seconds"] >= 0
    assert body["components"]["store"]["status"] == "ok"


def test_health_is_degraded_when_kafka_is_configured_but_unreachable(api):
    with api(KAFKA_BOOTSTRAP_SERVERS=f"127.0.0.1:{free_port()}") as client:
        body = client.get("/health").json()
    assert body["components"]["kafka"]["status"] == "unreachable" and body["status"] == "degraded"
