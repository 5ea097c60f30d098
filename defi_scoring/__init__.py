"""Wallet reputation and risk scoring for DeFi (a Dagster project; README)."""

from defi_scoring.process_hygiene import reuse_freed_memory

reuse_freed_memory()  # every entry point (CLI, Dagster code server and runs, API, benches) works column-wise
