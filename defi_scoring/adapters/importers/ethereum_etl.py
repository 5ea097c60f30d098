"""ethereum-etl tables → transfer rows: `transactions` (ETH moves; receipt_* columns when enriched) and
`token_transfers`, with `blocks` for the times of token transfers and `tokens` for symbols and decimals.

Why: a node's own export covers every address at once. Each transfer gives a `send` row of its sender
and a `receive` row of its recipient (one `send` row when they are the same address), for every address
or only the `--address` ones. The kind of table is read from its columns; CSV or Parquet, read in chunks.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from defi_scoring.adapters.importers import convert as cv
from defi_scoring.adapters.importers.checks import RowChecks
from defi_scoring.adapters.importers.reading import UnreadableFile, column_names, read_chunks
from defi_scoring.adapters.importers.report import ImportReport
from defi_scoring.adapters.importers.writer import TableWriter, transfer_rows

TRANSACTION_COLUMNS = {
    "hash",
    "from_address",
    "to_address",
    "value",
    "gas",
    "gas_price",
    "input",
    "block_number",
    "block_timestamp",
    "receipt_gas_used",
    "receipt_contract_address",
    "receipt_status",
    "receipt_effective_gas_price",
}
TRANSFER_COLUMNS = {
    "token_address",
    "from_address",
    "to_address",
    "value",
    "transaction_hash",
    "log_index",
    "block_number",
    "block_timestamp",
}


def table_kind(columns: Iterable[str]) -> str:
    """`transactions`, `token_transfers`, `blocks` or `tokens` from the columns."""
    cols = set(columns)
    if {"token_address", "from_address", "to_address", "value", "transaction_hash"} <= cols:
        return "token_transfers"
    if {"hash", "from_address", "to_address", "value"} <= cols:
        return "transactions"
    if {"number", "timestamp"} <= cols:
        return "blocks"
    if {"address", "decimals"} <= cols:
        return "tokens"
    shown = ", ".join(sorted(cols)[:12]) + (", …" if len(cols) > 12 else "")
    raise UnreadableFile(
        f"not an ethereum-etl transactions, token_transfers, blocks or tokens table (columns: {shown or 'none'})"
    )


class Selection:
    """The addresses rows are made for: the given ones, or every valid address but the zero address."""

    def __init__(self, addresses: Iterable[str] | None) -> None:
        self.addresses = pa.array(sorted({a.lower() for a in addresses})) if addresses else None

    def __call__(self, address) -> np.ndarray:
        if self.addresses is not None:
            return cv.numpy_bool(pc.is_in(address, value_set=self.addresses))
        return cv.matches(address, cv.ADDRESS) & ~cv.equal(address, cv.ZERO_ADDRESS)


def import_ethereum_etl(
    paths: Iterable[Path], writer: TableWriter, report: ImportReport, addresses: Iterable[str] | None = None
) -> None:
    """Read the lookup tables first (block times, tokens), then convert the transfer tables chunk by chunk."""
    kinds: dict[Path, str] = {}
    for path in map(Path, paths):
        try:
            kinds[path] = table_kind(column_names(path))
        except UnreadableFile as e:
            report.file_error(path, str(e))
    select = Selection(addresses)
    need_times = any(k == "token_transfers" and "block_timestamp" not in column_names(p) for p, k in kinds.items())
    times = _block_times(kinds, report, need_times)
    tokens = _tokens(kinds, report)
    for path, kind in kinds.items():
        if kind not in ("transactions", "token_transfers"):
            continue
        try:
            _convert_file(path, kind, writer, report, select, times, tokens)
        except UnreadableFile as e:
            report.file_error(path, str(e))
        report.file_done(path)


def _convert_file(path, kind, writer, report, select, times, tokens) -> None:
    before = (report.rows, report.converted, report.rejected, report.skipped)
    no_decimals: dict[str, int] = {}
    for chunk in read_chunks(path, TRANSACTION_COLUMNS if kind == "transactions" else TRANSFER_COLUMNS):
        if chunk.errors:
            report.row_errors(path, np.array([line for line, _ in chunk.errors]), [t for _, t in chunk.errors])
        if not chunk.table.num_rows:
            continue
        checks = RowChecks(chunk.table.num_rows)
        if kind == "transactions":
            rows, skipped = _transactions(chunk.table, checks, select, times)
        else:
            rows, skipped = _token_transfers(chunk.table, checks, select, times, tokens, no_decimals)
        report.rows_checked(path, chunk.lines, checks, skipped)
        writer.write(rows)
    now = (report.rows, report.converted, report.rejected, report.skipped)
    rows, converted, rejected, skipped = (a - b for a, b in zip(now, before))
    if no_decimals:
        n = sum(no_decimals.values())
        shown = ", ".join(sorted(no_decimals)[:5]) + (", …" if len(no_decimals) > 5 else "")
        report.say(
            f"{path}: {n:,} token transfers of {len(no_decimals)} tokens without known decimals ({shown}): "
            "token_amount left empty, not guessed (give ethereum-etl's tokens table)"
        )
        report.no_decimals += n
    report.file_read(
        path,
        f"{kind} table: {rows:,} rows, {converted:,} converted, {rejected:,} rejected, {skipped:,} skipped "
        "(no selected address)",
    )


def _transactions(table: pa.Table, checks: RowChecks, select: Selection, times: pd.Series):
    """ETH moved by each transaction: value in wei → ETH, gas and status from the receipt columns."""
    tx_hash = cv.lower(cv.text(table, "hash"))
    sender = cv.lower(cv.text(table, "from_address"))
    recipient = cv.lower(cv.text(table, "to_address"))
    created = cv.lower(cv.text(table, "receipt_contract_address"))
    _check_hash(checks, tx_hash)
    checks.fail(~cv.matches(sender, cv.ADDRESS), "bad from_address {value}", sender)
    checks.fail(cv.present(recipient) & ~cv.matches(recipient, cv.ADDRESS), "bad to_address {value}", recipient)
    checks.fail(cv.present(created) & ~cv.matches(created, cv.ADDRESS), "bad receipt_contract_address {value}", created)
    creation = ~cv.present(recipient)
    to_side = pc.coalesce(recipient, pc.if_else(pa.array(creation), created, cv.NULL_TEXT))
    sends, receives = select(sender), select(to_side) & ~cv.equal(to_side, sender)
    skipped = checks.ok & ~sends & ~receives
    checks.fail(
        creation & ~cv.present(created),
        "contract creation without receipt_contract_address: no counterparty (export the receipts too)",
    )
    wei, bad_value = cv.numbers(cv.column(table, "value"))
    checks.fail(np.isnan(wei) & ~bad_value, "missing value")
    checks.fail(bad_value, "bad value {value}", cv.text(table, "value"))
    timestamp = _times(table, checks, times)
    gas_used, bad_used = cv.numbers(cv.column(table, "receipt_gas_used"))
    effective, bad_effective = cv.numbers(cv.column(table, "receipt_effective_gas_price"))
    listed, bad_listed = cv.numbers(cv.column(table, "gas_price"))
    checks.fail(bad_used | bad_effective | bad_listed, "bad gas number")
    status, bad_status = cv.numbers(cv.column(table, "receipt_status"))
    checks.fail(bad_status | ~np.isin(status, (0, 1)) & ~np.isnan(status), "bad receipt_status")
    method = cv.selector_names(pc.utf8_slice_codeunits(cv.text(table, "input"), 0, 10))
    method = pc.if_else(pa.array(creation), cv.CONTRACT_CREATION, method)
    columns = {
        "document_id": tx_hash,
        "timestamp": timestamp,
        "method": method,
        "failed": pa.array(status == 0, mask=np.isnan(status)),
        "gas_used": gas_used,
        "gas_price": np.where(np.isnan(effective), listed, effective),
        "token_address": cv.NATIVE,
        "token_symbol": "ETH",
        "token_amount": wei / 1e18,
    }
    return _both_sides(columns, sender, to_side, sends & checks.ok, receives & checks.ok), skipped


def _token_transfers(table, checks, select, times, tokens: pd.DataFrame, no_decimals: dict[str, int]):
    """Token transfers: amount = value / 10**decimals of the tokens table; none known → amount null."""
    tx_hash = cv.lower(cv.text(table, "transaction_hash"))
    token = cv.lower(cv.text(table, "token_address"))
    sender = cv.lower(cv.text(table, "from_address"))
    recipient = cv.lower(cv.text(table, "to_address"))
    _check_hash(checks, tx_hash)
    checks.fail(~cv.matches(token, cv.ADDRESS), "bad token_address {value}", token)
    checks.fail(~cv.matches(sender, cv.ADDRESS), "bad from_address {value}", sender)
    checks.fail(~cv.matches(recipient, cv.ADDRESS), "bad to_address {value}", recipient)
    sends, receives = select(sender), select(recipient) & ~cv.equal(recipient, sender)
    skipped = checks.ok & ~sends & ~receives
    raw_value = cv.text(table, "value")
    value, bad_value = cv.numbers(cv.column(table, "value"))
    checks.fail(np.isnan(value) & ~bad_value, "missing value")
    checks.fail(bad_value, "bad value {value}", raw_value)
    timestamp = _times(table, checks, times)
    keys = token.to_numpy(zero_copy_only=False)
    decimals, symbol = np.full(len(keys), np.nan), pa.nulls(len(keys), pa.string())
    if len(tokens):
        where = tokens.index.get_indexer(keys)
        known = where >= 0
        decimals[known] = tokens["decimals"].to_numpy(float)[where[known]]
        symbol = pa.array(tokens["symbol"], pa.string()).take(pa.array(np.where(known, where, 0), mask=~known))
    unknown = np.isnan(decimals) & checks.ok & ~skipped
    for address, n in zip(*np.unique(keys[unknown].astype(str), return_counts=True)):
        no_decimals[address] = no_decimals.get(address, 0) + int(n)
    log_index = cv.text(table, "log_index")
    columns = {
        "document_id": cv.transfer_ids(tx_hash, token, sender, recipient, raw_value, log_index),
        "timestamp": timestamp,
        "token_address": token,
        "token_symbol": symbol,
        "token_amount": value / np.power(10.0, decimals),
    }
    return _both_sides(columns, sender, recipient, sends & checks.ok, receives & checks.ok), skipped


def _check_hash(checks: RowChecks, tx_hash) -> None:
    checks.fail(~cv.present(tx_hash), "missing transaction hash")
    checks.fail(~cv.matches(tx_hash, cv.TX_HASH), "bad transaction hash {value}", tx_hash)


def _times(table: pa.Table, checks: RowChecks, times: pd.Series) -> np.ndarray:
    """The row's `block_timestamp`, else the time of its block from the blocks/transactions tables."""
    seconds, missing, bad = cv.unix_seconds(cv.column(table, "block_timestamp"))
    checks.fail(bad, "bad block_timestamp {value}", cv.text(table, "block_timestamp"))
    if missing.any():
        block, bad_block = cv.numbers(cv.column(table, "block_number"))
        checks.fail(missing & bad_block, "bad block_number {value}", cv.text(table, "block_number"))
        where = times.index.get_indexer(np.nan_to_num(block, nan=-1).astype(np.int64)) if len(times) else None
        found = missing & (where >= 0) if where is not None else np.zeros(len(seconds), bool)
        if found.any():
            seconds[found] = times.to_numpy()[where[found]]
        checks.fail(
            missing & ~found,
            "no timestamp for block {value}: give ethereum-etl's blocks table (or the transactions of that block)",
            cv.text(table, "block_number"),
        )
    return seconds


