"""`wallet_features` → `reference_scores`, and `scored_wallets`: per-wallet tables over every landed batch.

Values pass through the `io_manager` (resources/parquet_io.py, `tables/<asset>.parquet`):
`reference_scores` receives `wallet_features` as its input. `scored_wallets` scores through the scoring
service over the store (every landed transaction appended to its wallet's stored history, each wallet
scored on it), so it reads neither table for its scores; its upstream is the landed batches and the
champion it scores with. It reads three columns of `reference_scores` for its `zscore_matches_reference`
check: the service's zscore of a wallet equals the batch reference table's whenever both were computed
at the same as-of over the same number of transactions.
"""

import time
from dataclasses import dataclass

import dagster as dg
import numpy as np
import pandas as pd

from defi_scoring.assets.engine import Engine, cluster_partitions
from defi_scoring.assets.ingestion import transaction_batches
from defi_scoring.assets.metadata import check_result, frame_table, table_metadata
from defi_scoring.core.data_checks import Verdict, judge, load_data_checks_config, non_finite_rates, score_drift
from defi_scoring.core.ensemble_config import load_ensemble_config
from defi_scoring.core.model_scoring import score_with_model
from defi_scoring.core.patterns import PATTERNS
from defi_scoring.core.reference_score import reference_scores as compute_reference_scores
from defi_scoring.core.scoring_config import load_scoring_config
from defi_scoring.core.summary import (
    describe,
    distribution_markdown,
    extremes,
    hybrid_distribution_markdown,
    pattern_counts,
    risk_level_markdown,
    tag_counts,
)
from defi_scoring.feature_updates import forget_state, update_wallet_features
from defi_scoring.resources.dask import DaskResource
from defi_scoring.resources.data_home import DataHomeResource
from defi_scoring.resources.mlflow_store import MlflowResource
from defi_scoring.resources.parquet_io import WrittenTable
from defi_scoring.resources.score_store import ScoreStoreResource
from defi_scoring.service.scoring_service import ScoringService

DRIFT_COLUMNS = ("hybrid_score", "zscore")
SAME_HISTORY = ("as_of", "transaction_count")  # a wallet scored at the same time over as many transactions


class FeaturesConfig(dg.Config):
    as_of: int | None = None
    """Unix seconds the features are computed at (holding times run to it); default: each wallet's
    newest transaction, so the same batches always give the same table."""
    engine: Engine = "local"
    """local: this process; dask: the `dask` resource's cluster, wallets partitioned by hash (same table)."""
    incremental: bool = True
    """Local engine: recompute only the wallets of batches landed since the previous table (the same
    table as a full recompute); false: recompute every wallet."""


