"""A record of the input partitions whose offsets went backwards (client.CursorReset), kept in the data
home so that the API's /health can show the last one beside the sensor's own skip reason and log."""

from __future__ import annotations

import time
from pathlib import Path

import orjson

from defi_scoring.streaming.client import CursorReset


def resets_file(home: Path) -> Path:
    return home / "streaming" / "offset_resets.jsonl"


def record_resets(home: Path, resets: list[CursorReset]) -> None:
    path = resets_file(home)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "ab") as out:
        for reset in resets:
            row = {"at": int(time.time()), "topic": reset.topic, "partition": reset.partition}
            out.write(
                orjson.dumps({**row, "cursor": reset.cursor, "end": reset.end, "detail": reset.describe()}) + b"\n"
            )


def latest_reset(home: Path) -> dict | None:
    """The most recent reset recorded (None when offsets never went backwards)."""
    path = resets_file(home)
    if not path.exists():
        return None
    lines = path.read_bytes().splitlines()
    return orjson.loads(lines[-1]) if lines else None
