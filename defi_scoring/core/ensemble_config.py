"""`ensemble.yaml`, validated: members, hyper-parameters, weights, promotion rules."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from defi_scoring.core.config_files import load_validated

MemberKind = Literal["xgboost", "lightgbm", "random_forest", "mlp", "isolation_forest"]


class MemberConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    kind: MemberKind
    weight: float = Field(ge=0)
    params: dict[str, Any] = Field(default_factory=dict)


class EnsembleConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    registered_model_name: str = "defi-wallet-risk"
    members: list[MemberConfig]
    decision_threshold: float = Field(0.5, gt=0, lt=1)
    holdout_fraction: float = Field(0.2, gt=0, lt=0.5)
    promotion_margin: float = Field(0.002, ge=0)
    retrain_cron: str = "0 3 * * 1"

    @model_validator(mode="after")
    def _check_members(self) -> EnsembleConfig:
        names = [m.name for m in self.members]
        if len(set(names)) != len(names):
            raise ValueError(f"member names must be unique, got {names}")
        classifiers = [m for m in self.members if m.kind != "isolation_forest"]
        if not classifiers or sum(m.weight for m in classifiers) <= 0:
            raise ValueError("at least one classifier member with a positive weight is required")
        if sum(m.kind == "isolation_forest" for m in self.members) > 1:
            raise ValueError("at most one isolation_forest member (it feeds the anomaly score)")
        return self

    @property
    def classifiers(self) -> list[MemberConfig]:
        return [m for m in self.members if m.kind != "isolation_forest"]

    @property
    def anomaly_member(self) -> MemberConfig | None:
        return next((m for m in self.members if m.kind == "isolation_forest"), None)


def load_ensemble_config(path: Path | str | None = None) -> EnsembleConfig:
    """Load and validate; a bad file raises a ValueError that names the file and the field."""
    return load_validated("ensemble.yaml", EnsembleConfig, path)
