"""Sampling: server-built SQL over one granted table, run through the guarded engine.

Methods (``T`` is the table, ``W`` the agent's filter after ``validate_filter``):
- ``head``: ``SELECT … FROM T WHERE W LIMIT n`` — stops reading after n rows.
- ``random`` with ``size``: reservoir sampling, ``USING SAMPLE reservoir(n ROWS)
  REPEATABLE (seed)`` over the row ids of ``(SELECT rowid FROM T WHERE W)`` (sampling
  applies before WHERE otherwise), then the sampled rows by id; with ``fraction``:
  ``bernoulli(p PERCENT) REPEATABLE (seed)``. The same seed gives the same rows on the same served version.
- ``stratified``: n rows per value of ``by``, ranked by a seeded hash of the row.
- ``recent``: the n latest rows by the table's cursor column, or its time-partition
  column (from the registry), or ``by``.

The table is never loaded into Python: DuckDB returns only the sample. A sample is one
agent query: it holds one of the agent's slots (the controller), and all its DuckDB work
together stays within ``QUERY_TIMEOUT_S`` (one deadline shared by its statements); JSON
rows are encoded batch by batch within ``QUERY_JSON_MAX_BYTES``.

A live table (not copied) is sampled in Snowflake: ``live_plan`` writes SQL that transpiles
to Snowflake's ``SAMPLE``, the engine runs it there under the same grants, policy check,
slot, time limit and per-swarm Snowflake budget, and each answer is kept per request for
``LIVE_SAMPLE_TTL_S`` (``run_sample``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import decimal
import io
import secrets
import time
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from pyarrow import ipc

from serving.lib import formats
from serving.lib.caller import Caller
from serving.lib.errors import BadRequest
from serving.lib.limits import get_limiter
from serving.lib.results import ArrowBatches, ArrowStream, JsonRows
from serving.lib.services import Services
from serving.sampling.profile import ProfileCache
from serving.sampling.ttl import TtlCache
from serving.tables.describe import seen_column
from serving.tables.names import quote_ident, quote_table, stored_table
from serving.tables.platform import LIVE_VERSION, PlatformSql, filter_guard, platform_sql
from shared.identifiers import duck_fold, unused_name
from shared.served import Manifest

METHODS = ("head", "random", "stratified", "recent")
PROFILE_CACHE = "profile_cache"
LIVE_SAMPLES = "live_samples"
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
    source_query_id: str | None = None  # a live table's sample: Snowflake's query id
    age_s: float | None = None  # a live table's sample answered from the cache: its age

    def head(self) -> dict[str, Any]:
        out = {"table": self.table, "method": self.method, "sampling": self.sampling, "seed": self.seed,
               "size": self.size, "fraction": self.fraction, "where": self.where, "by": self.by,
               "served_version": self.manifest.version, "synced_at": self.manifest.published_at,
               "table_row_count": self.manifest.row_count}
        if self.source_query_id:
            out["source_query_id"] = self.source_query_id
        return out


def _bad(message: str, rule: str = "invalid_sample") -> BadRequest:
    return BadRequest(message, rule=rule)


def column_names(manifest: Manifest) -> list[str]:
    return [c.name for c in manifest.columns]


def pick_columns(manifest: Manifest, wanted: list[str] | None) -> list[str]:
    """The requested columns in the table's spelling (case-insensitive as DuckDB compares names:
    ASCII only, so ``É`` and ``é`` stay two columns), or 400 ``unknown_column``. Spaces around a
    name are part of it when a column has them (``"V "`` is not ``"V"``), else ignored."""
    names = column_names(manifest)
    if not wanted:
        return names
    by_lower = {duck_fold(n): n for n in names}
    out, unknown = [], []
    for w in wanted:
        name = by_lower.get(duck_fold(w)) or by_lower.get(duck_fold(w.strip()))
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
        # ``manifest`` is the caller's view: a column its policy excludes is not a candidate (and is
        # never named in a refusal: ``unknown columns: <it>`` told the name the catalog leaves out).
        if candidate and seen_column(manifest, candidate):
            return pick_columns(manifest, [candidate])[0]
    raise _bad("method=recent needs a cursor or time-partition column; this table has none, so name one with 'by'",
               rule="no_recency_column")


@dataclasses.dataclass(frozen=True)
class Plan:
    """The SQL of a sample and what the answer says about it.

    ``fast`` is an optional first attempt (SQL, params) that is exact whenever it returns
    ``size`` rows (see ``recent_cutoff``); otherwise ``sql`` runs.
    """

    sql: str
    sampling: str | None
    seed: int | None
    where: str | None
    by: str | None
    fast: tuple[str, list[Any]] | None = None


def remaining(deadline: float) -> float:
    """Seconds left before ``deadline`` (a ``time.monotonic()`` value), at least 1 ms."""
    return max(0.001, deadline - time.monotonic())


def recent_cutoff(services: Services, caller: Caller, key: str, manifest: Manifest, *, col: str, n: int | None,
                  select: str, where: str | None, order: str, deadline: float) -> tuple[str, list[Any]] | None:
    """``WHERE col >= cutoff`` for ``recent``, so zone maps skip all but the newest row groups.

    The cutoff is estimated from min/max (answered from column statistics, no scan) as
    the value about 4·n/N of the way down from the maximum. If at least n rows pass it,
    the n newest rows all do, so the answer is exact; otherwise the caller runs the
    unfiltered query. Numbers, dates and timestamps only.

    The cutoff is kept between min and max, values of the column's type, so it always casts
    to it: computed in Python's 28-digit decimals, the cutoff of a NUMBER(38,2) column whose
    maximum is 999…999.99 rounded up to 10^36, which DECIMAL(38,2) cannot hold, and the
    sample failed with a conversion error instead of answering.
    """
    total = manifest.row_count
    if not n or not total or 4 * n >= total / 2:
        return None
    ctype = next(c.type for c in manifest.columns if c.name == col)
    q = quote_ident(col)
    lo, hi = platform_sql(services).execute_platform_sql(caller, [key], f"SELECT min({q}), max({q}) FROM {quote_table(key)}",
                                                       max_rows=1, timeout_s=remaining(deadline)).rows[0]
    frac = 4 * n / total
    try:
        if isinstance(hi, decimal.Decimal):
            cutoff: Any = hi - (hi - lo) * decimal.Decimal(repr(frac))
        elif isinstance(hi, int | float | dt.datetime | dt.date) and not isinstance(hi, bool):
            cutoff = hi - (hi - lo) * frac
        else:
            return None
    except (TypeError, ValueError, OverflowError, decimal.InvalidOperation):
        return None
    if cutoff > hi:  # rounded past the maximum (a NaN cutoff compares false and is kept)
        cutoff = hi
    elif cutoff < lo:
        cutoff = lo
    extra = f" AND ({where})" if where else ""
    sql = f"SELECT {select} FROM {quote_table(key)} WHERE {q} >= CAST(? AS {ctype}){extra}{order}"
    return sql, [cutoff]


def _start(services: Services, caller: Caller, key: str, manifest: Manifest,
           req: SampleRequest) -> tuple[str, str, str | None, str]:
    """What every plan starts from, copied or live: the selected columns, the table, the filter as
    the guard regenerated it and its WHERE clause; ``fraction`` is refused outside ``random``."""
    cols = pick_columns(manifest, req.columns)
    select = ", ".join(quote_ident(c) for c in cols)
    where = filter_guard(services)(req.where, caller) if req.where and req.where.strip() else None
    if req.fraction is not None and req.method != "random":
        raise _bad("fraction applies to method=random only; use size")
    return select, quote_table(key), where, f" WHERE {where}" if where else ""


def build_sql(services: Services, caller: Caller, key: str, manifest: Manifest, req: SampleRequest, *,
              deadline: float) -> Plan:
    """The plan of ``req`` on ``key``: SQL, sampling kind, seed, regenerated filter, column used."""
    select, table, where, filt = _start(services, caller, key, manifest, req)
    n = req.size
    if req.method == "head":
        return Plan(f"SELECT {select} FROM {table}{filt} LIMIT {n}", None, None, where, None)
    if req.method == "recent":
        col = recency_column(services, key, manifest, req.by)
        order = f" ORDER BY {quote_ident(col)} DESC NULLS LAST LIMIT {n}"
        return Plan(f"SELECT {select} FROM {table}{filt}{order}", None, None, where, col,
                    recent_cutoff(services, caller, key, manifest, col=col, n=n, select=select, where=where,
                                  order=order, deadline=deadline))
    seed = req.seed if req.seed is not None else secrets.randbelow(MAX_SEED)
    if req.method == "random":
        inner = f"(SELECT {select} FROM {table}{filt})" if where else table
        if req.fraction is not None:
            pct = repr(float(req.fraction) * 100.0)
            sql = f"SELECT {select} FROM {inner} AS s USING SAMPLE bernoulli({pct} PERCENT) REPEATABLE ({seed})"
            return Plan(sql, "bernoulli", seed, where, None)
        # Reservoir over row ids only, then fetch those rows: the sampler reads one virtual
        # column instead of every selected one (measured 10M rows: ~20 ms against ~140 ms
        # sampling whole rows, and faster than an unseeded whole-row sample).
        # Views hide rowid, so this reads the stored table behind the view (trusted SQL runs on
        # an instance exposing this one table).
        names = column_names(manifest)
        if unused_name("rowid", names) != "rowid":  # a column shadows the row id: sample whole rows
            sql = f"SELECT {select} FROM {inner} AS s USING SAMPLE reservoir({n} ROWS) REPEATABLE ({seed})"
            return Plan(sql, "reservoir", seed, where, None)
        stored = stored_table(0)
        ids = f"(SELECT rowid FROM {stored}{filt}) AS s USING SAMPLE reservoir({n} ROWS) REPEATABLE ({seed})"
        sql = f"SELECT {select} FROM {stored} WHERE rowid IN (SELECT rowid FROM {ids}) ORDER BY rowid"
        return Plan(sql, "reservoir", seed, where, None)
    if not req.by:
        raise _bad("method=stratified needs 'by' (the column to stratify on)")
    by = pick_columns(manifest, [req.by])[0]
    qb = quote_ident(by)
    t = quote_ident(unused_name("t", column_names(manifest)))  # the row as a whole; no column may shadow it
    sql = (f"SELECT {select} FROM {table} AS {t}{filt} "
           f"QUALIFY row_number() OVER (PARTITION BY {qb} ORDER BY hash({t}, {seed})) <= {n} "
           f"ORDER BY {qb} NULLS LAST")
    return Plan(sql, "per_value", seed, where, by)


def live_plan(services: Services, caller: Caller, key: str, manifest: Manifest, req: SampleRequest) -> Plan:
    """The plan of ``req`` on a live table: DuckDB-dialect SQL that transpiles to what real
    Snowflake runs (the engine transpiles it), so the sampling happens in Snowflake.

    - ``random`` with ``size``: ``SAMPLE (n ROWS)`` (over the filtered rows when ``where`` is
      given). Snowflake takes no seed for a fixed number of rows, so ``seed`` is None: the
      rows differ per run (within ``LIVE_SAMPLE_TTL_S`` the same request gets the cached answer).
    - ``random`` with ``fraction``: ``SAMPLE BERNOULLI (p) SEED (seed)`` on the table itself,
      then the filter (Snowflake takes no seed on a subquery; each row is kept with
      probability p either way, so filtering after sampling draws the same distribution).
    - ``stratified``: ranked by ``HASH(<every column>, seed)`` (the row-as-a-whole hash of the
      copy has no Snowflake spelling). ``head`` and ``recent`` are the copy's plans.
    """
    select, table, where, filt = _start(services, caller, key, manifest, req)
    n = req.size
    if req.method == "head":
        return Plan(f"SELECT {select} FROM {table}{filt} LIMIT {n}", None, None, where, None)
    if req.method == "recent":
        col = recency_column(services, key, manifest, req.by)
        return Plan(f"SELECT {select} FROM {table}{filt} ORDER BY {quote_ident(col)} DESC NULLS LAST LIMIT {n}",
                    None, None, where, col)
    seed = req.seed if req.seed is not None else secrets.randbelow(MAX_SEED)
    if req.method == "random":
        if req.fraction is not None:
            pct = repr(float(req.fraction) * 100.0)
            sql = f"SELECT {select} FROM {table} AS s TABLESAMPLE bernoulli({pct} PERCENT) REPEATABLE ({seed}){filt}"
            return Plan(sql, "bernoulli", seed, where, None)
        inner = f"(SELECT {select} FROM {table}{filt})" if where else table
        return Plan(f"SELECT {select} FROM {inner} AS s USING SAMPLE reservoir({n} ROWS)", "rows", None, where, None)
    if not req.by:
        raise _bad("method=stratified needs 'by' (the column to stratify on)")
    by = pick_columns(manifest, [req.by])[0]
    qb = quote_ident(by)
    row = ", ".join(quote_ident(c) for c in column_names(manifest))
    sql = (f"SELECT {select} FROM {table}{filt} "
           f"QUALIFY row_number() OVER (PARTITION BY {qb} ORDER BY hash({row}, {seed})) <= {n} "
           f"ORDER BY {qb} NULLS LAST")
    return Plan(sql, "per_value", seed, where, by)


def arrow_bytes(table: pa.Table, fmt: str) -> bytes:
    sink = io.BytesIO()
    if fmt == "arrow":
        with ipc.new_stream(sink, table.schema) as w:
            w.write_table(table)
    elif fmt == "parquet":
        pq.write_table(table, sink, compression="zstd")
    else:  # binary values as base64, as query results write them
        pacsv.write_csv(pa.Table.from_batches([formats.csv_batch(b) for b in table.to_batches()],
                                              schema=formats.csv_schema(table.schema)), sink)
    return sink.getvalue()


@dataclasses.dataclass
class _Fetched:
    """The part of a ``QueryResult`` a sample needs, with an Arrow table as ``rows``."""

    columns: list[dict[str, str]]
    tables: list[Any]
    row_count: int
    truncated: bool
    rows: Any = None


def _json(engine: PlatformSql, caller: Caller, key: str, sql: str, *, params: list[Any] | None, cap: int,
          deadline: float) -> Any:
    return engine.execute_platform_sql(caller, [key], sql, params=params, max_rows=cap, timeout_s=remaining(deadline),
                                       output=JsonRows(engine.q.json_max_bytes))


def _arrow(engine: PlatformSql, caller: Caller, key: str, sql: str, *, params: list[Any] | None, cap: int,
           deadline: float) -> Any:
    def collect(stream: ArrowStream) -> pa.Table:
        batches, size = [], 0
        for batch in stream:
            size += batch.nbytes
            formats.check_size(size, engine.q.max_result_bytes)
            batches.append(batch)
        return pa.Table.from_batches(batches, schema=stream.schema)

    res = engine.execute_platform_sql(caller, [key], sql, params=params, max_rows=cap, timeout_s=remaining(deadline),
                                      output=ArrowBatches(collect))
    return _Fetched(res.columns, res.tables, res.row_count, res.truncated, rows=res.consumed)


def current_manifest(engine: PlatformSql, key: str, caller: Caller) -> Manifest:
    """What a sample or profile of ``key`` reads: a live table's description, else its served version."""
    return engine.live_manifest(key, caller) or engine.manifests([key], caller)[0]


