"""A finished job's result, paged by cursor or converted to another format.

Why read the stored file and never run the query again: a page must come from the very
result the continuation named (same served versions), and reading a file costs no slot.
Parquet pages read only the row groups that hold the page; Arrow IPC streams skip whole
batches; JSON and CSV results are read batch by batch too. A conversion is written once
next to the result (``<id>.as.<ext>``) and expires with it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from pyarrow import ipc

from serving.lib import formats
from serving.lib.continuation import decode_cursor, encode_cursor, rows_url
from serving.lib.errors import BadRequest
from shared.control.models import QueryJobRow


class _Batches:
    """A stored result as the ``ArrowStream``-like object ``formats.write_file`` consumes."""

    def __init__(self, row: QueryJobRow, path: Path, *, times: bool = True) -> None:
        self.row, self.path, self.times = row, path, times
        self.schema = schema_of(row.output_format, path, stored_columns(row), times=times)
        self.columns = columns_of(row, self.schema)
        self.row_count = 0
        self.truncated = bool(row.truncated)
        self.tables: list[Any] = []

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        for batch in batches(self.row.output_format, self.path, columns=stored_columns(self.row), times=self.times):
            self.row_count += batch.num_rows
            yield batch


def schema_of(fmt: str, path: Path, columns: list[dict[str, Any]] | None = None, *, times: bool = True) -> pa.Schema:
    if fmt == "parquet":
        return pq.ParquetFile(path).schema_arrow
    if fmt == "arrow":
        with ipc.open_stream(path) as reader:
            return reader.schema
    first = next(batches(fmt, path, columns=columns, times=times), None)
    return first.schema if first is not None else pa.schema([])


def batches(fmt: str, path: Path, *, skip: int = 0, columns: list[dict[str, Any]] | None = None,
            times: bool = True) -> Iterator[pa.RecordBatch]:
    """Record batches of a stored result; with ``skip``, Parquet row groups before it are not read.
    ``columns`` (the result's DuckDB columns, :func:`stored_columns`) types a CSV result; ``times``:
    its times and timestamps too (see :func:`csv_options`)."""
    if fmt == "parquet":
        f = pq.ParquetFile(path)
        start, groups = 0, []
        for i in range(f.num_row_groups):
            n = f.metadata.row_group(i).num_rows
            if start + n > skip:
                groups.append(i)
            start += n
        if groups:
            yield from f.iter_batches(row_groups=groups, batch_size=formats.ROW_GROUP_ROWS)
        return
    if fmt == "arrow":
        with ipc.open_stream(path) as reader:
            yield from reader
        return
    if fmt == "csv":
        with pacsv.open_csv(path, convert_options=csv_options(columns, times=times)) as reader:
            yield from reader
        return
    body = json.loads(path.read_bytes())
    names = [c["name"] for c in body.get("columns") or []]
    cols: list[list[Any]] = [list(c) for c in zip(*body.get("rows") or [], strict=True)] or [[] for _ in names]
    yield pa.RecordBatch.from_arrays([pa.array(c, type=pa.string() if not c else None) for c in cols], names=names)


def _first_row_of_groups(fmt: str, path: Path, skip: int) -> int:
    """The offset of the first row ``batches(…, skip=skip)`` yields (Parquet skips row groups)."""
    if fmt != "parquet":
        return 0
    meta = pq.ParquetFile(path).metadata
    start = 0
    for i in range(meta.num_row_groups):
        n = meta.row_group(i).num_rows
        if start + n > skip:
            return start
        start += n
    return start


def stored_columns(row: QueryJobRow) -> list[dict[str, Any]] | None:
    """The result's columns with their DuckDB types, as the job recorded them (None if it did not)."""
    stored = (row.provenance or {}).get("columns")
    return list(stored) if stored else None


_CSV_TYPES = {
    "BOOLEAN": pa.bool_(), "TINYINT": pa.int64(), "SMALLINT": pa.int64(), "INTEGER": pa.int64(), "BIGINT": pa.int64(),
    "UTINYINT": pa.uint64(), "USMALLINT": pa.uint64(), "UINTEGER": pa.uint64(), "UBIGINT": pa.uint64(),
    "FLOAT": pa.float64(), "DOUBLE": pa.float64(), "DATE": pa.date32(),
    # CSV writes these with microseconds and a numeric offset ("2024-03-31 01:30:00.000000+0000");
    # read back as text, a page said so while the inline answer says "2024-03-31T01:30:00Z".
    "TIME": pa.time64("us"), "TIMESTAMP": pa.timestamp("us"), "TIMESTAMP WITH TIME ZONE": pa.timestamp("us", tz="UTC"),
}
_CSV_TIMES = ("DATE", "TIME", "TIMESTAMP", "TIMESTAMP WITH TIME ZONE")
_DECIMAL = re.compile(r"^DECIMAL\((\d+),\s*(\d+)\)$")


def _csv_type(duck_type: str, *, times: bool = True) -> pa.DataType:
    """The Arrow type a CSV result's column is read as: its DuckDB type where CSV's text of it reads
    back to the same value, so a page or a conversion spells it as the inline answer does; else
    text (blobs as base64, JSON, intervals, ...), kept as written."""
    base = duck_type.strip().upper()
    if m := _DECIMAL.match(base):
        return pa.decimal128(int(m.group(1)), int(m.group(2)))
    if not times and base in _CSV_TIMES:
        return pa.string()
    return _CSV_TYPES.get(base, pa.string())


def csv_options(columns: list[dict[str, Any]] | None, *, times: bool = True) -> pacsv.ConvertOptions:
    """How a stored CSV result is read back. Inferring types from the text read ``00123`` as the
    number 123, ``nan`` or ``true`` in a text column as a float or a boolean, and an empty string
    as whatever the column held: a page or a conversion then served values the query never
    returned. The result's own column types decide instead, and only an empty unquoted field is
    NULL (the writer's spelling: an empty string is written ``""``).

    Without ``times``, dates, times and timestamps stay text: a value CSV could not write as one
    (an infinite or out-of-range date or timestamp, written ``<value out of range: …>``) cannot be
    read as one, and the file is then read as written (:func:`page`, :func:`convert`); a page of
    such a file used to fail with an internal error."""
    types = {str(c.get("name")): _csv_type(str(c.get("type", "")), times=times) for c in columns or []}
    if columns and len(types) != len(columns):  # duplicate names: no per-name types, all text
        types = dict.fromkeys(types, pa.string())
    return formats.csv_read_options(types)


def columns_of(row: QueryJobRow, schema: pa.Schema) -> list[dict[str, str]]:
    stored = stored_columns(row)
    if stored and len(stored) == len(schema):
        return stored
    return [{"name": f.name, "type": str(f.type)} for f in schema]


def page(row: QueryJobRow, path: Path, *, cursor: str | None, limit: int) -> dict[str, Any]:
    """One page (``schemas.RowsPage`` without ``provenance``). Blocking: run it on a worker thread."""
    offset = decode_cursor(cursor)
    fmt = row.output_format
    total = int(row.row_count or 0)
    if fmt == "json":  # a detached JSON query's answer, kept whole
        body = json.loads(path.read_bytes())
        kept = (body.get("rows") or [])[offset: offset + limit]
        end = offset + len(kept)
        more = end < total
        return {"job_id": row.id, "columns": body.get("columns") or [], "rows": kept, "row_count": len(kept),
                "offset": offset, "next_cursor": encode_cursor(end) if more else None,
                "next_url": rows_url(row.id, end, limit) if more else None, "total_rows": total}
    stored = stored_columns(row)
    try:
        schema, rows = _rows_at(fmt, path, stored, offset, limit, times=True)
    except pa.ArrowInvalid:  # a time CSV wrote unreadably (``csv_options``): the page reads it as written
        if fmt != "csv":
            raise
        schema, rows = _rows_at(fmt, path, stored, offset, limit, times=False)
    end = offset + len(rows)
    more = end < total
    columns = columns_of(row, schema)
    rows = formats.exact_rows(rows, formats.exact_columns(c.get("type", "") for c in columns))
    return {
        "job_id": row.id, "columns": columns, "rows": rows, "row_count": len(rows), "offset": offset,
        "next_cursor": encode_cursor(end) if more else None,
        "next_url": rows_url(row.id, end, limit) if more else None, "total_rows": total,
    }


def _rows_at(fmt: str, path: Path, stored: list[dict[str, Any]] | None, offset: int, limit: int, *,
             times: bool) -> tuple[pa.Schema, list[list[Any]]]:
    """The schema and the ``limit`` rows from ``offset`` of a stored result file."""
    at = _first_row_of_groups(fmt, path, offset)
    taken: list[pa.RecordBatch] = []
    want = limit
    schema = schema_of(fmt, path, stored, times=times)
    for batch in batches(fmt, path, skip=offset, columns=stored, times=times):
        if want <= 0:
            break
        if at + batch.num_rows <= offset:
            at += batch.num_rows
            continue
        start = max(0, offset - at)
        piece = batch.slice(start, want)
        taken.append(piece)
        want -= piece.num_rows
        at += batch.num_rows
    rows: list[list[Any]] = []
    for piece in taken:
        cols = [c.to_pylist() for c in piece.columns]
        rows.extend(list(r) for r in zip(*cols, strict=True))
    return schema, rows


def conversion_path(row: QueryJobRow, path: Path, fmt: str) -> Path:
    """Where ``row``'s result (``path``) is in ``fmt``: the file itself, or its conversion beside it
    (written by :func:`convert` the first time it is asked for)."""
    return path if fmt == row.output_format else path.with_name(f"{row.id}.as.{formats.EXTENSIONS[fmt]}")


def convert(row: QueryJobRow, path: Path, fmt: str, target: Path, *, max_bytes: int,
            metadata: dict[str, str] | None = None) -> int:
    """Write ``row``'s result (``path``) in ``fmt`` to ``target``; return its bytes. Blocking."""
    head = {"job_id": row.id, "status": row.status, "sql_hash": row.sql_hash}

    def write(times: bool) -> int:
        return formats.write_file(_Batches(row, path, times=times), fmt, target, max_bytes=max_bytes, json_head=head,
                                  metadata=(lambda: metadata) if metadata else None)

    try:
        return write(times=True)
    except (pa.ArrowInvalid, BadRequest) as e:  # write_file reports what it could not read as BadRequest
        unreadable = isinstance(e, pa.ArrowInvalid) or isinstance(e.__cause__, pa.ArrowInvalid)
        if row.output_format != "csv" or not unreadable:
            raise
        return write(times=False)  # a time CSV wrote unreadably (``csv_options``): converted as written
