"""Sampling: server-built SQL over one granted table, run through the guarded engine.

Methods (``T`` is the table, ``W`` the agent's filter after ``validate_filter``):
- ``head``: ``SELECT … FROM T WHERE W LIMIT n`` — stops reading after n rows.
- ``random`` with ``size``: reservoir sampling, ``USING SAMPLE reservoir(n ROWS)
  REPEATABLE (seed)`` over ``(SELECT … FROM T WHERE W)`` (sampling applies before WHERE
  otherwise); with ``fraction``: ``bernoulli(p PERCENT) REPEATABLE (seed)``. The same
  seed gives the same rows on the same served version.
- ``stratified``: n rows per value of ``by``, ranked by a seeded hash of the row.
- ``recent``: the n latest rows by the table's cursor column, or its time-partition
  column (from the registry), or ``by``.

The table is never loaded into Python: DuckDB returns only the sample.
"""

from __future__ import annotations

import dataclasses
import io
import secrets
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from pyarrow import ipc

from serving.auth.caller import Caller
from serving.lib.errors import BadRequest
from serving.lib.services import Services
from serving.queries import formats
from serving.queries.guard import quote_ident, quote_table, validate_filter
from serving.queries.services import get_engine
from serving.sampling.profile import ProfileCache
from shared.served import Manifest

METHODS = ("head", "random", "stratified", "recent")
PROFILE_CACHE = "profile_cache"
MAX_SEED = 2**31 - 1


async def startup(services: Services) -> None:
    if not isinstance(services.parts.get(PROFILE_CACHE), ProfileCache):
        services.parts[PROFILE_CACHE] = ProfileCache(services.settings)


def get_profile_cache(services: Services) -> ProfileCache:
    return services.get(PROFILE_CACHE, ProfileCache)


@dataclasses.dataclass(frozen=True)
class SampleRequest:
    method: str
    size: int | None
    fraction: float | None
    seed: int | None
    columns: list[str] | None
    where: str | None
    by: str | None
    fmt: str


@dataclasses.dataclass
class Sample:
    table: str
    manifest: Manifest
    method: str
    sampling: str | None
    seed: int | None
    size: int | None
    fraction: float | None
    where: str | None
    by: str | None
    sql: str
    columns: list[dict[str, str]]
    row_count: int
    truncated: bool
    duration_ms: float
    body: bytes
    media_type: str

    def head(self) -> dict[str, Any]:
        return {"table": self.table, "method": self.method, "sampling": self.sampling, "seed": self.seed,
                "size": self.size, "fraction": self.fraction, "where": self.where, "by": self.by,
                "served_version": self.manifest.version, "synced_at": self.manifest.published_at,
                "table_row_count": self.manifest.row_count}


def _bad(message: str, rule: str = "invalid_sample") -> BadRequest:
    return BadRequest(message, rule=rule)


def column_names(manifest: Manifest) -> list[str]:
    return [c.name for c in manifest.columns]


def pick_columns(manifest: Manifest, wanted: list[str] | None) -> list[str]:
    """The requested columns in the table's spelling (case-insensitive), or 400 ``unknown_column``."""
    names = column_names(manifest)
    if not wanted:
        return names
    by_lower = {n.lower(): n for n in names}
    out, unknown = [], []
    for w in wanted:
        name = by_lower.get(w.strip().lower())
        if name is None:
            unknown.append(w)
        elif name not in out:
            out.append(name)
    if unknown:
        raise BadRequest(f"unknown columns: {', '.join(u[:100] for u in unknown[:20])}", rule="unknown_column",
                         details={"unknown": unknown[:20], "columns": names})
    return out


def recency_column(services: Services, key: str, manifest: Manifest, by: str | None) -> str:
    if by:
        return pick_columns(manifest, [by])[0]
    # Imported here: shared.registry pulls in the Snowflake connector (and pandas), seconds of start-up.
    from shared.registry import get_registered

    reg = get_registered(services.control_url, key)
    for candidate in ((reg.cursor_column if reg else None), (reg.partition_column if reg and reg.time_partitioned else None),
                      manifest.extra.get("cursor_column"), manifest.extra.get("partition_column")):
        if candidate:
            return pick_columns(manifest, [candidate])[0]
    raise _bad("method=recent needs a cursor or time-partition column; this table has none, so name one with 'by'",
               rule="no_recency_column")


