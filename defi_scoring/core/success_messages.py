"""Scored wallets → success messages (CONTRACTS.md §2 plus the additive hybrid fields), column-wise.

Why column-wise: a message holds ~60 numbers and ~15 sentences. Building a dictionary per wallet and
serialising it cost ~90 µs per message — more than scoring the wallet. Here the fixed-shape part of
every message (the §2 fields, categories, breakdown, ml) is assembled and JSON-encoded for all
wallets at once by polars (nested structs, encoded in native code); the per-wallet parts whose shape
varies (reasons, patterns, alerts, recommendations) are built only from the columns that have something
and appended.
Numbers are rounded once per column with numpy; NaN and infinities become null.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa

from defi_scoring.core.alerts import alerts_of
from defi_scoring.core.exposure import NO_EXPOSURE_JSON
from defi_scoring.core.factors import FACTORS
from defi_scoring.core.features import LP_FEATURES, SWAP_FEATURES
from defi_scoring.core.frame_columns import FrameColumns, column, floats, frame_of
from defi_scoring.core.patterns import EVIDENCE, EXPLANATIONS, PATTERNS
from defi_scoring.core.reasons import sign_points
from defi_scoring.core.templates import format_rows, template_fields

INT_FEATURES = {
    "num_deposits",
    "num_withdraws",
    "unique_pools",
    "num_swaps",
    "unique_pools_swapped",
    "counterparties",
    "fan_in",
    "fan_out",
    "tokens",
    "liquidations",
}
# The additive `activity` field: per §1b protocol type, its transaction count and readable features.
ACTIVITY = {
    "transfers": (
        "transfer_count",
        [
            "received_usd",
            "sent_usd",
            "counterparties",
            "fan_in",
            "fan_out",
            "sweep_share_1h",
            "failed_share",
            "method_call_share",
            "tokens",
            "transfer_span_days",
        ],
    ),
    "lending": (
        "lending_count",
        [
            "supplied_usd",
            "borrowed_usd",
            "borrow_to_supply_ratio",
            "repay_to_borrow_ratio",
            "liquidations",
            "liquidated_usd",
        ],
    ),
}
MIN_REASON_POINTS = 0.05


@dataclass
class EncodedMessages:
    """Success messages as the JSON bytes that go to Kafka and the store, plus the few fields the
    store and the alert topic need, so neither has to parse the JSON again."""

    values: list[bytes]
    summaries: list[dict[str, Any]]  # wallet_address, zscore, hybrid_score, confidence, risk_level,
    #                                   model_version, timestamp, processing_time_ms, alerts


SMALL_BATCH = 48  # up to this many messages, Python dictionaries + orjson beat polars' fixed cost


@dataclass(frozen=True)
class _Column:
    """A field whose value comes from a prepared column (numbers rounded, text, lists)."""

    name: str


@dataclass(frozen=True)
class _Literal:
    """A field with the same value in every message."""

    value: Any
    dtype: Any = None


def encode_success_messages(
    table: pd.DataFrame,
    addresses: list[str],
    scores: Any,
    as_of: int,
    processing_ms: int,
    backend: str | None = None,
) -> EncodedMessages:
    """One message per row of `table` (rows of WalletScores.table, in the order of `addresses`, the
    wallet addresses as received).

    The fixed-shape part is described once as a tree of fields and encoded by one of two backends
    that give the same bytes (tested): polars for many wallets, dictionaries + orjson for a few
    (polars costs ~7 ms per call whatever its size, a dictionary ~0.1 ms per message).
    backend: "polars", "python" or None (by size)."""
    n = len(table)
    if n == 0:
        return EncodedMessages([], [])
    config = scores.config
    columns: dict[str, Any] = {}
    table_columns = FrameColumns(table)

    numbers: dict[str, tuple[str, int | None]] = {}  # rounded all at once when the tree is built

    def number(column: str, digits: int | None = None) -> _Column:
        """A table column, rounded (NaN/inf are encoded as null)."""
        name = f"{column}:{digits}"
        numbers[name] = (column, digits)
        return _Column(name)

    def integer(column: str) -> _Column:
        columns[column] = np.asarray(table_columns[column], dtype=np.int64)
        return _Column(column)

    def text(name: str, values: list) -> _Column:
        columns[name] = values
        return _Column(name)

    def features(names: list[str], digits: int | None = None) -> dict:
        return {f: integer(f) if f in INT_FEATURES else number(f, digits) for f in names}

    zscores = [f"{z:.18f}" for z in table_columns.floats("zscore").tolist()]
    breakdown = {}
    for dim_name, dim in config.dimensions.items():
        factors = {}
        for f, weight in dim.factors.items():
            explanation = format_rows(FACTORS[f].explanation, table_columns, FACTORS[f].description)
            failed = np.asarray(table_columns[f"factor_{f}_failed"], dtype=bool)
            if failed.any():
                error = scores.factor_errors.get(f, "factor failed") + " (neutral fallback)"
                for i in np.flatnonzero(failed).tolist():
                    explanation[i] = error
            factors[f] = {
                "score": number(f"factor_{f}_score", 2),
                "confidence": number(f"factor_{f}_confidence", 3),
                "weight": _Literal(float(weight)),
                "explanation": text(f"explanation:{f}", explanation),
            }
        breakdown[dim_name] = {
            "score": number(f"dimension_{dim_name}_score", 2),
            "confidence": number(f"dimension_{dim_name}_confidence", 3),
            "weight": _Literal(float(dim.weight)),
            "factors": factors,
        }
    version = scores.model_version
    head = {
        "wallet_address": text("wallet_address", addresses),
        "zscore": text("zscore", zscores),
        "timestamp": integer("as_of") if "as_of" in table.columns else _Literal(int(as_of), "int"),
        "processing_time_ms": _Literal(int(processing_ms), "int"),
    }
    categories = [
        {
            "category": _Literal("liquidity_provision"),
            "score": number("lp_score"),
            "transaction_count": integer("lp_transaction_count"),
            "features": features(LP_FEATURES),
        },
        {
            "category": _Literal("trading"),
            "score": number("swap_score"),
            "transaction_count": integer("num_swaps"),
            "features": features(SWAP_FEATURES),
        },
    ]
    activity = {
        kind: {"transaction_count": integer(count), "features": features(names, 4)}
        for kind, (count, names) in ACTIVITY.items()
    }
    rest = {
        "activity": activity,
        "tags": text("tags", table_columns["tags"].tolist()),
        "hybrid_score": number("hybrid_score", 2),
        "confidence": number("confidence", 3),
        "risk_level": text("risk_level", np.asarray(table_columns["risk_level"], dtype=object).tolist()),
        "thin_history": _Column("thin_history"),
        "base_score": number("base_score", 2),
        "breakdown": breakdown,
        "ml": {
            "available": _model_available(table_columns, version, columns),
            "model_version": _Literal(version, "str"),
            "note": _model_notes(table_columns, scores.model_note, columns),
            "prediction_score": number("ml_prediction_score", 2),
            "confidence": number("ml_confidence", 3),
            "anomaly_score": number("anomaly_score", 3),
            "adjustment": number("ml_adjustment", 2),
            "anomaly_penalty": number("anomaly_penalty", 2),
        },
    }
    columns["thin_history"] = np.asarray(table_columns["thin_history"], dtype=bool)
    few = backend == "python" or (backend is None and n <= SMALL_BATCH)
    columns.update(_rounded(numbers, table_columns, as_lists=few))
    if few:
        heads = _encode_with_dictionaries(head, categories, rest, columns, n)
    else:
        heads = _encode_with_polars(head, categories, rest, columns)

    reasons, patterns, alerts = reason_lists(table_columns), pattern_lists(table), alert_lists(table, config.alerts)
    advice = recommendation_lists(table, config)
    exposure = exposure_values(table_columns)
    tail = b',"model_version":' + orjson.dumps(version) + b"}"
    values = [
        b"".join(
            (
                head[:-1],
                b',"reasons":',
                orjson.dumps(r),
                b',"patterns":',
                orjson.dumps(p),
                b',"alerts":',
                orjson.dumps(a),
                b',"recommendations":',
                orjson.dumps(rec),
                b',"exposure":',
                exp,
                tail,
            )
        )
        for head, r, p, a, rec, exp in zip(heads, reasons, patterns, alerts, advice, exposure)
    ]
    scored_at = columns["as_of"].tolist() if "as_of" in columns else [int(as_of)] * n
    return EncodedMessages(values, _summaries(table, addresses, zscores, version, scored_at, processing_ms, alerts))


def exposure_values(table: FrameColumns) -> list[bytes]:
    """Each wallet's `exposure` object (ownership, direct, indirect, score; core/exposure.py) as JSON;
    the same empty object for a wallet that was not screened or has no exposure."""
    if "exposure_json" not in table.columns:
        return [NO_EXPOSURE_JSON.encode()] * len(table)
    return [value.encode() for value in np.asarray(table["exposure_json"], dtype=object).tolist()]


def _model_available(table: FrameColumns, version: str | None, columns: dict[str, Any]) -> _Column | _Literal:
    """ml.available: a champion exists and at least one of its members scored this wallet."""
    if version is None or "ml_available" not in table.columns:
        return _Literal(version is not None)
    columns["ml_available"] = np.asarray(table["ml_available"], dtype=bool)
    return _Column("ml_available")


def _model_notes(table: FrameColumns, note: str, columns: dict[str, Any]) -> _Column | _Literal:
    """ml.note: the batch's note, followed for a degraded wallet by what failed on it (`ml_note`)."""
    if "ml_note" not in table.columns:
        return _Literal(note, "str")
    own = np.asarray(table["ml_note"], dtype=object)
    degraded = own != ""
    if not degraded.any():
        return _Literal(note, "str")
    notes = np.full(len(own), note, dtype=object)
    notes[degraded] = [f"{note}; {text}" for text in own[degraded].tolist()]
    columns["ml_note"] = notes.tolist()
    return _Column("ml_note")


