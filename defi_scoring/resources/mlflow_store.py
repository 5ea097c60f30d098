"""A small ConfigurableResource around the MLflow client (dagster-mlflow is stale)."""

from pathlib import Path

import dagster as dg

from defi_scoring.core.model_registry import MlflowStore, embedded_store


class MlflowResource(dg.ConfigurableResource):
    """MLflow tracking + registry. Empty URIs mean the embedded store under the data home."""

    home: str
    tracking_uri: str = ""
    artifact_root: str = ""
    experiment_name: str = "defi-scoring"

    @property
    def store(self) -> MlflowStore:
        if not self.tracking_uri:
            embedded = embedded_store(Path(self.home))
            return MlflowStore(
                embedded.tracking_uri, self.artifact_root or embedded.artifact_root, self.experiment_name
            )
        return MlflowStore(
            self.tracking_uri, self.artifact_root or f"{Path(self.home) / 'mlflow' / 'artifacts'}", self.experiment_name
        )
