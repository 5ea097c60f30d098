"""`defi-scoring import etherscan|ethereum-etl` on fixture files in the sources' own formats, through the CLI.

The fixtures (data/importers/) carry the quirks of real exports: failed transactions, self-transfers,
contract creations, tokens without decimals, a pandas index column, empty exports and bad rows.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from defi_scoring.cli import main
from defi_scoring.core.transaction_table import TABLE_SCHEMA

DATA = Path(__file__).parent / "data" / "importers"
ETL = DATA / "ethereum_etl"
ACCOUNT = "0x8a4f2c3b9d0e1f2a3b4c5d6e7f8091a2b3c4d5e6"  # the website exports (file names check-summed)
WEB_TXLIST = DATA / "export-0x8A4F2c3B9d0E1F2a3B4c5D6e7F8091A2b3C4d5E6.csv"
WEB_TOKENTX = DATA / "export-tokens-0x8A4F2c3B9d0E1F2a3B4c5D6e7F8091A2b3C4d5E6.csv"
API_ACCOUNT = "0x1d6e8b2c4a7f9e0d3c5b8a1f4e7d0c3b6a9f2e5d"
API_TXLIST = DATA / f"api-txlist-{API_ACCOUNT}.json"
API_TOKENTX = DATA / f"api-tokentx-{API_ACCOUNT}.json"
PANDAS_TOKENTX = DATA / "tokentx-0x2b7d9f1e3c5a7b9d0f2e4c6a8b0d1f3e5c7a9b2d.csv"
EMPTY_CSV = DATA / "export-0x4c6e8a0b2d4f6e8a0c2b4d6f8e0a2c4b6d8f0e2a.csv"
EMPTY_JSON = DATA / "api-txlist-0x4c6e8a0b2d4f6e8a0c2b4d6f8e0a2c4b6d8f0e2a.json"
PRICES = DATA / "prices.csv"

EXCHANGE = "0x1f9090aae28b8a3dceadf281b0f12828e676c326"
FRIEND = "0x5b3256965e7c3cf26e11fcaf296dfc8807c01073"
SHOP = "0x3c8e1a2b5d7f9e0c4a6b8d1f3e5a7c9b0d2f4e6a"
ROUTER = "0x7a250d5630b4cf539739df2c5dacb4c659f2488d"
CREATED = "0x9c2fa1e4b7d6a0c3e5f8b1d4a7c0e3f6b9d2a5c8"
USDC = "0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48"
DAI = "0x6b175474e89094c44da98b954eedeac495271d0f"
A = "0x6f1a3c5e7b9d0f2a4c6e8b0d2f4a6c8e0b2d4f6a"  # ethereum-etl addresses
B = "0x0e2c4a6b8d0f1e3c5a7b9d1f3e5c7a9b0d2f4e6c"
CONTRACT_OF_A = "0x5a7c9e1b3d5f7a9c0e2b4d6f8a0c2e4b6d8f0a2c"
ZERO = "0x" + "0" * 40


def run_import(source, *args, exit_code=0):
    """Run `defi-scoring import SOURCE ARGS`; → (summary JSON, stderr, rows of the output or None)."""
    result = CliRunner().invoke(main, ["import", source, *map(str, args)])
    assert result.exit_code == exit_code, (result.output, result.exception)
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    output = Path(args[list(args).index("--output") + 1])
    rows = pq.read_table(output).to_pandas() if output.exists() else None
    return summary, result.stderr, rows


def tx(rows, tx_hash_prefix):
    """The rows of one transaction by the start of its hash (document ids start with the hash)."""
    return rows[rows.document_id.str.startswith(tx_hash_prefix)]


def one(rows, **where):
    mask = pd.Series(True, index=rows.index)
    for column, value in where.items():
        mask &= rows[column] == value
    (index,) = rows.index[mask]
    return rows.loc[index]


def test_website_exports_become_one_row_per_transfer_of_the_account(tmp_path):
    out = tmp_path / "out.parquet"
    summary, stderr, rows = run_import("etherscan", WEB_TXLIST, WEB_TOKENTX, "--output", out)
    assert summary == {
        "files": 2, "rows": 14, "converted": 14, "rejected": 0, "skipped": 0, "written": 14, "no_decimals": 0,
        "unreadable": 0,
    }  # fmt: skip
    assert "no price table: USD values absent" in stderr
    assert set(rows.wallet_address) == {ACCOUNT} and set(rows.protocol_type) == {"transfers"}
    assert rows.token_usd.isna().all() and rows.token_b_address.isna().all() and rows.pool_id.isna().all()
    native = rows[rows.token_address == "native"]
    assert len(native) == 9 and set(native.token_symbol) == {"ETH"}
    # a plain receive: the website's "Transfer" of a plain ETH move is no method call
    r = one(native, counterparty=EXCHANGE)
    assert (r.action, r.token_amount, r.timestamp, r.method, r.failed) == ("receive", 1.5, 1699990000, None, False)
    assert r.gas_used != r.gas_used and r.gas_price != r.gas_price  # the website export has no gas columns
    # a failed transaction (Status "Error(0)") is kept, marked failed
    failed = native[native.failed.astype(bool)]
    assert len(failed) == 1 and failed.iloc[0].token_amount == 0.1 and failed.iloc[0].counterparty == ROUTER
    assert failed.iloc[0].method == "swapExactETHForTokens"  # the website label, as the API names it
    # a self-transfer is one send row whose counterparty is the account itself
    r = one(native, counterparty=ACCOUNT)
    assert (r.action, r.token_amount) == ("send", 0.01)
    # a contract creation: empty To, the created contract is the counterparty
    r = one(native, counterparty=CREATED)
    assert (r.action, r.method, r.token_amount) == ("send", "contract_creation", 0.0)
    # a 4-byte selector in Method gets its name
    assert one(native, counterparty=DAI).method == "transfer"
    assert one(native, counterparty=SHOP).token_amount == 12.75
    assert one(native, counterparty=USDC).method == "approve"
    # the swap's txlist row and its tokentx row share the hash and are both kept, with different ids
    swap_hash = one(native, method="swapExactETHForTokens", failed=False).document_id
    both = tx(rows, swap_hash)
    assert sorted(both.action) == ["receive", "send"] and both.document_id.nunique() == 2
    usdc_in = one(both, token_address=USDC)
    assert (usdc_in.token_symbol, usdc_in.token_amount, usdc_in.action) == ("USDC", 1023.456789, "receive")
    assert usdc_in.failed is None and usdc_in.method is None  # tokentx carries no status or method of its own
    # two DAI transfers of one transaction: distinct deterministic ids
    dai = rows[rows.token_address == DAI]
    assert len(dai) == 2 and dai.document_id.nunique() == 2 and dai.document_id.str[:66].nunique() == 1
    assert sorted(zip(dai.counterparty, dai.token_amount)) == sorted([(FRIEND, 100.0), (SHOP, 50.0)])
    # a token self-transfer, and a spam token as Etherscan masks it
    assert one(rows, token_address=USDC, counterparty=ACCOUNT).action == "send"
    assert one(rows, token_symbol="ERC-20 TOKEN*").token_amount == 1_000_000.0
    # the same files give the same ids again (deterministic)
    _, _, again = run_import("etherscan", WEB_TOKENTX, WEB_TXLIST, "--output", tmp_path / "again.parquet")
    assert sorted(again.document_id) == sorted(rows.document_id)


def test_api_json_answers(tmp_path):
    out = tmp_path / "out.parquet"
    summary, stderr, rows = run_import("etherscan", API_TXLIST, API_TOKENTX, "--output", out)
    assert (summary["rows"], summary["converted"], summary["rejected"], summary["no_decimals"]) == (11, 11, 0, 1)
    native = rows[rows.token_address == "native"].set_index("counterparty")
    assert native.loc[EXCHANGE, ["action", "token_amount", "gas_used", "gas_price", "failed"]].tolist() == [
        "receive", 2.0, 21000.0, 31224551230.0, False
    ]  # fmt: skip
    assert native.loc[EXCHANGE, "method"] is None  # methodId "0x": a plain transfer
    swap = native.loc[ROUTER]
    assert swap.failed and swap.method == "swapExactETHForTokens" and swap.token_amount == 0.1  # isError=1
    assert native.loc[CREATED, "method"] == "contract_creation" and native.loc[CREATED, "action"] == "send"
    assert native.loc[API_ACCOUNT, "action"] == "send" and native.loc[API_ACCOUNT, "token_amount"] == 0.01
    assert native.loc["0x7e2a4c6b8d0f1e3a5c7b9d2f4e6a8c0b1d3f5e7a", "method"] == "transfer"  # methodId only
    assert native.loc["0xc02aaa39b223fe8d0a0e5c4f27ead9083c756cc2", "method"] == "deposit"
    tokens = rows[rows.token_address != "native"]
    # WETH deposit: the tokentx row shares its hash with the txlist row, both kept
    weth_hash = native.loc["0xc02aaa39b223fe8d0a0e5c4f27ead9083c756cc2", "document_id"]
    assert len(tx(rows, weth_hash)) == 2
    assert one(tokens, token_symbol="WETH").token_amount == 0.5
    assert one(tokens, token_symbol="USDC", action="receive").token_amount == 1500.0  # 1500000000 / 10**6
    # two identical transfers in one transaction stay two rows with distinct ids
    twins = tokens[(tokens.token_symbol == "USDC") & (tokens.action == "send")]
    assert len(twins) == 2 and twins.document_id.nunique() == 2 and twins.document_id.str.endswith(":1").sum() == 1
    # a token without decimals: kept, amount null, counted and warned — never guessed
    mystery = one(tokens, token_symbol="MYS")
    assert mystery.token_amount != mystery.token_amount and mystery.action == "receive"
    assert "1 token transfers without tokenDecimal" in stderr and "token_amount left empty" in stderr


def test_bad_rows_are_reported_by_file_and_line_and_the_rest_imported(tmp_path):
    """A CSV of the API's fields written by pandas: an unnamed index column and a label column (ignored)."""
    summary, stderr, rows = run_import("etherscan", PANDAS_TOKENTX, "--output", tmp_path / "out.parquet")
    assert (summary["rows"], summary["converted"], summary["rejected"]) == (5, 2, 3)
    assert f"{PANDAS_TOKENTX}:3: bad recipient address '0x12'" in stderr.splitlines()
    assert f"{PANDAS_TOKENTX}:4: bad token value '12abc'" in stderr.splitlines()
    assert f"{PANDAS_TOKENTX}:5: missing timestamp" in stderr.splitlines()
    assert sorted(zip(rows.action, rows.token_amount)) == [("receive", 250.0), ("send", 1.5)]
    assert list(rows.columns) == TABLE_SCHEMA.names


