"""The `defi-scoring` command: one module per group of commands, registered on `main` here."""

from __future__ import annotations

import click

from defi_scoring.cli.config_commands import config
from defi_scoring.cli.convert_command import convert
from defi_scoring.cli.data_commands import generate, land, score
from defi_scoring.cli.demo import demo
from defi_scoring.cli.evaluate import evaluate
from defi_scoring.cli.import_commands import import_group
from defi_scoring.cli.known_address_commands import known_addresses
from defi_scoring.cli.server_commands import mlflow_ui, serve, ui
from defi_scoring.cli.store_commands import store
from defi_scoring.cli.streaming_commands import broker, produce
from defi_scoring.cli.subscription_commands import dispatch, keys, subscriptions
from defi_scoring.cli.train import train


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Wallet reputation and risk scoring for DeFi.

    Data lives under $DEFI_SCORING_HOME (default ./.defi_scoring); the Dagster instance under
    $DAGSTER_HOME (default $DEFI_SCORING_HOME/dagster), so the UI shows what the CLI ran.
    """


for command in (generate, score, land, train, demo, evaluate, broker, produce, serve, mlflow_ui, ui, config):
    main.add_command(command)
main.add_command(convert)
main.add_command(import_group)
main.add_command(store)
main.add_command(subscriptions)
main.add_command(keys)
main.add_command(dispatch)
main.add_command(known_addresses)