def _encode_with_polars(head: dict, categories: list[dict], rest: dict, columns: dict[str, Any]) -> list[bytes]:
    """The fixed-shape part of every message, as JSON, by polars (nested structs in native code)."""
    import polars as pl  # imported here: ~0.2 s, and only many-wallet scoring needs it

    dtypes = {"int": pl.Int64, "str": pl.String}

    def expression(node: Any) -> pl.Expr:
        if isinstance(node, dict):
            return pl.struct(**{name: expression(child) for name, child in node.items()})
        if isinstance(node, _Column):
            return pl.col(node.name)
        return pl.lit(node.value, dtype=dtypes.get(node.dtype))

    # Objects encoded separately and joined as text: polars encodes a list of structs ~5× slower.
    message = pl.concat_str(
        [
            expression(head).struct.json_encode().str.head(-1),
            pl.lit(',"categories":['),
            expression(categories[0]).struct.json_encode(),
            pl.lit(","),
            expression(categories[1]).struct.json_encode(),
            pl.lit("],"),
            expression(rest).struct.json_encode().str.slice(1),
        ]
    )
    frame = {
        name: pl.Series(name, values, dtype=pl.String) if isinstance(values, list) else values
        for name, values in columns.items()
        if name != "tags"
    }
    frame["tags"] = pl.from_arrow(pa.array(columns["tags"], pa.list_(pa.string())))  # 30× faster than polars
    return [m.encode() for m in pl.DataFrame(frame, nan_to_null=True).select(message).to_series().to_list()]


