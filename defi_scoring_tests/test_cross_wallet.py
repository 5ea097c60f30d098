"""The pump-and-dump counts computed in one place equal the ones summed over partitions' totals."""

import orjson
import pandas as pd

from defi_scoring.core.features import reference_features
from defi_scoring.core.normalise import normalise_messages
from defi_scoring.core.patterns import pump_and_dump_evidence, pump_totals
from defi_scoring.core.scoring_config import default_scoring_config
from defi_scoring.core.synthetic import generate_wallets, iter_messages


def test_local_pump_counts_equal_the_partition_totals_path():
    data = generate_wallets(3000, seed=5)
    transactions = normalise_messages([orjson.dumps(m) for m in iter_messages(data)]).transactions
    wallets = reference_features(transactions, 1_735_689_600).index
    cfg = default_scoring_config().patterns
    local = pump_and_dump_evidence(transactions, wallets, cfg)
    halves = [wallets[: len(wallets) // 2], wallets[len(wallets) // 2 :]]
    own = [transactions[transactions["wallet"].astype(str).isin(h).to_numpy()] for h in halves]
    totals = pump_totals(own[0], halves[0], cfg) + pump_totals(own[1], halves[1], cfg)
    summed = pump_and_dump_evidence(transactions, wallets, cfg, totals)
    assert (local["pump_confidence"] > 0).sum() >= 10  # pump-and-dump groups are found
    pd.testing.assert_frame_equal(local, summed)
