"""Counterparty exposure in the asset graph: `known_addresses` (list files dropped in the data home's
`known_addresses/` folder imported into the score store, each import a new data version with counts
per category and source) → `exposure_rescoring` (the stored wallets whose exposure the change can
move, re-scored through the scoring service with source `exposure`), and a sensor on the folder.

Exported as EXPOSURE_ASSETS, EXPOSURE_JOBS and EXPOSURE_SENSORS for definitions.py.
"""

import hashlib
import shutil
import time
from pathlib import Path

import dagster as dg
import pandas as pd
from pydantic import Field

from defi_scoring.core.ensemble_config import load_ensemble_config
from defi_scoring.core.model_scoring import score_with_model
from defi_scoring.core.scoring_config import load_scoring_config
from defi_scoring.resources.data_home import DataHomeResource
from defi_scoring.resources.mlflow_store import MlflowResource
from defi_scoring.resources.score_store import ScoreStoreResource
from defi_scoring.service.scoring_service import ScoringService

LIST_FOLDER = "known_addresses"
LIST_SUFFIXES = (".csv", ".json", ".txt")
SETTLE_SECONDS = 10.0


def list_folder(data_home: DataHomeResource) -> Path:
    """`<data home>/known_addresses/`: list files dropped here are imported (then moved to `imported/`)."""
    folder = Path(data_home.home) / LIST_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def waiting_lists(folder: Path, settle_s: float = SETTLE_SECONDS, now: float | None = None) -> list[Path]:
    """List files in the folder that have not changed for `settle_s` (hidden files never)."""
    now = time.time() if now is None else now
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file()
        and p.suffix.lower() in LIST_SUFFIXES
        and not p.name.startswith(".")
        and now - p.stat().st_mtime >= settle_s
    )


class KnownAddressesConfig(dg.Config):
    files: list[str] = Field(default_factory=list)
    """List files to import [default: every file waiting in <data home>/known_addresses/]."""
    source: str = ""
    """Source name for the rows [default: each file's own]."""
    replace: bool = False
    """Each file is its sources' whole list: stored rows of those sources missing from it are removed."""


@dg.asset(
    group_name="exposure",
    kinds={"python", "sql"},
    description="Known addresses (sanctioned, exploit, phishing, … and benign context) imported into the score "
    "store from the list files dropped in <data home>/known_addresses/; output: the addresses whose "
    "listing changed. Each import is a new data version with counts by category and source.",
)
def known_addresses(
    context: dg.AssetExecutionContext,
    config: KnownAddressesConfig,
    data_home: DataHomeResource,
    score_store: ScoreStoreResource,
) -> dg.Output[pd.DataFrame]:
    from defi_scoring.adapters.importers.known_import import import_list_files

    folder = list_folder(data_home)
    files = [Path(f) for f in config.files] or waiting_lists(folder, settle_s=0)
    store = score_store.store
    outcome = import_list_files(store, files, source=config.source or None, replace=config.replace)
    for read in outcome.reads:
        for example in read.examples:
            context.log.warning("not imported: %s", example)
    done = folder / "imported"
    for path in files:
        if path.parent == folder:  # dropped files are moved away once imported
            done.mkdir(exist_ok=True)
            shutil.move(str(path), done / f"{int(time.time())}-{path.name}")
    changed = pd.DataFrame({"address": pd.Series(outcome.stored.changed_addresses, dtype=object)})
    counts = store.known_address_counts()
    digest = hashlib.sha256()
    for row in counts.itertuples(index=False):
        digest.update(f"{row.category}\t{row.source}\t{row.rows}\n".encode())
    digest.update("\n".join(outcome.stored.changed_addresses).encode())
    by_category = counts.groupby("category")["rows"].sum()
    by_source = counts.groupby("source")["rows"].sum()
    context.log.info("imported %d list rows from %d files: %s", outcome.stored.rows, len(files), outcome.summary())
    return dg.Output(
        changed,
        data_version=dg.DataVersion(digest.hexdigest()[:16]),
        metadata={
            "files": dg.MetadataValue.json([str(p) for p in files]),
            "rows_imported": dg.MetadataValue.int(outcome.stored.rows),
            "added": dg.MetadataValue.int(outcome.stored.added),
            "removed": dg.MetadataValue.int(outcome.stored.removed),
            "changed_addresses": dg.MetadataValue.int(len(changed)),
            "invalid_rows": dg.MetadataValue.int(sum(r.invalid for r in outcome.reads)),
            "active_rows": dg.MetadataValue.int(int(counts["rows"].sum()) if len(counts) else 0),
            **{f"category/{k}": dg.MetadataValue.int(int(v)) for k, v in by_category.items()},
            "by_source": dg.MetadataValue.md(
                "| source | rows |\n|---|---|\n" + "".join(f"| {k} | {int(v):,} |\n" for k, v in by_source.items())
            ),
        },
    )