def _encode_with_dictionaries(
    head: dict, categories: list[dict], rest: dict, columns: dict[str, Any], n: int
) -> list[bytes]:
    """The same bytes as `_encode_with_polars`, one dictionary per message (fast for a few)."""
    as_lists = {
        name: values
        if isinstance(values, list)
        else _finite_or_none(values)
        if values.dtype.kind == "f"
        else values.tolist()
        for name, values in columns.items()
    }

    def rows(node: Any) -> list:
        if n == 1:  # a lone wallet (one API call): its one message built directly, no column zips
            return [one(node)]
        if isinstance(node, dict):
            names = list(node)
            return [dict(zip(names, values)) for values in zip(*(rows(node[name]) for name in names))]
        if isinstance(node, _Column):
            return as_lists[node.name]
        return [node.value] * n

    def one(node: Any) -> Any:
        if isinstance(node, dict):
            return {name: one(child) for name, child in node.items()}
        if isinstance(node, _Column):
            return as_lists[node.name][0]
        return node.value

    heads = rows(head)
    category_rows = [rows(c) for c in categories]
    rests = rows(rest)
    return [
        orjson.dumps({**h, "categories": [c0, c1], **r})
        for h, c0, c1, r in zip(heads, category_rows[0], category_rows[1], rests)
    ]


def _summaries(
    table: pd.DataFrame,
    addresses: list[str],
    zscore: list[str],
    version: str | None,
    scored_at: list[int],
    processing_ms: int,
    alerts: list[list[dict]],
) -> list[dict[str, Any]]:
    hybrid = _finite_or_none(np.round(floats(table, "hybrid_score"), 2))
    confidence = _finite_or_none(np.round(floats(table, "confidence"), 3))
    risk = np.asarray(column(table, "risk_level"), dtype=object).tolist()
    return [
        {
            "wallet_address": a,
            "zscore": z,
            "hybrid_score": h,
            "confidence": c,
            "risk_level": r,
            "model_version": version,
            "timestamp": t,
            "processing_time_ms": processing_ms,
            "alerts": al,
        }
        for a, z, h, c, r, t, al in zip(addresses, zscore, hybrid, confidence, risk, scored_at, alerts)
    ]


