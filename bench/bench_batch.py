"""Batch throughput: raw JSON lines → normalised → features → reference scores.

Prints one JSON line. Generation is not timed.
Usage: python bench/bench_batch.py [--wallets N] [--mix all|dexes|transfers|lending]

"Scores" are the reference scores (CONTRACTS.md §4) plus the per-wallet features of the §1b types
(transfers, lending) that the hybrid score and the models read: the reference formula sees DEX
transactions only, so without them a transfers mix would be timed for parsing alone.
"""

import json
import resource
import time

from _common import generated_lines  # bench/ helper (scripts run from this folder)

from defi_scoring.core.batch_scoring import score_wallets
from defi_scoring.core.lending_features import lending_features
from defi_scoring.core.normalise import normalise_messages
from defi_scoring.core.synthetic import DEFAULT_END_TIME
from defi_scoring.core.transfer_features import transfer_features


def main() -> None:
    _, lines = generated_lines(__doc__)

    t0 = time.perf_counter()
    batch = normalise_messages(lines)
    t1 = time.perf_counter()
    _, scores = score_wallets(batch.transactions, DEFAULT_END_TIME)
    transfer_features(batch.transactions, scores.index)
    lending_features(batch.transactions, scores.index)
    t2 = time.perf_counter()
    n_tx = len(batch.transactions)
    print(
        json.dumps(
            {
                "wallets": len(scores),
                "transactions": n_tx,
                "transactions_by_type": batch.transactions["protocol_type"].value_counts().to_dict(),
                "messages": len(lines),
                "megabytes_raw": round(sum(map(len, lines)) / 1e6, 1),
                "seconds_raw_to_normalised": round(t1 - t0, 3),
                "seconds_normalised_to_scores": round(t2 - t1, 3),
                "tx_per_s_raw_to_scores": round(n_tx / (t2 - t0)),
                "tx_per_s_normalised_to_scores": round(n_tx / (t2 - t1)),
                "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            }
        )
    )


if __name__ == "__main__":
    main()