def _both_sides(columns: dict, sender, recipient, sends: np.ndarray, receives: np.ndarray) -> pa.Table:
    """A `send` row for each selected sender and a `receive` row for each selected recipient."""
    out = []
    for rows, wallet, other, action in ((sends, sender, recipient, "send"), (receives, recipient, sender, "receive")):
        idx = pa.array(np.flatnonzero(rows))
        taken = {k: _take(v, idx) for k, v in columns.items()}
        out.append(
            transfer_rows(
                len(idx),
                wallet_address=wallet.take(idx),
                action=action,
                counterparty=other.take(idx),
                **taken,
            )
        )
    return pa.concat_tables(out)


def _take(values, idx: pa.Array):
    """The rows `idx` of a column (Arrow or numpy); a text for all rows stays as it is."""
    if isinstance(values, str):
        return values
    if isinstance(values, pa.Array | pa.ChunkedArray):
        return values.take(idx)
    return values[idx.to_numpy()]


def _block_times(kinds: dict[Path, str], report: ImportReport, from_transactions: bool) -> pd.Series:
    """Block number → unix seconds, from blocks tables (and from transactions tables when token transfers need it)."""
    parts = []
    for path, kind in kinds.items():
        if kind not in ("blocks", "transactions") or (kind == "transactions" and not from_transactions):
            continue
        number_col, time_col = ("number", "timestamp") if kind == "blocks" else ("block_number", "block_timestamp")
        n = 0
        try:
            for chunk in read_chunks(path, {number_col, time_col}):
                checks = RowChecks(chunk.table.num_rows)
                number, bad_number = cv.numbers(cv.column(chunk.table, number_col))
                seconds, missing, bad = cv.unix_seconds(cv.column(chunk.table, time_col))
                checks.fail(np.isnan(number) | bad_number, f"bad {number_col}")
                checks.fail(missing | bad, f"bad {time_col}")
                if kind == "blocks":
                    report.lookup_rows_checked(path, chunk.lines, checks)
                ok = checks.ok
                parts.append(pd.Series(seconds[ok], index=number[ok].astype(np.int64)))
                n += int(ok.sum())
        except UnreadableFile as e:
            report.file_error(path, str(e))
            continue
        if kind == "blocks":
            report.file_read(path, f"blocks table: {n:,} block times")
            report.file_done(path)
    if not parts:
        return pd.Series(dtype=np.int64)
    times = pd.concat(parts)
    return times[~times.index.duplicated(keep="first")]


