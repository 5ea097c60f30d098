"""The pump-and-dump counts computed in one place equal the ones summed over partitions' totals."""

import numpy as np
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


def test_a_sybil_wallet_scored_alone_has_no_peer_and_with_its_farm_has_them():
    """A lone wallet skips the fingerprint search (the API's single call): the same 0 the search gives."""
    from defi_scoring.core.cross_wallet import peer_counts, sequence_fingerprints
    from defi_scoring.core.model_features import model_features

    data = generate_wallets(600, seed=8, protocol_types={"dexes"})
    farm = data.wallets.index[data.wallets["archetype"] == "sybil_farm"]
    messages = list(iter_messages(data))
    farm_lines = [orjson.dumps(messages[i]) for i in farm]
    together = model_features(normalise_messages(farm_lines).transactions, 1_735_689_600)
    assert (together["peer_wallets_same_fingerprint"] > 0).mean() > 0.5
    alone_tx = normalise_messages(farm_lines[:1]).transactions
    alone = model_features(alone_tx, 1_735_689_600)
    assert alone["peer_wallets_same_fingerprint"].tolist() == [0.0]
    order = alone_tx.sort_values("timestamp", kind="stable")
    searched = peer_counts(
        sequence_fingerprints(
            np.zeros(len(order), dtype=np.int64),  # every row is wallet 0
            order["timestamp"].to_numpy(),
            order["action"].astype(object).to_numpy(),
            order["pool_id"].astype(object).to_numpy(),
            alone.index,
        )
    )
    assert searched.tolist() == [0.0]
