"""Per-wallet features written straight into the 2-D block that becomes their DataFrame.

A feature function computes dozens of columns for all wallets; gathering them as separate arrays and
stacking them at the end allocates and copies the whole table a second time (fresh memory is the
slow part of a large batch). Here each feature goes into its row of one (features × wallets) block
as it is computed, and the DataFrame takes the block without copying.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


class FeatureBlock:
    def __init__(self, names: list[str], n: int) -> None:
        self.names = list(names)
        self._row = {name: i for i, name in enumerate(self.names)}
        self._block = np.empty((len(self.names), n))
        self._written: set[str] = set()

    def __setitem__(self, name: str, values: np.ndarray) -> None:
        self._block[self._row[name]] = values  # an unknown name is a KeyError
        self._written.add(name)

    def update(self, features: dict[str, np.ndarray]) -> None:
        for name, values in features.items():
            self[name] = values

    def frame(self, index: pd.Index) -> pd.DataFrame:
        """The DataFrame over the block (no copy); every feature must have been written."""
        missing = [name for name in self.names if name not in self._written]
        if missing:
            raise KeyError(f"features never computed: {missing}")
        return pd.DataFrame(self._block.T, index=index, columns=self.names, copy=False)
