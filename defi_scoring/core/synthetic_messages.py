"""Synthetic wallets as what the product reads: §1/§1b messages (one per wallet, full history), the
newest-transactions split a stream sees, deliberately corrupted lines, and the JSONL + labels files."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import orjson

from defi_scoring.core import synthetic_lending, synthetic_transfers

if TYPE_CHECKING:
    from defi_scoring.core.synthetic import SyntheticData


def iter_messages(data: SyntheticData) -> Iterator[dict]:
    """One wallet-transactions message (CONTRACTS.md §1, §1b) per wallet, with its full history: a
    section per protocol type the wallet used, in wallet order."""
    addresses = data.wallets["wallet_address"].tolist()
    streams = [
        ("dexes", _dex_records(data, addresses)),
        ("transfers", _transfer_records(data)),
        ("lending", _lending_records(data, len(data.transactions) + len(data.transfers))),
    ]
    heads = {name: next(stream, None) for name, stream in streams}
    for wallet, address in enumerate(addresses):
        sections = []
        for name, stream in streams:
            head = heads[name]
            if head is not None and head[0] == wallet:
                sections.append({"protocolType": name, "transactions": head[1]})
                heads[name] = next(stream, None)
        if sections:
            yield {"wallet_address": address, "data": sections}


def _grouped(wallets: list[int], records: Iterator[dict]) -> Iterator[tuple[int, list[dict]]]:
    """(wallet index, its records) for rows sorted by wallet."""
    current, txs = -1, []
    for wallet, record in zip(wallets, records):
        if wallet != current:
            if current >= 0:
                yield current, txs
            current, txs = wallet, []
        txs.append(record)
    if current >= 0:
        yield current, txs


def _dex_records(data: SyntheticData, addresses: list[str]) -> Iterator[tuple[int, list[dict]]]:
    tx = data.transactions
    universe = data.universe
    pool = tx["pool"].to_numpy()
    direction = tx["direction"].to_numpy()
    t0, t1 = universe.pool_token0[pool], universe.pool_token1[pool]
    is_swap = tx["action"].to_numpy() == "swap"
    token_a = np.where(is_swap & (direction == 1), t1, t0)
    token_b = np.where(is_swap & (direction == 1), t0, t1)
    usd = tx["usd"].to_numpy()
    usd_a = np.where(is_swap, usd, usd / 2)
    usd_b = np.where(is_swap, usd * 0.997, usd / 2)  # swap slippage; LP split 50/50
    wallets = tx["wallet_index"].to_numpy().tolist()
    columns = zip(
        wallets,
        tx["timestamp"].to_numpy().tolist(),
        tx["action"].tolist(),
        pool.tolist(),
        token_a.tolist(),
        token_b.tolist(),
        np.round(usd_a, 2).tolist(),
        np.round(usd_b, 2).tolist(),
    )
    symbols, prices = universe.symbols.tolist(), universe.prices.tolist()
    scales = (10.0**universe.decimals).tolist()
    token_addresses, pool_ids = universe.token_addresses.tolist(), universe.pool_ids.tolist()
    pool_names, protocols = universe.pool_names.tolist(), universe.pool_protocol.tolist()

    def token(i: int, usd_value: float) -> dict:
        return {
            "amount": usd_value / prices[i] * scales[i],
            "amountUSD": usd_value,
            "address": token_addresses[i],
            "symbol": symbols[i],
        }

    def records() -> Iterator[dict]:
        for serial, (wallet, ts, action, p, a, b, ua, ub) in enumerate(columns, start=1):
            record = {
                "document_id": f"{serial:024x}",
                "action": action,
                "timestamp": ts,
                "caller": addresses[wallet],
                "protocol": protocols[p],
                "poolId": pool_ids[p],
                "poolName": pool_names[p],
            }
            if action == "swap":
                record["tokenIn"], record["tokenOut"] = token(a, ua), token(b, ub)
            else:
                record["token0"], record["token1"] = token(a, ua), token(b, ub)
            yield record

    return _grouped(wallets, records())


def _transfer_records(data: SyntheticData) -> Iterator[tuple[int, list[dict]]]:
    tx = data.transfers
    wallets = tx["wallet_index"].to_numpy().tolist()
    first_serial = len(data.transactions) + 1
    columns = zip(
        tx["timestamp"].to_numpy().tolist(),
        tx["action"].tolist(),
        tx["counterparty"].tolist(),
        tx["token"].to_numpy().tolist(),
        tx["amount"].to_numpy().tolist(),
        np.round(tx["usd"].to_numpy(), 2).tolist(),
        tx["method"].tolist(),
        tx["failed"].to_numpy().tolist(),
        tx["gas_used"].to_numpy().tolist(),
        tx["gas_price"].to_numpy().tolist(),
    )

    def records() -> Iterator[dict]:
        for serial, (ts, action, other, token, amount, usd, method, failed, gas_used, gas_price) in enumerate(
            columns, start=first_serial
        ):
            record = {
                "document_id": f"{serial:024x}",
                "action": action,
                "timestamp": ts,
                "counterparty": other,
                "token": synthetic_transfers.transfer_record(data.universe, token, amount, usd),
            }
            if method is not None:
                record["method"] = method
            if action == "send":
                record["failed"] = failed
                record["gasUsed"] = int(gas_used)
                record["gasPrice"] = int(gas_price)
            yield record

    return _grouped(wallets, records())


def _lending_records(data: SyntheticData, serial_offset: int) -> Iterator[tuple[int, list[dict]]]:
    tx = data.lending
    wallets = tx["wallet_index"].to_numpy().tolist()
    universe = data.universe
    columns = zip(
        tx["timestamp"].to_numpy().tolist(),
        tx["action"].tolist(),
        tx["protocol"].tolist(),
        tx["token"].to_numpy().tolist(),
        np.round(tx["usd"].to_numpy(), 2).tolist(),
        tx["debt_token"].to_numpy().tolist(),
        np.round(tx["debt_usd"].to_numpy(), 2).tolist(),
        tx["liquidator"].tolist(),
    )

    def records() -> Iterator[dict]:
        for serial, (ts, action, protocol, token, usd, debt_token, debt_usd, liquidator) in enumerate(
            columns, start=serial_offset + 1
        ):
            record = {"document_id": f"{serial:024x}", "action": action, "timestamp": ts, "protocol": protocol}
            asset = synthetic_lending.lending_record(universe, token, usd)
            if action == "liquidation":
                record["collateral"] = asset
                record["debt"] = synthetic_lending.lending_record(universe, debt_token, debt_usd)
                record["liquidator"] = liquidator
            else:
                record["asset"] = asset
            yield record

    return _grouped(wallets, records())


def split_newest(message: dict, rng: np.random.Generator, max_new: int = 3) -> tuple[dict | None, dict]:
    """(older history, newest 1..max_new transactions) of a full-history message: what a stream of new
    transactions looks like once the older ones have been seen (None when everything is new). The
    newest are taken across the message's sections by timestamp."""
    rows = [(tx["timestamp"], i, tx) for i, section in enumerate(message["data"]) for tx in section["transactions"]]
    rows.sort(key=lambda row: row[0])
    new = min(len(rows), int(rng.integers(1, max_new + 1)))

    def rebuild(part: list) -> dict:
        sections = [
            {"protocolType": section["protocolType"], "transactions": [tx for _, j, tx in part if j == i]}
            for i, section in enumerate(message["data"])
        ]
        return {"wallet_address": message["wallet_address"], "data": [s for s in sections if s["transactions"]]}

    older = rebuild(rows[:-new]) if len(rows) > new else None
    return older, rebuild(rows[-new:])


