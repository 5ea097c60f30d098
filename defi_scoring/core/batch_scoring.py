"""Raw messages in → one success or failure message out per input message (CONTRACTS.md §2–3).

The same path serves the `score` CLI, the batch assets and (later) the sensor runs and the API.
Semantics: a wallet's score covers all of its distinct transactions in the batch (messages may carry
full history or only new transactions; dedupe by document_id makes both work). A message whose own
transactions were all unusable fails, even if the same wallet scores from another message.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Iterable

import pandas as pd

from defi_scoring.core.features import reference_features
from defi_scoring.core.normalise import NormalisedBatch, normalise_messages
from defi_scoring.core.reference_score import reference_scores
from defi_scoring.core.scoring_config import ScoringConfig
from defi_scoring.core.success_messages import success_messages
from defi_scoring.core.wallet_scoring import ModelFn, WalletScores, score_wallet_table


@dataclass
class ScoredBatch:
    batch: NormalisedBatch
    wallets: WalletScores
    as_of: int
    seconds: float

    def messages(self) -> list[dict[str, Any]]:
        return build_output_messages(self)


def score_wallets(transactions: pd.DataFrame, as_of: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Normalised transactions → (features, reference scores), both indexed by wallet."""
    features = reference_features(transactions, as_of)
    return features, reference_scores(features)


def score_raw_messages(raw_messages: Iterable[Any], as_of: int | None = None, config: ScoringConfig | None = None,
                       model: ModelFn | None = None, previous_scores: pd.Series | None = None) -> ScoredBatch:
    """Normalise and score a batch of raw messages (bytes, str or dicts); see module docstring."""
    started = time.perf_counter()
    as_of = int(time.time()) if as_of is None else int(as_of)
    batch = normalise_messages(raw_messages)
    wallets = score_wallet_table(batch.transactions, as_of, config, model, previous_scores)
    return ScoredBatch(batch, wallets, as_of, time.perf_counter() - started)


def build_output_messages(scored: ScoredBatch) -> list[dict[str, Any]]:
    """One output message per input message, in input order."""
    batch = scored.batch
    n = batch.message_count
    processing_ms = int(round(scored.seconds * 1000 / max(n, 1)))
    out: list[dict[str, Any] | None] = [None] * n
    for rejection in batch.rejections:
        out[rejection.message_index] = {
            "wallet_address": rejection.wallet_address,
            "error": rejection.error,
            "timestamp": scored.as_of,
            "processing_time_ms": processing_ms,
            "categories": rejection.categories,
        }

    table = scored.wallets.table
    pending = [i for i, m in enumerate(out) if m is None]
    addresses = [batch.wallet_addresses[i] for i in pending]
    rows = table.loc[[a.lower() for a in addresses]]
    for index, message in zip(pending, success_messages(rows, addresses, scored.wallets, scored.as_of, processing_ms)):
        if index in batch.warnings:
            message["warnings"] = batch.warnings[index]
        out[index] = message
    return out  # type: ignore[return-value]
