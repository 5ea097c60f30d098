"""The shared stderr console, progress bars and the small tables several commands print."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

console = Console(stderr=True)


def progress_bar() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )


def print_risk_levels(table, out: Console = console) -> None:
    if table.empty:
        return
    print_risk_counts(table["risk_level"].value_counts(), table.groupby("risk_level")["hybrid_score"].mean(), out)


def print_risk_counts(counts, means, out: Console = console) -> None:
    """Wallets and mean hybrid score per risk level, as a table with bars."""
    if counts.empty:
        return
    counts = counts.sort_values(ascending=False)
    t = Table(title="Wallets by risk level")
    for column in ("risk level", "wallets", "mean hybrid score", ""):
        t.add_column(column, justify="right" if column.startswith(("wallets", "mean")) else "left")
    for level, count in counts.items():
        t.add_row(level, f"{count:,}", f"{means[level]:.1f}", "█" * int(count / counts.max() * 30))
    out.print(t)
