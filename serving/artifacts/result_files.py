"""Reading a query result file (json, csv, parquet, arrow) as Arrow batches, losing nothing.

JSON results carry DuckDB's column types: integers, floats, booleans and decimals are
typed, integers beyond 64 bits become their digits, and the rest keeps the text the JSON
result gave (dates, blobs as base64, intervals) or JSON text for nested values. CSV
results carry no types: a column is typed (BIGINT, DOUBLE, DATE) only where every value
converts back to the same text, otherwise it stays text; only an empty field is null.
"""

from __future__ import annotations

import decimal
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from pyarrow import ipc

from serving.lib.errors import Conflict
from serving.lib.formats import csv_read_options, encode_json

_INT_TYPES = {"TINYINT", "SMALLINT", "INTEGER", "BIGINT"}
_UINT_TYPES = {"UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT"}
_WIDE_INT_TYPES = {"HUGEINT", "UHUGEINT", "BIGNUM", "VARINT"}
_DECIMAL = re.compile(r"^DECIMAL\((\d+),\s*(\d+)\)$")


class UnreadableColumn(ValueError):
    """A JSON result column whose values do not fit the type DuckDB gave it."""

    def __init__(self, name: str, duck_type: str, why: str) -> None:
        super().__init__(why)
        self.name, self.duck_type = name, duck_type


def _json_text(value: Any) -> str | None:
    return None if value is None else encode_json(value).decode()


def _json_column(name: str, duck_type: str, values: list[Any]) -> pa.Array:
    base = duck_type.strip().upper()
    if base == "BOOLEAN":
        return pa.array(values, type=pa.bool_())
    if base in _INT_TYPES:
        return pa.array(values, type=pa.int64())
    if base in _UINT_TYPES:
        return pa.array(values, type=pa.uint64())
    if base in ("FLOAT", "DOUBLE", "REAL"):  # NaN and ±infinity are written "nan", "inf", "-inf"
        return pa.array([float(v) if isinstance(v, str) else v for v in values], type=pa.float64())
    if base in _WIDE_INT_TYPES:
        return pa.array([None if v is None else str(v) for v in values], type=pa.string())
    if m := _DECIMAL.match(base):
        precision, scale = int(m.group(1)), int(m.group(2))
        typ = pa.decimal128(precision, scale) if precision <= 38 else pa.decimal256(precision, scale)
        return pa.array([None if v is None else decimal.Decimal(str(v)) for v in values], type=typ)
    return pa.array([v if v is None or isinstance(v, str) else _json_text(v) for v in values], type=pa.string())


def _read_json(path: Path) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
    """``{"columns": [{name, type}], "rows": [[…]], …}``; row-capped by QUERY_JSON_MAX_ROWS."""
    doc = msgspec.json.decode(path.read_bytes())
    columns = doc.get("columns", [])
    rows = doc.get("rows", [])
    arrays, fields = [], []
    for i, col in enumerate(columns):
        name, duck_type = str(col.get("name")), str(col.get("type", ""))
        try:
            arr = _json_column(name, duck_type, [r[i] for r in rows])
        except (pa.ArrowException, ValueError, TypeError, OverflowError, decimal.InvalidOperation) as e:
            raise UnreadableColumn(name, duck_type, str(e)[:200]) from e
        arrays.append(arr)
        fields.append(pa.field(name, arr.type))
    schema = pa.schema(fields)
    return schema, iter([pa.record_batch(arrays, schema=schema)] if fields else [])


def _csv_types(path: Path) -> dict[str, pa.DataType]:
    """The type of each CSV column: BIGINT, DOUBLE or DATE where every value converts back to the same text."""
    names = pacsv.open_csv(path).schema.names
    reader = pacsv.open_csv(path, convert_options=csv_read_options(dict.fromkeys(names, pa.string())))
    candidates = {n: [pa.int64(), pa.float64(), pa.date32()] for n in names}
    seen: set[str] = set()
    for batch in reader:
        for name, col in zip(names, batch.columns, strict=True):
            if col.null_count < len(col):
                seen.add(name)
            kept = []
            for typ in candidates[name]:
                try:
                    back = pc.cast(pc.cast(col, typ), pa.string())
                except pa.ArrowException:
                    continue
                if pc.all(pc.or_kleene(pc.equal(back, col), pc.is_null(col))).as_py() in (True, None):
                    kept.append(typ)
            candidates[name] = kept
    return {n: (c[0] if c and n in seen else pa.string()) for n, c in candidates.items()}


def read_result(path: Path, fmt: str) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
    if fmt == "parquet":
        f = pq.ParquetFile(path)
        return f.schema_arrow, f.iter_batches(batch_size=65_536)
    if fmt == "arrow":
        try:
            reader = ipc.open_stream(pa.memory_map(str(path)))
            return reader.schema, iter(reader)
        except pa.ArrowInvalid:
            file_reader = ipc.open_file(pa.memory_map(str(path)))
            return file_reader.schema, (file_reader.get_batch(i) for i in range(file_reader.num_record_batches))
    if fmt == "csv":
        types = _csv_types(path)
        csv_reader = pacsv.open_csv(path, convert_options=csv_read_options(types))
        return csv_reader.schema, iter(csv_reader)
    if fmt == "json":
        return _read_json(path)
    raise Conflict(f"results in format {fmt!r} cannot be saved as artifacts", rule="result_format_unsupported")