def test_malformed_and_blank_csv_lines_keep_the_line_numbers(tmp_path):
    lines = WEB_TXLIST.read_text().splitlines()
    lines[2] = ",".join(lines[2].split(",")[:3])  # line 3 cut after 3 fields
    lines.insert(4, "")  # a blank line 5
    lines[6] = lines[6].replace('"1700076400"', '"yesterday"')  # line 7: the 5th transaction
    broken = tmp_path / WEB_TXLIST.name
    broken.write_text("\n".join(lines) + "\n")
    summary, stderr, _ = run_import("etherscan", broken, "--output", tmp_path / "out.parquet")
    assert f"{broken}:3: malformed CSV line: 3 fields, expected 16" in stderr.splitlines()
    assert f"{broken}:7: bad timestamp 'yesterday'" in stderr.splitlines()
    assert (summary["rows"], summary["converted"], summary["rejected"]) == (9, 7, 2)


def test_empty_exports_and_files_that_cannot_be_read(tmp_path):
    no_account = tmp_path / "history.csv"
    shutil.copy(WEB_TXLIST, no_account)
    error_answer = tmp_path / f"txlist-{ACCOUNT}.json"
    error_answer.write_text('{"status":"0","message":"NOTOK","result":"Invalid API Key"}')
    internal = tmp_path / f"internal-{ACCOUNT}.csv"
    internal.write_text('"Transaction Hash","Blockno","UnixTimestamp","DateTime (UTC)","ParentTxFrom","ParentTxTo"\n')
    out = tmp_path / "out.parquet"
    missing = tmp_path / f"missing-{ACCOUNT}.csv"
    files = [EMPTY_CSV, EMPTY_JSON, no_account, error_answer, internal, missing]
    summary, stderr, rows = run_import("etherscan", *files, "--output", out)
    assert summary == {
        "files": 2, "rows": 0, "converted": 0, "rejected": 0, "skipped": 0, "written": 0, "no_decimals": 0,
        "unreadable": 4,
    }  # fmt: skip
    assert (
        f"{EMPTY_CSV}: empty txlist (website CSV export) of 0x4c6e8a0b2d4f6e8a0c2b4d6f8e0a2c4b6d8f0e2a: 0 rows"
        in stderr
    )
    assert f"{no_account}: no account: the file name holds no 0x… address" in stderr and "--address" in stderr
    assert "Etherscan answered 'NOTOK': 'Invalid API Key'" in stderr
    assert "an internal-transactions export: not imported" in stderr
    assert f"{missing}: cannot open: No such file or directory" in stderr
    assert len(rows) == 0 and pq.read_schema(out).equals(TABLE_SCHEMA)


