"""Result formats: inline JSON bodies and result files written batch by batch.

Why batch by batch: a result can be a gigabyte. Arrow IPC stream, CSV and Parquet are
written from DuckDB's Arrow record batches (one DuckDB vector, 2,048 rows, each) as they
arrive, so memory holds one batch (Parquet: one row group of at most
``ROW_GROUP_ROWS`` rows or ``ROW_GROUP_BYTES``); the file is checked against
``QUERY_MAX_RESULT_BYTES`` after each batch, so an oversized result is refused at the
first batch past the limit. JSON also has a row cap (``QUERY_JSON_MAX_ROWS``), since a
JSON document is parsed whole by clients; inline JSON rows are counted as they are
encoded (``QUERY_JSON_MAX_BYTES``, see the engine).
Files are written under a temporary name and renamed when complete, so a reader never
sees half a result.
"""

from __future__ import annotations

import datetime as dt
import decimal
import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from pyarrow import ipc

from serving.lib.errors import BadRequest, PayloadTooLarge

FORMATS = ("json", "csv", "parquet", "arrow")
MEDIA_TYPES = {
    "json": "application/json",
    "csv": "text/csv",
    "parquet": "application/vnd.apache.parquet",
    "arrow": "application/vnd.apache.arrow.stream",
}
EXTENSIONS = {"json": "json", "csv": "csv", "parquet": "parquet", "arrow": "arrows"}
ROW_GROUP_ROWS, ROW_GROUP_BYTES = 65_536, 64 << 20  # Parquet row groups are buffered up to either


def _enc_hook(value: Any) -> Any:
    if isinstance(value, dt.timedelta | decimal.Decimal | uuid.UUID):
        return str(value)
    if isinstance(value, set | frozenset):
        return list(value)
    return str(value)


_encoder = msgspec.json.Encoder(enc_hook=_enc_hook, decimal_format="string")


def _widen(value: Any) -> Any:
    """Integers beyond 64 bits (HUGEINT, UHUGEINT) become strings; msgspec refuses them."""
    if isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**64:
        return str(value)
    if isinstance(value, list | tuple):
        return [_widen(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _widen(v) for k, v in value.items()}
    return value


def encode_json(payload: Any) -> bytes:
    """msgspec JSON: datetimes ISO 8601, decimals and intervals as strings, NaN as null, blobs as base64."""
    try:
        return _encoder.encode(payload)
    except (OverflowError, msgspec.EncodeError, TypeError):
        return _encoder.encode(_widen(payload))


def normalize_format(value: str | None) -> str:
    fmt = (value or "json").strip().lower()
    if fmt in {"ipc", "arrow_ipc"}:
        fmt = "arrow"
    if fmt not in FORMATS:
        raise BadRequest(f"output_format must be one of {', '.join(FORMATS)} (any case); got {value!r}",
                         rule="invalid_format")
    return fmt


def check_size(written: int, max_bytes: int) -> None:
    """413 ``result_too_large`` once a result passes ``QUERY_MAX_RESULT_BYTES``."""
    if written > max_bytes:
        raise PayloadTooLarge(f"the result is larger than {max_bytes} bytes; select fewer rows or columns",
                              rule="result_too_large", details={"max_bytes": max_bytes})


class _Limit:
    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes

    def check(self, written: int) -> None:
        check_size(written, self.max_bytes)


def write_file(stream: Any, fmt: str, path: Path, *, max_bytes: int, json_head: dict[str, Any] | None = None,
               metadata: Callable[[], dict[str, str]] | None = None) -> int:
    """Write ``stream`` (an ``engine.ArrowStream``) to ``path`` in ``fmt``; return the bytes written.

    ``metadata`` (Parquet only) is called once every batch is written (so it may report the
    truncation) and its pairs go into the file's key-value metadata.

    On any failure the partial file is removed and the error re-raised.
    """
    tmp = path.with_name(f".tmp-{path.name}")
    limit = _Limit(max_bytes)
    try:
        with open(tmp, "wb") as fh:
            if fmt == "arrow":
                with ipc.new_stream(fh, stream.schema) as writer:
                    for batch in stream:
                        writer.write_batch(batch)
                        limit.check(fh.tell())
            elif fmt == "csv":
                with pacsv.CSVWriter(fh, stream.schema) as writer:
                    for batch in stream:
                        writer.write_batch(batch)
                        limit.check(fh.tell())
            elif fmt == "parquet":
                with pq.ParquetWriter(fh, stream.schema, compression="zstd") as writer:
                    group: list[pa.RecordBatch] = []
                    rows = size = 0
                    for batch in stream:
                        group.append(batch)
                        rows, size = rows + batch.num_rows, size + batch.nbytes
                        if rows >= ROW_GROUP_ROWS or size >= ROW_GROUP_BYTES:
                            writer.write_table(pa.Table.from_batches(group, schema=stream.schema))
                            group, rows, size = [], 0, 0
                            limit.check(fh.tell())
                    if group:
                        writer.write_table(pa.Table.from_batches(group, schema=stream.schema))
                    if metadata is not None:
                        writer.add_key_value_metadata(metadata())
            else:
                _write_json(fh, stream, json_head or {}, limit)
        size = tmp.stat().st_size
        limit.check(size)
        os.replace(tmp, path)
        return size
    except (pa.ArrowNotImplementedError, pa.ArrowInvalid, pa.ArrowTypeError) as e:
        raise BadRequest(f"a column type cannot be written as {fmt}: {e}; cast it (e.g. ::VARCHAR)",
                         rule="unsupported_type") from e
    finally:
        tmp.unlink(missing_ok=True)


def _write_json(fh: Any, stream: Any, head: dict[str, Any], limit: _Limit) -> None:
    """``{"columns": …, "rows": [[…], …], "row_count": …, "truncated": …, "tables": …}``, one batch at a time."""
    fh.write(b'{"columns":' + encode_json(stream.columns) + b',"rows":[')
    first = True
    for batch in stream:
        columns = [c.to_pylist() for c in batch.columns]
        rows = encode_json([list(r) for r in zip(*columns, strict=True)])[1:-1]
        if rows:
            fh.write(rows if first else b"," + rows)
            first = False
        limit.check(fh.tell())
    tail = dict(head, row_count=stream.row_count, truncated=stream.truncated, tables=[t.as_dict() for t in stream.tables])
    fh.write(b"]," + encode_json(tail)[1:])
