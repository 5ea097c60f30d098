"""Etherscan exports → transfer rows: an account's normal transactions (`txlist`) and ERC-20 transfers
(`tokentx`), as the website's "Download CSV Export" or as the API's fields (its JSON answer, or a CSV of it).

Why: these are the files people hold about an account. One input row gives one row of the account: `send`
when the account is the sender (also when it sends to itself), `receive` when it is the recipient. The
kind of file is read from its columns, the account from `--address` or the `0x…` address in the file name.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from defi_scoring.adapters.importers import convert as cv
from defi_scoring.adapters.importers.checks import RowChecks
from defi_scoring.adapters.importers.reading import (
    UnreadableFile,
    column_names,
    file_format,
    read_chunks,
    read_etherscan_json,
)
from defi_scoring.adapters.importers.report import ImportReport
from defi_scoring.adapters.importers.writer import TableWriter, transfer_rows

ADDRESS_IN_NAME = re.compile(r"0x[0-9a-fA-F]{40}(?![0-9a-fA-F])")
WEB_HASH = ("Transaction Hash", "Txhash")
API_COMMON = {"hash", "from", "to", "value", "timeStamp"}
KINDS = {
    ("txlist", "api"): "txlist (API fields)",
    ("tokentx", "api"): "tokentx (API fields)",
    ("txlist", "web"): "txlist (website CSV export)",
    ("tokentx", "web"): "tokentx (website CSV export)",
}


def export_kind(columns: Iterable[str]) -> tuple[str, str]:
    """(`txlist`|`tokentx`, `api`|`web`) from the columns; other Etherscan exports are refused by name."""
    cols = set(columns)
    if "ParentTxFrom" in cols or "traceId" in cols:
        raise UnreadableFile("an internal-transactions export: not imported (give txlist or tokentx exports)")
    if cols & {"TokenId", "tokenID", "Token ID", "tokenValue"}:
        raise UnreadableFile("an NFT (ERC-721/1155) transfers export: not imported (give txlist or tokentx exports)")
    if cols >= API_COMMON and "contractAddress" in cols and cols & {"tokenDecimal", "tokenSymbol"}:
        return "tokentx", "api"
    if cols >= API_COMMON and cols & {"isError", "txreceipt_status", "gasPrice", "gasUsed"}:
        return "txlist", "api"
    web = bool(cols & set(WEB_HASH)) and {"From", "To"} <= cols
    if web and {"TokenValue", "ContractAddress"} <= cols:
        return "tokentx", "web"
    if web and {"Value_IN(ETH)", "Value_OUT(ETH)"} <= cols:
        return "txlist", "web"
    shown = ", ".join(sorted(cols)[:12]) + (", …" if len(cols) > 12 else "")
    raise UnreadableFile(
        f"not an Etherscan txlist or tokentx export (columns: {shown}); expected the website's CSV export "
        '("Transaction Hash", "UnixTimestamp", "From", "To", "Value_IN(ETH)" or "TokenValue", …) or the API\'s '
        "fields (hash, timeStamp, from, to, value, …)"
    )


def account_of(path: Path, address: str | None) -> str:
    """The account a file is about: `--address`, else the one `0x…` address in the file name."""
    if address:
        return address.lower()
    found = {a.lower() for a in ADDRESS_IN_NAME.findall(Path(path).name)}
    if len(found) == 1:
        return found.pop()
    if found:
        raise UnreadableFile("the file name holds several 0x… addresses: say which account it is with --address 0x…")
    raise UnreadableFile(
        "no account: the file name holds no 0x… address (Etherscan names it export-0x….csv); give --address 0x…"
    )


def import_etherscan(
    paths: Iterable[Path], writer: TableWriter, report: ImportReport, address: str | None = None
) -> None:
    """Convert each file into the writer; a file that cannot be read is reported and the others go on."""
    for path in paths:
        try:
            _import_file(Path(path), writer, report, address)
        except UnreadableFile as e:
            report.file_error(path, str(e))
        report.file_done(path)


def _import_file(path: Path, writer: TableWriter, report: ImportReport, address: str | None) -> None:
    account = account_of(path, address)
    if file_format(path) == "json":
        chunk = read_etherscan_json(path)
        table, lines, errors = chunk.table, chunk.lines, chunk.errors
    elif file_format(path) == "parquet":
        raise UnreadableFile("Etherscan exports are CSV or JSON (`import ethereum-etl` reads Parquet tables)")
    else:
        columns = column_names(path)
        if columns:
            export_kind(columns)  # an unknown file is refused before its rows are read
        chunks = list(read_chunks(path))
        table = (
            pa.concat_tables([c.table for c in chunks])
            if chunks
            else pa.table({c: pa.array([], pa.string()) for c in columns})
        )
        lines = np.concatenate([c.lines for c in chunks]) if chunks else np.zeros(0, np.int64)
        errors = [e for c in chunks for e in c.errors]
    if errors:
        report.row_errors(path, np.array([line for line, _ in errors]), [text for _, text in errors])
    if not table.num_columns or not table.num_rows:
        kind = KINDS[export_kind(table.column_names)] if table.num_columns else "export"
        counts = f"{len(errors):,} rows, 0 converted, {len(errors):,} rejected" if errors else "0 rows"
        report.file_read(path, f"{'' if errors else 'empty '}{kind} of {account}: {counts}")
        return
    kind, source = export_kind(table.column_names)
    checks = RowChecks(table.num_rows)
    if kind == "txlist":
        rows = _txlist(table, source, account, checks)
    else:
        rows, no_decimals = _tokentx(table, source, account, checks)
        _warn_decimals(path, report, rows, no_decimals, checks.ok)
    report.rows_checked(path, lines, checks)
    ok = checks.ok
    writer.write(rows.filter(pa.array(ok)))
    n, converted = len(ok) + len(errors), int(ok.sum())
    counts = f"{n:,} rows, {converted:,} converted, {n - converted:,} rejected"
    report.file_read(path, f"{KINDS[kind, source]} of {account}: {counts}")


def _common(table: pa.Table, source: str, checks: RowChecks) -> dict:
    """Hash, time and the two sides of each row, checked in this order (the first failure is the reason)."""
    web = source == "web"
    tx_hash = cv.text(table, *WEB_HASH) if web else cv.text(table, "hash")
    timestamp = cv.text(table, "UnixTimestamp") if web else cv.text(table, "timeStamp")
    sender = cv.lower(cv.text(table, "From" if web else "from"))
    recipient = cv.lower(cv.text(table, "To" if web else "to"))
    contract = cv.lower(cv.text(table, "ContractAddress" if web else "contractAddress"))
    seconds, no_time, bad_time = cv.unix_seconds(timestamp)
    checks.fail(~cv.present(tx_hash), "missing transaction hash")
    checks.fail(~cv.matches(tx_hash, cv.TX_HASH), "bad transaction hash {value}", tx_hash)
    checks.fail(no_time, "missing timestamp")
    checks.fail(bad_time, "bad timestamp {value}", timestamp)
    checks.fail(~cv.matches(sender, cv.ADDRESS), "bad sender address {value}", sender)
    checks.fail(cv.present(recipient) & ~cv.matches(recipient, cv.ADDRESS), "bad recipient address {value}", recipient)
    checks.fail(cv.present(contract) & ~cv.matches(contract, cv.ADDRESS), "bad contract address {value}", contract)
    return {
        "tx_hash": cv.lower(tx_hash),
        "timestamp": seconds,
        "sender": sender,
        "recipient": recipient,
        "contract": contract,
    }


def _direction(c: dict, account: str, checks: RowChecks, created=None) -> tuple[np.ndarray, pa.ChunkedArray]:
    """`send` when the account sends (to itself too), else `receive`; and the other side of each row."""
    sends = cv.numpy_bool(pc.equal(c["sender"], account))
    receives = cv.numpy_bool(pc.equal(c["recipient"], account))
    if created is not None:  # the account is the contract this row created
        receives |= ~cv.present(c["recipient"]) & cv.numpy_bool(pc.equal(created, account))
    checks.fail(~sends & ~receives, f"the account {account} is neither the sender nor the recipient")
    to_side = c["recipient"] if created is None else pc.coalesce(c["recipient"], created)
    counterparty = pc.if_else(pa.array(sends), to_side, c["sender"])
    return sends, counterparty


def _txlist(table: pa.Table, source: str, account: str, checks: RowChecks) -> pa.Table:
    """Normal transactions: the ETH each one moved, its status, method and (API only) gas."""
    c = _common(table, source, checks)
    creation = ~cv.present(c["recipient"]) & cv.present(c["contract"])
    checks.fail(
        ~cv.present(c["recipient"]) & ~cv.present(c["contract"]), "no recipient: To and ContractAddress are empty"
    )
    created = pc.if_else(pa.array(creation), c["contract"], cv.NULL_TEXT)
    sends, counterparty = _direction(c, account, checks, created=created)
    fields = _website_fields(table, checks) if source == "web" else _api_fields(table, checks)
    fields["method"] = pc.if_else(pa.array(creation), cv.CONTRACT_CREATION, fields["method"])
    return transfer_rows(
        table.num_rows,
        wallet_address=account,
        document_id=c["tx_hash"],
        action=pc.if_else(pa.array(sends), "send", "receive"),
        timestamp=c["timestamp"],
        counterparty=counterparty,
        token_address=cv.NATIVE,
        token_symbol="ETH",
        **fields,
    )


def _website_fields(table: pa.Table, checks: RowChecks) -> dict:
    """The website's export: ETH in or out, `Status`/`ErrCode` for failures, `Method` as Etherscan names it."""
    value_in, bad_in = cv.numbers(cv.text(table, "Value_IN(ETH)"), cv.DECIMAL)
    value_out, bad_out = cv.numbers(cv.text(table, "Value_OUT(ETH)"), cv.DECIMAL)
    checks.fail(np.isnan(value_in) & np.isnan(value_out), "missing Value_IN(ETH) and Value_OUT(ETH)")
    checks.fail(bad_in, "bad Value_IN(ETH) {value}", cv.text(table, "Value_IN(ETH)"))
    checks.fail(bad_out, "bad Value_OUT(ETH) {value}", cv.text(table, "Value_OUT(ETH)"))
    amount = np.fmax(value_in, value_out)
    failed = cv.matches(cv.text(table, "Status"), r"(?i)^error|fail") | cv.present(cv.text(table, "ErrCode"))
    method = cv.text(table, "Method")
    method = pc.if_else(cv.matches(method, r"^0x[0-9a-fA-F]{8}$"), cv.selector_names(method), method)
    plain = cv.matches(method, r"(?i)^transfer$") & (amount > 0)  # the website's name of a plain ETH transfer
    method = pc.if_else(pa.array(plain), cv.NULL_TEXT, cv.function_style(method))
    return {"token_amount": amount, "failed": failed, "method": method}