def test_no_readable_file_is_exit_1_with_what_to_do(tmp_path):
    out = tmp_path / "out.parquet"
    summary, stderr, rows = run_import("etherscan", tmp_path / "nothing.csv", "--output", out, exit_code=1)
    assert summary["files"] == 0 and summary["unreadable"] == 1
    assert "no input file could be read (1 given): give Etherscan txlist/tokentx exports" in stderr
    assert rows is None and not list(tmp_path.glob("out.parquet*"))


def test_address_option_names_the_account_of_a_renamed_file(tmp_path):
    renamed = tmp_path / "my-wallet.csv"
    shutil.copy(WEB_TXLIST, renamed)
    summary, _, rows = run_import(
        "etherscan", renamed, "--output", tmp_path / "o.parquet", "--address", ACCOUNT.upper().replace("0X", "0x")
    )
    assert summary["converted"] == 9 and set(rows.wallet_address) == {ACCOUNT}
    result = CliRunner().invoke(
        main, ["import", "etherscan", str(renamed), "--output", "o.parquet", "--address", "0x12"]
    )
    assert result.exit_code == 2 and "is not an address" in result.output


def test_prices_by_address_symbol_native_and_day(tmp_path):
    """prices.csv: native 2000 undated and ETH 2061.04 on 2023-11-14; USDC by address 1.0; DAI by symbol 0.999."""
    out = tmp_path / "out.parquet"
    _, stderr, rows = run_import("etherscan", WEB_TXLIST, WEB_TOKENTX, "--output", out, "--prices", PRICES)
    assert "no price table" not in stderr and "prices: 13 of 14 rows valued in USD" in stderr
    assert one(rows, counterparty=EXCHANGE).token_usd == pytest.approx(1.5 * 2061.04)  # the day's price
    assert one(rows, counterparty=FRIEND, token_address="native").token_usd == pytest.approx(0.25 * 2061.04)
    assert one(rows, counterparty=SHOP, token_address="native").token_usd == pytest.approx(12.75 * 2000)  # undated
    assert one(rows, token_address=USDC, action="receive").token_usd == pytest.approx(1023.456789)
    assert one(rows, token_address=DAI, counterparty=FRIEND).token_usd == pytest.approx(99.9)
    assert pd.isna(one(rows, token_symbol="ERC-20 TOKEN*").token_usd)  # no price: null, never invented
    bad_prices = tmp_path / "prices.csv"
    bad_prices.write_text("token,price_usd,date\nnative,abc,\nUSDC,1,14/11/2023\nnative,2000,\n")
    _, stderr, rows = run_import("etherscan", WEB_TXLIST, "--output", out, "--prices", bad_prices)
    assert f"{bad_prices}:2: price_usd is not a number >= 0 (price row left out)" in stderr
    assert f"{bad_prices}:3: date is not YYYY-MM-DD (price row left out)" in stderr
    assert one(rows, counterparty=EXCHANGE).token_usd == 3000.0


