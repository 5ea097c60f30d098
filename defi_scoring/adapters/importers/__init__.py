"""Importers: real data people hold (Etherscan exports, ethereum-etl tables) → the transactions table.

Why: the scoring takes the columnar transactions table (`defi_scoring.core.transaction_table`); these
modules turn the files people download into it, row by row accountable (docs/importers.md).
"""

from defi_scoring.adapters.importers.ethereum_etl import import_ethereum_etl
from defi_scoring.adapters.importers.etherscan import import_etherscan
from defi_scoring.adapters.importers.prices import PriceTable
from defi_scoring.adapters.importers.report import ImportReport
from defi_scoring.adapters.importers.writer import TableWriter

__all__ = ["ImportReport", "PriceTable", "TableWriter", "import_ethereum_etl", "import_etherscan"]
