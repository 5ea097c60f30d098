"""The two encoders of the success messages (polars for many wallets, dictionaries for a few) give
the same bytes, with and without a champion, for wallets of every archetype."""

import numpy as np
import orjson
import pandas as pd
import pytest

from defi_scoring.core.ensemble import train_ensemble
from defi_scoring.core.ensemble_config import load_ensemble_config
from defi_scoring.core.model_features import MODEL_FEATURES, finite_features
from defi_scoring.core.model_scoring import ModelScores
from defi_scoring.core.normalise import normalise_messages
from defi_scoring.core.success_messages import SMALL_BATCH, encode_success_messages
from defi_scoring.core.synthetic import generate_wallets, iter_messages
from defi_scoring.core.wallet_scoring import score_wallet_table

AS_OF = 1_735_689_600


@pytest.fixture(scope="module")
def population():
    data = generate_wallets(400, seed=31)
    batch = normalise_messages([orjson.dumps(m) for m in iter_messages(data)])
    labels = data.wallets.set_index(data.wallets["wallet_address"].str.lower())["is_risky"]
    return batch.transactions, labels


def _champion(transactions, labels):
    from defi_scoring.core.model_features import model_features

    features = finite_features(model_features(transactions, AS_OF)[MODEL_FEATURES])
    ensemble = train_ensemble(load_ensemble_config(), features, labels.reindex(features.index).to_numpy(int))

    def model(behaviour: pd.DataFrame) -> ModelScores:
        x = finite_features(behaviour[MODEL_FEATURES])
        return ModelScores(ensemble.predict(x), "7", "scored with test version 7", ensemble.feature_contributions(x))

    return model


@pytest.mark.parametrize("with_model", [False, True])
def test_polars_and_dictionary_encoders_give_the_same_bytes(population, with_model):
    transactions, labels = population
    model = _champion(transactions, labels) if with_model else None
    wallets = transactions["wallet"].astype(str).unique()
    # previous scores far above today's: score-drop alerts for some wallets
    previous = pd.Series(np.linspace(40, 100, len(wallets)), index=wallets)
    scored = score_wallet_table(transactions, AS_OF, model=model, previous_scores=previous)
    table = scored.table
    assert table["patterns_detected"].sum() > 0 and table["alert_count"].sum() > 0  # the varied parts occur
    # failing factors (their error text) must encode alike too
    factor = next(iter(scored.config.dimensions["liquidity_provision"].factors))
    table.loc[table.index[:3], f"factor_{factor}_failed"] = True
    addresses = [a.upper().replace("0X", "0x") for a in table.index]
    by_polars = encode_success_messages(table, addresses, scored, AS_OF, 3, backend="polars")
    by_dicts = encode_success_messages(table, addresses, scored, AS_OF, 3, backend="python")
    assert by_dicts.values == by_polars.values
    assert by_dicts.summaries == by_polars.summaries
    assert len(table) > SMALL_BATCH  # the automatic choice takes polars here and dictionaries for a few
    assert encode_success_messages(table.iloc[:5], addresses[:5], scored, AS_OF, 3).values == by_polars.values[:5]
