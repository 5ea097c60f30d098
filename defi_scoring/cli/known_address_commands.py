"""`known-addresses`: import lists of known addresses (sanctioned, exploit, phishing, … and benign
context) into the score store that every door screens against, and show what it holds."""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.table import Table

from defi_scoring.cli.console import console
from defi_scoring.config import Settings

URL_HELP = "SQLAlchemy URL of the store (default: $DEFI_SCORING_STORE_URL, else scores.db under the data home)."


@click.group("known-addresses")
def known_addresses() -> None:
    """Lists of known addresses screened for counterparty exposure (docs/exposure.md)."""


@known_addresses.command("import")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--source", default=None, help="Source name of the rows [default: the file's own, e.g. ofac, forta/…].")
@click.option(
    "--format",
    "layout",
    type=click.Choice(["auto", "combined", "forta", "ofac", "etherscan-labels"]),
    default="auto",
    show_default=True,
    help="Layout of the files (auto: read from the header or the JSON shape).",
)
@click.option("--replace", is_flag=True, help="Each file is its sources' whole list: rows no longer in it are removed.")
@click.option("--listed-at", type=int, default=None, help="Listing time (unix s) of rows that give none.")
@click.option("--url", default=None, help=URL_HELP)
def import_command(
    files: tuple[Path, ...], source: str | None, layout: str, replace: bool, listed_at: int | None, url: str | None
) -> None:
    """Import list files (the combined known_addresses.csv, Forta CSVs, OFAC lists, Etherscan labels)
    into the store; rows with `removed: true` mark a listing removed. Prints rows per category."""
    from defi_scoring.adapters.importers.known_import import import_list_files
    from defi_scoring.score_store import ScoreStore

    store = ScoreStore(url or Settings.from_env().store_url)
    try:
        outcome = import_list_files(store, files, source=source, layout=layout, replace=replace, listed_at=listed_at)
    except ValueError as error:
        raise click.ClickException(str(error)) from None
    finally:
        store.engine.dispose()
    for read in outcome.reads:
        for example in read.examples:
            console.print(f"[yellow]{example}[/]", soft_wrap=True, highlight=False)
    print_category_table(outcome.by_category, "Imported rows by category")
    click.echo(json.dumps(outcome.summary()))


@known_addresses.command("show")
@click.option("--url", default=None, help=URL_HELP)
def show(url: str | None) -> None:
    """Active rows in the store per category and source."""
    from defi_scoring.score_store import ScoreStore

    store = ScoreStore(url or Settings.from_env().store_url)
    try:
        counts = store.known_address_counts()
    finally:
        store.engine.dispose()
    table = Table(title="Known addresses in the store")
    for name in ("category", "source", "rows"):
        table.add_column(name, justify="right" if name == "rows" else "left")
    for category, source, rows in counts.itertuples(index=False):
        table.add_row(category, source, f"{rows:,}")
    console.print(table)


def print_category_table(by_category: dict[str, int], title: str) -> None:
    """Rows per category with bars (largest first)."""
    if not by_category:
        console.print("no rows imported")
        return
    table = Table(title=title)
    for name in ("category", "rows", ""):
        table.add_column(name, justify="right" if name == "rows" else "left")
    top = max(by_category.values())
    for category, rows in sorted(by_category.items(), key=lambda kv: -kv[1]):
        table.add_row(category, f"{rows:,}", "█" * max(1, int(rows / top * 30)))
    console.print(table)