class ExposureRescoringConfig(dg.Config):
    use_champion: bool = True
    """Apply the champion model's adjustment when one is registered."""


@dg.asset(
    group_name="exposure",
    kinds={"python", "sql"},
    description="The stored wallets whose exposure a list change can move (the changed addresses themselves, "
    "the wallets that touched them, and 1–2 hops further), re-scored through the scoring service and recorded "
    "with source `exposure`; their alerts say why a score moved.",
)
def exposure_rescoring(
    context: dg.AssetExecutionContext,
    config: ExposureRescoringConfig,
    known_addresses: pd.DataFrame,
    score_store: ScoreStoreResource,
    mlflow_store: MlflowResource,
) -> dg.MaterializeResult:
    scoring = load_scoring_config()
    store = score_store.store
    model = None
    if config.use_champion:
        registry, name = mlflow_store.store, load_ensemble_config().registered_model_name
        model = lambda behaviour: score_with_model(behaviour, registry, name)
    started = time.perf_counter()
    wallets = store.wallets_reaching(known_addresses["address"].tolist(), scoring.exposure)
    table = pd.DataFrame()
    if wallets:
        scores, _ = ScoringService(store, scoring, model).score_stored(
            wallets, source="exposure", run_id=context.run_id
        )
        table = scores.table
    seconds = time.perf_counter() - started
    context.log.info(
        "re-scored %d wallets reached by %d changed addresses in %.1fs", len(wallets), len(known_addresses), seconds
    )
    exposed = int((table["exposure_score"] > 0).sum()) if len(table) else 0
    return dg.MaterializeResult(
        metadata={
            "changed_addresses": dg.MetadataValue.int(len(known_addresses)),
            "wallets_rescored": dg.MetadataValue.int(len(wallets)),
            "wallets_exposed": dg.MetadataValue.int(exposed),
            "seconds": dg.MetadataValue.float(round(seconds, 3)),
            "rescored": dg.MetadataValue.json(wallets[:50]),
        }
    )


import_known_addresses_job = dg.define_asset_job(
    "import_known_addresses",
    selection=dg.AssetSelection.assets(known_addresses, exposure_rescoring),
    description="Import the waiting list files and re-score the stored wallets the change reaches.",
)


@dg.sensor(
    job=import_known_addresses_job,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="A run of import_known_addresses for the list files waiting in <data home>/known_addresses/.",
)
def known_addresses_sensor(context: dg.SensorEvaluationContext, data_home: DataHomeResource):
    files = waiting_lists(list_folder(data_home))
    if not files:
        return dg.SkipReason("no list file waiting in known_addresses/")
    key = "|".join(f"{p.name}:{p.stat().st_mtime_ns}:{p.stat().st_size}" for p in files)
    return dg.RunRequest(
        run_key=hashlib.sha256(key.encode()).hexdigest()[:24],
        run_config={"ops": {"known_addresses": {"config": {"files": [str(p) for p in files]}}}},
    )


EXPOSURE_ASSETS = (known_addresses, exposure_rescoring)
EXPOSURE_JOBS = (import_known_addresses_job,)
EXPOSURE_SENSORS = (known_addresses_sensor,)
