"""Batch throughput: raw JSON lines → normalised → features → reference scores.

Prints one JSON line. Generation is not timed. Usage: python bench/bench_batch.py [--wallets N]
"""

import json
import resource
import time

from _common import generated_lines  # bench/ helper (scripts run from this folder)

from defi_scoring.core.batch_scoring import score_wallets
from defi_scoring.core.normalise import normalise_messages
from defi_scoring.core.synthetic import DEFAULT_END_TIME


def main() -> None:
    _, lines = generated_lines(__doc__)

    t0 = time.perf_counter()
    batch = normalise_messages(lines)
    t1 = time.perf_counter()
    _, scores = score_wallets(batch.transactions, DEFAULT_END_TIME)
    t2 = time.perf_counter()
    n_tx = len(batch.transactions)
    print(
        json.dumps(
            {
                "wallets": len(scores),
                "transactions": n_tx,
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
