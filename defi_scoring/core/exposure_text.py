"""What a person reads about a wallet's exposure: the sentence of its strongest link (a reason such as
"received 12.4 ETH ($24,800) from Ronin Bridge Exploiter (exploit, forta), 38% of inflow") and the
`exposure` object of its success message (ownership, direct, indirect).

Built only for the wallets that have links (a few among many), from the link table of core/exposure.
"""

from __future__ import annotations

import math

import numpy as np
import orjson
import pandas as pd

KIND_ORDER = {"ownership": 0, "direct": 1, "indirect": 2}


def records(frame: pd.DataFrame) -> list[dict]:
    """Rows as dictionaries of plain Python values (column lists zipped: to_dict boxes value by value)."""
    names = frame.columns.tolist()
    return [dict(zip(names, row)) for row in zip(*(frame[c].tolist() for c in names))]


def short(address: str) -> str:
    return f"{address[:6]}…{address[-4:]}" if isinstance(address, str) and len(address) > 12 else str(address)


def _number(value: float, digits: int) -> float | None:
    return round(float(value), digits) if value == value and math.isfinite(value) else None


def _ordered(links: pd.DataFrame) -> pd.DataFrame:
    """Links by wallet, then ownership/direct/indirect, strongest first (USD value breaks ties)."""
    usd = links["usd"].fillna(0) if "usd" in links else 0.0
    return links.assign(_kind=links["kind"].map(KIND_ORDER), _usd=usd).sort_values(
        ["wallet", "points", "_kind", "_usd"], ascending=[True, False, True, False], kind="stable"
    )


def sentence(link: dict) -> str:
    """One link as a sentence."""
    kind, category = link["kind"], link["category"]
    if kind == "ownership":
        label = f": {link['label']}" if link.get("label") else ""
        return f"is itself listed as {category} ({link['sources']}{label})"
    if kind == "direct":
        out = bool(link["out"])
        verb, prep, flow = ("sent", "to", "outflow") if out else ("received", "from", "inflow")
        amount, usd = link.get("amount"), link.get("usd") or 0.0
        if amount == amount and amount is not None and link.get("symbol"):
            what = f"{amount:,.4g} {link['symbol']}" + (f" (${usd:,.0f})" if usd > 0 else "")
        else:
            what = f"${usd:,.0f}" if usd > 0 else f"{link['count']:.0f} transfers"
        name = link.get("label") or short(link["address"])
        others = int(link["counterparties"]) - 1
        more = f" and {others} other {category} address{'es' if others > 1 else ''}" if others > 0 else ""
        return f"{verb} {what} {prep} {name}{more} ({category}, {link['sources']}), {link['share']:.0%} of {flow}"
    hops = int(link["hops"])
    via = int(link["via"])
    more = f" and {via - 1} other counterpart{'ies' if via > 2 else 'y'}" if via > 1 else ""
    return (
        f"{hops} hop{'s' if hops > 1 else ''} from {category} addresses through {short(link['address'])}{more}, "
        f"{link['share']:.0%} of its volume"
    )


def reason_texts(links: pd.DataFrame, n: int) -> np.ndarray:
    """Per wallet, the sentence of its strongest link with points ("" for none)."""
    out = np.full(n, "", dtype=object)
    strong = links[links["points"].to_numpy(float) > 0]
    if strong.empty:
        return out
    top = _ordered(strong).drop_duplicates("wallet")
    for link in records(top):
        out[int(link["wallet"])] = sentence(link)
    return out


def _record(link: dict) -> dict:
    kind = link["kind"]
    base = {"category": link["category"], "severity": _number(link["severity"], 2)}
    if kind == "ownership":
        return {**base, "sources": link["sources"].split(", "), "label": link.get("label") or None}
    if kind == "direct":
        return {
            **base,
            "direction": "out" if link["out"] else "in",
            "count": int(link["count"]),
            "usd": _number(link["usd"], 2),
            "amount": _number(link["amount"], 8),
            "symbol": link.get("symbol") or None,
            "share": _number(link["share"], 4),
            "first": int(link["first"]),
            "last": int(link["last"]),
            "counterparties": int(link["counterparties"]),
            "top": {
                "address": link["address"],
                "label": link.get("label") or None,
                "sources": link["sources"].split(", "),
            },
            "points": _number(link["points"], 2),
            "text": sentence(link),
        }
    return {
        **base,
        "hops": int(link["hops"]),
        "via": int(link["via"]),
        "example": link["address"],
        "share": _number(link["share"], 4),
        "points": _number(link["points"], 2),
        "text": sentence(link),
    }


def detail_json(links: pd.DataFrame, scores: np.ndarray, n: int, max_items: int, default: str) -> np.ndarray:
    """Per wallet, its message's `exposure` object as JSON text (`default` for wallets without links)."""
    out = np.full(n, default, dtype=object)
    kept = _ordered(links).groupby(["wallet", "kind"], sort=False).head(max_items)
    details: dict[int, dict] = {}
    for link in records(kept):
        w = int(link["wallet"])
        detail = details.get(w)
        if detail is None:
            detail = details[w] = {"score": _number(scores[w], 2), "ownership": [], "direct": [], "indirect": []}
        detail[link["kind"]].append(_record(link))
    for w, detail in details.items():
        out[w] = orjson.dumps(detail).decode()
    return out
