"""Reference features after new batches: only the wallets the new batches touch are recomputed.

Every §4 feature of a wallet reads only that wallet's transactions, so recomputing the touched
wallets over their whole history and keeping every other row gives the table a full recompute gives.
The one exception is the time an open deposit has been held, which runs to `as_of`: for another
`as_of` an untouched wallet's `avg_holding_time_days` moves by open_deposits × Δas_of / num_deposits.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from defi_scoring.core.features import SECONDS_PER_DAY


def updated_features(
    previous: pd.DataFrame, previous_as_of: float, recomputed: pd.DataFrame, as_of: float, order: pd.Index
) -> pd.DataFrame:
    """`previous` (reference features at `previous_as_of`) with the `recomputed` wallets replaced and the
    others moved to `as_of`, in `order` (every wallet's first appearance across the batches, the row
    order of a full recompute)."""
    kept = previous.drop(index=recomputed.index, errors="ignore")
    if as_of != previous_as_of:
        kept = kept.copy()
        moved = kept["open_deposits"].to_numpy() > 0
        shift_days = (float(as_of) - float(previous_as_of)) / SECONDS_PER_DAY
        holding = kept["avg_holding_time_days"].to_numpy(dtype=np.float64, copy=True)
        deposits = kept["num_deposits"].to_numpy()
        holding[moved] += kept["open_deposits"].to_numpy()[moved] * shift_days / deposits[moved]
        kept["avg_holding_time_days"] = holding
    combined = pd.concat([kept, recomputed]) if len(kept) else recomputed
    missing = order.difference(combined.index)
    if len(missing):
        raise ValueError(f"{len(missing)} wallets of the batches are in neither table (e.g. {missing[0]})")
    result = combined.loc[order]
    result.index.name = previous.index.name
    return result
