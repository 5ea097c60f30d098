"""The synthetic generator: reproducible, the archetype mix, behaviour that looks like each archetype."""

import orjson
import pandas as pd

from defi_scoring.contracts.messages import WalletTransactionsMessage
from defi_scoring.core.synthetic import (
    ARCHETYPE_NAMES,
    RISKY_ARCHETYPES,
    generate_wallets,
    iter_messages,
    write_dataset,
)


def test_same_seed_same_messages_and_different_seed_different():
    a = [orjson.dumps(m) for m in iter_messages(generate_wallets(150, seed=11))]
    b = [orjson.dumps(m) for m in iter_messages(generate_wallets(150, seed=11))]
    c = [orjson.dumps(m) for m in iter_messages(generate_wallets(150, seed=12))]
    assert a == b and a != c


def test_every_archetype_appears_with_labels_and_messages_follow_the_contract():
    data = generate_wallets(2000, seed=5)
    counts = data.wallets["archetype"].value_counts()
    assert set(counts.index) == set(ARCHETYPE_NAMES)
    assert (data.wallets["is_risky"] == data.wallets["archetype"].isin(RISKY_ARCHETYPES)).all()
    assert data.wallets["wallet_address"].str.lower().is_unique
    messages = list(iter_messages(data))
    assert len(messages) == len(data.wallets)
    for message in messages[:200]:
        WalletTransactionsMessage.model_validate(message)


def _per_wallet(data):
    tx = data.transactions.merge(data.wallets.reset_index(names="wallet_index"), on="wallet_index")
    return tx


def test_archetype_behaviour():
    data = generate_wallets(3000, seed=9)
    tx = _per_wallet(data)
    stats = tx.groupby("archetype").agg(
        tx_per_wallet=("wallet_index", lambda s: s.value_counts().mean()), median_usd=("usd", "median")
    )
    assert stats.loc["whale_lp", "median_usd"] > 20 * stats.loc["casual", "median_usd"]
    assert stats.loc["mev_bot", "tx_per_wallet"] > 5 * stats.loc["casual", "tx_per_wallet"]
    # Heavy tails: the top 1% of amounts carry a large share of the volume.
    usd = tx["usd"].sort_values()
    assert usd.tail(len(usd) // 100).sum() / usd.sum() > 0.2
    # Rug pullers withdraw >= 90% of their deposits within two days of the last deposit.
    rug = tx[tx["archetype"] == "rug_puller"]
    dep = rug[rug["action"] == "deposit"].groupby("wallet_index").agg(usd=("usd", "sum"), last=("timestamp", "max"))
    wd = rug[rug["action"] == "withdraw"].groupby("wallet_index").agg(usd=("usd", "sum"), first=("timestamp", "min"))
    joined = dep.join(wd, lsuffix="_dep", rsuffix="_wd")
    assert (joined["usd_wd"] / joined["usd_dep"] > 0.85).mean() > 0.95
    assert ((joined["first"] - joined["last"]) < 2 * 86400).mean() > 0.95
    # Sybil clusters: members share the same number of transactions and the same pools.
    sybil = tx[tx["archetype"] == "sybil_farm"]
    shape = sybil.groupby("wallet_index").agg(
        cluster=("cluster_id", "first"), n=("pool", "size"), pools=("pool", lambda p: tuple(sorted(set(p))))
    )
    assert (shape.groupby("cluster")[["n", "pools"]].nunique() == 1).all().all()
    # Wash traders alternate direction in one pool with near-constant sizes.
    wash = tx[tx["archetype"] == "wash_trader"]
    per = wash.groupby("wallet_index").agg(pools=("pool", "nunique"), cv=("usd", lambda u: u.std() / u.mean()))
    assert (per["pools"] == 1).all() and (per["cv"] < 0.01).all()


def test_write_dataset_writes_messages_labels_and_requested_bad_lines(tmp_path):
    data = generate_wallets(400, seed=2)
    stats = write_dataset(data, tmp_path / "m.jsonl", tmp_path / "labels.csv", bad_fraction=0.1, seed=2)
    lines = (tmp_path / "m.jsonl").read_bytes().splitlines()
    assert len(lines) == 400 and 20 <= stats["bad_lines"] <= 70
    labels = pd.read_csv(tmp_path / "labels.csv")
    assert list(labels.columns) == ["wallet_address", "archetype", "is_risky", "cluster_id"]
    assert len(labels) == 400
