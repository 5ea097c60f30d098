"""Batch throughput: raw JSON lines → normalised → features → reference scores.

Prints one JSON line. Generation is not timed.
Usage: python bench/bench_batch.py [--wallets N] [--mix all|dexes|transfers|lending]
                                  [--file F.jsonl|F.parquet [--chunk-mb 64]] [--decoder auto|arrow|python]
                                  [--parquet]

--file reads the lines from a JSONL file on disk instead of generating them in memory, and decodes
them --chunk-mb at a time (core.normalise.normalise_in_chunks: the read is timed, the file's text is
never all held in memory; duplicates across chunks are found as in one call). A `.parquet` --file, or
--parquet (the generated wallets written to a Parquet transactions table first, not timed), times the
columnar input instead: the file read row group by row group (core.normalise.normalise_tables) →
scores; "raw" is then the Parquet file (`tx_per_s_parquet_to_scores`). --decoder python times the
Python decoder alone (the "before" of core/arrow_decode.py); the default is what users run.

Peak memory is the resident peak of the timed part (generation's is reset before it starts); in
memory it includes the raw lines the bench holds (`input_bytes_held_per_tx`).

"Scores" are the reference scores (CONTRACTS.md §4) plus the per-wallet features of the §1b types
(transfers, lending) that the hybrid score and the models read: the reference formula sees DEX
transactions only, so without them a transfers mix would be timed for parsing alone.
"""

import contextlib
import json
import resource
import time
from pathlib import Path

from _common import bench_parser, lines_for  # bench/ helper (scripts run from this folder)

from defi_scoring.core.batch_scoring import score_wallets
from defi_scoring.core.lending_features import lending_features
from defi_scoring.core.normalise import normalise_in_chunks, normalise_messages, normalise_tables
from defi_scoring.core.synthetic import DEFAULT_END_TIME, generate_wallets, iter_messages
from defi_scoring.core.transaction_table import is_table_file, table_from_messages
from defi_scoring.core.transfer_features import transfer_features
from defi_scoring.file_scoring import read_chunks


def main() -> None:
    parser = bench_parser(__doc__)
    parser.add_argument("--file", type=Path, default=None, help="JSONL file to read instead of generating")
    parser.add_argument("--decoder", choices=["auto", "arrow", "python"], default="auto")
    parser.add_argument("--chunk-mb", type=float, default=64.0, help="--file is decoded this many MB at a time")
    parser.add_argument("--parquet", action="store_true", help="time a Parquet transactions table of the wallets")
    args = parser.parse_args()
    if args.parquet and not args.file:
        args.file = _parquet_of_generated(args)
    table_input = bool(args.file) and is_table_file(args.file)
    if table_input:
        chunks, messages = _row_groups(args.file), None
        megabytes = args.file.stat().st_size / 1e6
    elif args.file:
        chunks, messages = read_chunks(args.file, int(args.chunk_mb * 1e6)), None
        megabytes = args.file.stat().st_size / 1e6
    else:
        _, lines = lines_for(args)
        messages, megabytes = len(lines), sum(map(len, lines)) / 1e6

    _reset_peak_rss()  # the peak of the timed part (the generator's own peak is not the batch path's)
    t0 = time.perf_counter()
    if table_input:  # row group by row group
        batch = normalise_tables(chunks)
    elif args.file:  # chunk by chunk: the file's text is never all in memory
        batch = normalise_in_chunks(chunks, decoder=args.decoder)
    else:
        batch = normalise_messages(lines, decoder=args.decoder)
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
                "decoder": "table" if table_input else args.decoder,
                "seconds_raw_to_normalised": round(t1 - t0, 3),
                "seconds_normalised_to_scores": round(t2 - t1, 3),
                ("tx_per_s_parquet_to_scores" if table_input else "tx_per_s_raw_to_scores"): round(n_tx / (t2 - t0)),
                "tx_per_s_normalised_to_scores": round(n_tx / (t2 - t1)),
                "peak_rss_mb": round(_peak_rss_bytes() / 1e6),
                "peak_rss_bytes_per_tx": round(_peak_rss_bytes() / n_tx),
                "input_bytes_held_per_tx": 0 if args.file else round(megabytes * 1e6 / n_tx),
            }
        )
    )


def _parquet_of_generated(args) -> Path:
    """The generated wallets as a Parquet transactions table in /tmp (not timed; kept for the next run)."""
    import pyarrow.parquet as pq

    path = Path(f"/tmp/bench_batch_{args.wallets}_{args.seed}_{args.mix}.parquet")
    if not path.exists():
        types = None if args.mix == "all" else {args.mix}
        table = table_from_messages(iter_messages(generate_wallets(args.wallets, seed=args.seed, protocol_types=types)))
        pq.write_table(table, path.with_suffix(".part"), row_group_size=1_000_000, compression="zstd")
        path.with_suffix(".part").rename(path)
    return path


def _row_groups(path: Path):
    """The file's record batches as tables, one row group's worth at a time."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    strings = [f.name for f in pq.read_schema(path) if pa.types.is_string(f.type) and f.name != "document_id"]
    for batch in pq.ParquetFile(path, read_dictionary=strings).iter_batches(batch_size=1_000_000):
        yield pa.Table.from_batches([batch])


def _reset_peak_rss() -> None:
    """Return the generator's freed memory to the system and restart the peak (Linux: clear_refs 5
    resets VmHWM); elsewhere the peak keeps counting from the process start."""
    from defi_scoring.core.normalise import _release_freed_memory

    _release_freed_memory()
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def _peak_rss_bytes() -> int:
    """VmHWM: the peak resident size since the last reset (ru_maxrss where /proc is not there)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


if __name__ == "__main__":
    main()
