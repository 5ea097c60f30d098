"""Batch throughput: raw JSON lines → normalised → features → reference scores.

Prints one JSON line. Generation is not timed.
Usage: python bench/bench_batch.py [--wallets N] [--mix all|dexes|transfers|lending] [--file F.jsonl]
                                  [--decoder auto|arrow|python]

--file reads the lines from a JSONL file on disk as they are normalised (the read is timed, the lines
are never all held in memory) instead of generating them in memory. --decoder python times the
Python decoder alone (the "before" of core/arrow_decode.py); the default is what users run.

"Scores" are the reference scores (CONTRACTS.md §4) plus the per-wallet features of the §1b types
(transfers, lending) that the hybrid score and the models read: the reference formula sees DEX
transactions only, so without them a transfers mix would be timed for parsing alone.
"""

import json
import resource
import time
from pathlib import Path

from _common import bench_parser, lines_for  # bench/ helper (scripts run from this folder)

from defi_scoring.core.batch_scoring import score_wallets
from defi_scoring.core.lending_features import lending_features
from defi_scoring.core.normalise import normalise_messages
from defi_scoring.core.synthetic import DEFAULT_END_TIME
from defi_scoring.core.transfer_features import transfer_features


def main() -> None:
    parser = bench_parser(__doc__)
    parser.add_argument("--file", type=Path, default=None, help="JSONL file to read instead of generating")
    parser.add_argument("--decoder", choices=["auto", "arrow", "python"], default="auto")
    args = parser.parse_args()
    if args.file:
        handle = open(args.file, "rb")  # noqa: SIM115 (read while normalising, closed below)
        lines, messages = (line.rstrip(b"\r\n") for line in handle), None
        megabytes = args.file.stat().st_size / 1e6
    else:
        _, lines = lines_for(args)
        messages, megabytes = len(lines), sum(map(len, lines)) / 1e6

    t0 = time.perf_counter()
    batch = normalise_messages(lines, decoder=args.decoder)
    if args.file:
        handle.close()
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
                "messages": messages if messages is not None else batch.message_count,
                "megabytes_raw": round(megabytes, 1),
                "source": str(args.file) if args.file else "memory",
                "decoder": args.decoder,
                "seconds_raw_to_normalised": round(t1 - t0, 3),
                "seconds_normalised_to_scores": round(t2 - t1, 3),
                "tx_per_s_raw_to_scores": round(n_tx / (t2 - t0)),
                "tx_per_s_normalised_to_scores": round(n_tx / (t2 - t1)),
                "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
                "peak_rss_bytes_per_tx": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / n_tx),
            }
        )
    )


if __name__ == "__main__":
    main()
