"""Shared set-up of the bench scripts: the --wallets/--seed arguments and the generated messages."""

import argparse

import orjson

from defi_scoring.core.synthetic import PROTOCOL_TYPES, SyntheticData, generate_wallets, iter_messages


def generated_lines(description: str) -> tuple[SyntheticData, list[bytes]]:
    """Parse --wallets/--seed/--mix and return the generated wallets and their JSON lines (not timed)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--wallets", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--mix",
        choices=["all", *PROTOCOL_TYPES],
        default="all",
        help="archetypes of one protocol type only (e.g. transfers) [default: all, the demo mix]",
    )
    args = parser.parse_args()
    types = None if args.mix == "all" else {args.mix}
    data = generate_wallets(args.wallets, seed=args.seed, protocol_types=types)
    return data, [orjson.dumps(m) for m in iter_messages(data)]
