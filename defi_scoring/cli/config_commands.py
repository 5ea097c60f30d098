"""`config`: where each YAML configuration comes from, and copies of the defaults to edit."""

from __future__ import annotations

from pathlib import Path

import click

from defi_scoring.cli.console import console
from defi_scoring.core.config_files import CONFIG_DIR_ENV, CONFIG_NAMES, resolve_config, write_defaults


@click.group()
def config() -> None:
    """The YAML configurations (ensemble.yaml, scoring.yaml, data_checks.yaml).

    Each is read from $DEFI_SCORING_CONFIG_DIR if set, else ./models/ if the file is there, else the
    default shipped inside the package.
    """


@config.command()
@click.option(
    "--dir",
    "folder",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("models"),
    show_default=True,
    help="Folder to write the editable copies into.",
)
@click.option("--force", is_flag=True, help="Overwrite files that exist.")
def init(folder: Path, force: bool) -> None:
    """Copy the packaged defaults into a folder to edit them (existing files are kept)."""
    written = write_defaults(folder, overwrite=force)
    for path in written:
        console.print(f"[green]✓[/] wrote {path}")
    kept = len(CONFIG_NAMES) - len(written)
    if kept:
        console.print(f"kept {kept} existing file(s) in {folder} (--force overwrites)")
    if folder.resolve() != Path("models").resolve():
        console.print(f"use them with:  export {CONFIG_DIR_ENV}={folder.resolve()}")


@config.command()
@click.argument("name", type=click.Choice(CONFIG_NAMES))
def show(name: str) -> None:
    """Print the configuration NAME in effect and, on stderr, where it was read from."""
    source, text = resolve_config(name)
    console.print(f"# {name} from {source}")
    click.echo(text, nl=False)


@config.command(name="list")
def list_configs() -> None:
    """Where each configuration is read from."""
    for name in CONFIG_NAMES:
        source, _ = resolve_config(name)
        click.echo(f"{name}\t{source}")