def _api_fields(table: pa.Table, checks: RowChecks) -> dict:
    """The API's fields: `value` in wei, `isError`/`txreceipt_status`, `functionName`/`methodId`, gas."""
    raw_value = cv.text(table, "value")
    wei, bad_value = cv.numbers(raw_value)
    checks.fail(np.isnan(wei) & ~bad_value, "missing value")
    checks.fail(bad_value, "bad value {value}", raw_value)
    is_error, receipt = cv.text(table, "isError"), cv.text(table, "txreceipt_status")
    failed = cv.equal(is_error, "1") | cv.equal(receipt, "0")
    known = cv.present(is_error) | cv.present(receipt)
    if cv.has(table, "methodId"):
        selector = cv.text(table, "methodId")
    else:
        selector = pc.utf8_slice_codeunits(cv.text(table, "input"), 0, 10)
    raw_used, raw_price = cv.text(table, "gasUsed"), cv.text(table, "gasPrice")
    gas_used, bad_used = cv.numbers(raw_used)
    gas_price, bad_price = cv.numbers(raw_price)
    checks.fail(bad_used, "bad gasUsed {value}", raw_used)
    checks.fail(bad_price, "bad gasPrice {value}", raw_price)
    return {
        "token_amount": wei / 1e18,
        "failed": pa.array(failed, mask=~known),
        "method": cv.method_names(cv.text(table, "functionName"), selector),
        "gas_used": gas_used,
        "gas_price": gas_price,
    }