def _tokens(kinds: dict[Path, str], report: ImportReport) -> pd.DataFrame:
    """Token address → symbol, decimals (NaN when the table gives none, e.g. an NFT contract)."""
    parts: list[pd.DataFrame] = []
    for path in (p for p, k in kinds.items() if k == "tokens"):
        first = len(parts)
        try:
            for chunk in read_chunks(path, {"address", "symbol", "decimals"}):
                checks = RowChecks(chunk.table.num_rows)
                address = cv.lower(cv.text(chunk.table, "address"))
                decimals, bad = cv.numbers(cv.column(chunk.table, "decimals"))
                checks.fail(~cv.matches(address, cv.ADDRESS), "bad address {value}", address)
                checks.fail(bad, "bad decimals {value}", cv.text(chunk.table, "decimals"))
                report.lookup_rows_checked(path, chunk.lines, checks)
                ok = pa.array(checks.ok)
                parts.append(
                    pd.DataFrame(
                        {
                            "address": address.filter(ok).to_numpy(zero_copy_only=False),
                            "symbol": cv.text(chunk.table, "symbol").filter(ok).to_numpy(zero_copy_only=False),
                            "decimals": decimals[checks.ok],
                        }
                    )
                )
        except UnreadableFile as e:
            del parts[first:]
            report.file_error(path, str(e))
            continue
        known = sum(int(p["decimals"].notna().sum()) for p in parts[first:])
        report.file_read(path, f"tokens table: {sum(len(p) for p in parts[first:]):,} tokens, {known:,} with decimals")
        report.file_done(path)
    if not parts:
        return pd.DataFrame({"symbol": [], "decimals": []}, index=pd.Index([], dtype=object))
    frame = pd.concat(parts).sort_values("decimals", na_position="last", kind="stable")
    return frame.drop_duplicates("address").set_index("address")
