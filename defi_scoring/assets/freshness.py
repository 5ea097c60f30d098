"""Freshness: scored_wallets recently materialised, and a champion model that is not too old.

Run hourly by the `hourly_freshness_checks` schedule (job `data_freshness`); limits from data_checks.yaml.
"""

import time

import dagster as dg

from defi_scoring.assets.scoring import scored_wallets
from defi_scoring.assets.training import champion_model
from defi_scoring.core.data_checks import load_data_checks_config
from defi_scoring.core.ensemble_config import load_ensemble_config
from defi_scoring.core.model_registry import CHAMPION
from defi_scoring.resources.mlflow_store import MlflowResource


@dg.asset_check(
    asset=scored_wallets,
    description="scored_wallets was materialised within scored_wallets_max_age_hours (data_checks.yaml).",
)
def scored_wallets_is_fresh(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
    max_hours = load_data_checks_config().scored_wallets_max_age_hours
    event = context.instance.get_latest_materialization_event(scored_wallets.key)
    if event is None:
        return dg.AssetCheckResult(
            passed=False, description="scored_wallets was never materialised (job score_wallets)"
        )
    age_hours = (time.time() - event.timestamp) / 3600
    passed = age_hours <= max_hours
    return dg.AssetCheckResult(
        passed=passed,
        severity=dg.AssetCheckSeverity.WARN,
        description=f"last materialised {age_hours:.2f} h ago (limit {max_hours:g} h)"
        + ("" if passed else "; are batches landing and the score_wallets job running?"),
        metadata={"age_hours": round(age_hours, 4), "max_age_hours": max_hours, "run_id": event.run_id},
    )


@dg.asset_check(
    asset=champion_model,
    description="The MLflow version behind the `champion` alias is younger than champion_max_age_days "
    "(data_checks.yaml); a missing champion fails too.",
)
def champion_is_fresh(mlflow_store: MlflowResource) -> dg.AssetCheckResult:
    max_days = load_data_checks_config().champion_max_age_days
    name = load_ensemble_config().registered_model_name
    client = mlflow_store.store.client()
    try:
        version = client.get_model_version_by_alias(name, CHAMPION)
    except Exception as exc:
        return dg.AssetCheckResult(
            passed=False,
            description=f"no champion of {name}: train one (job train_model) ({str(exc)[:120]})",
        )
    age_days = (time.time() - version.creation_timestamp / 1000) / 86_400
    passed = age_days <= max_days
    return dg.AssetCheckResult(
        passed=passed,
        severity=dg.AssetCheckSeverity.WARN,
        description=f"champion v{version.version} is {age_days:.2f} days old (limit {max_days:g})"
        + ("" if passed else "; retrain (job train_model) or check the weekly_retraining schedule"),
        metadata={"version": version.version, "age_days": round(age_days, 4), "max_age_days": max_days},
    )