def _tokentx(table: pa.Table, source: str, account: str, checks: RowChecks) -> tuple[pa.Table, np.ndarray]:
    """ERC-20 transfers: amount in token units (`value / 10**tokenDecimal`, or the website's TokenValue);
    no status, method or gas of their own (the transaction's are on its txlist row)."""
    web = source == "web"
    c = _common(table, source, checks)
    checks.fail(~cv.present(c["recipient"]), "missing recipient address")
    checks.fail(~cv.present(c["contract"]), "missing token contract address")
    sends, counterparty = _direction(c, account, checks)
    raw_value = cv.text(table, "TokenValue" if web else "value")
    value, bad_value = cv.numbers(raw_value, cv.DECIMAL if web else cv.UNSIGNED)
    checks.fail(np.isnan(value) & ~bad_value, "missing token value")
    checks.fail(bad_value, "bad token value {value}", raw_value)
    no_decimals = np.zeros(table.num_rows, dtype=bool)
    if web:
        amount = value
        key_value = pc.replace_substring(raw_value, ",", "")
    else:
        raw_decimals = cv.text(table, "tokenDecimal")
        decimals, bad_decimals = cv.numbers(raw_decimals)
        checks.fail(bad_decimals, "bad tokenDecimal {value}", raw_decimals)
        no_decimals = np.isnan(decimals) & ~bad_decimals
        amount = value / np.power(10.0, decimals)  # NaN (null) without decimals: never guessed
        key_value = raw_value
    symbol = cv.text(table, "TokenSymbol" if web else "tokenSymbol")
    log_index = cv.text(table, "logIndex") if cv.has(table, "logIndex") else None
    ids = cv.transfer_ids(c["tx_hash"], c["contract"], c["sender"], c["recipient"], key_value, log_index)
    rows = transfer_rows(
        table.num_rows,
        wallet_address=account,
        document_id=ids,
        action=pc.if_else(pa.array(sends), "send", "receive"),
        timestamp=c["timestamp"],
        counterparty=counterparty,
        token_address=c["contract"],
        token_symbol=symbol,
        token_amount=amount,
    )
    return rows, no_decimals


def _warn_decimals(path: Path, report: ImportReport, rows: pa.Table, no_decimals: np.ndarray, ok: np.ndarray) -> None:
    """Token transfers kept without an amount, because the export gives no decimals for their token."""
    counted = no_decimals & ok
    if not counted.any():
        return
    tokens = sorted(set(rows.column("token_address").filter(pa.array(counted)).to_pylist()))
    shown = ", ".join(tokens[:5]) + (", …" if len(tokens) > 5 else "")
    report.say(
        f"{path}: {int(counted.sum()):,} token transfers without tokenDecimal ({len(tokens)} tokens: {shown}): "
        "token_amount left empty, not guessed"
    )
    report.no_decimals += int(counted.sum())