def live_samples(services: Services) -> TtlCache[Sample]:
    cache = services.parts.get(LIVE_SAMPLES)
    if not isinstance(cache, TtlCache):
        cache = services.parts[LIVE_SAMPLES] = TtlCache(services.settings.sources.live_sample_ttl_s)
    return cache


def run_sample(services: Services, caller: Caller, key: str, req: SampleRequest) -> Sample:
    """Build, run and encode one sample. Blocking: call from a worker thread.

    A live table (``live_manifest``, which also checks the caller may read it in Snowflake) is
    sampled in Snowflake, and the answer is kept ``LIVE_SAMPLE_TTL_S`` per request (keyed by the
    filter as the guard regenerated it for this caller)."""
    engine = platform_sql(services)
    live = engine.live_manifest(key, caller)
    if live is None:
        return _draw(services, caller, key, req, engine=engine, manifest=engine.manifests([key], caller)[0])
    where = filter_guard(services)(req.where, caller) if req.where and req.where.strip() else None
    ckey = (key, req.method, req.size, req.fraction, req.seed, tuple(req.columns or ()), where, req.by, req.fmt)
    cache = live_samples(services)
    hit = cache.get(ckey)
    if hit is not None:
        return dataclasses.replace(hit[0], age_s=hit[1])
    sample = _draw(services, caller, key, req, engine=engine, manifest=live)
    cache.put(ckey, sample)
    return sample


