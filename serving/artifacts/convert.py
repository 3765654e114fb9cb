"""Exact conversion of a query result file to CSV or Parquet, column by column.

Why column by column: a result can hold any type DuckDB returns, and neither target
takes them all. CSV holds text only; Parquet has no union, no month-day-nanosecond
interval and no arbitrary-precision integer. Each column gets a rule, decided once
from the result's schema, that keeps every value exact:

- CSV: scalars as they are; BLOB, BIT and GEOMETRY (binary) as base64, the same as
  JSON results; BIGNUM as its decimal digits; INTERVAL as ``P<months>M<days>DT<seconds>S``
  (each part signed, so nothing is normalised away); dates and timestamps beyond what
  Arrow can print (``infinity``, year 294247) in DuckDB's own spelling; STRUCT, LIST,
  MAP, ARRAY, UNION and VARIANT as JSON text.
- Parquet: everything Parquet holds stays typed (nested types, HUGEINT as
  DECIMAL(38,0), BLOB); INTERVAL becomes a ``{months, days, nanoseconds}`` struct,
  BIGNUM its digits, UNION (and nested types holding one of those) JSON text.
- JSON and CSV results are read without loss first (``result_files.py``).

A value that still cannot be converted answers 400 ``type_not_convertible`` naming the
column, never a 500. Batches are streamed, so memory holds one batch.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from serving.artifacts.result_files import UnreadableColumn, read_result
from serving.lib.errors import BadRequest
from serving.lib.formats import encode_json

Convert = Callable[[pa.Array], pa.Array]
INTERVAL_STRUCT = pa.struct([("months", pa.int32()), ("days", pa.int32()), ("nanoseconds", pa.int64())])
_INT32_INF, _INT64_INF = 2**31 - 1, 2**63 - 1
_EPOCH = dt.date(1970, 1, 1)
_SAFE_DAYS = ((dt.date(1, 1, 1) - _EPOCH).days, (dt.date(9999, 12, 31) - _EPOCH).days)
_UNIT_PER_DAY = {"s": 86_400, "ms": 86_400_000, "us": 86_400_000_000, "ns": 86_400_000_000_000}


class NotConvertible(BadRequest):
    """A column whose values cannot be written exactly in the wanted format."""


def _refuse(name: str, type_: Any, fmt: str, why: str) -> NotConvertible:
    return NotConvertible(f"column {name!r} ({type_}) cannot be saved exactly as {fmt}: {why}; cast it in the "
                          "query (e.g. ::VARCHAR) or choose the other format", rule="type_not_convertible",
                          details={"column": name, "type": str(type_), "format": fmt})


# --- value renderers ---------------------------------------------------------------------


def bignum_digits(raw: bytes | None) -> str | None:
    """DuckDB's BIGNUM encoding (3-byte signed length header, big-endian magnitude; negatives
    bit-inverted) as decimal digits."""
    if raw is None:
        return None
    if len(raw) < 3:
        raise ValueError("truncated BIGNUM value")
    positive = bool(raw[0] & 0x80)
    data = raw[3:] if positive else bytes(~b & 0xFF for b in raw[3:])
    value = int.from_bytes(data, "big")
    return str(value if positive else -value)


def _civil(days: int) -> str:
    """Proleptic Gregorian date of ``days`` since 1970-01-01, for any year (Howard Hinnant's algorithm)."""
    z = days + 719_468
    era = z // 146_097
    doe = z - era * 146_097
    yoe = (doe - doe // 1460 + doe // 36_524 - doe // 146_096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = mp + 3 if mp < 10 else mp - 9
    year = yoe + era * 400 + (month <= 2)
    return f"{year:04d}-{month:02d}-{day:02d}" if year >= 0 else f"-{-year:04d}-{month:02d}-{day:02d}"


def _date_text(days: int | None) -> str | None:
    if days is None:
        return None
    if abs(days) == _INT32_INF:
        return "infinity" if days > 0 else "-infinity"
    return _civil(days)


def _timestamp_text(value: int | None, unit: str, tz: str | None) -> str | None:
    if value is None:
        return None
    if abs(value) == _INT64_INF:
        return "infinity" if value > 0 else "-infinity"
    per_day = _UNIT_PER_DAY[unit]
    days, rest = divmod(value, per_day)
    per_second = per_day // 86_400
    seconds, fraction = divmod(rest, per_second)
    hh, mm, ss = seconds // 3600, seconds // 60 % 60, seconds % 60
    digits = len(str(per_second)) - 1
    frac = f".{fraction:0{digits}d}" if digits else ""
    return f"{_civil(days)} {hh:02d}:{mm:02d}:{ss:02d}{frac}{'+00' if tz else ''}"


def _interval_text(v: Any) -> str | None:
    if v is None:
        return None
    seconds = decimal.Decimal(v.nanoseconds).scaleb(-9).normalize()
    return f"P{v.months}M{v.days}DT{seconds:f}S"


def _plain(value: Any) -> Any:
    """Nested values made JSON-ready: intervals in the same spelling as interval columns."""
    if isinstance(value, pa.MonthDayNano):
        return _interval_text(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _json_text(value: Any) -> str | None:
    return None if value is None else encode_json(_plain(value)).decode()


# --- column rules --------------------------------------------------------------------------


def _is_bignum(t: pa.DataType) -> bool:
    return isinstance(t, pa.BaseExtensionType) and getattr(t, "type_name", "") in ("bignum", "varint")


def _holds(t: pa.DataType, unsupported: Callable[[pa.DataType], bool]) -> bool:
    if unsupported(t):
        return True
    if isinstance(t, pa.BaseExtensionType):
        return _holds(t.storage_type, unsupported)
    return any(_holds(t.field(i).type, unsupported) for i in range(t.num_fields))


def _nested(t: pa.DataType) -> bool:
    return t.num_fields > 0 or pa.types.is_union(t)


def _per_value(render: Callable[[Any], str | None], storage: bool = False) -> Convert:
    def convert(arr: pa.Array) -> pa.Array:
        src = arr.storage if storage and isinstance(arr, pa.ExtensionArray) else arr
        return pa.array([render(v) for v in src.to_pylist()], type=pa.string())
    return convert


def _binary_text(arr: pa.Array) -> pa.Array:
    src = arr.storage if isinstance(arr, pa.ExtensionArray) else arr
    return pa.array([None if v is None else base64.b64encode(v).decode() for v in src.to_pylist()], type=pa.string())


def _temporal_text(arr: pa.Array) -> pa.Array:
    """Arrow's own text, except values it cannot print (it writes "<value out of range>")."""
    t = arr.type
    ints = arr.view(pa.int32() if pa.types.is_date32(t) else pa.int64())
    if pa.types.is_date32(t):
        lo, hi = _SAFE_DAYS
    else:
        per_day = _UNIT_PER_DAY[t.unit]
        lo, hi = _SAFE_DAYS[0] * per_day, (_SAFE_DAYS[1] + 1) * per_day - 1
    mn, mx = pc.min_max(ints).values()
    if mn.as_py() is None or (lo <= mn.as_py() and mx.as_py() <= hi):
        return pc.cast(arr, pa.string())
    if pa.types.is_date32(t):
        return pa.array([_date_text(v) for v in ints.to_pylist()], type=pa.string())
    return pa.array([_timestamp_text(v, t.unit, t.tz) for v in ints.to_pylist()], type=pa.string())


def _interval_struct(arr: pa.Array) -> pa.Array:
    values = [None if v is None else {"months": v.months, "days": v.days, "nanoseconds": v.nanoseconds}
              for v in arr.to_pylist()]
    return pa.array(values, type=INTERVAL_STRUCT)


def _identity(arr: pa.Array) -> pa.Array:
    return arr


def column_rule(t: pa.DataType, fmt: str) -> tuple[pa.DataType, Convert]:
    """The output type of a column of Arrow type ``t`` in ``fmt``, and how to convert its values."""
    if _is_bignum(t):
        return pa.string(), _per_value(bignum_digits, storage=True)
    if pa.types.is_dictionary(t):
        out, inner = column_rule(t.value_type, fmt)
        return out, lambda arr: inner(arr.dictionary_decode())
    if fmt == "parquet":
        if pa.types.is_interval(t):
            return INTERVAL_STRUCT, _interval_struct
        if _holds(t, lambda x: pa.types.is_union(x) or pa.types.is_interval(x) or _is_bignum(x)):
            return pa.string(), _per_value(_json_text)
        return t, _identity
    # CSV
    if isinstance(t, pa.BaseExtensionType):
        out, inner = column_rule(t.storage_type, fmt)
        return out, lambda arr: inner(arr.storage if isinstance(arr, pa.ExtensionArray) else arr)
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t) \
            or pa.types.is_binary_view(t):
        return pa.string(), _binary_text
    if pa.types.is_interval(t):
        return pa.string(), _per_value(_interval_text)
    if pa.types.is_date32(t) or pa.types.is_timestamp(t):
        return pa.string(), _temporal_text
    if _nested(t):
        return pa.string(), _per_value(_json_text)
    return t, _identity


# --- the conversion --------------------------------------------------------------------------


def _open_writer(dest: Path, schema: pa.Schema, fmt: str) -> Any:
    try:
        if fmt == "parquet":
            return pq.ParquetWriter(dest, schema)
        return pacsv.CSVWriter(dest, schema)
    except (pa.ArrowNotImplementedError, pa.ArrowInvalid, pa.ArrowTypeError) as e:
        for field in schema:  # name the column the writer refused
            try:
                (pq.ParquetWriter if fmt == "parquet" else pacsv.CSVWriter)(pa.BufferOutputStream(),
                                                                           pa.schema([field])).close()
            except (pa.ArrowNotImplementedError, pa.ArrowInvalid, pa.ArrowTypeError):
                raise _refuse(field.name, field.type, fmt, str(e)[:200]) from e
        raise _refuse("?", "?", fmt, str(e)[:200]) from e


def convert(path: Path, fmt_in: str, fmt_out: str, dest: Path, *, metadata: dict[str, str] | None = None) -> Path:
    """``path`` itself when already in ``fmt_out``, else an exact converted copy at ``dest``
    (Parquet: with ``metadata`` in its key-value metadata)."""
    if fmt_in == fmt_out:
        return path
    try:
        schema, batches = read_result(path, fmt_in)
    except UnreadableColumn as e:
        raise _refuse(e.name, e.duck_type, fmt_out, str(e)) from e
    rules = [column_rule(field.type, fmt_out) for field in schema]
    out_schema = pa.schema([pa.field(f.name, out, nullable=True) for f, (out, _) in zip(schema, rules, strict=True)])
    with _open_writer(dest, out_schema, fmt_out) as writer:
        for batch in batches:
            arrays = []
            for field, (out, rule), col in zip(schema, rules, batch.columns, strict=True):
                try:
                    arrays.append(rule(col).cast(out))
                except (pa.ArrowException, ValueError, TypeError, OverflowError, msgspec.EncodeError) as e:
                    raise _refuse(field.name, field.type, fmt_out, str(e)[:200]) from e
            try:
                writer.write_batch(pa.record_batch(arrays, schema=out_schema))
            except (pa.ArrowNotImplementedError, pa.ArrowInvalid, pa.ArrowTypeError) as e:
                raise _refuse(_culprit(out_schema, arrays, fmt_out), "?", fmt_out, str(e)[:200]) from e
        if metadata and fmt_out == "parquet":
            writer.add_key_value_metadata(metadata)
    return dest


def _culprit(schema: pa.Schema, arrays: list[pa.Array], fmt: str) -> str:
    for field, arr in zip(schema, arrays, strict=True):
        one = pa.schema([field])
        try:
            sink = pa.BufferOutputStream()
            with (pq.ParquetWriter(sink, one) if fmt == "parquet" else pacsv.CSVWriter(sink, one)) as w:
                w.write_batch(pa.record_batch([arr], schema=one))
        except (pa.ArrowNotImplementedError, pa.ArrowInvalid, pa.ArrowTypeError):
            return field.name
    return "?"
