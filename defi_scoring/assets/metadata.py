"""Dagster's standard table metadata and check results built from the core's frames and verdicts."""

import dagster as dg
import pandas as pd

from defi_scoring.core.data_checks import Verdict

_TYPES = {"i": "int", "u": "int", "f": "float", "b": "bool", "M": "timestamp", "O": "string", "U": "string"}


def table_metadata(frame: pd.DataFrame, index_name: str | None = None) -> dict:
    """`dagster/row_count` and `dagster/column_schema`, which the UI shows on the asset page."""
    columns = [dg.TableColumn(index_name, "string")] if index_name else []
    columns += [dg.TableColumn(str(name), _TYPES.get(dtype.kind, str(dtype))) for name, dtype in frame.dtypes.items()]
    return {
        "dagster/row_count": dg.MetadataValue.int(len(frame)),
        "dagster/column_schema": dg.TableSchema(columns=columns),
    }


def frame_table(frame: pd.DataFrame, index_name: str | None = None, digits: int = 4) -> dg.TableMetadataValue:
    """A small frame as a Dagster table (sortable in the UI) instead of a markdown string."""
    if index_name:
        frame = frame.rename_axis(index_name).reset_index()
    schema = table_metadata(frame)["dagster/column_schema"]
    records = [
        dg.TableRecord({str(k): (round(v, digits) if isinstance(v, float) else v) for k, v in row.items()})
        for row in frame.astype(object).where(frame.notna(), None).to_dict(orient="records")
    ]
    return dg.MetadataValue.table(records, schema=schema)


def check_result(check_name: str, verdict: Verdict, **metadata) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        check_name=check_name,
        passed=verdict.passed,
        severity=dg.AssetCheckSeverity(verdict.severity),
        description=verdict.description,
        metadata={"value": float(verdict.value), **metadata},
    )
