"""The first failing check of each row, as a code per row: texts are formatted only for the rows shown.

Why: an import of millions of rows must not build a Python string per rejected row; the report prints
a bounded number of `FILE:LINE: reason` lines and counts the rest by reason.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pyarrow as pa

OK = -1


class RowChecks:
    """Rows of one chunk and the reason, if any, each one is rejected (the first failing check wins)."""

    def __init__(self, n: int) -> None:
        self.code = np.full(n, OK, dtype=np.int32)
        self._reasons: list[tuple[str, object]] = []

    def fail(self, mask, reason: str, values=None) -> None:
        """Reject the rows of `mask` not rejected yet; `reason` may hold `{value}`, the row's entry of `values`."""
        mask = np.asarray(mask, dtype=bool) & (self.code == OK)
        if mask.any():
            self._reasons.append((reason, values))
            self.code[mask] = len(self._reasons) - 1

    @property
    def ok(self) -> np.ndarray:
        return self.code == OK

    def text(self, row: int) -> str:
        reason, values = self._reasons[self.code[row]]
        if values is None:
            return reason
        value = values[row]
        if isinstance(value, pa.Scalar):
            value = value.as_py()
        return reason.format(value=repr("" if value is None else value))

    def counts(self, rows: np.ndarray) -> Counter:
        """Rejected rows by reason template (for the summary of the rows not printed)."""
        codes, n = np.unique(self.code[rows], return_counts=True)
        return Counter({self._reasons[c][0].replace(" {value}", ""): int(k) for c, k in zip(codes, n)})
