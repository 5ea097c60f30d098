"""`generate`, `score` and `land`: make data, score a file, land a batch on the Dagster instance.

Each takes JSON lines or a transactions table (Parquet, Arrow IPC; core/transaction_table.py) by the
file's suffix: a table is read a record batch at a time, never parsed as JSON."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import click

from defi_scoring.cli.console import console, print_risk_counts, print_risk_levels, progress_bar
from defi_scoring.cli.run_log import elapsed, execute_job, send_logs_to_file
from defi_scoring.config import Settings, ensure_dagster_home

ENGINES = ("local", "dask")
ENGINE_HELP = (
    "Where the per-wallet work runs: this process, or a Dask cluster (DASK_SCHEDULER_ADDRESS, or a local one "
    "of DEFI_SCORING_DASK_WORKERS processes; docs/scale_out.md)."
)


def is_table_file(path: Path) -> bool:
    """A Parquet/Arrow transactions table by its suffix (imported here, not at start: pyarrow costs
    0.15 s to import, which every command would pay)."""
    from defi_scoring.core.transaction_table import is_table_file as by_suffix

    return by_suffix(path)


@click.command()
@click.option("--wallets", "n_wallets", default=10_000, show_default=True, help="Number of wallets.")
@click.option("--seed", default=42, show_default=True, help="Random seed (same seed, same data).")
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="JSONL file of wallet-transactions messages, or a transactions table when it ends in .parquet "
    "(.arrow/.feather: Arrow IPC) [default: wallets.jsonl, or wallets.parquet with --format parquet].",
)
@click.option(
    "--format",
    "file_format",
    type=click.Choice(["jsonl", "parquet"]),
    default=None,
    help="jsonl: one message per line; parquet: one row per transaction (README 'Columnar input') "
    "[default: by OUTPUT's suffix].",
)
@click.option(
    "--labels",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="CSV of wallet_address, archetype, is_risky, cluster_id [default: OUTPUT with .labels.csv].",
)
@click.option(
    "--bad-fraction",
    default=0.0,
    show_default=True,
    type=click.FloatRange(0, 1),
    help="Share of messages to corrupt on purpose (to see failure records).",
)
@click.option(
    "--types",
    "protocol_types",
    multiple=True,
    type=click.Choice(["dexes", "transfers", "lending"]),
    help="Only archetypes of these protocol types (repeat the option) [default: all].",
)
def generate(
    n_wallets: int,
    seed: int,
    output: Path | None,
    file_format: str | None,
    labels: Path | None,
    bad_fraction: float,
    protocol_types: tuple[str, ...],
) -> None:
    """Generate synthetic wallets (15 archetypes, benign and risky; DEX, transfers and lending
    histories) as JSONL messages or a Parquet transactions table, plus labels."""
    output = _generated_path(output, file_format)
    if bad_fraction and is_table_file(output):
        raise click.UsageError("--bad-fraction corrupts JSON lines, which a table cannot hold: write JSONL for it")
    stats = generate_dataset(
        n_wallets, seed, output, labels or output.with_suffix(".labels.csv"), bad_fraction, protocol_types or None
    )
    console.print(
        f"wrote {stats['wallets']:,} wallets / {stats['transactions']:,} transactions "
        f"({stats['bad_lines']} corrupted lines) to [bold]{output}[/]"
    )


def _generated_path(output: Path | None, file_format: str | None) -> Path:
    """OUTPUT, or the default name of the format; a format that contradicts OUTPUT's suffix is an error."""
    if output is None:
        return Path("wallets.parquet" if file_format == "parquet" else "wallets.jsonl")
    if file_format is not None and is_table_file(output) != (file_format == "parquet"):
        raise click.UsageError(f"--format {file_format} does not match --output {output.name}")
    return output


