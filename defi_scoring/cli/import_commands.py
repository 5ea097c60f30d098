"""`import etherscan` and `import ethereum-etl`: real data people hold → the transactions table (Parquet)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import click

ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
OUTPUT = click.option(
    "--output",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Parquet file of transactions (the columnar input of `score`, `land` and the API).",
)
PRICES = click.option(
    "--prices",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="CSV of token,price_usd[,date YYYY-MM-DD]: fills token_usd (without it USD values stay empty).",
)
REPORT_LIMIT = click.option(
    "--report-limit",
    default=100,
    show_default=True,
    type=click.IntRange(0),
    help="Rejected rows printed per file (FILE:LINE: reason); the others are counted by reason. 0 = all.",
)
FILES = click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))


def _address(_ctx, _param, value):
    values = value if isinstance(value, tuple) else (value,)
    for v in values:
        if v is not None and not ADDRESS.match(v):
            raise click.BadParameter(f"{v!r} is not an address (0x + 40 hex digits)")
    return value


@click.group("import")
def import_group() -> None:
    """Turn real data into the transactions table: Etherscan exports, ethereum-etl tables (docs/importers.md)."""


@import_group.command("etherscan")
@FILES
@OUTPUT
@click.option(
    "--address",
    default=None,
    callback=_address,
    help="The account of every file [default: the 0x… address in each file name].",
)
@PRICES
@REPORT_LIMIT
def etherscan(
    files: tuple[Path, ...], output: Path, address: str | None, prices: Path | None, report_limit: int
) -> None:
    """Etherscan txlist (normal transactions) and tokentx (ERC-20 transfers) exports of accounts, as the
    website's CSV export or the API's JSON answer (or a CSV of its fields), mixed in any order."""
    from defi_scoring.adapters.importers import import_etherscan

    _run(
        lambda writer, report: import_etherscan(files, writer, report, address),
        files,
        output,
        prices,
        report_limit,
        "give Etherscan txlist/tokentx exports (the website's CSV export or the API's JSON answer)",
    )


@import_group.command("ethereum-etl")
@FILES
@OUTPUT
@click.option(
    "--address",
    "addresses",
    multiple=True,
    callback=_address,
    help="Make rows for this address only (repeat the option) [default: every address].",
)
@PRICES
@REPORT_LIMIT
def ethereum_etl(
    files: tuple[Path, ...], output: Path, addresses: tuple[str, ...], prices: Path | None, report_limit: int
) -> None:
    """ethereum-etl tables (CSV or Parquet): transactions and token_transfers, with blocks (times of token
    transfers) and tokens (symbols, decimals) when you have them."""
    from defi_scoring.adapters.importers import import_ethereum_etl

    _run(
        lambda writer, report: import_ethereum_etl(files, writer, report, addresses or None),
        files,
        output,
        prices,
        report_limit,
        "give ethereum-etl transactions/token_transfers tables (CSV or Parquet), with blocks and tokens",
    )


def _run(convert, files, output: Path, prices: Path | None, report_limit: int, what_to_give: str) -> None:
    """Load the prices, convert, write OUTPUT; print the summary JSON line; exit 1 when no file was readable."""
    from defi_scoring.adapters.importers import ImportReport, PriceTable, TableWriter
    from defi_scoring.adapters.importers.reading import UnreadableFile

    report = ImportReport(stream=click.get_text_stream("stderr"), limit=report_limit)
    price_table = None
    if prices is None:
        report.say("no price table: USD values absent (token_usd is null; give --prices FILE to fill it)")
    else:
        try:
            price_table = PriceTable.load(prices, report.say)
        except UnreadableFile as e:
            raise click.BadParameter(str(e), param_hint="--prices") from e
        report.say(f"{prices}: {len(price_table):,} prices")
    writer = TableWriter(output, price_table)
    try:
        convert(writer, report)
        report.written = writer.rows
        if report.files == 0:
            writer.abort()
            click.echo(json.dumps(report.summary()))
            report.say(f"no input file could be read ({len(files)} given): {what_to_give}; see docs/importers.md")
            raise SystemExit(1)
        writer.close()
    except BaseException:
        writer.abort()
        raise
    if price_table is not None:
        report.say(f"prices: {writer.valued:,} of {writer.rows:,} rows valued in USD")
    report.say(f"wrote {writer.rows:,} transactions to {output}")
    click.echo(json.dumps(report.summary()))
