"""What an installed package needs: configuration found outside the repository, secrets hidden from the UI,
the shipped Dagster instance configuration. (The wheel itself is installed and run by `make wheel-check`.)"""

import dagster as dg
import pytest
from dagster._core.remote_representation.external_data import RepositorySnap
from dagster._serdes import serialize_value

from defi_scoring.config import Settings, ensure_dagster_home
from defi_scoring.core.config_files import CONFIG_NAMES, packaged_default, resolve_config, write_defaults
from defi_scoring.core.data_checks import load_data_checks_config
from defi_scoring.core.ensemble_config import load_ensemble_config
from defi_scoring.core.scoring_config import load_scoring_config
from defi_scoring.definitions import build_definitions
from defi_scoring.resources.kafka import KafkaResource
from defi_scoring.streaming.settings import KafkaSettings


@pytest.fixture
def elsewhere(tmp_path, monkeypatch):
    """A working directory outside the repository, with no config override set."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DEFI_SCORING_CONFIG_DIR", raising=False)
    return tmp_path


def test_defaults_ship_inside_the_package_and_validate(elsewhere):
    for name in CONFIG_NAMES:
        source, text = resolve_config(name)
        assert source == f"package:{name}" and text == packaged_default(name)
    assert load_ensemble_config().registered_model_name == "defi-wallet-risk"
    assert "transfer_behaviour" in load_scoring_config().dimensions
    assert load_data_checks_config().rejection_rate.error == 0.2


def test_local_models_folder_then_environment_folder_override(elsewhere, monkeypatch):
    write_defaults(elsewhere / "models")
    edited = (
        (elsewhere / "models" / "ensemble.yaml")
        .read_text()
        .replace("decision_threshold: 0.5", "decision_threshold: 0.4")
    )
    (elsewhere / "models" / "ensemble.yaml").write_text(edited)
    assert load_ensemble_config().decision_threshold == 0.4

    custom = elsewhere / "custom"
    write_defaults(custom)
    monkeypatch.setenv("DEFI_SCORING_CONFIG_DIR", str(custom))
    assert load_ensemble_config().decision_threshold == 0.5
    (custom / "scoring.yaml").unlink()
    with pytest.raises(FileNotFoundError, match=r"DEFI_SCORING_CONFIG_DIR=.*has no scoring\.yaml"):
        load_scoring_config()


def test_a_bad_file_names_itself(elsewhere):
    bad = elsewhere / "checks.yaml"
    bad.write_text("rejection_rate: {warn: 0.5, error: 0.1}\n")
    with pytest.raises(ValueError, match=r"(?s)checks.yaml: invalid data_checks.yaml: .*error must be at least warn"):
        load_data_checks_config(bad)
    with pytest.raises(FileNotFoundError, match=r"nowhere\.yaml not found"):
        load_ensemble_config(elsewhere / "nowhere.yaml")


def test_secrets_reach_the_resource_but_never_the_ui(tmp_home, monkeypatch):
    monkeypatch.setenv("KAFKA_SASL_PASSWORD", "kafka-s3cret-value")
    monkeypatch.setenv("KAFKA_SASL_USERNAME", "scorer")
    monkeypatch.setenv("DEFI_SCORING_STORE_URL", "postgresql+psycopg://app:pg-s3cret-value@127.0.0.1:5432/test")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://ml:mlflow-s3cret-value@mlflow:5000")
    defs = build_definitions(Settings(home=tmp_home))
    repository = defs.get_repository_def()
    shown = serialize_value(RepositorySnap.from_def(repository))  # what the webserver renders
    for secret in ("kafka-s3cret-value", "pg-s3cret-value", "mlflow-s3cret-value"):
        assert secret not in shown
    for variable in ("KAFKA_SASL_PASSWORD", "DEFI_SCORING_STORE_URL", "MLFLOW_TRACKING_URI"):
        assert variable in shown
    assert "scorer" in shown  # a user name is not a secret

    kafka = KafkaResource.from_settings(KafkaSettings.from_env()).process_config_and_initialize()
    assert kafka.settings().client_options()["sasl_plain_password"] == "kafka-s3cret-value"


def test_shipped_instance_configuration_queues_runs_and_sends_no_telemetry(tmp_home):
    path = ensure_dagster_home(Settings(home=tmp_home))
    assert (path / "dagster.yaml").read_text() == packaged_default("dagster.yaml")
    instance = dg.DagsterInstance.from_config(str(path))
    assert not instance.telemetry_enabled
    assert instance.run_coordinator.get_run_queue_config().tag_concurrency_limits
    assert instance.run_retries_enabled and instance.run_retries_max_retries == 2
    defs = build_definitions(Settings(home=tmp_home))
    assert defs.resolve_job_def("train_model").tags["dagster/max_retries"] == "0"  # a lost promotion is final
    sensor = defs.resolve_sensor_def("scores_follow_new_batches")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
