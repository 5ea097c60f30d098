import copy
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from defi_scoring.streaming.broker import free_port

WALLET = "0x742d35Cc6634C0532925a3b8D4C9db96590e4265"
POOL = "0x88e6a0c2ddd26feeb64f039a2c41296fcb3f5640"
DEPOSIT_TIME = 1703980900
DAY = 86_400

EXAMPLE_MESSAGE = {
    "wallet_address": WALLET,
    "data": [
        {
            "protocolType": "dexes",
            "transactions": [
                {
                    "document_id": "507f1f77bcf86cd799439011",
                    "action": "swap",
                    "timestamp": 1703980800,
                    "caller": WALLET,
                    "protocol": "uniswap_v3",
                    "poolId": POOL,
                    "poolName": "Uniswap V3 USDC/WETH 0.05%",
                    "tokenIn": {
                        "amount": 1000000000,
                        "amountUSD": 1000.0,
                        "address": "0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48",
                        "symbol": "USDC",
                    },
                    "tokenOut": {
                        "amount": 500000000000000000,
                        "amountUSD": 1000.0,
                        "address": "0xc02aaa39b223fe8d0a0e5c4f27ead9083c756cc2",
                        "symbol": "WETH",
                    },
                },
                {
                    "document_id": "507f1f77bcf86cd799439012",
                    "action": "deposit",
                    "timestamp": DEPOSIT_TIME,
                    "poolId": POOL,
                    "token0": {
                        "amount": 500000000,
                        "amountUSD": 500.0,
                        "address": "0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48",
                        "symbol": "USDC",
                    },
                    "token1": {
                        "amount": 250000000000000000,
                        "amountUSD": 500.0,
                        "address": "0xc02aaa39b223fe8d0a0e5c4f27ead9083c756cc2",
                        "symbol": "WETH",
                    },
                },
            ],
        }
    ],
}

EXAMPLE_WITHDRAW = {
    "document_id": "507f1f77bcf86cd799439013",
    "action": "withdraw",
    "timestamp": 1703981800,
    "poolId": POOL,
    "token0": {"amount": 250000000, "amountUSD": 250.0, "symbol": "USDC"},
    "token1": {"amount": 125000000000000000, "amountUSD": 250.0, "symbol": "WETH"},
}


def example_message(with_withdraw: bool = False) -> dict:
    message = copy.deepcopy(EXAMPLE_MESSAGE)
    if with_withdraw:
        message["data"][0]["transactions"].append(copy.deepcopy(EXAMPLE_WITHDRAW))
    return message


def dex_message(transactions: list, wallet: str = WALLET) -> dict:
    return {"wallet_address": wallet, "data": [{"protocolType": "dexes", "transactions": transactions}]}


def swap(doc: str, ts: int = 1703980800, usd_in=100.0, usd_out=99.0, sym_in="USDC", sym_out="WETH", pool=POOL) -> dict:
    return {
        "document_id": doc,
        "action": "swap",
        "timestamp": ts,
        "poolId": pool,
        "tokenIn": {"amountUSD": usd_in, "symbol": sym_in},
        "tokenOut": {"amountUSD": usd_out, "symbol": sym_out},
    }


@pytest.fixture
def tmp_home(tmp_path, monkeypatch):
    """A private data home and Dagster home for one test."""
    home = tmp_path / "home"
    monkeypatch.setenv("DEFI_SCORING_HOME", str(home))
    monkeypatch.setenv("DAGSTER_HOME", str(home / "dagster"))
    (home / "dagster").mkdir(parents=True)
    return home


REAL_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "eltontay-train"
COUNTERPARTY = "0x28c6c06298d514db089934071355e5743bf21d60"


def transfer(
    doc: str,
    action: str = "receive",
    ts: int = 1703980800,
    usd: float = 2000.0,
    amount: float = 1.0,
    counterparty: str = COUNTERPARTY,
    **extra,
) -> dict:
    return {
        "document_id": doc,
        "action": action,
        "timestamp": ts,
        "counterparty": counterparty,
        "token": {"amount": amount, "amountUSD": usd, "address": "native", "symbol": "ETH"},
        **extra,
    }


def transfers_message(transactions: list, wallet: str = WALLET) -> dict:
    return {"wallet_address": wallet, "data": [{"protocolType": "transfers", "transactions": transactions}]}


def lending_rows() -> list[dict]:
    """A deposit of 4,000 USD of WETH and a borrow of 1,000 USD of USDC on aave_v2."""
    deposit = {
        "document_id": "d",
        "action": "deposit",
        "timestamp": 1703980800,
        "protocol": "aave_v2",
        "asset": {"amount": 2, "amountUSD": 4000, "symbol": "WETH"},
    }
    borrow = {
        **deposit,
        "document_id": "b",
        "action": "borrow",
        "timestamp": 1703990800,
        "asset": {"amount": 1000, "amountUSD": 1000, "symbol": "USDC"},
    }
    return [deposit, borrow]


def lending_message(transactions: list, wallet: str = WALLET) -> dict:
    return {"wallet_address": wallet, "data": [{"protocolType": "lending", "transactions": transactions}]}


@pytest.fixture(scope="session")
def real_sample(tmp_path_factory):
    """~400 real labelled accounts (stratified, fixed seed) as §1b messages, converted by the shared
    folder's own `to_messages.py` — the same conversion the held-out accounts go through."""
    if not (REAL_DATA / "transfers.parquet").exists():
        pytest.skip(f"real labelled data not found at {REAL_DATA}")
    import pandas as pd

    folder = tmp_path_factory.mktemp("real")
    labels = pd.read_csv(REAL_DATA / "labels.csv")
    sample = pd.concat([labels[labels["is_risky"] == k].sample(200, random_state=7) for k in (0, 1)])
    transfers = pd.read_parquet(REAL_DATA / "transfers.parquet")
    transfers = transfers[transfers["wallet"].astype(str).isin(set(sample["wallet_address"]))]
    transfers = transfers.groupby("wallet", observed=True, group_keys=False).head(400)  # keep the suite fast
    transfers.to_parquet(folder / "transfers.parquet")
    sample.to_csv(folder / "labels.csv", index=False)
    subprocess.run(
        [
            sys.executable,
            str(REAL_DATA / "to_messages.py"),
            str(folder / "transfers.parquet"),
            str(folder / "messages.jsonl"),
        ],
        check=True,
        capture_output=True,
    )
    return folder


def start_api(env_overrides: dict, *args: str):
    """`defi-scoring serve` as a real process on a free port (environment cleaned of the caller's
    KAFKA_/MLFLOW_/DEFI_SCORING_ settings); returns (process, client) once it answers."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "MLFLOW_", "DEFI_SCORING_"))}
    env.update(env_overrides)
    process = subprocess.Popen(
        [sys.executable, "-m", "defi_scoring.cli", "serve", "--port", str(port), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/", timeout=1).status_code == 200:
                return process, httpx.Client(base_url=base, timeout=30)
        except httpx.TransportError:
            time.sleep(0.2)
    process.kill()
    pytest.fail(f"API did not start: {process.stdout.read().decode()[-2000:]}")


def stop_api(process) -> str:
    """Stop the server; returns what it printed."""
    process.terminate()
    out, _ = process.communicate(timeout=15)
    return out.decode(errors="replace")
