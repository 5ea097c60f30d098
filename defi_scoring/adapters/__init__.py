"""Adapters: what reads and writes the outside world (files, stores, brokers)."""
