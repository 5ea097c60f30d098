"""`defi-scoring score --known-addresses LIST`: a file scored with counterparty exposure and no store.

The file is the whole state, as without a list: each wallet is screened on its own transactions, and
its indirect exposure goes through the file's other wallets (the intermediates whose histories are
known), so a file equal to the stored state gives the store-backed doors' exposure. The file is
scored whole (in memory): exposure through intermediates needs every wallet's counterparties at once.
"""

from __future__ import annotations

import time
from pathlib import Path

from defi_scoring.core.batch_scoring import ScoredBatch
from defi_scoring.core.exposure import exposure_table
from defi_scoring.core.known_list import KnownList
from defi_scoring.core.normalise import NormalisedBatch
from defi_scoring.core.scoring_config import ScoringConfig
from defi_scoring.core.wallet_scoring import ModelFn, score_wallet_table


def load_known_lists(paths: list[Path], config: ScoringConfig) -> KnownList:
    """The screening entries of list files in any layout the importer reads."""
    import pandas as pd

    from defi_scoring.adapters.importers.known_lists import read_known_list

    rows = pd.concat([read_known_list(Path(p)).rows for p in paths], ignore_index=True)
    return KnownList.of(rows, config.exposure)


def score_with_list(
    batch: NormalisedBatch, as_of: int | None, config: ScoringConfig, model: ModelFn | None, known: KnownList
) -> ScoredBatch:
    """The batch scored as the whole state, with each wallet's exposure to `known`."""
    started = time.perf_counter()
    exposure = exposure_table(batch.transactions, known, config)
    wallets = score_wallet_table(batch.transactions, as_of, config, model, None, None, exposure)
    failed_at = int(time.time()) if as_of is None else int(as_of)
    return ScoredBatch(batch, wallets, as_of, time.perf_counter() - started, failed_at)