@dg.asset(
    deps=[transaction_batches],
    group_name="scoring",
    kinds={"python", "parquet"},
    automation_condition=dg.AutomationCondition.eager(),
    description="Reference features (CONTRACTS.md §4) of every wallet over all its distinct transactions "
    "(tables/wallet_features.parquet; the input of reference_scores).",
    check_specs=[
        dg.AssetCheckSpec(
            "feature_non_finite",
            asset="wallet_features",
            description="Worst column's share of null or ±inf values, against data_checks.yaml (warn / error).",
        )
    ],
)
def wallet_features(
    context: dg.AssetExecutionContext, config: FeaturesConfig, data_home: DataHomeResource, dask: DaskResource
):
    """Written by the step itself (the incremental update writes the table before the record of its
    batches; the Dask engine writes one part per partition), handed on as a WrittenTable."""
    as_of = config.as_of
    files = data_home.batch_files()
    if not files:
        raise dg.Failure(
            description="No transaction batches have been materialised yet.",
            metadata={"hint": "Materialise `transaction_batches` first (defi-scoring land FILE)."},
        )
    if config.engine == "dask":
        from defi_scoring.distributed.jobs import features_on_cluster

        with cluster_partitions(context, data_home, dask) as (client, batches):
            _, transaction_count = features_on_cluster(client, batches, as_of, data_home.table_path("wallet_features"))
        features, path = data_home.read_table("wallet_features"), data_home.table_path("wallet_features")
        forget_state(data_home.settings.tables_dir)
        update = {"mode": "full", "reason": "dask engine", "recomputed_wallets": len(features)}
    else:
        features, transaction_count, update = update_wallet_features(data_home, files, as_of, config.incremental)
        path = data_home.table_path("wallet_features")
    context.log.info(
        "features for %d wallets (%s: %s; %d recomputed from %d transactions)",
        len(features),
        update["mode"],
        update["reason"],
        update["recomputed_wallets"],
        transaction_count,
    )
    rates = non_finite_rates(features)
    limits = load_data_checks_config().feature_non_finite_rate
    worst = rates.iloc[0] if len(rates) else None
    verdict = judge("non-finite share", float(worst["non_finite"]) if worst is not None else 0.0, limits)
    return dg.MaterializeResult(
        value=WrittenTable(path),
        check_results=[
            check_result(
                "feature_non_finite",
                verdict,
                worst_column=str(rates.index[0]) if len(rates) else "none",
                columns=frame_table(rates[rates["non_finite"] > 0].head(20), index_name="column"),
            )
        ],
        metadata={
            **table_metadata(features, index_name="wallet"),
            "wallets": dg.MetadataValue.int(len(features)),
            "transactions": dg.MetadataValue.int(transaction_count),
            "batches": dg.MetadataValue.int(len(files)),
            "engine": dg.MetadataValue.text(config.engine),
            "update": dg.MetadataValue.text(f"{update['mode']}: {update['reason']}"),
            "recomputed_wallets": dg.MetadataValue.int(int(update["recomputed_wallets"])),
            "as_of": as_of_metadata(as_of),
        },
    )


def as_of_metadata(as_of: int | None) -> dg.MetadataValue:
    if as_of is None:
        return dg.MetadataValue.text("each wallet's newest transaction")
    return dg.MetadataValue.timestamp(float(as_of))


@dg.asset(
    group_name="scoring",
    kinds={"python", "parquet"},
    automation_condition=dg.AutomationCondition.eager(),
    description="Reference LP score, swap score, zscore and tags per wallet (CONTRACTS.md §4), with the as-of "
    "and transaction count they were computed at. Published as tables/reference_scores.parquet (the CLI "
    "demo reads it); scored_wallets checks its zscores against it.",
)
def reference_scores(wallet_features: pd.DataFrame) -> dg.MaterializeResult[pd.DataFrame]:
    features = wallet_features
    scores = compute_reference_scores(features).assign(
        as_of=features["as_of"], transaction_count=features["transaction_count"]
    )
    top, bottom = extremes(scores)
    tags = tag_counts(scores)
    stats = describe(scores)
    return dg.MaterializeResult(
        metadata={
            **table_metadata(scores, index_name="wallet"),
            **{k: dg.MetadataValue.float(float(v)) for k, v in stats.items() if k != "wallets"},
            "wallets": dg.MetadataValue.int(stats["wallets"]),
            "zscore_distribution": dg.MetadataValue.md(distribution_markdown(scores)),
            "tags": frame_table(pd.DataFrame({"wallets": tags}), index_name="tag"),
            "top_wallets": frame_table(top, index_name="wallet", digits=2),
            "bottom_wallets": frame_table(bottom, index_name="wallet", digits=2),
        },
        value=scores,
    )


class ScoredWalletsConfig(dg.Config):
    scoring_config_path: str = ""
    """scoring.yaml from DEFI_SCORING_CONFIG_DIR, ./models or the package by default."""
    use_champion: bool = True
    """Apply the champion model's adjustment when one is registered."""
    as_of: int | None = None
    """Unix seconds to score at; default: each wallet's newest stored transaction."""
    engine: Engine = "local"
    """local: this process; dask: the `dask` resource's cluster, wallets partitioned by hash (same table)."""


