"""`io_manager`: asset values stored under the data home, where the CLI, the API and `read_table` look.

- a pandas DataFrame → `tables/<asset>.parquet` (`DataHomeResource.table_path`, the same file the
  assets wrote by hand before), read back as a DataFrame;
- a table the step wrote itself (`WrittenTable`: the Dask engine's folder of parts, or the incremental
  feature update, which must write its table before the state file beside it) → checked to be at that
  path and not written again;
- a dict or a dataclass (a registered model version) → `tables/<asset>.json`, read back as the type
  the input is annotated with.

An input may name the columns it needs (`dg.AssetIn(metadata={"columns": [...]})`) so that a
downstream step reads only those of a wide table, and may accept a value that was never materialised
(`metadata={"allow_missing": True}` → None). Wanted columns the stored table lacks (one written by an
earlier release) are left out rather than failing the read.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd

from defi_scoring.resources.data_home import DataHomeResource


@dataclass(frozen=True)
class WrittenTable:
    """The value of a step that wrote its Parquet table itself, at `DataHomeResource.table_path`."""

    path: Path


class DataHomeIOManager(dg.ConfigurableIOManager):
    """Asset values as Parquet tables and JSON documents in the data home's `tables/` folder."""

    data_home: DataHomeResource

    def _name(self, key: dg.AssetKey) -> str:
        return "__".join(key.path)

    def table_path(self, key: dg.AssetKey) -> Path:
        return self.data_home.table_path(self._name(key))

    def document_path(self, key: dg.AssetKey) -> Path:
        return self.data_home.settings.tables_dir / f"{self._name(key)}.json"

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        if context.has_asset_partitions:
            raise TypeError(f"{context.asset_key.to_user_string()}: partitioned values are not stored here")
        key = context.asset_key
        if obj is None:
            return
        if isinstance(obj, WrittenTable):
            expected = self.table_path(key)
            if Path(obj.path).resolve() != expected.resolve() or not expected.exists():
                raise ValueError(f"{key.to_user_string()} says it wrote {obj.path}; its table is {expected}")
            path = expected
        elif isinstance(obj, pd.DataFrame):
            path = self.data_home.write_table(self._name(key), obj)
        elif isinstance(obj, dict) or (dataclasses.is_dataclass(obj) and not isinstance(obj, type)):
            path = self.document_path(key)
            document = dataclasses.asdict(obj) if dataclasses.is_dataclass(obj) else obj
            _write_atomically(path, json.dumps(document, indent=1, sort_keys=True, default=str))
        else:
            raise TypeError(
                f"{key.to_user_string()}: {type(obj).__name__} values are not stored "
                "(a DataFrame, a WrittenTable, a dict or a dataclass are)"
            )
        context.add_output_metadata({"path": dg.MetadataValue.path(str(path))})

    def load_input(self, context: dg.InputContext) -> Any:
        key = context.asset_key
        metadata = context.definition_metadata or {}
        wanted = context.dagster_type.typing_type if context.dagster_type else Any
        table, document = self.table_path(key), self.document_path(key)
        if table.exists() and not _is_document_type(wanted):
            return pd.read_parquet(table, columns=_present(table, metadata.get("columns")))
        if document.exists():
            data = json.loads(document.read_text())
            return wanted(**data) if dataclasses.is_dataclass(wanted) else data
        if metadata.get("allow_missing"):
            return None
        raise FileNotFoundError(
            f"{key.to_user_string()} has no stored value ({table.name} or {document.name} under "
            f"{table.parent}): materialise it first"
        )


def _present(table: Path, columns: list[str] | None) -> list[str] | None:
    """The wanted columns the table has (a table of an earlier release may lack a newer one)."""
    if columns is None:
        return None
    import pyarrow.dataset as ds

    names = set(ds.dataset(table, format="parquet").schema.names)
    return [c for c in columns if c in names]


def _is_document_type(wanted: Any) -> bool:
    return wanted is dict or (isinstance(wanted, type) and dataclasses.is_dataclass(wanted))


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
