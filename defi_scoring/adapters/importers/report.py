"""What an import tells its user: `FILE:LINE: reason` per rejected row on stderr, warnings, the summary line.

Why: real exports hold rows that cannot be converted; the import goes on and says which, where and why,
so a person can fix the file or accept the loss. Lines are those of the file (header = line 1); for JSON
the 1-based index in `result`; for Parquet the 1-based row number.
"""

from __future__ import annotations

import sys
from collections import Counter
from dataclasses import dataclass, field
from typing import TextIO

import numpy as np

from defi_scoring.adapters.importers.checks import RowChecks


@dataclass
class ImportReport:
    """Counts of one import and the stream its messages go to; `limit` rejected rows are printed per file."""

    stream: TextIO = field(default_factory=lambda: sys.stderr)
    limit: int = 100
    files: int = 0
    unreadable: int = 0
    rows: int = 0
    converted: int = 0
    rejected: int = 0
    skipped: int = 0
    written: int = 0
    no_decimals: int = 0
    _shown: Counter = field(default_factory=Counter)
    _hidden: dict = field(default_factory=dict)

    def say(self, text: str) -> None:
        print(text, file=self.stream)

    def file_error(self, path, reason: str) -> None:
        """A file that could not be read at all: counted, the import goes on with the others."""
        self.unreadable += 1
        self.say(f"{path}: {reason}")

    def file_read(self, path, what: str) -> None:
        self.files += 1
        self.say(f"{path}: {what}")

    def row_errors(self, path, lines: np.ndarray, texts: list[str]) -> None:
        """Rows rejected before conversion (malformed CSV lines, JSON entries that are not objects)."""
        self.rows += len(texts)
        self.rejected += len(texts)
        for line, text in zip(lines, texts):
            self._print(path, int(line), text)

    def rows_checked(self, path, lines: np.ndarray, checks: RowChecks, skipped: np.ndarray | None = None) -> None:
        """Count a converted chunk; print its rejected rows (up to the limit) and remember the others."""
        skipped = np.zeros(len(lines), dtype=bool) if skipped is None else skipped
        bad = ~checks.ok & ~skipped
        self.rows += len(lines)
        self.skipped += int(skipped.sum())
        self.rejected += int(bad.sum())
        self.converted += int((checks.ok & ~skipped).sum())
        rows = np.flatnonzero(bad)
        room = len(rows) if self.limit <= 0 else max(0, self.limit - self._shown[str(path)])
        for row in rows[:room]:
            self._print(path, int(lines[row]), checks.text(int(row)))
        if len(rows) > room:
            self._hidden.setdefault(str(path), Counter()).update(checks.counts(rows[room:]))

    def lookup_rows_checked(self, path, lines: np.ndarray, checks: RowChecks) -> None:
        """Rows of a lookup table (blocks, tokens) left out: printed like rejected rows, not counted as rows."""
        rows = np.flatnonzero(~checks.ok)
        room = len(rows) if self.limit <= 0 else max(0, self.limit - self._shown[str(path)])
        for row in rows[:room]:
            self._print(path, int(lines[row]), checks.text(int(row)) + " (row left out)")
        if len(rows) > room:
            self._hidden.setdefault(str(path), Counter()).update(checks.counts(rows[room:]))

    def file_done(self, path) -> None:
        """The rejected rows of a file not printed, by reason."""
        hidden = self._hidden.pop(str(path), None)
        if hidden:
            reasons = "; ".join(f"{n:,} × {reason}" for reason, n in hidden.most_common())
            self.say(f"{path}: {sum(hidden.values()):,} more rejected rows not shown ({reasons})")

    def _print(self, path, line: int, text: str) -> None:
        self._shown[str(path)] += 1
        if self.limit <= 0 or self._shown[str(path)] <= self.limit:
            self.say(f"{path}:{line}: {text}")
        else:
            self._hidden.setdefault(str(path), Counter())[text] += 1

    def summary(self) -> dict[str, int]:
        """The final JSON line: files read, input rows, rows converted / rejected / skipped, table rows written."""
        return {
            "files": self.files,
            "rows": self.rows,
            "converted": self.converted,
            "rejected": self.rejected,
            "skipped": self.skipped,
            "written": self.written,
            "no_decimals": self.no_decimals,
            "unreadable": self.unreadable,
        }