def _rounded(numbers: dict[str, tuple[str, int | None]], table: FrameColumns, as_lists: bool) -> dict[str, Any]:
    """The number columns, rounded: one np.round per number of digits over the stacked columns (not
    ~85 calls on one-wallet arrays). as_lists: as lists with None for NaN/inf (what the dictionary
    encoder writes); else arrays."""
    by_digits: dict[int | None, list[str]] = {}
    for name, (_, digits) in numbers.items():
        by_digits.setdefault(digits, []).append(name)
    out: dict[str, Any] = {}
    for digits, names in by_digits.items():
        block = np.stack([table.floats(numbers[name][0]) for name in names])
        if digits is not None:
            block = np.round(block, digits)
        if as_lists:  # one tolist for the block, then None where a value is not finite
            lists, finite = block.tolist(), np.isfinite(block)
            if not finite.all():
                for row, position in zip(*np.nonzero(~finite)):
                    lists[row][position] = None
            out.update(zip(names, lists))
        else:
            out.update(zip(names, block))
    return out


def _finite_or_none(values: np.ndarray) -> list:
    finite = np.isfinite(values)
    if finite.all():
        return values.tolist()
    out = values.astype(object)
    out[~finite] = None
    return out.tolist()


def reason_lists(table: pd.DataFrame | FrameColumns, min_points: float = MIN_REASON_POINTS) -> list[list[dict]]:
    """Each wallet's reasons: its top factor contributions, then (with a champion) the ML adjustment,
    the anomaly penalty and the model's strongest features."""
    n = len(table)
    columns = table if isinstance(table, FrameColumns) else FrameColumns(table)
    out: list[list[dict]] = [[] for _ in range(n)]
    slot = 1
    while f"reason_{slot}_text" in table.columns:
        points = columns.floats(f"reason_{slot}_points")
        rounded = np.round(points, 2).tolist()
        texts = columns[f"reason_{slot}_text"].tolist()
        factors = columns[f"reason_{slot}_factor"].tolist()
        for i in np.flatnonzero(np.abs(np.nan_to_num(points)) >= min_points).tolist():
            out[i].append({"text": texts[i], "points": rounded[i], "source": "factor", "factor": factors[i]})
        slot += 1
    if "ml_adjustment" in table.columns:
        adjustment = columns.floats("ml_adjustment")
        probability = (1 - columns.floats("ml_prediction_score") / 100).tolist()
        rounded = np.round(adjustment, 2).tolist()
        for i in np.flatnonzero(np.nan_to_num(adjustment) != 0).tolist():
            out[i].append(
                {
                    "text": f"Ensemble risk probability {probability[i]:.2f} ({sign_points(adjustment[i])} points)",
                    "points": rounded[i],
                    "source": "model",
                    "factor": "ml_adjustment",
                }
            )
    if "anomaly_penalty" in table.columns:
        penalty = columns.floats("anomaly_penalty")
        anomaly = columns.floats("anomaly_score").tolist()
        rounded = np.round(-penalty, 2).tolist()
        for i in np.flatnonzero(np.nan_to_num(penalty) != 0).tolist():
            out[i].append(
                {
                    "text": f"Behaviour more unusual than {anomaly[i]:.0%} of training wallets "
                    f"({sign_points(-penalty[i])} points)",
                    "points": rounded[i],
                    "source": "model",
                    "factor": "anomaly_penalty",
                }
            )
    slot = 1
    while f"model_reason_{slot}_feature" in table.columns:
        features = columns[f"model_reason_{slot}_feature"].tolist()
        log_odds = columns.floats(f"model_reason_{slot}_log_odds")
        rounded = np.round(log_odds, 4).tolist()
        values = {f: columns[f].tolist() for f in set(features) if isinstance(f, str) and f in table.columns}
        for i in np.flatnonzero(~np.isnan(log_odds)).tolist():
            feature = features[i]
            if feature not in values:
                continue
            direction = "raises" if log_odds[i] > 0 else "lowers"
            out[i].append(
                {
                    "text": f"Model: {feature} = {values[feature][i]:.3g} {direction} the risk estimate",
                    "log_odds": rounded[i],
                    "source": "model_feature",
                    "factor": feature,
                }
            )
        slot += 1
    return out


