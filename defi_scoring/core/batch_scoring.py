"""Raw messages in → one success or failure message out per input message (CONTRACTS.md §2–3).

The same path serves the `score` CLI, the batch assets and (later) the sensor runs and the API.
Semantics: a wallet's score covers all of its distinct transactions in the batch (messages may carry
full history or only new transactions; dedupe by document_id makes both work). A message whose own
transactions were all unusable fails, even if the same wallet scores from another message.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson
import pandas as pd
import pyarrow as pa

from defi_scoring.core.features import reference_features
from defi_scoring.core.normalise import NormalisedBatch, Rejection, normalise_messages, normalise_tables
from defi_scoring.core.outcomes import Outcome, failure
from defi_scoring.core.reference_score import reference_scores
from defi_scoring.core.scoring_config import ScoringConfig
from defi_scoring.core.success_messages import EncodedMessages, encode_success_messages
from defi_scoring.core.wallet_scoring import ModelFn, WalletScores, score_wallet_table


@dataclass
class ScoredBatch:
    batch: NormalisedBatch
    wallets: WalletScores
    as_of: int | None  # the explicit as-of time; None: each wallet at its newest transaction
    seconds: float
    failed_at: int = 0  # the `timestamp` of failure messages (a failure has no history to date it by)

    def encoded(self) -> EncodedMessages:
        """The output messages as JSON bytes (what Kafka and the store get) plus their summaries."""
        return encode_outputs(self)

    def messages(self) -> list[dict[str, Any]]:
        """The output messages as dictionaries (CLI, API, tests)."""
        return [orjson.loads(v) for v in encode_outputs(self).values]


def score_wallets(transactions: pd.DataFrame, as_of: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Normalised transactions → (features, reference scores), both indexed by wallet."""
    features = reference_features(transactions, as_of)
    return features, reference_scores(features)


def score_raw_messages(
    raw_messages: Iterable[Any],
    as_of: int | None = None,
    config: ScoringConfig | None = None,
    model: ModelFn | None = None,
    previous_scores: pd.Series | None = None,
) -> ScoredBatch:
    """Normalise and score a batch of raw messages (bytes, str or dicts); see module docstring."""
    started = time.perf_counter()
    batch = normalise_messages(raw_messages)
    return score_batch(batch, as_of, config, model, previous_scores, started)


def score_tables(
    tables: Iterable[pa.Table],
    as_of: int | None = None,
    config: ScoringConfig | None = None,
    model: ModelFn | None = None,
    previous_scores: pd.Series | None = None,
) -> ScoredBatch:
    """Columnar input (core/transaction_table.py; one table or a Parquet file's row groups) scored as
    its §1 messages would be: one output message per wallet, in order of first appearance."""
    started = time.perf_counter()
    return score_batch(normalise_tables(tables), as_of, config, model, previous_scores, started)


def score_batch(
    batch: NormalisedBatch,
    as_of: int | None = None,
    config: ScoringConfig | None = None,
    model: ModelFn | None = None,
    previous_scores: pd.Series | None = None,
    started: float | None = None,
) -> ScoredBatch:
    """A normalised batch scored as the whole state (whatever it was decoded from): the population is
    the batch. `as_of` None: each wallet at its newest transaction (the default everywhere)."""
    started = time.perf_counter() if started is None else started
    as_of = None if as_of is None else int(as_of)
    wallets = score_wallet_table(batch.transactions, as_of, config, model, previous_scores)
    failed_at = int(time.time()) if as_of is None else as_of
    return ScoredBatch(batch, wallets, as_of, time.perf_counter() - started, failed_at)


def encode_outputs(scored: ScoredBatch) -> EncodedMessages:
    """One output message per input message, in input order, as JSON bytes plus summaries."""
    batch = scored.batch
    n = batch.message_count
    processing_ms = round(scored.seconds * 1000 / max(n, 1))
    values: list[bytes | None] = [None] * n
    summaries: list[dict[str, Any] | None] = [None] * n
    for rejection in batch.rejections:
        failure = failure_outcome(rejection, scored.failed_at, processing_ms)
        values[rejection.message_index] = failure.value
        summaries[rejection.message_index] = failure.summary

    pending = [i for i, v in enumerate(values) if v is None]
    addresses = [batch.wallet_addresses[i] for i in pending]
    table, keys = scored.wallets.table, [a.lower() for a in addresses]
    # one message per wallet in table order (one API call, most batches): the table itself, no take
    rows = table if len(keys) == len(table) and table.index.equals(pd.Index(keys)) else table.loc[keys]
    encoded = encode_success_messages(rows, addresses, scored.wallets, scored.failed_at, processing_ms)
    for index, value, summary in zip(pending, encoded.values, encoded.summaries):
        if index in batch.warnings:
            value = with_warnings(value, orjson.dumps(batch.warnings[index]))
        values[index], summaries[index] = value, summary
    return EncodedMessages(values, summaries)  # type: ignore[arg-type]


def failure_outcome(rejection: Rejection, as_of: int, processing_ms: int) -> Outcome:
    """The failure (CONTRACTS.md §3) of a rejected input message."""
    return failure(rejection.wallet_address, rejection.error, as_of, processing_ms, rejection.categories)


def with_warnings(value: bytes, warnings_json: bytes) -> bytes:
    """An encoded success message with `warnings` (a JSON list) appended as its last field."""
    return value[:-1] + b',"warnings":' + warnings_json + b"}"