@dg.asset(
    ins={
        "reference": dg.AssetIn(
            "reference_scores", metadata={"columns": ["zscore", *SAME_HISTORY], "allow_missing": True}
        )
    },
    # The landed batches it appends to the store, and the champion (alias) it scores with.
    deps=[transaction_batches, "champion_model"],
    group_name="scoring",
    kinds={"python", "parquet", "mlflow"},
    # Scores follow new batches; a new champion applies from the next scoring (and the daily re-scoring),
    # and a deployment without a trained model scores all the same.
    automation_condition=dg.AutomationCondition.eager().ignore(dg.AssetSelection.assets("champion_model")),
    description="Every wallet: reference zscore and categories, hybrid score, confidence, risk level, breakdown, "
    "reasons, patterns, alerts, tags and the champion model version that scored it (CONTRACTS.md §5), "
    "scored through the scoring service over the store. Published as tables/scored_wallets.parquet and "
    "as each wallet's latest score in the score store the API serves.",
    check_specs=[
        dg.AssetCheckSpec(
            "score_drift",
            asset="scored_wallets",
            description="PSI (and KS) of hybrid_score and zscore against the previous materialisation, against "
            "data_checks.yaml (warn / error).",
        ),
        dg.AssetCheckSpec(
            "zscore_matches_reference",
            asset="scored_wallets",
            additional_deps=["reference_scores"],
            description="Every wallet scored at the same as-of over as many transactions as in reference_scores "
            "has the zscore reference_scores gives it (one wallet, one score).",
        ),
    ],
)
def scored_wallets(
    context: dg.AssetExecutionContext,
    config: ScoredWalletsConfig,
    reference: pd.DataFrame | None,
    data_home: DataHomeResource,
    mlflow_store: MlflowResource,
    score_store: ScoreStoreResource,
    dask: DaskResource,
):
    as_of = config.as_of
    scoring_config = load_scoring_config(config.scoring_config_path or None)
    previous = None
    if data_home.table_exists("scored_wallets"):
        previous = data_home.read_table("scored_wallets", columns=list(DRIFT_COLUMNS))
    model = None
    if config.use_champion:
        store, name = mlflow_store.store, load_ensemble_config().registered_model_name
        model = lambda behaviour: score_with_model(behaviour, store, name)
    if config.engine == "dask":
        table, outcome = _score_on_cluster(context, data_home, dask, score_store, as_of, scoring_config, model)
        value = WrittenTable(data_home.table_path("scored_wallets"))
    else:
        table, outcome = _score_locally(context, data_home, score_store, as_of, scoring_config, model)
        value = table
    context.log.info("scored %d wallets; %s", len(table), outcome.model_note)
    for error in outcome.factor_errors.values():
        context.log.warning("neutral fallback used: %s", error)
    hybrid = table["hybrid_score"]
    levels = [band.name for band in scoring_config.risk_levels] + ["insufficient_history"]
    worst = table.sort_values("hybrid_score").head(10)
    return dg.MaterializeResult(
        value=value,
        check_results=[_drift_check(previous, table), _reference_check(reference, table)],
        metadata={
            **table_metadata(table, index_name="wallet"),
            "wallets": dg.MetadataValue.int(len(table)),
            "hybrid_score_mean": dg.MetadataValue.float(float(hybrid.mean())),
            "hybrid_score_p10": dg.MetadataValue.float(float(hybrid.quantile(0.1))),
            "hybrid_score_p50": dg.MetadataValue.float(float(hybrid.quantile(0.5))),
            "confidence_mean": dg.MetadataValue.float(float(table["confidence"].mean())),
            "risk_levels": dg.MetadataValue.md(risk_level_markdown(table, levels)),
            "hybrid_score_distribution": dg.MetadataValue.md(hybrid_distribution_markdown(table)),
            "patterns": frame_table(pattern_counts(table, PATTERNS).to_frame(), index_name="pattern"),
            "alerts": dg.MetadataValue.int(int((table["alert_count"] > 0).sum())),
            "lowest_scored": frame_table(
                worst[["hybrid_score", "risk_level", "reason_1_text"]], index_name="wallet", digits=2
            ),
            "model_version": dg.MetadataValue.text(outcome.model_version or "none"),
            "model_note": dg.MetadataValue.text(outcome.model_note),
            "factor_fallbacks": dg.MetadataValue.int(len(outcome.factor_errors)),
            "engine": dg.MetadataValue.text(config.engine),
            "as_of": as_of_metadata(as_of),
        },
    )


@dataclass
class ScoringOutcome:
    model_version: str | None
    model_note: str
    factor_errors: dict[str, str]


