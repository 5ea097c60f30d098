"""Counterparty exposure: ownership, direct and indirect links of each wallet to listed addresses.

Kept apart as compliance screening keeps them (issue 36): *ownership* is the wallet itself on a list;
*direct* exposure is a counterparty on a list (direction, count, USD value, share of the wallet's
inflow or outflow, first and last time); *indirect* exposure is a listed address one or two hops
away through counterparties whose histories are known (stored wallets, or the file's wallets),
decayed by hop. A wallet's own listing never counts as exposure (a round trip W → C → W does not
make W exposed to itself), listed and hub intermediates (degree above `max_intermediate_degree`:
exchanges, routers) pass nothing on, and benign categories (severity 0) show as context only.

The exposure score (0–100) is the strongest link: severity × strength, where a direct link's
strength grows with its share of the wallet's volume and an indirect one is decayed by hop.

Column-wise: one hash lookup per distinct counterparty against the list, then merges of the few rows
that hit; no loop per wallet or transaction, except building the message detail of exposed wallets.
Pure: no I/O (the store and the file door give the inputs).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from defi_scoring.core.exposure_text import detail_json, reason_texts
from defi_scoring.core.frame_columns import frame_of
from defi_scoring.core.known_list import KnownList
from defi_scoring.core.scoring_config import ScoringConfig

EXPOSURE_COLUMNS = [
    "exposure_score",
    "exposure_owner_score",
    "exposure_direct_score",
    "exposure_indirect_score",
    "exposure_confidence",
    "exposure_risk_floor",
    "exposure_reason",
    "exposure_json",
]
NO_EXPOSURE_JSON = '{"score":0.0,"ownership":[],"direct":[],"indirect":[]}'


def no_exposure(index: pd.Index) -> pd.DataFrame:
    """The exposure columns of wallets that were not screened, or have no exposure at all."""
    n = len(index)
    zeros = np.zeros(n)
    return frame_of(
        {
            "exposure_score": zeros,
            "exposure_owner_score": zeros,
            "exposure_direct_score": zeros,
            "exposure_indirect_score": zeros,
            "exposure_confidence": zeros,
            "exposure_risk_floor": np.full(n, "", dtype=object),
            "exposure_reason": np.full(n, "", dtype=object),
            "exposure_json": np.full(n, NO_EXPOSURE_JSON, dtype=object),
        },
        index,
    )


def _codes(values: pd.Series) -> tuple[np.ndarray, pd.Index]:
    """(codes, distinct values) of a column; a categorical's own codes (no hashing), -1 for missing."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        return values.cat.codes.to_numpy(np.int64), pd.Index(values.cat.categories.astype(object), dtype=object)
    codes, uniques = pd.factorize(values.astype(object))
    return codes.astype(np.int64), pd.Index(uniques, dtype=object)


