"""The synthetic generator: reproducible, the archetype mix, behaviour that looks like each archetype."""

import numpy as np
import orjson
import pandas as pd

from defi_scoring.contracts.messages import WalletTransactionsMessage
from defi_scoring.core.normalise import normalise_messages
from defi_scoring.core.synthetic import (
    ARCHETYPE_NAMES,
    RISKY_ARCHETYPES,
    generate_wallets,
    iter_messages,
    split_newest,
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
    # Rug pullers withdraw >= 90% of their deposits within two days of the last deposit (their pools: below).
    rug = tx[tx["archetype"] == "rug_puller"]
    dep = rug[rug["action"] == "deposit"].groupby("wallet_index").agg(usd=("usd", "sum"), last=("timestamp", "max"))
    wd = rug[rug["action"] == "withdraw"].groupby("wallet_index").agg(usd=("usd", "sum"), first=("timestamp", "min"))
    joined = dep.join(wd, lsuffix="_dep", rsuffix="_wd")
    assert (joined["usd_wd"] / joined["usd_dep"] > 0.9).all()
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


def test_rug_pullers_drain_a_pool_of_their_own_that_benign_victims_bought_into():
    data = generate_wallets(3000, seed=9)
    tx = _per_wallet(data)
    launched = tx[tx["pool"] >= data.universe.n_listed]
    lp = launched[launched["action"] != "swap"]
    puller = lp[lp["archetype"] == "rug_puller"]
    # one new pool per puller, holding all its liquidity; nobody picks it as a favourite
    rug_lp = tx[(tx["archetype"] == "rug_puller") & (tx["action"] != "swap")]
    assert (rug_lp["pool"] >= data.universe.n_listed).all()
    owner = puller.groupby("pool")["wallet_index"].nunique()
    assert (owner == 1).all() and puller.groupby("wallet_index")["pool"].nunique().eq(1).all()
    assert len(owner) == (data.wallets["archetype"] == "rug_puller").sum()
    per_pool = puller.pivot_table(index="pool", columns="action", values=["usd", "timestamp"], aggfunc=["sum", "min"])
    opened, pulled = per_pool[("min", "timestamp", "deposit")], per_pool[("min", "timestamp", "withdraw")]
    deposited = per_pool[("sum", "usd", "deposit")]
    assert (per_pool[("sum", "usd", "withdraw")] / deposited).between(0.92, 1.0).all()
    assert ((pulled - opened) <= 36 * 3600 + 3 * 3600).all()
    # victims: 3–10 benign traders or LPs buy the launched token while the position is open, 0–2 add a little
    victims = launched[launched["archetype"] != "rug_puller"].join(opened.rename("opened"), on="pool")
    victims = victims.join(pulled.rename("pulled"), on="pool").join(deposited.rename("deposited"), on="pool")
    assert victims["archetype"].isin(["casual", "active_trader", "long_term_lp"]).all()
    assert ((victims["timestamp"] > victims["opened"]) & (victims["timestamp"] < victims["pulled"])).all()
    buys, adds = victims[victims["action"] == "swap"], victims[victims["action"] == "deposit"]
    assert (buys["direction"] == 0).all() and not (victims["action"] == "withdraw").any()
    assert buys.groupby("pool")["wallet_index"].nunique().reindex(owner.index, fill_value=0).between(3, 10).all()
    assert not buys.duplicated(["pool", "wallet_index"]).any()
    assert adds.groupby("pool").size().le(2).all() and (adds["usd"] <= 0.05 * adds["deposited"]).all()
    # in the messages: a pool id and token of its own, document ids unique across the generation
    records = [(m["wallet_address"], t) for m in iter_messages(data) for s in m["data"] for t in s["transactions"]]
    assert len({t["document_id"] for _, t in records}) == len(records)
    rugger = set(data.wallets.loc[data.wallets["archetype"] == "rug_puller", "wallet_address"])
    rug_pools = {t["poolId"] for a, t in records if a in rugger and t["action"] == "withdraw"}
    assert len(rug_pools) == len(rugger) and not rug_pools & set(data.universe.pool_ids[: data.universe.n_listed])


def test_write_dataset_writes_messages_labels_and_requested_bad_lines(tmp_path):
    data = generate_wallets(400, seed=2)
    stats = write_dataset(data, tmp_path / "m.jsonl", tmp_path / "labels.csv", bad_fraction=0.1, seed=2)
    lines = (tmp_path / "m.jsonl").read_bytes().splitlines()
    assert len(lines) == 400 and 20 <= stats["bad_lines"] <= 70
    labels = pd.read_csv(tmp_path / "labels.csv")
    assert list(labels.columns) == ["wallet_address", "archetype", "is_risky", "cluster_id"]
    assert len(labels) == 400


def test_transfer_and_lending_archetypes_look_like_their_names_and_normalise_without_loss():
    data = generate_wallets(3000, seed=4)
    archetype = data.wallets["archetype"].to_numpy()
    tr = data.transfers.assign(archetype=archetype[data.transfers["wallet_index"].to_numpy()])
    per = tr.groupby(["archetype", "wallet_index"]).apply(
        lambda g: pd.Series(
            {
                "senders": g.loc[g["action"] == "receive", "counterparty"].nunique(),
                "recipients": g.loc[g["action"] == "send", "counterparty"].nunique(),
            }
        ),
        include_groups=False,
    )
    drainers = per.loc["drainer"]
    assert (drainers["senders"] >= 30).all() and (drainers["recipients"] <= 2).all()
    hubs = per.loc["exchange_hub"]
    assert (hubs["senders"] > 50).all() and (hubs["recipients"] > 50).all()
    mixer_sends = tr[(tr["archetype"] == "mixer_user") & (tr["action"] == "send")]
    assert mixer_sends["counterparty"].nunique() == 1 and mixer_sends["amount"].isin([0.1, 1.0, 10.0]).all()

    ln = data.lending.assign(archetype=archetype[data.lending["wallet_index"].to_numpy()])
    sums = ln.pivot_table(index=["archetype", "wallet_index"], columns="action", values="usd", aggfunc="sum").fillna(0)
    prudent, liquidated = sums.loc["prudent_borrower"], sums.loc["liquidated_borrower"]
    assert (prudent["borrow"] / prudent["deposit"] <= 0.45).all()
    repaid = prudent["repay"] / prudent["borrow"]  # histories still running at the end time are cut
    assert repaid.median() >= 1.0 and (repaid >= 0.5).mean() > 0.8
    assert (liquidated["liquidation"] > 0).all() and (liquidated["borrow"] / liquidated["deposit"] >= 0.75).all()

    messages = list(iter_messages(data))
    types = {m["wallet_address"]: [s["protocolType"] for s in m["data"]] for m in messages}
    by_archetype = dict(zip(data.wallets["wallet_address"], archetype))
    for address, sections in types.items():
        expected = {"drainer": "transfers", "mixer_user": "transfers", "prudent_borrower": "lending"}.get(
            by_archetype[address]
        )
        assert expected is None or sections == [expected]
    for message in messages:
        WalletTransactionsMessage.model_validate(message)
    batch = normalise_messages(orjson.dumps(m) for m in messages)
    assert batch.counts["rejected_messages"] == 0 and batch.counts["dropped_transactions"] == 0
    assert len(batch.transactions) == data.transaction_count
    assert set(batch.transactions["protocol_type"].unique()) == {"dexes", "transfers", "lending"}


def test_split_newest_takes_the_newest_across_sections():
    data = generate_wallets(400, seed=3)
    rng = np.random.default_rng(0)
    for message in iter_messages(data):
        older, newest = split_newest(message, rng, max_new=3)
        all_ts = sorted(tx["timestamp"] for s in message["data"] for tx in s["transactions"])
        new_ts = sorted(tx["timestamp"] for s in newest["data"] for tx in s["transactions"])
        old_ts = [] if older is None else sorted(tx["timestamp"] for s in older["data"] for tx in s["transactions"])
        assert sorted(old_ts + new_ts) == all_ts and (not old_ts or max(old_ts) <= min(new_ts))
