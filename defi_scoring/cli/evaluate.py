"""`defi-scoring evaluate`: score labelled messages with the champion and report how well it separates them."""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from defi_scoring.config import Settings


@click.command()
@click.option(
    "--input",
    "input_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="JSONL of wallet-transactions messages (CONTRACTS.md §1).",
)
@click.option(
    "--labels",
    "labels_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="CSV/Parquet with wallet_address, is_risky.",
)
@click.option(
    "--output",
    "output_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("evaluation.json"),
    show_default=True,
    help="Where the figures are written (JSON).",
)
@click.option("--rounds", default=500, show_default=True, help="Bootstrap resamples for the 95% intervals.")
def evaluate(input_path: Path, labels_path: Path, output_path: Path, rounds: int) -> None:
    """Score labelled wallets with the champion; print and write ROC-AUC, PR-AUC, F1 at the decision
    threshold, KS and Brier with bootstrap 95% intervals, a calibration table, and how the hybrid score
    separates the classes."""
    from defi_scoring.cli.data_commands import champion_scorer
    from defi_scoring.core.batch_scoring import score_raw_messages
    from defi_scoring.core.ensemble_config import load_ensemble_config
    from defi_scoring.core.evaluation import evaluate_labelled
    from defi_scoring.core.training import load_labels

    out = Console()
    config = load_ensemble_config()
    with out.status("scoring labelled messages with the champion"):
        lines = input_path.read_bytes().splitlines()
        scored = score_raw_messages(lines, model=champion_scorer(Settings.from_env()))
    table = scored.wallets.table.join(load_labels([labels_path]), how="inner")
    if scored.wallets.model_version is None:
        raise click.ClickException(
            f"{scored.wallets.model_note}. Train one first: defi-scoring land MESSAGES.jsonl, then "
            "defi-scoring train --labels LABELS.csv (README, 'Real data')."
        )
    try:
        evaluation = evaluate_labelled(table, config.decision_threshold, rounds=rounds)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    result = {
        "model_version": scored.wallets.model_version,
        **evaluation,
        "unlabelled_or_failed_messages": int(scored.batch.message_count - len(table)),
    }
    metrics = result["ensemble"]
    y = table["is_risky"].to_numpy()
    view = Table(title=f"champion v{result['model_version']} on {len(table):,} labelled wallets ({y.sum():,} risky)")
    for column in ("metric", "value", "95% interval"):
        view.add_column(column, justify="right" if column != "metric" else "left")
    for name, m in metrics.items():
        view.add_row(name, f"{m['value']:.4f}", f"{m['low']:.4f} – {m['high']:.4f}")
    view.add_row("hybrid ROC-AUC (100 − score)", f"{result['hybrid']['roc_auc_of_100_minus_score']:.4f}", "")
    view.add_row(
        "mean hybrid score risky / normal",
        f"{result['hybrid']['mean_score_risky']:.1f} / {result['hybrid']['mean_score_normal']:.1f}",
        "",
    )
    out.print(view)
    calibration = Table(title="calibration")
    for column in ("predicted", "wallets", "mean predicted", "observed risky"):
        calibration.add_column(column, justify="right")
    for row in result["calibration"]:
        calibration.add_row(
            row["predicted"], f"{row['wallets']:,}", f"{row['mean_predicted']:.3f}", f"{row['observed']:.3f}"
        )
    out.print(calibration)
    output_path.write_text(json.dumps(result, indent=2))
    out.print(f"written to {output_path}")