def test_output_is_a_parquet_file_of_exactly_the_table_schema(tmp_path):
    out = tmp_path / "out.parquet"
    run_import("etherscan", WEB_TXLIST, API_TOKENTX, PANDAS_TOKENTX, "--output", out, "--prices", PRICES)
    table = pq.read_table(out)
    assert table.schema.equals(TABLE_SCHEMA) and table.num_rows == 9 + 5 + 2
    run_import("ethereum-etl", *ETL.glob("*.csv"), "--output", out)
    assert pq.read_table(out).schema.equals(TABLE_SCHEMA)


def test_ethereum_etl_tables_give_a_row_per_side_of_each_transfer(tmp_path):
    summary, stderr, rows = run_import("ethereum-etl", *sorted(ETL.glob("*.csv")), "--output", tmp_path / "o.parquet")
    assert summary == {
        "files": 4, "rows": 13, "converted": 11, "rejected": 2, "skipped": 0, "written": 20, "no_decimals": 2,
        "unreadable": 0,
    }  # fmt: skip
    assert f"{ETL / 'transactions.csv'}:7: bad from_address '0xnotanaddress'" in stderr.splitlines()
    assert f"{ETL / 'token_transfers.csv'}:6: no timestamp for block '18735999'" in stderr
    native = rows[rows.token_address == "native"]
    first = tx(native, one(native, wallet_address=B, action="receive", token_amount=1.0).document_id)
    assert sorted(zip(first.wallet_address, first.action, first.counterparty)) == sorted(
        [(A, "send", B), (B, "receive", A)]
    )
    assert set(first.timestamp) == {1702000000} and set(first.gas_used) == {21000.0} and set(first.failed) == {False}
    assert set(first.gas_price) == {32245678901.0}  # receipt_effective_gas_price over gas_price
    assert one(native, wallet_address=B, counterparty=B).action == "send"  # self-transfer: one row
    assert one(native, counterparty=B, wallet_address=A, action="receive").failed  # receipt_status 0
    creation = native[native.method == "contract_creation"]
    assert sorted(zip(creation.wallet_address, creation.action, creation.counterparty)) == sorted([
        (CONTRACT_OF_A, "receive", A), (A, "send", CONTRACT_OF_A)
    ])  # fmt: skip
    assert one(native, wallet_address=A, counterparty=USDC).method == "transfer"  # selector 0xa9059cbb
    tokens = rows[rows.token_address != "native"]
    usdc = tx(tokens, one(tokens, token_address=USDC, action="send").document_id)
    assert set(usdc.token_amount) == {2500.0} and set(usdc.token_symbol) == {"USDC"}
    assert set(usdc.timestamp) == {1702000000 + 3 * 1200}  # from blocks.csv
    assert usdc.document_id.iloc[0].endswith(":12")  # hash:log_index
    dai = tokens[(tokens.token_symbol == "DAI") & (tokens.action == "send")]
    assert sorted(dai.token_amount) == [40.0, 100.0] and dai.document_id.nunique() == 2
    mint = tokens[tokens.counterparty == ZERO]
    assert mint[["wallet_address", "action", "token_amount"]].values.tolist() == [[A, "receive", 5.0]]
    assert ZERO not in set(rows.wallet_address)
    nft = tokens[tokens.token_symbol == "BAYC"]
    assert len(nft) == 2 and nft.token_amount.isna().all()  # no decimals: the value (a token id) is no amount
    assert "2 token transfers of 2 tokens without known decimals" in stderr


