"""Table profiles: per-column statistics in two or three scans, whatever the number of columns.

Why shared: the API's profile endpoint and Dagster's materialization metadata show the
same profile. The SQL and the assembly are pure; *how* SQL runs is injected as a
``run(sql, params) -> rows`` callable (the API passes its guarded engine, Dagster a plain
DuckDB connection on the file it just wrote).

Scans (``source`` is a table reference or a parenthesised sample subquery):
1. one aggregate over every column: row count, non-null count, approximate distinct
   count (HyperLogLog), min/max, mean/stddev/approximate quartiles for numbers, length
   range for text — the work ``SUMMARIZE`` does, minus its quantiles of text;
2. one aggregate for the details: equal-width histograms of numbers and dates (bins
   from scan 1's min/max), exact value counts for low-cardinality columns (top-k and
   an exact distinct count fall out of them), and ``approx_top_k`` candidates for
   mid-cardinality columns;
3. only when there are candidates: their exact counts, in one more aggregate.
Columns whose values are nearly all distinct get no top-k (every count would be 1).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import math
import re
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

TOP_K = 10
BINS = 20
LOW_CARDINALITY = 10_000  # exact value counts up to this many (approximate) distinct values
UNIQUE_RATIO = 0.95  # approx distinct / non-null at or above this: no top-k
MAX_TEXT = 200  # longest value shown (min, max, top-k) before it is cut

Runner = Callable[[str, Sequence[Any] | None], list[tuple[Any, ...]]]

_INTS = {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT",
         "UHUGEINT", "INT", "INT1", "INT2", "INT4", "INT8", "LONG", "SHORT", "VARINT", "BIGNUM"}
_FLOATS = {"FLOAT", "REAL", "DOUBLE", "FLOAT4", "FLOAT8"}
_TEXT = {"VARCHAR", "TEXT", "STRING", "CHAR", "BPCHAR"}
_TEMPORAL = {"DATE", "TIMESTAMP", "DATETIME", "TIMESTAMP WITH TIME ZONE", "TIMESTAMPTZ", "TIMESTAMP_S", "TIMESTAMP_MS",
             "TIMESTAMP_NS", "TIMESTAMP_US"}
_ORDERED = {"TIME", "TIME WITH TIME ZONE", "TIMETZ", "INTERVAL", "UUID"}


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@dataclasses.dataclass(frozen=True)
class ColumnSpec:
    name: str
    type: str

    @property
    def base(self) -> str:
        return re.sub(r"\(.*\)$", "", self.type.strip().upper())

    @property
    def kind(self) -> str:
        """number | text | temporal | boolean | ordered (min/max only) | other (nested, blob, …)."""
        base = self.base
        if "[" in base or base.startswith(("STRUCT", "MAP", "UNION")):
            return "other"
        if base in _INTS or base in _FLOATS or base.startswith(("DECIMAL", "NUMERIC")):
            return "number"
        if base in _TEXT:
            return "text"
        if base in _TEMPORAL:
            return "temporal"
        if base in ("BOOLEAN", "BOOL", "LOGICAL"):
            return "boolean"
        if base in _ORDERED or base.startswith("ENUM"):
            return "ordered"
        return "other"

    @property
    def integer(self) -> bool:
        return self.base in _INTS


def plain(value: Any) -> Any:
    """A JSON-ready form: numbers as int/float (non-finite as strings), decimals as their digits,
    times ISO 8601, long text cut.

    A decimal is its fixed-point digits at its own scale (``"12345678901234567.89"``), as query
    answers spell it: as a float, the minimum, maximum and top values of a NUMBER(20,2) column
    lost their last digits, so two different values were shown as one, each with its own count."""
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, decimal.Decimal):
        return format(value, "f")
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, str):
        return value if len(value) <= MAX_TEXT else value[:MAX_TEXT] + "…"
    if isinstance(value, dt.timedelta | uuid.UUID):
        return str(value)
    return str(value)[:MAX_TEXT]


def _stats_exprs(c: ColumnSpec, *, portable: bool = False) -> list[tuple[str, str]]:
    q = quote_ident(c.name)
    out = [("non_null", f"count({q})")]
    if c.kind == "other":
        return [*out, ("approx_distinct", f"approx_count_distinct(CASE WHEN {q} IS NOT NULL THEN hash({q}) END)")]
    out.append(("approx_distinct", f"approx_count_distinct({q})"))
    if c.kind != "boolean":
        out += [("min", f"min({q})"), ("max", f"max({q})")]
    if c.kind == "number":
        out += [("mean", f"avg({q}::DOUBLE)"), ("stddev", f"stddev_samp({q}::DOUBLE)")]
        if portable:  # one scalar quantile each: what Snowflake's APPROX_PERCENTILE takes
            out += [(f"p{int(p * 100)}", f"approx_quantile({q}::DOUBLE, {p})") for p in (0.25, 0.5, 0.75)]
        else:
            out.append(("quartiles", f"approx_quantile({q}::DOUBLE, [0.25, 0.5, 0.75])"))
    elif c.kind == "text":
        out += [("min_length", f"min(length({q}))"), ("max_length", f"max(length({q}))")]
    elif c.kind == "temporal" and not portable:  # Snowflake has no infinite dates
        out += [("min_finite", f"isfinite(min({q}))"), ("max_finite", f"isfinite(max({q}))")]
    return out


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _finite(value: Any) -> bool:
    """Not NULL, NaN or infinite (numbers; dates and timestamps are told by SQL, ``_infinite``)."""
    if value is None:
        return False
    return not isinstance(value, float) or math.isfinite(value)


def _infinite(stats: dict[str, Any], end: str, value: Any) -> str | None:
    """``infinity`` or ``-infinity`` when the ``end`` (min or max) of a date or timestamp column is
    infinite, else None. DuckDB hands ±infinity to Python as ``date.max``/``datetime.max`` (and
    ``min``): the same objects as 9999-12-31, the "no end" date many tables hold, so only SQL's
    ``isfinite`` tells them apart. Judged from the objects, a column holding 9999-12-31 had no
    histogram, and one holding infinity showed it as 9999-12-31."""
    if stats.get(f"{end}_finite") is not False:
        return None
    low = value in (dt.date.min, dt.datetime.min) or (isinstance(value, dt.datetime)
                                                       and value.replace(tzinfo=None) == dt.datetime.min)
    return "-infinity" if low else "infinity"


def _bins(c: ColumnSpec, lo: Any, hi: Any, bins: int) -> tuple[float, float, int] | None:
    """(low, width, count) in the histogram's numeric domain (epoch seconds for dates), or None.

    Integers and dates get whole-unit bins (width a whole number of units, edges on
    values); other numbers and timestamps get ``bins`` equal bins from min to max.
    """
    if c.kind not in ("number", "temporal") or not (_finite(lo) and _finite(hi)):
        return None
    lo_n, hi_n = (_epoch(lo), _epoch(hi)) if c.kind == "temporal" else (float(lo), float(hi))
    if hi_n <= lo_n:
        return lo_n, 0.0, 1
    unit = 86400.0 if c.base == "DATE" else 1.0 if c.integer else 0.0
    if unit:
        span = round((hi_n - lo_n) / unit) + 1  # distinct unit values between min and max
        width = math.ceil(span / bins)
        return lo_n, width * unit, math.ceil(span / width)
    return lo_n, (hi_n - lo_n) / bins, bins


def _epoch(value: Any) -> float:
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return value.timestamp()
    if isinstance(value, dt.date):
        return float((value - dt.date(1970, 1, 1)).days * 86400)
    return float(value)


def _bin_expr(c: ColumnSpec, lo: float, width: float, n: int) -> str:
    q = quote_ident(c.name)
    x = f"epoch({q})" if c.kind == "temporal" else f"{q}::DOUBLE"
    if width == 0.0:
        return f"CASE WHEN {q} IS NOT NULL THEN 0 END"
    # greatest/least skip NULLs in DuckDB, so NULLs are kept out explicitly.
    return f"CASE WHEN {q} IS NOT NULL THEN least(greatest(floor(({x} - {lo!r}) / {width!r}), 0), {n - 1})::INTEGER END"


def _edge(c: ColumnSpec, value: float) -> Any:
    if c.kind == "temporal":
        try:
            moment = _EPOCH + dt.timedelta(seconds=value)
        except OverflowError:  # the last edge of a column ending near year 9999
            moment = dt.datetime.max.replace(tzinfo=dt.UTC)
        return moment.date().isoformat() if c.base == "DATE" and value % 86400 == 0 else moment.isoformat()
    return int(value) if c.integer and float(value).is_integer() else value


def _top(freq: dict[Any, int] | None, k: int) -> list[dict[str, Any]]:
    items = sorted((freq or {}).items(), key=lambda kv: (-kv[1], str(kv[0])))[:k]
    return [{"value": plain(v), "count": int(n)} for v, n in items]


def compute_profile(run: Runner, source: str, columns: Sequence[ColumnSpec], *, top_k: int = TOP_K,
                    bins: int = BINS, aggregates_only: bool = False) -> dict[str, Any]:
    """The profile of ``columns`` of ``source`` (a table reference or ``(SELECT …)``).

    ``aggregates_only``: the first scan alone, written with aggregates that transpile to
    Snowflake (scalar quantiles): what a table profiled in Snowflake gets. Its histograms and
    top values (DuckDB's ``histogram`` and ``approx_top_k``) are left out (None, with a note)."""
    started = time.perf_counter()
    exprs = [("", "count(*)")]
    slots: list[list[tuple[str, int]]] = []
    for c in columns:
        mine = []
        for name, expr in _stats_exprs(c, portable=aggregates_only):
            mine.append((name, len(exprs)))
            exprs.append((name, expr))
        slots.append(mine)
    row = run(f"SELECT {', '.join(e for _, e in exprs)} FROM {source}", None)[0]
    total = int(row[0])
    scans = 1
    out: list[dict[str, Any]] = []
    details: list[tuple[str, int, str]] = []  # (what, column index, expression)
    for i, (c, mine) in enumerate(zip(columns, slots, strict=True)):
        s = {name: row[j] for name, j in mine}
        non_null = int(s["non_null"])
        entry: dict[str, Any] = {
            "name": c.name, "type": c.type, "kind": c.kind, "null_count": total - non_null,
            "null_fraction": (total - non_null) / total if total else 0.0,
            "approx_distinct": int(s["approx_distinct"] or 0), "distinct_exact": False,
        }
        for key in ("min", "max", "mean", "stddev", "min_length", "max_length"):
            if key in s:
                entry[key] = plain(s[key])
        infinite = [_infinite(s, end, s.get(end)) for end in ("min", "max")]
        for end, spelled in zip(("min", "max"), infinite, strict=True):
            if spelled:
                entry[end] = spelled
        if "quartiles" in s:
            qs = s["quartiles"] or [None, None, None]
            entry["quantiles"] = {"p25": plain(qs[0]), "p50": plain(qs[1]), "p75": plain(qs[2])}
        elif "p50" in s:
            entry["quantiles"] = {k: plain(s[k]) for k in ("p25", "p50", "p75")}
        if aggregates_only:
            entry["histogram"], entry["top_k"] = None, None
            entry["top_k_note"] = "not computed: this profile ran in Snowflake with aggregates only"
            out.append(entry)
            continue
        spec = _bins(c, s.get("min"), s.get("max"), bins) if non_null and not any(infinite) else None
        if spec is not None:
            details.append(("histogram", i, f"histogram({_bin_expr(c, *spec)})"))
            entry["histogram"] = {"spec": spec}
        elif c.kind in ("number", "temporal"):
            entry["histogram"] = None
        entry["top_k"] = None
        if c.kind != "other" and non_null:
            q = quote_ident(c.name)
            if entry["approx_distinct"] <= LOW_CARDINALITY:
                details.append(("freq", i, f"histogram({q})"))
            elif entry["approx_distinct"] < UNIQUE_RATIO * non_null:
                details.append(("candidates", i, f"approx_top_k({q}, {int(top_k)})"))
            else:
                entry["top_k"], entry["top_k_note"] = [], "nearly every value is distinct"
        elif c.kind != "other":
            entry["top_k"] = []
        out.append(entry)
    candidates: list[tuple[int, list[Any]]] = []
    if details:
        scans += 1
        got = run(f"SELECT {', '.join(e for _, _, e in details)} FROM {source}", None)[0]
        for (what, i, _), value in zip(details, got, strict=True):
            entry, c = out[i], columns[i]
            if what == "histogram":
                lo, width, n = entry["histogram"]["spec"]
                counts = [0] * n
                for b, cnt in (value or {}).items():
                    counts[int(b)] += int(cnt)
                edges = [lo + width * k for k in range(n + 1)] if width else [lo, lo]
                entry["histogram"] = {"edges": [_edge(c, e) for e in edges], "counts": counts}
            elif what == "freq":
                freq = value or {}
                entry["approx_distinct"], entry["distinct_exact"] = len(freq), True
                if len(freq) > top_k and max(freq.values()) == 1:
                    entry["top_k"], entry["top_k_note"] = [], "every value is distinct"
                else:
                    entry["top_k"] = _top(freq, top_k)
            elif value:
                candidates.append((i, list(value)))
    if candidates:
        scans += 1
        params = [vals for _, vals in candidates]
        exprs3 = [f"histogram({quote_ident(columns[i].name)}) FILTER (WHERE list_contains(${n + 1}::{columns[i].type}[], "
                  f"{quote_ident(columns[i].name)}))" for n, (i, _) in enumerate(candidates)]
        got = run(f"SELECT {', '.join(exprs3)} FROM {source}", params)[0]
        for (i, _), freq in zip(candidates, got, strict=True):
            out[i]["top_k"] = _top(freq, top_k)
            out[i]["top_k_note"] = "values found by approx_top_k; their counts are exact"
    return {"row_count": total, "columns": out, "scans": scans,
            "duration_ms": round((time.perf_counter() - started) * 1000.0, 3)}


def describe(con: Any, source: str) -> list[ColumnSpec]:
    """Column names and DuckDB types of ``source`` on a plain DuckDB connection."""
    return [ColumnSpec(str(r[0]), str(r[1])) for r in con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()]


def connection_runner(con: Any) -> Runner:
    def run(sql: str, params: Sequence[Any] | None) -> list[tuple[Any, ...]]:
        return con.execute(sql, list(params)).fetchall() if params else con.execute(sql).fetchall()

    return run


def _cell(value: Any) -> str:
    if value is None:
        return ""
    text = f"{value:.6g}" if isinstance(value, float) else str(value)
    text = text.replace("|", "\\|").replace("\n", " ").replace("\r", " ")
    return text if len(text) <= 40 else text[:39] + "…"


def render_markdown(profile: dict[str, Any], *, title: str | None = None) -> str:
    """A Markdown table: one row per column (type, nulls, distinct, range, mean, top values)."""
    lines = [f"**{title}**" if title else "", f"{profile['row_count']:,} rows", "",
             "| column | type | nulls | distinct | min | max | mean | top values |",
             "|---|---|---:|---:|---|---|---:|---|"]
    for c in profile["columns"]:
        nulls = f"{c['null_count']:,} ({c['null_fraction']:.1%})"
        distinct = f"{'' if c['distinct_exact'] else '~'}{c['approx_distinct']:,}"
        lo, hi = c.get("min"), c.get("max")
        if c["kind"] == "text" and c.get("min_length") is not None:
            lo, hi = f"len {c['min_length']}", f"len {c['max_length']}"
        top = ", ".join(f"{_cell(t['value'])} ({t['count']:,})" for t in (c.get("top_k") or [])[:3])
        lines.append(f"| {_cell(c['name'])} | {_cell(c['type'])} | {nulls} | {distinct} | {_cell(lo)} | {_cell(hi)} "
                     f"| {_cell(c.get('mean'))} | {top} |")
    return "\n".join(line for line in lines if line is not None).strip() + "\n"


def profile_markdown(con: Any, table_sql: str, *, title: str | None = None) -> str:
    """The profile of ``table_sql`` (e.g. ``data`` or ``"main"."data"``) on ``con``, as Markdown.

    For Dagster materialization metadata: run it on the connection of the version just
    written, before publishing (``dg.MetadataValue.md(profile_markdown(con, "data"))``).
    """
    return render_markdown(compute_profile(connection_runner(con), table_sql, describe(con, table_sql)), title=title)
