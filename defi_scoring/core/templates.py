"""Sentence templates (`"Withdrew {withdraw_ratio:.0%} of …"`) formatted for many wallets at once."""

from __future__ import annotations

import string
from functools import lru_cache

import pandas as pd

_FORMATTER = string.Formatter()


def template_fields(template: str) -> list[str]:
    return [name for _, name, _, _ in _FORMATTER.parse(template) if name]


@lru_cache(maxsize=256)
def _positional(template: str) -> tuple[str, tuple[str, ...]]:
    """ "{a:.1f} and {b}" → ("{0:.1f} and {1}", ("a", "b")): positional formatting skips a dict per row."""
    parts, fields = [], []
    for literal, name, spec, conversion in _FORMATTER.parse(template):
        parts.append(literal.replace("{", "{{").replace("}", "}}"))
        if name is not None:
            fields.append(name)
            parts.append(
                "{"
                + str(len(fields) - 1)
                + (f"!{conversion}" if conversion else "")
                + (f":{spec}" if spec else "")
                + "}"
            )
    return "".join(parts), tuple(fields)


def format_rows(template: str, frame: pd.DataFrame, fallback: str) -> list[str]:
    """The template filled from each row of `frame`; `fallback` for a row it cannot be filled for
    (a missing column or a value the format does not take)."""
    positional, fields = _positional(template)
    if any(f not in frame.columns for f in fields):
        return [fallback] * len(frame)
    columns = [frame[f].tolist() for f in fields]
    rows = list(zip(*columns)) if columns else [()] * len(frame)
    try:
        return [positional.format(*values) for values in rows]
    except (KeyError, ValueError, TypeError, IndexError):
        out = []
        for values in rows:
            try:
                out.append(positional.format(*values))
            except (KeyError, ValueError, TypeError, IndexError):
                out.append(fallback)
        return out