def pattern_lists(table: pd.DataFrame) -> list[list[dict]]:
    """Each wallet's detected manipulation patterns as records (most wallets have none)."""
    out: list[list[dict]] = [[] for _ in range(len(table))]
    for name in PATTERNS:
        rows = np.flatnonzero(np.asarray(column(table, f"{name}_detected"), dtype=bool))
        if not len(rows):
            continue
        part = _rows_and_columns(table, rows, _pattern_columns(name, table))
        explanation = format_rows(EXPLANATIONS[name], part, name.replace("_", " "))
        evidence = {
            k: (part[k].tolist() if part[k].dtype == object else np.round(part[k].to_numpy(float), 4).tolist())
            for k in EVIDENCE[name]
        }
        counted = part[f"{name}_counted"].to_numpy(bool).tolist()
        confidence = np.round(part[f"{name}_confidence"].to_numpy(float), 4).tolist()
        risk = np.round(part[f"{name}_risk"].to_numpy(float), 2).tolist()
        for j, i in enumerate(rows.tolist()):
            out[i].append(
                {
                    "pattern": name,
                    "detected": True,
                    "counted": counted[j],
                    "confidence": confidence[j],
                    "risk_score": risk[j],
                    "explanation": explanation[j],
                    "evidence": {k: v[j] for k, v in evidence.items()},
                }
            )
    return out


_ALERT_FIELDS = [
    "alert_pattern",
    "alert_pattern_risk",
    "alert_score_drop",
    "alert_low_confidence",
    "previous_score",
    "hybrid_score",
    "thin_history",
    "confidence",
    "alert_exposure",
    "exposure_score",
    "exposure_risk_floor",
    "exposure_reason",
]


def _pattern_columns(name: str, table: pd.DataFrame) -> list[str]:
    """The columns a pattern's record reads: its explanation's fields (those the table has; a missing
    one makes format_rows fall back, as before), its evidence, counted, confidence and risk."""
    fields = [f for f in template_fields(EXPLANATIONS[name]) if f in table.columns]
    wanted = [*fields, *EVIDENCE[name], f"{name}_counted", f"{name}_confidence", f"{name}_risk"]
    return list(dict.fromkeys(wanted))


def _rows_and_columns(table: pd.DataFrame, rows: np.ndarray, names: list[str]) -> pd.DataFrame:
    """`table.iloc[rows][names]` from those columns' arrays: a row take copies every one of the table's
    ~300 columns (~0.6–1 ms for one wallet) and a column take builds a frame of its own; a lone
    wallet's rows are all of them."""
    if len(rows) == len(table):
        return frame_of({name: column(table, name) for name in names}, table.index)
    return frame_of({name: column(table, name)[rows] for name in names}, table.index[rows])


def recommendation_lists(table: pd.DataFrame, config) -> list[list[dict]]:
    """Each wallet's recommendations: one per detected pattern (in the order of `patterns`), worded in
    scoring.yaml `recommendations`. Severity: critical when the pattern raises the high-risk alert,
    warning when it is counted, info when detected below the counting threshold. The few distinct
    records are built once per pattern and shared by the wallets that have them."""
    out: list[list[dict]] = [[] for _ in range(len(table))]
    critical = config.alerts.severities.get("high_risk_pattern", "critical")
    for name in PATTERNS:
        rows = np.flatnonzero(np.asarray(column(table, f"{name}_detected"), dtype=bool))
        if not len(rows):
            continue
        counted = np.asarray(column(table, f"{name}_counted"), dtype=bool)[rows]
        risk = floats(table, f"{name}_risk")[rows]
        level = np.where(counted, np.where(risk >= config.alerts.high_risk_pattern_score, 0, 1), 2)
        advice = config.recommendations[name]
        records = [
            {"pattern": name, "action": advice.action, "severity": severity, "text": advice.text}
            for severity in (critical, "warning", "info")
        ]
        for i, k in zip(rows.tolist(), level.tolist()):
            out[i].append(records[k])
    return out


def alert_lists(table: pd.DataFrame, cfg) -> list[list[dict]]:
    """Each wallet's alerts (core.alerts); built only for wallets with at least one."""
    out: list[list[dict]] = [[] for _ in range(len(table))]
    rows = np.flatnonzero(np.asarray(column(table, "alert_count"), dtype=np.int64) > 0)
    if len(rows):
        fields = [f for f in _ALERT_FIELDS if f in table.columns]  # (a table scored before exposure)
        part = _rows_and_columns(table, rows, fields)
        columns = [part[c].tolist() for c in fields]
        for i, values in zip(rows.tolist(), zip(*columns)):
            out[i] = alerts_of(dict(zip(fields, values)), cfg)
    return out