def generate_dataset(
    n_wallets: int,
    seed: int,
    output: Path,
    labels: Path,
    bad_fraction: float,
    protocol_types: tuple[str, ...] | None = None,
) -> dict[str, int]:
    from defi_scoring.core.synthetic import generate_wallets, iter_messages, write_dataset

    with progress_bar() as progress:
        task = progress.add_task("generating wallets", total=n_wallets)
        data = generate_wallets(n_wallets, seed=seed, protocol_types=protocol_types)
        if is_table_file(output):
            from defi_scoring.cli.convert_command import write_messages_table

            progress.update(task, description="writing the transactions table")
            write_messages_table(iter_messages(data), output, progress=lambda i: progress.update(task, completed=i))
            labels.parent.mkdir(parents=True, exist_ok=True)
            data.wallets.to_csv(labels, index=False)
            return {"wallets": len(data.wallets), "transactions": data.transaction_count, "bad_lines": 0}
        progress.update(task, description="writing messages")
        return write_dataset(
            data,
            output,
            labels,
            bad_fraction=bad_fraction,
            seed=seed,
            progress=lambda i: progress.update(task, completed=i),
        )


@click.command()
@click.option(
    "--input",
    "input_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="JSONL file, one wallet-transactions message per line; or a transactions table, one row per "
    "transaction (.parquet, or .arrow/.feather for Arrow IPC; README 'Columnar input').",
)
@click.option(
    "--output",
    "output_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="JSONL file to write: one success or failure message per input line, same order (for a table: "
    "per wallet, in order of first appearance).",
)
@click.option(
    "--as-of",
    type=int,
    default=None,
    help="Unix seconds to score at [default: each wallet's newest transaction, so a file always gives the "
    "same scores].",
)
@click.option(
    "--model/--no-model",
    "use_model",
    default=True,
    show_default=True,
    help="Apply the champion model from MLflow (MLFLOW_TRACKING_URI or the embedded store) if one exists.",
)
@click.option(
    "--scoring-config",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Scoring YAML [default: `defi-scoring config show scoring.yaml`].",
)
@click.option(
    "--chunk-mb",
    type=click.IntRange(min=1),
    default=64,
    show_default=True,
    help="A larger file (a table: its rows at 450 B each, the size of their JSON) is scored chunk by chunk "
    "through wallet partitions on disk (bounded memory, same output).",
)
@click.option(
    "--known-addresses",
    "known_lists",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A list of known addresses to screen against (repeatable; any layout `known-addresses import` reads): "
    "adds counterparty exposure to the scores, without a store. The file is then scored whole, in memory.",
)
def score(
    input_path: Path,
    output_path: Path,
    as_of: int | None,
    use_model: bool,
    scoring_config: Path | None,
    chunk_mb: int,
    known_lists: tuple[Path, ...] = (),
) -> None:
    """Score JSON lines or a Parquet/Arrow transactions table: reference zscore and categories plus the
    hybrid score, confidence, risk level, breakdown, reasons, patterns and alerts (one output line per
    input line, same order; for a table, one per wallet in order of first appearance).

    No store is read or written: the file is the whole state (each wallet's history is what the file
    holds, the population it is compared with is the file's wallets). For a file equal to the stored
    state this gives the scores of the store-backed doors (API, stream, batch assets)."""
    from defi_scoring.core.scoring_config import load_scoring_config

    if is_table_file(output_path):
        raise click.UsageError(f"--output {output_path.name}: the output is JSON lines (one message per wallet)")
    settings = Settings.from_env()
    if use_model:  # MLflow's and alembic's INFO lines (a fresh store) go to the log file, not the terminal
        send_logs_to_file(settings.home)
    model = champion_scorer(settings) if use_model else None
    config = load_scoring_config(scoring_config)
    console.print("[dim]no store: the file is the whole state (its wallets' histories and population)[/]")
    if known_lists:
        _score_with_lists(input_path, output_path, as_of, config, model, known_lists)
        return
    if is_table_file(input_path):
        _score_table_file(input_path, output_path, as_of, config, model, chunk_mb << 20)
        return
    if input_path.stat().st_size > chunk_mb << 20:
        _score_in_chunks(input_path, output_path, as_of, config, model, chunk_mb << 20)
        return
    from defi_scoring.core.batch_scoring import score_raw_messages

    with open(input_path, "rb") as handle:
        lines = [line.rstrip(b"\r\n") for line in handle]
    with console.status(f"scoring {len(lines):,} messages …"):
        scored = score_raw_messages(lines, as_of=as_of, config=config, model=model)
    with open(output_path, "wb") as out:
        out.writelines(value + b"\n" for value in scored.encoded().values)
    failed = len(scored.batch.rejections)
    console.print(
        f"scored {len(lines) - failed:,} messages, {failed:,} failures → [bold]{output_path}[/] "
        f"({scored.seconds:.2f}s); {scored.wallets.model_note}"
    )
    print_risk_levels(scored.wallets.table)


def _score_with_lists(input_path: Path, output_path: Path, as_of, config, model, known_lists) -> None:
    """The file scored whole with counterparty exposure to the lists (defi_scoring/exposure_file.py)."""
    from defi_scoring.batch_files import read_table_file
    from defi_scoring.core.normalise import normalise_messages, normalise_tables
    from defi_scoring.exposure_file import load_known_lists, score_with_list

    known = load_known_lists(list(known_lists), config)
    console.print(f"screening against {len(known.addresses):,} listed addresses ({len(known.risky):,} with risk)")
    with console.status("scoring with counterparty exposure …"):
        if is_table_file(input_path):
            batch = normalise_tables(read_table_file(input_path))
        else:
            with open(input_path, "rb") as handle:
                batch = normalise_messages([line.rstrip(b"\r\n") for line in handle])
        scored = score_with_list(batch, as_of, config, model, known)
    with open(output_path, "wb") as out:
        out.writelines(value + b"\n" for value in scored.encoded().values)
    table = scored.wallets.table
    exposed = int((table["exposure_score"] > 0).sum()) if len(table) else 0
    console.print(
        f"scored {len(table):,} wallets, {len(scored.batch.rejections):,} failures, {exposed:,} with exposure → "
        f"[bold]{output_path}[/] ({scored.seconds:.2f}s); {scored.wallets.model_note}"
    )
    print_risk_levels(table)


def _score_table_file(input_path: Path, output_path: Path, as_of, config, model, chunk_bytes: int) -> None:
    """A transactions table, read a record batch at a time (never whole): scored in memory by
    `score_tables`, or through wallet partitions on disk when its rows would be more than a chunk of JSON.
    One output line per wallet, in order of first appearance."""
    from defi_scoring.batch_files import read_table_file, table_file_rows
    from defi_scoring.core.table_decode import TableSchemaError
    from defi_scoring.file_scoring import BYTES_PER_TRANSACTION

    try:
        if table_file_rows(input_path) * BYTES_PER_TRANSACTION > chunk_bytes:
            _score_in_chunks(input_path, output_path, as_of, config, model, chunk_bytes, table=True)
            return
        from defi_scoring.core.batch_scoring import score_tables

        with console.status(f"scoring the transactions table {input_path.name} …"):
            scored = score_tables(read_table_file(input_path), as_of=as_of, config=config, model=model)
    except TableSchemaError as error:
        raise click.ClickException(f"{input_path}: {error}") from None
    with open(output_path, "wb") as out:
        out.writelines(value + b"\n" for value in scored.encoded().values)
    wallets, failed = scored.batch.message_count, len(scored.batch.rejections)
    console.print(
        f"scored {wallets - failed:,} wallets ({scored.batch.counts['transactions']:,} transactions), "
        f"{failed:,} failures → [bold]{output_path}[/] ({scored.seconds:.2f}s); {scored.wallets.model_note}"
    )
    print_risk_levels(scored.wallets.table)


def _score_in_chunks(
    input_path: Path, output_path: Path, as_of, config, model, chunk_bytes: int, table: bool = False
) -> None:
    import pandas as pd

    from defi_scoring.file_scoring import score_file, score_table_file

    with console.status("scoring in chunks …") as status:
        if table:
            result = score_table_file(
                input_path, output_path, as_of, config, model, progress=lambda s: status.update(s)
            )
        else:
            result = score_file(
                input_path, output_path, as_of, config, model, chunk_bytes, progress=lambda s: status.update(s)
            )
    what = "wallets" if table else "messages"
    console.print(
        f"scored {result.messages - result.failures:,} {what}, {result.failures:,} failures → "
        f"[bold]{output_path}[/] ({result.seconds:.2f}s, {result.partitions} wallet partitions); {result.model_note}"
    )
    levels = pd.Series(result.risk_levels)
    means = pd.Series(result.hybrid_sum) / levels
    print_risk_counts(levels, means)


def champion_scorer(settings: Settings):
    """features → ModelScores with the champion of the configured MLflow store (None-safe)."""
    from defi_scoring.core.ensemble_config import load_ensemble_config
    from defi_scoring.core.model_registry import configured_store
    from defi_scoring.core.model_scoring import score_with_model

    store = configured_store(settings.home)
    name = load_ensemble_config().registered_model_name
    return lambda features: score_with_model(features, store, name)


@click.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--key", default=None, help="Batch (partition) key [default: the file name without extension].")
@click.option("--as-of", type=int, default=None, help="Unix seconds the scores are computed at [default: now].")
@click.option("--engine", type=click.Choice(ENGINES), default="local", show_default=True, help=ENGINE_HELP)
def land(file: Path, key: str | None, as_of: int | None, engine: str) -> None:
    """Land a JSONL file or a Parquet/Arrow transactions table as a new batch and materialise the asset
    graph on the Dagster instance."""
    land_and_materialise(Settings.from_env(), file, key, as_of, engine)


def land_and_materialise(
    settings: Settings, file: Path, key: str | None, as_of: int | None, engine: str = "local"
) -> str:
    from dagster import DagsterInstance

    from defi_scoring.assets.partitions import transaction_batch_partitions
    from defi_scoring.landing import LANDING_SUFFIXES, batch_key_for

    key = batch_key_for(Path(key or file.stem))
    suffix = file.suffix.lower() if is_table_file(file) else ".jsonl"
    if is_table_file(file):
        _check_table_file(file)
    ensure_dagster_home(settings)
    settings.landing_dir.mkdir(parents=True, exist_ok=True)
    target = settings.landing_dir / f"{key}{suffix}"
    if file.resolve() != target.resolve():
        shutil.copyfile(file, target)
    for other in LANDING_SUFFIXES:  # the batch's content is replaced: its file in another format goes
        if other != suffix:
            (settings.landing_dir / f"{key}{other}").unlink(missing_ok=True)
    with DagsterInstance.get() as instance:
        instance.add_dynamic_partitions(transaction_batch_partitions.name, [key])
    run_jobs(settings, [("ingest_batch", {"partition_key": key}), score_step(as_of, engine)])
    return key


def _check_table_file(file: Path) -> None:
    """Refuse a table file that is not a transactions table here, with the reason, not in a failed run."""
    from defi_scoring.batch_files import table_file_schema
    from defi_scoring.core.table_decode import TableSchemaError

    try:
        table_file_schema(file)
    except TableSchemaError as error:
        raise click.ClickException(f"{file}: {error}") from None


def score_step(as_of: int | None, engine: str = "local") -> tuple[str, dict]:
    ops = {
        "wallet_features": {"config": {"as_of": as_of, "engine": engine}},
        "scored_wallets": {"config": {"engine": engine}},
    }
    return ("score_wallets", {"run_config": {"ops": ops}})


def run_jobs(settings: Settings, steps: list[tuple[str, dict]]) -> None:
    """Run jobs in-process on the project's Dagster instance, one line each; stop at the first failure."""
    from dagster import DagsterInstance

    from defi_scoring.definitions import build_definitions

    log_file = send_logs_to_file(settings.home)
    defs = build_definitions(settings)
    with DagsterInstance.get() as instance:
        for job_name, kwargs in steps:
            started = time.perf_counter()
            result = execute_job(defs, instance, job_name, f"running {job_name}", **kwargs)
            if not result.success:
                raise click.ClickException(
                    f"Dagster run {result.run_id} of {job_name} failed; its events are in "
                    f"{log_file} and in the UI (defi-scoring ui)."
                )
            done = f"{job_name} run {result.run_id[:8]} ({elapsed(started)})"
            console.print(f"[green]✓[/] {done}{_features_update(result)}")


def _features_update(result) -> str:
    """What `wallet_features` did in the run, when it ran: incremental or full, and how many wallets."""
    materialised = [
        event.asset_key.to_user_string()
        for event in result.get_asset_materialization_events()
        if event.asset_key is not None
    ]
    if "wallet_features" not in materialised:
        return ""
    meta = result.asset_materializations_for_node("wallet_features")[0].metadata
    mode = meta["update"].value.split(":")[0]
    return f" — features {mode}, {meta['recomputed_wallets'].value:,} of {meta['wallets'].value:,} wallets"