CORRUPTIONS = [
    "truncated_json",
    "missing_wallet",
    "invalid_wallet",
    "timestamp_ms",
    "negative_usd",
    "unknown_action",
    "empty_data",
    "lending_only",
]


def corrupt(message: dict, kind: str) -> bytes:
    """A realistic bad version of a message (used to show that bad input is accounted for)."""
    message = orjson.loads(orjson.dumps(message))
    txs = message["data"][0]["transactions"]
    if kind == "truncated_json":
        raw = orjson.dumps(message)
        return raw[: len(raw) // 2]
    if kind == "missing_wallet":
        del message["wallet_address"]
    elif kind == "invalid_wallet":
        message["wallet_address"] = message["wallet_address"][:-3]
    elif kind == "timestamp_ms":
        for tx in txs:
            tx["timestamp"] *= 1000
    elif kind == "negative_usd":
        for tx in txs:
            valued = tx.get("tokenIn") or tx.get("token0") or tx.get("token") or tx.get("asset") or tx["collateral"]
            valued["amountUSD"] = -1.0
    elif kind == "unknown_action":
        for tx in txs:
            tx["action"] = "stake"
    elif kind == "empty_data":
        message["data"] = []
    elif kind == "lending_only":
        message["data"] = [{"protocolType": "lending", "transactions": [{"document_id": "l1", "action": "borrow"}]}]
    return orjson.dumps(message)


def write_dataset(
    data: SyntheticData,
    messages_path: Path,
    labels_path: Path | None = None,
    bad_fraction: float = 0.0,
    seed: int = 42,
    progress=None,
) -> dict[str, int]:
    """Write JSONL messages (optionally with a share of corrupted lines) and a labels CSV."""
    rng = np.random.default_rng(seed + 1)
    messages_path.parent.mkdir(parents=True, exist_ok=True)
    bad_lines = 0
    with open(messages_path, "wb") as out:
        for i, message in enumerate(iter_messages(data)):
            if bad_fraction and rng.random() < bad_fraction:
                out.write(corrupt(message, CORRUPTIONS[bad_lines % len(CORRUPTIONS)]) + b"\n")
                bad_lines += 1
            else:
                out.write(orjson.dumps(message) + b"\n")
            if progress is not None and i % 1000 == 0:
                progress(i)
    if labels_path is not None:
        labels_path.parent.mkdir(parents=True, exist_ok=True)
        data.wallets.to_csv(labels_path, index=False)
    return {"wallets": len(data.wallets), "transactions": data.transaction_count, "bad_lines": bad_lines}
