"""The `--prices` table: USD per token unit, by contract address, symbol or native ETH, optionally per UTC day.

Why: exports carry amounts, not trustworthy USD values; USD values come only from a table the user
gives, never invented. A row's price is, first match wins: its contract address on its UTC day, its
address undated, its symbol on its day, its symbol undated; no match leaves `token_usd` null.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from defi_scoring.adapters.importers.reading import UnreadableFile

UNDATED = -1
DAY_SECONDS = 86_400
DAY_SPAN = 1 << 20  # (token, day) pairs as one integer key: token code × DAY_SPAN + day + 1


class Prices:
    """Prices of one kind of key (addresses or symbols): the keys, and the price per (key, day)."""

    def __init__(self, keys: np.ndarray, days: np.ndarray, prices: np.ndarray) -> None:
        self.tokens = pd.Index(pd.unique(keys))
        combined = self.tokens.get_indexer(keys).astype(np.int64) * DAY_SPAN + (days + 1)
        series = pd.Series(prices, index=combined, dtype=float)
        repeated = series.index.duplicated(keep="first")
        self.repeated = int(repeated.sum())
        self.prices = series[~repeated]

    def __len__(self) -> int:
        return len(self.prices)

    def fill(self, price: np.ndarray, keys: np.ndarray, day: np.ndarray) -> None:
        """Fill the unknown entries of `price`: the key's price on the day, else its undated price."""
        if not len(self.prices):
            return
        code = self.tokens.get_indexer(keys)
        for days in (day + 1, np.zeros_like(day)):  # UNDATED + 1 = 0
            rows = np.flatnonzero(np.isnan(price) & (code >= 0))
            where = self.prices.index.get_indexer(code[rows].astype(np.int64) * DAY_SPAN + days[rows])
            price[rows[where >= 0]] = self.prices.to_numpy()[where[where >= 0]]


class PriceTable:
    """Prices by contract address ("native" for ETH, lower-cased) and by symbol (upper-cased)."""

    def __init__(self, by_address: Prices, by_symbol: Prices) -> None:
        self.by_address = by_address
        self.by_symbol = by_symbol

    def __len__(self) -> int:
        return len(self.by_address) + len(self.by_symbol)

    @classmethod
    def load(cls, path: Path, say=print) -> PriceTable:
        """Read the CSV (`token`, `price_usd`, optional `date` YYYY-MM-DD); bad rows are reported and left out."""
        try:
            frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
        except (OSError, ValueError, UnicodeDecodeError) as e:
            raise UnreadableFile(f"price table unreadable: {e}") from e
        frame.columns = [str(c).strip().lower() for c in frame.columns]
        missing = {"token", "price_usd"} - set(frame.columns)
        if missing:
            raise UnreadableFile(
                f"price table needs the columns token, price_usd (and optionally date); missing {sorted(missing)}"
            )
        token = frame["token"].str.strip()
        price = pd.to_numeric(frame["price_usd"].str.strip().str.replace(",", "", regex=False), errors="coerce")
        dates = frame["date"].str.strip() if "date" in frame.columns else pd.Series("", index=frame.index)
        day = pd.to_datetime(dates, format="%Y-%m-%d", errors="coerce", utc=True)
        bad = pd.Series(None, index=frame.index, dtype=object)
        bad[(dates != "") & day.isna()] = "date is not YYYY-MM-DD"
        bad[~np.isfinite(price) | (price < 0)] = "price_usd is not a number >= 0"
        bad[token == ""] = "empty token"
        for row in np.flatnonzero(bad.notna().to_numpy()):
            say(f"{path}:{row + 2}: {bad.iloc[row]} (price row left out)")
        keep = bad.isna().to_numpy()
        days = np.where(day.notna(), day.astype("int64") // (DAY_SECONDS * 10**9), UNDATED)[keep]
        token, price = token[keep], price[keep].to_numpy(float)
        native = token.str.lower().isin(["native", "eth"]).to_numpy()
        address = token.str.fullmatch(r"0x[0-9a-fA-F]{40}").to_numpy() | native
        address_key = np.where(native, "native", token.str.lower().to_numpy(dtype=object))
        symbol_key = token.str.upper().to_numpy(dtype=object)
        table = cls(
            Prices(address_key[address], days[address], price[address]),
            Prices(symbol_key[~address], days[~address], price[~address]),
        )
        repeated = table.by_address.repeated + table.by_symbol.repeated
        if repeated:
            say(f"{path}: {repeated:,} repeated (token, date) rows: the first price of each is used")
        return table

    def usd(self, table: pa.Table) -> np.ndarray:
        """USD value of each row's `token_amount` (NaN when the price or the amount is unknown)."""
        amount = table.column("token_amount").to_numpy(zero_copy_only=False).astype(float)
        day = table.column("timestamp").to_numpy(zero_copy_only=False).astype(np.int64) // DAY_SECONDS
        address = pc.utf8_lower(table.column("token_address")).to_numpy(zero_copy_only=False)
        symbol = pc.utf8_upper(table.column("token_symbol")).to_numpy(zero_copy_only=False)
        price = np.full(len(amount), np.nan)
        self.by_address.fill(price, address, day)
        self.by_symbol.fill(price, symbol, day)
        return amount * price