def test_ethereum_etl_parquet_tables_selected_addresses(tmp_path):
    for name in ("transactions", "token_transfers"):
        table = pacsv.read_csv(ETL / f"{name}.csv", convert_options=pacsv.ConvertOptions(
            column_types={"value": pa.string(), "to_address": pa.string(), "receipt_contract_address": pa.string()}
        ))  # fmt: skip
        pq.write_table(table, tmp_path / f"{name}.parquet")
    files = [tmp_path / "transactions.parquet", tmp_path / "token_transfers.parquet", ETL / "blocks.csv"]
    summary, stderr, rows = run_import("ethereum-etl", *files, "--output", tmp_path / "o.parquet", "--address", B)
    assert set(rows.wallet_address) == {B}
    assert (summary["rows"], summary["skipped"], summary["rejected"]) == (13, 5, 2)
    assert f"{tmp_path / 'transactions.parquet'}:6: bad from_address '0xnotanaddress'" in stderr
    assert sorted(rows.action) == ["receive"] + ["send"] * 5
    assert pd.isna(one(rows, token_address=USDC, counterparty=A, action="send").token_amount)  # no tokens table
    assert one(rows, action="receive", counterparty=A, token_address="native").token_amount == 1.0


def test_ethereum_etl_token_times_from_the_transactions_table(tmp_path):
    """Without blocks.csv the transactions of the same blocks date the token transfers; the others are rejected."""
    files = [ETL / "transactions.csv", ETL / "token_transfers.csv", ETL / "tokens.csv"]
    summary, stderr, rows = run_import("ethereum-etl", *files, "--output", tmp_path / "o.parquet", "--address", A)
    assert one(rows, token_address=USDC, action="receive").timestamp == 1702000000 + 3 * 1200
    assert stderr.count("no timestamp for block") == 6  # the blocks after 18735300 (A is in all these transfers)
    no_receipts = tmp_path / "transactions.csv"
    no_receipts.write_text(
        "hash,nonce,block_hash,block_number,transaction_index,from_address,to_address,value,gas,gas_price,input,"
        "block_timestamp\n0x" + "ab" * 32 + ",1,0x" + "cd" * 32 + f",18735000,0,{A},,0,900000,20000000000,0x6080,"
        "1702000000\n"
    )
    summary, stderr, _ = run_import("ethereum-etl", no_receipts, "--output", tmp_path / "o2.parquet")
    assert summary["rejected"] == 1
    assert f"{no_receipts}:2: contract creation without receipt_contract_address" in stderr


def test_walkthrough_import_then_score(tmp_path):
    """README "Real data": the website exports of an account, imported then scored as they are."""
    out = tmp_path / "wallet.parquet"
    run_import("etherscan", WEB_TXLIST, WEB_TOKENTX, "--output", out, "--prices", PRICES)
    env = {**os.environ, "DEFI_SCORING_HOME": str(tmp_path / "home")}
    cmd = [sys.executable, "-m", "defi_scoring.cli", "score", "--input", str(out), "--output", "s.jsonl", "--no-model"]
    subprocess.run(cmd, cwd=tmp_path, env=env, check=True, capture_output=True, timeout=300)
    (message,) = [json.loads(line) for line in (tmp_path / "s.jsonl").read_text().splitlines()]
    assert message["wallet_address"] == ACCOUNT and "error" not in message
    assert message["activity"]["transfers"]["transaction_count"] == 14