def _score_locally(context, data_home, score_store, as_of, scoring_config, model):
    """Through the scoring service, as every door: the landed transactions appended to the stored
    histories, then every wallet of the batches scored on its full stored history against the stored
    population, each score recorded in the store (an event per wallet, its latest score)."""
    started = time.perf_counter()
    service = ScoringService(score_store.store, scoring_config, model)
    wallets = service.append(data_home.read_all_transactions())
    scores, _messages = service.score_stored(wallets, source="batch", run_id=context.run_id, as_of=as_of)
    table = scores.table.loc[wallets]  # rows in the batches' order, as the other tables have them
    context.log.info("scored %d wallets through the store in %.1fs", len(wallets), time.perf_counter() - started)
    return table, ScoringOutcome(scores.model_version, scores.model_note, scores.factor_errors)


def _score_on_cluster(context, data_home, dask, score_store, as_of, scoring_config, model):
    """Each partition appends, then scores its wallets through the service (distributed.jobs)."""
    from defi_scoring.distributed.jobs import score_on_cluster

    with cluster_partitions(context, data_home, dask) as (client, batches):
        parts = score_on_cluster(
            client,
            batches,
            as_of,
            scoring_config,
            model,
            data_home.table_path("scored_wallets"),
            score_store.url,
            context.run_id,
        )
    scored = [p for p in parts if p.wallets]
    errors = {k: v for p in scored for k, v in p.factor_errors.items()}
    versions = {p.model_version for p in scored}
    if len(versions) > 1:
        context.log.warning("partitions were scored by different champion versions: %s", sorted(map(str, versions)))
    first = scored[0] if scored else None
    outcome = ScoringOutcome(first.model_version if first else None, first.model_note if first else "", errors)
    return data_home.read_table("scored_wallets"), outcome


def _drift_check(previous, table) -> dg.AssetCheckResult:
    """Score drift against the previous materialisation; the first one has nothing to drift from."""
    limits = load_data_checks_config().score_drift_psi
    if previous is None or previous.empty:
        verdict = Verdict(0.0, True, "WARN", "first materialisation of scored_wallets: nothing to compare with")
        return check_result("score_drift", verdict)
    drift = score_drift(previous, table, DRIFT_COLUMNS)
    worst = str(drift["psi"].idxmax())
    verdict = judge(f"{worst} PSI", float(drift["psi"].max()), limits)
    return check_result(
        "score_drift",
        verdict,
        wallets_before=len(previous),
        wallets_after=len(table),
        drift=frame_table(drift, index_name="score"),
        warn=limits.warn,
        error=limits.error,
    )


def _reference_check(reference: pd.DataFrame | None, table: pd.DataFrame) -> dg.AssetCheckResult:
    """The service's zscore against reference_scores' for the wallets both computed on the same history."""
    columns = ["zscore", *SAME_HISTORY]
    if reference is None or not set(columns) <= set(reference.columns):
        verdict = Verdict(0.0, True, "WARN", "no reference_scores table with as_of and transaction_count yet")
        return check_result("zscore_matches_reference", verdict)
    joined = table[columns].join(reference[columns], how="inner", rsuffix="_reference")
    same = np.ones(len(joined), dtype=bool)
    for name in SAME_HISTORY:
        same &= joined[name].to_numpy() == joined[f"{name}_reference"].to_numpy()
    compared = joined[same]
    scored, expected = compared["zscore"].to_numpy(float), compared["zscore_reference"].to_numpy(float)
    differs = ~np.isclose(scored, expected, rtol=1e-9, atol=1e-9, equal_nan=True)
    count = int(differs.sum())
    description = (
        f"{count} of {len(compared)} wallets scored on the same history as reference_scores have another zscore"
        if count
        else f"{len(compared)} wallets scored on the same history as reference_scores: same zscore"
    )
    verdict = Verdict(float(count), count == 0, "WARN", description)
    sample = compared[differs].head(10)[["zscore", "zscore_reference", *SAME_HISTORY]]
    return check_result(
        "zscore_matches_reference",
        verdict,
        compared_wallets=len(compared),
        other_history_wallets=int((~same).sum()),
        differing=frame_table(sample, index_name="wallet") if count else "none",
    )
