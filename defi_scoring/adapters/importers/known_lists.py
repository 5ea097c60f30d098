"""Known-address lists → list rows (address, category, source, label, listed_at, removed).

Why: screening (core/exposure.py) reads one table of listed addresses, while the public lists come in
their own layouts. Read here: the combined table (`address,category,source,label[,source_category]
[,listed_at][,removed]`, CSV or a JSON array of such objects), Forta's labelled-dataset CSVs, OFAC's
sanctioned-address lists (one address per line, or a JSON array of strings) and Etherscan's label
cloud (`{address: {"name": …, "labels": […]}}`). The layout is read from the header or the JSON shape.
Addresses must pass the project's address rule (0x + 40 hex digits, as the message decoder checks
them) and are lower-cased; other rows are counted and reported, never imported. Source categories are
mapped to the project's categories (sanctioned, exploit, phishing, scam, mixer, other-risk and the
benign exchange, bridge, mev-bot, benign-context).
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import orjson
import pandas as pd

from defi_scoring.core.known_list import KNOWN_COLUMNS
from defi_scoring.core.python_decode import ADDRESS_RE

FORMATS = ("auto", "combined", "forta", "ofac", "etherscan-labels")
FORTA_CATEGORIES = {
    "etherscan-exploit-list": "exploit",
    "etherscan-heist-list": "exploit",
    "exploit": "exploit",
    "heist": "exploit",
    "etherscan-phish-hack-list": "phishing",
    "phish-hack": "phishing",
    "": "exploit",  # a contract taken from a DeFi-hack write-up
}
ETHERSCAN_CATEGORIES = {
    "ofac-sanctions-lists": "sanctioned",
    "spam-token": "scam",
    "flagged-by-sec": "scam",
    "high-risk": "scam",
    "tornado-cash": "mixer",
    "typhoon-cash": "mixer",
    "ethereum-mixer": "mixer",
    "airdrop-hunter": "other-risk",
    "opportunist": "other-risk",
    "something-fishy": "other-risk",
    "mev-bot": "mev-bot",
    "mev-builder": "mev-bot",
    "backrunning-bots": "mev-bot",
    "bridge": "bridge",
    "multichain": "bridge",
    **{name: "exchange" for name in ("binance", "bitfinex", "coinbase", "huobi", "kraken", "kucoin", "okx")},
}
# `blocked` mixes frozen actors with tokens and the null addresses that issuers block: risk only when
# unnamed or named as an attacker
RISKY_NAME = re.compile(r"exploit|hack|phish|ofac|scam|fake|heist|drain|attack|sanction", re.IGNORECASE)
KNOWN_CATEGORIES = ("sanctioned", "exploit", "phishing", "scam", "mixer", "other-risk", "exchange", "bridge", "mev-bot")


@dataclass
class ListRead:
    """Rows read from one file, and what was not imported."""

    rows: pd.DataFrame  # KNOWN_COLUMNS (+ source_category)
    layout: str
    read: int = 0
    invalid: int = 0
    examples: list[str] = field(default_factory=list)  # "FILE:LINE: reason" of some invalid rows


def read_known_list(
    path: Path, source: str | None = None, layout: str = "auto", listed_at: int | None = None
) -> ListRead:
    """The list rows of one file. source: the source name to give its rows (default: the row's own
    `source` in the combined table, else `forta/<file stem>`, `ofac` or `etherscan-labels`).
    listed_at: a listing time for rows that give none (unix s)."""
    path = Path(path)
    raw = path.read_bytes()
    layout = detect_layout(path, raw) if layout == "auto" else layout
    reader = {"combined": _combined, "forta": _forta, "ofac": _ofac, "etherscan-labels": _etherscan}[layout]
    frame = reader(path, raw)
    if source:
        frame["source"] = source
    if listed_at is not None:
        given = pd.to_numeric(frame["listed_at"], errors="coerce")
        frame["listed_at"] = given.fillna(listed_at)
    return _validated(frame, path, layout)


def detect_layout(path: Path, raw: bytes) -> str:
    """The layout of a file from its first bytes: JSON shape or CSV header."""
    head = raw.lstrip()[:1]
    if head == b"{":
        return "etherscan-labels"
    if head == b"[":
        first = orjson.loads(raw)
        return "ofac" if not first or isinstance(first[0], str) else "combined"
    header = raw.split(b"\n", 1)[0].decode("utf-8", "replace").strip().lower()
    columns = {c.strip() for c in header.split(",")}
    if {"address", "category"} <= columns:
        return "combined"
    if columns & {"banned_address", "contract_address", "etherscan_labels"}:
        return "forta"
    if ADDRESS_RE.fullmatch(header.strip()) or path.suffix == ".txt":
        return "ofac"
    raise ValueError(
        f"{path}: unknown list layout (header {header[:80]!r}); give the combined table "
        "(address,category,source,label), a Forta, OFAC or Etherscan-labels file, or --format"
    )


def _csv(raw: bytes) -> pd.DataFrame:
    return pd.read_csv(io.BytesIO(raw), dtype=str, keep_default_na=False, quoting=csv.QUOTE_MINIMAL)


def _rows(address, category, source, label, source_category, listed_at=None, removed=None) -> pd.DataFrame:
    n = len(address)
    return pd.DataFrame(
        {
            "address": pd.Series(address, dtype=object).to_numpy(object),
            "category": pd.Series(category, dtype=object).to_numpy(object),
            "source": np.broadcast_to(np.asarray(source, dtype=object), n).copy(),
            "label": pd.Series(label, dtype=object).fillna("").to_numpy(object),
            "source_category": pd.Series(source_category, dtype=object).fillna("").to_numpy(object),
            "listed_at": pd.Series(listed_at if listed_at is not None else [None] * n, dtype=object).to_numpy(object),
            "removed": pd.Series(removed if removed is not None else [False] * n, dtype=object).to_numpy(object),
        }
    )


def _truthy(values: pd.Series) -> pd.Series:
    return values.astype(str).str.strip().str.lower().isin(["true", "1", "yes", "y", "t"])


def _combined(path: Path, raw: bytes) -> pd.DataFrame:
    """The combined table, CSV or a JSON array of objects; extra columns are ignored."""
    frame = pd.DataFrame(orjson.loads(raw)) if raw.lstrip()[:1] == b"[" else _csv(raw)
    frame.columns = [str(c).strip().lower() for c in frame.columns]
    missing = {"address", "category"} - set(frame.columns)
    if missing:
        raise ValueError(f"{path}: the combined table needs columns {sorted(missing)}")
    get = lambda name, default: frame[name] if name in frame else pd.Series([default] * len(frame))
    removed = get("removed", False)
    return _rows(
        frame["address"],
        frame["category"].astype(str).str.strip().str.lower(),
        get("source", path.stem).astype(str).replace("", path.stem).to_numpy(object),
        get("label", ""),
        get("source_category", ""),
        get("listed_at", None).replace("", None),
        _truthy(removed) if removed.dtype == object else removed.astype(bool),
    )


def _forta(path: Path, raw: bytes) -> pd.DataFrame:
    """Forta's three labelled-dataset layouts (etherscan_malicious_labels, phishing_scams,
    malicious_smart_contracts; a contract's deployer is a row when the deployer carries a label)."""
    frame = _csv(raw)
    source = f"forta/{path.stem}"
    if "banned_address" in frame:
        kind = frame["data_source"]
        return _rows(frame["banned_address"], kind.map(_forta_category), source, frame["wallet_tag"], kind)
    if "etherscan_labels" in frame:
        kind = frame["etherscan_labels"]
        return _rows(frame["address"], kind.map(_forta_category), source, frame["etherscan_tag"], kind)
    kind = frame["contract_creator_etherscan_label"]
    label = frame["contract_tag"].where(frame["contract_tag"] != "", frame["notes"])
    contracts = _rows(frame["contract_address"], kind.map(_forta_category), source, label, kind)
    labelled = frame[kind != ""]
    deployers = _rows(
        labelled["contract_creator"],
        labelled["contract_creator_etherscan_label"].map(_forta_category),
        source,
        labelled["contract_creator_tag"],
        labelled["contract_creator_etherscan_label"],
    )
    return pd.concat([contracts, deployers], ignore_index=True)


