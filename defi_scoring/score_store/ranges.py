"""The outputs of each processed Kafka offset range, so a re-executed range republishes the very same
messages instead of scoring twice."""

from __future__ import annotations

import time

import lz4.frame
import orjson
import sqlalchemy as sa

from defi_scoring.score_store.connection import StoreConnection
from defi_scoring.score_store.tables import processed_ranges

Output = tuple[str, str, bytes]  # (topic, key, value)


class RangeOutputs(StoreConnection):
    def range_outputs(self, range_key: str) -> list[Output] | None:
        """What a range published, or None when it was never recorded."""
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(processed_ranges.c.outputs).where(processed_ranges.c.range_key == range_key)
            ).first()
        return None if row is None else unpack_outputs(row[0])

    def save_range(self, range_key: str, outputs: list[Output], conn: sa.Connection) -> None:
        blob = pack_outputs(outputs)
        statement = self._insert(processed_ranges).on_conflict_do_update(
            index_elements=["range_key"], set_={"outputs": blob, "recorded_at": time.time()}
        )
        conn.execute(statement, {"range_key": range_key, "outputs": blob, "recorded_at": time.time()})


def pack_outputs(outputs: list[Output]) -> bytes:
    """(topic, key, value) records → one lz4 frame: a JSON header of topics/keys/lengths, then the
    values back to back (nesting JSON in JSON would escape every quote and double the size)."""
    header = orjson.dumps([[t for t, _, _ in outputs], [k for _, k, _ in outputs], [len(v) for _, _, v in outputs]])
    return lz4.frame.compress(header + b"\n" + b"".join(v for _, _, v in outputs))


def unpack_outputs(blob: bytes) -> list[Output]:
    raw = lz4.frame.decompress(blob)
    newline = raw.index(b"\n")
    topics, keys, lengths = orjson.loads(raw[:newline])
    out, position = [], newline + 1
    for topic, key, length in zip(topics, keys, lengths):
        out.append((topic, key, raw[position : position + length]))
        position += length
    return out