def _draw(services: Services, caller: Caller, key: str, req: SampleRequest, *, engine: PlatformSql,
          manifest: Manifest) -> Sample:
    started = time.perf_counter()
    q = services.settings.query
    deadline = time.monotonic() + q.timeout_s
    live = manifest.version == LIVE_VERSION
    # A served table is sampled here, by this process's CPU: heavy work (``admission.py``).
    with (contextlib.nullcontext() if live else
          get_limiter(services).heavy_place(caller, deadline=deadline, limit_s=q.timeout_s)):
        return _drawn(services, caller, key, req, engine=engine, manifest=manifest, deadline=deadline,
                      started=started)


def _drawn(services: Services, caller: Caller, key: str, req: SampleRequest, *, engine: PlatformSql,
           manifest: Manifest, deadline: float, started: float) -> Sample:
    q = services.settings.query
    live = manifest.version == LIVE_VERSION
    plan = (live_plan(services, caller, key, manifest, req) if live
            else build_sql(services, caller, key, manifest, req, deadline=deadline))
    cap = q.json_max_rows if req.fmt == "json" else q.max_rows
    fetch = _json if req.fmt == "json" else _arrow
    res = None
    if plan.fast is not None:
        res = fetch(engine, caller, key, plan.fast[0], params=plan.fast[1], cap=cap, deadline=deadline)
        if res.row_count < (req.size or 0):
            res = None
    if res is None:
        res = fetch(engine, caller, key, plan.sql, params=None, cap=cap, deadline=deadline)
    version = res.tables[0].version
    used = manifest if manifest.version == version else engine.manifests([key], caller)[0]
    sample = Sample(table=key, manifest=used, method=req.method, sampling=plan.sampling, seed=plan.seed, size=req.size,
                    fraction=req.fraction, where=plan.where, by=plan.by, sql=plan.sql, columns=res.columns,
                    row_count=res.row_count, truncated=res.truncated, duration_ms=0.0, body=b"",
                    media_type=formats.MEDIA_TYPES[req.fmt], source_query_id=res.tables[0].source_query_id)
    if req.fmt == "json":
        sample.duration_ms = (time.perf_counter() - started) * 1000.0
        sample.body = formats.encode_json(sample.head() | {
            "columns": res.columns, "rows": res.rows, "row_count": res.row_count, "truncated": res.truncated,
            "duration_ms": round(sample.duration_ms, 3)})
        return sample
    try:
        sample.body = arrow_bytes(res.rows, req.fmt)
    except (pa.ArrowNotImplementedError, pa.ArrowInvalid, pa.ArrowTypeError) as e:  # e.g. lists or maps as CSV
        raise BadRequest(f"a column type cannot be written as {req.fmt}: {e}; choose other columns or json",
                         rule="unsupported_type") from e
    sample.duration_ms = (time.perf_counter() - started) * 1000.0
    return sample