def build_sql(services: Services, caller: Caller, key: str, manifest: Manifest,
              req: SampleRequest) -> tuple[str, str | None, int | None, str | None, str | None]:
    """(sql, sampling kind, seed, regenerated where, by column) for ``req`` on ``key``."""
    cols = pick_columns(manifest, req.columns)
    select = ", ".join(quote_ident(c) for c in cols)
    table = quote_table(key)
    where = validate_filter(req.where, caller) if req.where and req.where.strip() else None
    filt = f" WHERE {where}" if where else ""
    if req.fraction is not None and req.method != "random":
        raise _bad("fraction applies to method=random only; use size")
    n = req.size
    if req.method == "head":
        return f"SELECT {select} FROM {table}{filt} LIMIT {n}", None, None, where, None
    if req.method == "recent":
        col = recency_column(services, key, manifest, req.by)
        sql = f"SELECT {select} FROM {table}{filt} ORDER BY {quote_ident(col)} DESC NULLS LAST LIMIT {n}"
        return sql, None, None, where, col
    seed = req.seed if req.seed is not None else secrets.randbelow(MAX_SEED)
    if req.method == "random":
        inner = f"(SELECT {select} FROM {table}{filt})" if where else table
        if req.fraction is not None:
            pct = repr(float(req.fraction) * 100.0)
            sql = f"SELECT {select} FROM {inner} AS s USING SAMPLE bernoulli({pct} PERCENT) REPEATABLE ({seed})"
            return sql, "bernoulli", seed, where, None
        sql = f"SELECT {select} FROM {inner} AS s USING SAMPLE reservoir({n} ROWS) REPEATABLE ({seed})"
        return sql, "reservoir", seed, where, None
    if not req.by:
        raise _bad("method=stratified needs 'by' (the column to stratify on)")
    by = pick_columns(manifest, [req.by])[0]
    qb = quote_ident(by)
    sql = (f"SELECT {select} FROM {table} AS t{filt} "
           f"QUALIFY row_number() OVER (PARTITION BY {qb} ORDER BY hash(t, {seed})) <= {n} "
           f"ORDER BY {qb} NULLS LAST")
    return sql, "per_value", seed, where, by


def arrow_bytes(table: pa.Table, fmt: str) -> bytes:
    sink = io.BytesIO()
    if fmt == "arrow":
        with ipc.new_stream(sink, table.schema) as w:
            w.write_table(table)
    elif fmt == "parquet":
        pq.write_table(table, sink, compression="zstd")
    else:
        pacsv.write_csv(table, sink)
    return sink.getvalue()


def run_sample(services: Services, caller: Caller, key: str, req: SampleRequest) -> Sample:
    """Build, run and encode one sample. Blocking: call from a worker thread."""
    engine = get_engine(services)
    manifest = engine.manifests([key])[0]
    sql, sampling, seed, where, by = build_sql(services, caller, key, manifest, req)
    q = services.settings.query
    cap = q.json_max_rows if req.fmt == "json" else q.max_rows
    common: dict[str, Any] = {"table": key, "method": req.method, "sampling": sampling, "seed": seed, "size": req.size,
              "fraction": req.fraction, "where": where, "by": by, "sql": sql}
    if req.fmt == "json":
        res = engine.execute_trusted(caller, [key], sql, max_rows=cap)
        used = next((m for m in engine.manifests([key]) if m.version == res.tables[0].version), manifest)
        sample = Sample(manifest=used, columns=res.columns, row_count=res.row_count, truncated=res.truncated,
                        duration_ms=res.duration_ms, body=b"", media_type=formats.MEDIA_TYPES["json"], **common)
        payload = sample.head() | {"columns": res.columns, "rows": res.rows, "row_count": res.row_count,
                                   "truncated": res.truncated, "duration_ms": round(res.duration_ms, 3)}
        sample.body = formats.encode_json(payload)
        return sample
    with engine.stream_trusted(caller, [key], sql, max_rows=cap) as stream:
        table = pa.Table.from_batches(list(stream), schema=stream.schema)
        columns, version = stream.columns, stream.tables[0].version
        truncated, rows = stream.truncated, stream.row_count
    try:
        body = arrow_bytes(table, req.fmt)
    except pa.ArrowNotImplementedError as e:
        raise BadRequest(f"a column type cannot be written as {req.fmt}: {e}; choose other columns or json",
                         rule="unsupported_type") from e
    used = manifest if manifest.version == version else engine.manifests([key])[0]
    return Sample(manifest=used, columns=columns, row_count=rows, truncated=truncated, duration_ms=0.0, body=body,
                  media_type=formats.MEDIA_TYPES[req.fmt], **common)
