"""Shared set-up of the bench scripts: the --wallets/--seed arguments and the generated messages."""

import argparse
import time

import orjson

from defi_scoring.core.synthetic import PROTOCOL_TYPES, SyntheticData, generate_wallets, iter_messages


def generated_lines(description: str) -> tuple[SyntheticData, list[bytes]]:
    """Parse --wallets/--seed/--mix and return the generated wallets and their JSON lines (not timed)."""
    return lines_for(bench_parser(description).parse_args())


def lines_for(args: argparse.Namespace) -> tuple[SyntheticData, list[bytes]]:
    """The generated wallets of parsed --wallets/--seed/--mix arguments and their JSON lines."""
    types = None if args.mix == "all" else {args.mix}
    data = generate_wallets(args.wallets, seed=args.seed, protocol_types=types)
    return data, [orjson.dumps(m) for m in iter_messages(data)]


def bench_parser(description: str) -> argparse.ArgumentParser:
    """The --wallets/--seed/--mix arguments every generating bench takes."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--wallets", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--mix",
        choices=["all", *PROTOCOL_TYPES],
        default="all",
        help="archetypes of one protocol type only (e.g. transfers) [default: all, the demo mix]",
    )
    return parser


def newest_transaction_lines(n_wallets: int, seed: int, store_url: str) -> list[bytes]:
    """Each wallet's newest 1–3 transactions as JSON lines; its older ones already in the score store
    (histories and population index, as earlier runs would have left them), so every run merges and
    scores whole histories. Not timed."""
    import numpy as np

    from defi_scoring.core.normalise import normalise_messages
    from defi_scoring.core.synthetic import split_newest
    from defi_scoring.score_store import ScoreStore
    from defi_scoring.service.scoring_service import ScoringService

    rng, older, lines = np.random.default_rng(seed), [], []
    for message in iter_messages(generate_wallets(n_wallets, seed=seed)):
        old, new = split_newest(message, rng)
        older += [old] if old else []
        lines.append(orjson.dumps(new))
    # through the service's append, as the earlier runs would have: histories and the population and
    # counterparty indexes their rows feed (nothing is scored here)
    ScoringService(ScoreStore(store_url)).append(normalise_messages(older).transactions)
    return lines


def produce_at_rate(bootstrap: str, topic: str, lines: list[bytes], rate: float, partitions: int = 1) -> None:
    """Send `lines` at `rate` per second, keyed by wallet. Keys and partitions (Kafka's murmur2, as the
    default partitioner would choose) are computed before the clock starts and the pacing sleeps once
    per 50 messages: kafka-python spends ~0.1 ms of CPU per send, and this load generator shares the
    machine's two cores with the system it measures."""
    from kafka.partitioner.default import murmur2

    from defi_scoring.streaming.client import producer
    from defi_scoring.streaming.settings import KafkaSettings

    keys = [orjson.loads(line)["wallet_address"].encode() for line in lines]
    targets = [(murmur2(key) & 0x7FFFFFFF) % partitions for key in keys]
    sender = producer(KafkaSettings(bootstrap_servers=bootstrap))
    started = time.perf_counter()
    for i, (key, line, partition) in enumerate(zip(keys, lines, targets)):
        if i % 50 == 0:
            delay = started + i / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
        sender.send(topic, key=key, value=line, partition=partition)
    sender.flush()
    sender.close()