def counterparty_edges(transactions: pd.DataFrame) -> pd.DataFrame:
    """Distinct (wallet, counterparty) pairs of a transactions frame, self-transfers left out: what the
    store's counterparty index holds for stored wallets."""
    if transactions.empty or "counterparty" not in transactions:
        return pd.DataFrame({"wallet": pd.Series([], dtype=object), "counterparty": pd.Series([], dtype=object)})
    w_codes, wallets = _codes(transactions["wallet"])
    c_codes, parties = _codes(transactions["counterparty"])
    same = parties.get_indexer(wallets)
    keep = (c_codes >= 0) & (w_codes >= 0)
    keep[keep] &= c_codes[keep] != same[w_codes[keep]]
    key = np.sort(pd.unique(w_codes[keep] * len(parties) + c_codes[keep]))  # hashing, then a small sort
    return pd.DataFrame(
        {
            "wallet": wallets.to_numpy(object)[key // len(parties)],
            "counterparty": parties.to_numpy(object)[key % len(parties)],
        }
    )


def exposure_table(
    transactions: pd.DataFrame,
    known: pd.DataFrame | KnownList | None,
    config: ScoringConfig,
    neighbours: pd.DataFrame | None = None,
    degrees: pd.Series | None = None,
) -> pd.DataFrame:
    """Per wallet of `transactions` (normalised: wallet, action, counterparty, amount_usd,
    token_amount, token_a_symbol, timestamp), its exposure columns (EXPOSURE_COLUMNS), index = wallet.

    known: the listed addresses (a KnownList or a KNOWN_COLUMNS frame); it must cover the
    counterparties of `transactions` and of `neighbours`, and the wallets themselves.
    neighbours: (wallet, counterparty) pairs of the intermediates whose histories are known (None:
    those of `transactions`, the file door's whole state). degrees: each intermediate's number of
    distinct counterparties (None: counted in `neighbours`, which must then be complete)."""
    cfg = config.exposure
    known = KnownList.of(known, cfg)
    w_codes, wallets = _codes(transactions["wallet"])
    out = no_exposure(wallets)
    used = np.unique(w_codes[w_codes >= 0])
    if not len(known):
        return out.iloc[used]
    rows = _Rows.of(transactions, w_codes, wallets)
    links = [_ownership(wallets, known)]
    links.append(_direct(rows, known, cfg))
    if cfg.max_hops >= 1 and len(known.risky):
        if neighbours is None:
            neighbours = counterparty_edges(transactions)
        links += _indirect(rows, known, cfg, neighbours, degrees)
    found = [link for link in links if len(link)]
    if found:
        _summarise(out, pd.concat(found, ignore_index=True), wallets, config)
    return out.iloc[used]


class _Rows:
    """The rows with a counterparty (self-transfers left out), as codes and numbers."""

    def __init__(self, **columns) -> None:
        self.__dict__.update(columns)

    @classmethod
    def of(cls, tx: pd.DataFrame, w_codes: np.ndarray, wallets: pd.Index) -> _Rows:
        c_codes, parties = _codes(tx["counterparty"]) if "counterparty" in tx else (np.full(len(tx), -1), pd.Index([]))
        same = parties.get_indexer(wallets) if len(parties) else np.full(len(wallets), -1)
        keep = (c_codes >= 0) & (w_codes >= 0)
        keep[keep] &= c_codes[keep] != same[w_codes[keep]]
        idx = np.flatnonzero(keep)
        action = tx["action"]
        sends = (
            (action == "send").to_numpy(bool)
            if not isinstance(action.dtype, pd.CategoricalDtype)
            else _is(action, "send")
        )
        usd = np.abs(np.nan_to_num(tx["amount_usd"].to_numpy(float)))
        n = len(wallets)
        wk, out_k, usd_k = w_codes[idx], sends[idx], usd[idx]
        return cls(
            idx=idx,
            wallet=wk,
            party=c_codes[idx],
            parties=parties,
            wallets=wallets,
            out=out_k,
            usd=usd_k,
            frame=tx,
            in_usd=np.bincount(wk[~out_k], weights=usd_k[~out_k], minlength=n),
            out_usd=np.bincount(wk[out_k], weights=usd_k[out_k], minlength=n),
            in_count=np.bincount(wk[~out_k], minlength=n).astype(float),
            out_count=np.bincount(wk[out_k], minlength=n).astype(float),
        )


def _is(column: pd.Series, value: str) -> np.ndarray:
    """column == value for a categorical, through its codes (no string comparison per row)."""
    position = column.cat.categories.get_indexer([value])[0]
    return column.cat.codes.to_numpy() == position if position >= 0 else np.zeros(len(column), dtype=bool)


def _coded(frame: pd.DataFrame, *names: str) -> tuple[pd.DataFrame, dict[str, pd.Index]]:
    """The frame with these text columns as integer codes (groupby's nunique/min/first on objects run
    in Python per group; on integers in C), and the values to decode them with."""
    values = {}
    columns = {}
    for name in names:
        codes, uniques = pd.factorize(frame[name])
        columns[name] = codes
        values[name] = pd.Index(uniques, dtype=object)
    return frame.assign(**columns), values


def _strength(share: np.ndarray, cfg) -> np.ndarray:
    return cfg.direct_floor + (1 - cfg.direct_floor) * np.clip(share / cfg.full_share, 0, 1)


def _ownership(wallets: pd.Index, known: KnownList) -> pd.DataFrame:
    """One link per (listed wallet, category): points = severity."""
    hit = known.entries["address"].isin(wallets).to_numpy()
    own = known.entries[hit]
    if own.empty:
        return pd.DataFrame()
    return pd.DataFrame(
        {
            "wallet": wallets.get_indexer(own["address"]),
            "kind": "ownership",
            "category": own["category"].to_numpy(object),
            "severity": own["severity"].to_numpy(float),
            "points": own["severity"].to_numpy(float),
            "sources": own["sources"].to_numpy(object),
            "label": own["label"].to_numpy(object),
        }
    )


def _direct(rows: _Rows, known: KnownList, cfg) -> pd.DataFrame:
    """One link per (wallet, category, direction) of the counterparties on the list."""
    if not len(rows.parties) or not len(known.addresses):
        return pd.DataFrame()
    listed = known.addresses.get_indexer(rows.parties) >= 0  # per distinct counterparty: one hash each
    hit = listed[rows.party]
    if not hit.any():
        return pd.DataFrame()
    k = np.flatnonzero(hit)
    tx = rows.frame
    source_rows = rows.idx[k]
    amount = tx["token_amount"].to_numpy(float)[source_rows] if "token_amount" in tx else np.full(len(k), np.nan)
    symbol = (
        tx["token_a_symbol"].astype(object).to_numpy()[source_rows] if "token_a_symbol" in tx else np.full(len(k), None)
    )
    hits = pd.DataFrame(
        {
            "wallet": rows.wallet[k],
            "address": rows.parties.to_numpy(object)[rows.party[k]],
            "out": rows.out[k],
            "usd": rows.usd[k],
            "amount": amount,
            "symbol": pd.Series(symbol, dtype=object).fillna(""),
            "ts": tx["timestamp"].to_numpy(np.int64)[source_rows],
        }
    ).merge(known.entries, on="address")
    hits, coded = _coded(hits, "symbol")
    keys = ["wallet", "category", "out"]
    per_party = hits.groupby([*keys, "address"], sort=False).agg(usd=("usd", "sum"), n=("usd", "size")).reset_index()
    top = per_party.sort_values(["usd", "n", "address"], ascending=[False, False, True]).drop_duplicates(keys)
    grouped = hits.groupby(keys, sort=False)
    links = grouped.agg(
        count=("usd", "size"),
        usd=("usd", "sum"),
        amount=("amount", "sum"),
        symbols=("symbol", "nunique"),
        symbol=("symbol", "first"),
        first=("ts", "min"),
        last=("ts", "max"),
        counterparties=("address", "nunique"),
        severity=("severity", "first"),
    ).reset_index()
    links["symbol"] = coded["symbol"].to_numpy(object)[links["symbol"].to_numpy()]
    links = links.merge(
        top[[*keys, "address"]].merge(
            known.entries[["address", "category", "sources", "label"]], on=["address", "category"]
        ),
        on=keys,
    )
    w, out = links["wallet"].to_numpy(), links["out"].to_numpy(bool)
    total_usd = np.where(out, rows.out_usd[w], rows.in_usd[w])
    total_n = np.where(out, rows.out_count[w], rows.in_count[w])
    share = np.where(
        total_usd > 0,
        links["usd"].to_numpy() / np.where(total_usd > 0, total_usd, 1),
        links["count"] / np.maximum(total_n, 1),
    )
    links["share"] = share
    links["amount"] = np.where(links["symbols"].to_numpy() == 1, links["amount"].to_numpy(float), np.nan)
    links["points"] = links["severity"].to_numpy(float) * _strength(share, cfg)
    links["kind"] = "direct"
    return links.drop(columns=["symbols"])


def _indirect(rows: _Rows, known: KnownList, cfg, neighbours: pd.DataFrame, degrees) -> list[pd.DataFrame]:
    """Links at 1 and 2 hops: wallet → C1 → X, wallet → C1 → C2 → X, X on the list (severity > 0),
    intermediates unlisted, not hubs, and X never the wallet itself."""
    edges = neighbours[["wallet", "counterparty"]]
    edges = edges[(edges["wallet"] != edges["counterparty"]).to_numpy()]
    if degrees is None:
        degrees = edges.groupby("wallet", sort=False).size()
    passable = degrees.index[degrees.to_numpy() <= cfg.max_intermediate_degree]
    passable = passable[~passable.isin(known.addresses)]
    edges = edges[edges["wallet"].isin(passable).to_numpy()]
    risky = known.entries[known.entries["severity"].to_numpy() > 0]
    # exposed nodes: an intermediate and a listed address it dealt with, per category
    e1 = edges[edges["counterparty"].isin(known.risky).to_numpy()].merge(
        risky[["address", "category", "severity"]], left_on="counterparty", right_on="address"
    )
    if e1.empty:
        return []
    e1, coded = _coded(e1, "address")
    e1 = (
        e1.groupby(["wallet", "category"], sort=False)
        .agg(severity=("severity", "first"), n_x=("address", "nunique"), x_one=("address", "min"))
        .reset_index()
        .rename(columns={"wallet": "node"})
    )
    e1["x_one"] = coded["address"].to_numpy(object)[e1["x_one"].to_numpy()]
    pairs = _wallet_partners(rows)  # (wallet code, partner address, usd with it)
    total = rows.in_usd + rows.out_usd
    count = rows.in_count + rows.out_count
    out = []
    one = pairs.merge(e1, left_on="partner", right_on="node")
    own = rows.wallets.to_numpy(object)[one["wallet"].to_numpy()]
    one = one[~((one["n_x"].to_numpy() == 1) & (one["x_one"].to_numpy(object) == own))]
    out.append(_hop_links(one, 1, total, count, cfg))
    if cfg.max_hops >= 2:
        h = edges[edges["counterparty"].isin(pd.Index(e1["node"].unique())).to_numpy()].merge(
            e1, left_on="counterparty", right_on="node"
        )
        h = h[~((h["n_x"].to_numpy() == 1) & (h["x_one"].to_numpy(object) == h["wallet"].to_numpy(object)))]
        if len(h):
            h, coded = _coded(h, "counterparty", "x_one")
            h = (
                h.groupby(["wallet", "category"], sort=False)
                .agg(
                    severity=("severity", "first"),
                    n_c2=("counterparty", "nunique"),
                    c2_one=("counterparty", "min"),
                    n_x=("n_x", "max"),
                    x_kinds=("x_one", "nunique"),
                    x_one=("x_one", "min"),
                )
                .reset_index()
                .rename(columns={"wallet": "node"})
            )
            h["c2_one"] = coded["counterparty"].to_numpy(object)[h["c2_one"].to_numpy()]
            h["x_one"] = coded["x_one"].to_numpy(object)[h["x_one"].to_numpy()]
            two = pairs.merge(h, left_on="partner", right_on="node")
            own = rows.wallets.to_numpy(object)[two["wallet"].to_numpy()]
            loops = (two["n_c2"].to_numpy() == 1) & (two["c2_one"].to_numpy(object) == own)
            only_self = (
                (two["n_x"].to_numpy() == 1) & (two["x_kinds"].to_numpy() == 1) & (two["x_one"].to_numpy(object) == own)
            )
            out.append(_hop_links(two[~(loops | only_self)], 2, total, count, cfg))
    return out


def _wallet_partners(rows: _Rows) -> pd.DataFrame:
    """Distinct (wallet code, counterparty) pairs of the rows, with the USD value and rows between them."""
    width = max(len(rows.parties), 1)
    key = rows.wallet * width + rows.party
    inverse, unique = pd.factorize(key)  # hashing: several times faster than np.unique's sort
    return pd.DataFrame(
        {
            "wallet": unique // width,
            "partner": rows.parties.to_numpy(object)[unique % width],
            "pair_usd": np.bincount(inverse, weights=rows.usd, minlength=len(unique)),
            "pair_n": np.bincount(inverse, minlength=len(unique)).astype(float),
        }
    )


def _hop_links(paths: pd.DataFrame, hops: int, total: np.ndarray, count: np.ndarray, cfg) -> pd.DataFrame:
    """One link per (wallet, category) over the intermediates of these paths."""
    if paths.empty:
        return pd.DataFrame()
    top = paths.sort_values(["pair_usd", "pair_n", "partner"], ascending=[False, False, True]).drop_duplicates(
        ["wallet", "category"]
    )
    paths, _ = _coded(paths, "partner")
    links = (
        paths.groupby(["wallet", "category"], sort=False)
        .agg(severity=("severity", "first"), via=("partner", "nunique"), usd=("pair_usd", "sum"), n=("pair_n", "sum"))
        .reset_index()
        .merge(top[["wallet", "category", "partner"]], on=["wallet", "category"])
    )
    w = links["wallet"].to_numpy()
    share = np.where(
        total[w] > 0, links["usd"] / np.where(total[w] > 0, total[w], 1), links["n"] / np.maximum(count[w], 1)
    )
    links["share"] = share
    links["hops"] = hops
    links["points"] = links["severity"].to_numpy(float) * cfg.hop_decay**hops * _strength(share, cfg)
    links["kind"] = "indirect"
    return links.rename(columns={"partner": "address"}).drop(columns=["n"])


def _summarise(out: pd.DataFrame, links: pd.DataFrame, wallets: pd.Index, config: ScoringConfig) -> None:
    """Per wallet: scores by kind, the risk floor, the strongest link's sentence, the message detail."""
    cfg = config.exposure
    n = len(wallets)
    w = links["wallet"].to_numpy(np.int64)
    points = links["points"].to_numpy(float)
    kind = links["kind"].to_numpy(object)
    for name in ("ownership", "direct", "indirect"):
        score = np.zeros(n)
        mask = kind == name
        np.maximum.at(score, w[mask], points[mask])
        out[f"exposure_{'owner' if name == 'ownership' else name}_score"] = np.clip(score, 0, 100)
    score = np.zeros(n)
    np.maximum.at(score, w, points)
    out["exposure_score"] = np.clip(score, 0, 100)
    out["exposure_confidence"] = (score > 0).astype(float)
    out["exposure_risk_floor"] = _floors(links, n, config)
    out["exposure_reason"] = reason_texts(links, n)
    out["exposure_json"] = detail_json(links, out["exposure_score"].to_numpy(), n, cfg.max_items, NO_EXPOSURE_JSON)


def level_order(config: ScoringConfig) -> list[str]:
    """Risk levels from the least to the most risky: the bands, then the critical level."""
    return [band.name for band in config.risk_levels] + [config.exposure.critical_level]


def _floors(links: pd.DataFrame, n: int, config: ScoringConfig) -> np.ndarray:
    """The worst risk floor per wallet ("" for none) from its ownership and direct links."""
    order = level_order(config)
    rank = np.full(n, -1)
    floors = config.exposure.risk_floors
    for kind, table in (("ownership", floors.owner), ("direct", floors.direct)):
        for category, level in table.items():
            mask = (links["kind"].to_numpy(object) == kind) & (links["category"].to_numpy(object) == category)
            np.maximum.at(rank, links["wallet"].to_numpy(np.int64)[mask], order.index(level))
    names = np.array(["", *order], dtype=object)
    return names[rank + 1]