def _forta_category(value: str) -> str:
    return FORTA_CATEGORIES.get(str(value).strip().lower(), "other-risk")


def _ofac(path: Path, raw: bytes) -> pd.DataFrame:
    """OFAC sanctioned addresses: one per line, or a JSON array; the asset is in the file name."""
    if raw.lstrip()[:1] == b"[":
        addresses = [str(a) for a in orjson.loads(raw)]
    else:
        addresses = [line.strip() for line in raw.decode("utf-8", "replace").splitlines() if line.strip()]
    asset = path.stem.rsplit("_", 1)[-1].upper() if "_" in path.stem else ""
    return _rows(addresses, ["sanctioned"] * len(addresses), "ofac", [""] * len(addresses), [asset] * len(addresses))


def _etherscan(path: Path, raw: bytes) -> pd.DataFrame:
    """Etherscan's label cloud: one row per (address, label)."""
    data = orjson.loads(raw)
    addresses, names, labels = [], [], []
    for address, entry in data.items():
        entry = entry if isinstance(entry, dict) else {}
        for label in entry.get("labels") or []:
            addresses.append(address)
            names.append(entry.get("name") or "")
            labels.append(str(label))
    label_series, name_series = pd.Series(labels, dtype=object), pd.Series(names, dtype=object)
    category = label_series.map(ETHERSCAN_CATEGORIES).fillna("benign-context")
    blocked = (label_series == "blocked").to_numpy()
    risky_name = (name_series == "") | name_series.str.contains(RISKY_NAME)
    category = category.where(~blocked, np.where(risky_name, "other-risk", "benign-context"))
    return _rows(addresses, category, "etherscan-labels", name_series, label_series)


def _validated(frame: pd.DataFrame, path: Path, layout: str) -> ListRead:
    """Rows whose address passes the address rule, lower-cased; one row per (address, source,
    source_category, category) (tags of the same address in two spellings joined)."""
    address = frame["address"].astype(str).str.strip()
    valid = address.str.fullmatch(ADDRESS_RE.pattern).to_numpy(bool)
    bad = np.flatnonzero(~valid)
    first_line = 2 if layout in ("combined", "forta") else 1  # (a CSV header)
    examples = [
        f"{path}:{i + first_line}: {address.iloc[i][:60]!r} is not an address (0x + 40 hex digits)" for i in bad[:10]
    ]
    rows = frame[valid].assign(address=address[valid].str.lower())
    rows = rows[rows["category"].astype(str) != ""]
    keys = ["address", "source", "category", "source_category"]
    if rows.duplicated(keys).any():
        labels = rows.groupby(keys, sort=False)["label"].agg(lambda s: " | ".join(dict.fromkeys(x for x in s if x)))
        rows = rows.drop_duplicates(keys).drop(columns="label").merge(labels.reset_index(), on=keys)
    return ListRead(
        rows.reset_index(drop=True)[[*KNOWN_COLUMNS, "source_category"]], layout, len(frame), len(bad), examples
    )
