"""Routes of the sampling feature: a sample of a table, and its profile.

Both are agent work like a query: each holds one of the agent's concurrent slots
(``AGENT_MAX_CONCURRENT_QUERIES``, shared with queries) and runs on a worker thread under
its time limit (``Limiter.run_in_slot``): 429 past the slots, 408 past the time. A
sample or a computed profile of a served table also waits for one of the process's places
for heavy work (``serving/lib/admission.py``) within that limit; live tables run in
Snowflake and take none.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import anyio.to_thread
import msgspec
from litestar import Request, Response, get
from litestar.params import Parameter

from serving.lib import budgets, formats
from serving.lib.admission import Place
from serving.lib.audit import annotate
from serving.lib.caller import Caller
from serving.lib.errors import ApiError, BadRequest
from serving.lib.ingress import received_at
from serving.lib.limits import get_limiter
from serving.lib.services import Services
from serving.sampling import services as sampling
from serving.sampling.schemas import TableProfile
from serving.sampling.services import SampleRequest, get_profile_cache, pick_columns
from serving.tables.platform import LIVE_VERSION, platform_sql, report_live_budget
from serving.tables.served import resolve_table
from shared.identifiers import IdentifierError, split_reference
from shared.profile import ColumnSpec

TAGS = ["data"]
MAX_PROFILE_SAMPLE = 10_000_000


COLUMNS_HELP = 'Columns (repeat or comma-separate; a name holding a comma or spaces in double quotes: "a,b")'


def _split(values: list[str] | None) -> list[str] | None:
    """Column names, repeated or comma-separated; a name in double quotes is taken whole and exact
    (``"Amount, USD"``, ``" padded "``), as a registration's column list is read. Split on every
    comma, such a column could not be asked for, and ``"a,b"`` asked for the columns a and b."""
    if not values:
        return None
    try:
        parts = [part for raw in values for part in split_reference(raw, sep=",")]
    except IdentifierError as e:
        raise BadRequest(f"columns: {e}", rule="invalid_sample") from e
    out = [name for name, quoted in parts if quoted or name]
    return out or None


@get("/api/v1/data/tables/{table:str}/sample", operation_id="sampleTable", tags=TAGS, opt={"budget": budgets.READ})
async def sample_table(  # noqa: PLR0917 - query parameters are keyword arguments for Litestar
    request: Request[Any, Any, Any], caller: Caller, services: Services, table: str,
    method: Literal["head", "random", "stratified", "recent"] = "random",
    size: Annotated[int | None, Parameter(ge=1, description="Rows (stratified: rows per value). Default 100.")] = None,
    fraction: Annotated[float | None, Parameter(gt=0, le=1, description="random only: Bernoulli fraction")] = None,
    seed: Annotated[int | None, Parameter(ge=0, le=sampling.MAX_SEED)] = None,
    columns: Annotated[list[str] | None, Parameter(description=COLUMNS_HELP)] = None,
    where: Annotated[str | None, Parameter(max_length=4000, description="A filter, checked by the SQL guard")] = None,
    by: Annotated[str | None, Parameter(description="stratified: column; recent: ordering column")] = None,
    format: Annotated[str, Parameter(description="json | csv | parquet | arrow (any case)")] = "json",
) -> Response[Any]:
    """A sample of a table: ``head``, ``random`` (reservoir for ``size``, Bernoulli for
    ``fraction``; the same ``seed`` gives the same rows on the same version),
    ``stratified`` (``size`` rows per value of ``by``) or ``recent`` (latest rows by the
    table's cursor or partition column). The answer names the method, seed, served
    version and the table's row count; csv/parquet/arrow carry them in ``X-Sample-*`` headers.
    A live table is sampled in Snowflake (``SAMPLE``), version ``live``, and the same request
    is answered from a cache for ``LIVE_SAMPLE_TTL_S`` seconds (``Age`` says how old)."""
    fmt = formats.normalize_format(format)
    if size is not None and fraction is not None:
        raise BadRequest("give size or fraction, not both", rule="invalid_sample")
    q = services.settings.query
    cap = q.json_max_rows if fmt == "json" else q.max_rows
    if size is not None and size > cap and method != "stratified":
        raise BadRequest(f"size {size} is over the limit of {cap} rows for {fmt}", rule="too_many_rows",
                         details={"limit": cap})
    key = await anyio.to_thread.run_sync(resolve_table, caller, table, services)
    req = SampleRequest(method=method, size=size if size is not None else (None if fraction else 100),
                        fraction=fraction, seed=seed, columns=_split(columns), where=where, by=by, fmt=fmt)
    try:
        result = await get_limiter(services).run_in_slot(caller, lambda: sampling.run_sample(services, caller, key, req),
                                                         limit_s=q.timeout_s, since=received_at(request))
    except ApiError as e:
        if e.rule == "live_budget":
            await report_live_budget(request, platform_sql(services), caller)
        raise
    if result.manifest.version == LIVE_VERSION:
        await report_live_budget(request, platform_sql(services), caller)
    read = {"table": key, "version": result.manifest.version}
    if result.source_query_id:
        read["source_query_id"] = result.source_query_id
    annotate(request, sql_text=result.sql, tables=[read], rows=result.row_count, bytes=len(result.body))
    budgets.returned(request, caller, rows=result.row_count, nbytes=len(result.body))
    headers = {"X-Sample-Method": result.method, "X-Served-Version": result.manifest.version,
               "X-Table-Row-Count": str(result.manifest.row_count), "X-Row-Count": str(result.row_count),
               "X-Truncated": "true" if result.truncated else "false"}
    if result.seed is not None:
        headers["X-Sample-Seed"] = str(result.seed)
    if result.source_query_id:
        headers["X-Source-Query-Id"] = result.source_query_id
    if result.age_s is not None:  # a live table's sample answered from the cache (LIVE_SAMPLE_TTL_S)
        headers["Age"] = str(int(result.age_s))
    return Response(result.body, media_type=result.media_type, headers=headers)


@get("/api/v1/data/tables/{table:str}/profile", operation_id="profileTable", tags=TAGS)
async def profile_table(  # noqa: PLR0917 - query parameters are keyword arguments for Litestar
    request: Request[Any, Any, Any], caller: Caller, services: Services, table: str,
    columns: Annotated[list[str] | None, Parameter(description=COLUMNS_HELP)] = None,
    sample: Annotated[int | None, Parameter(ge=1, le=MAX_PROFILE_SAMPLE,
                                            description="Profile a reservoir sample of this many rows")] = None,
    seed: Annotated[int | None, Parameter(ge=0, le=sampling.MAX_SEED)] = None,
    force_refresh: bool = False,
) -> TableProfile:
    """Per-column profile of the served table: type, nulls, approximate distinct count,
    min/max, mean/stddev/quartiles (numbers), length range (text), top values with
    counts, histograms (numbers and dates). Full table unless ``sample`` is given;
    cached per served version (``cached`` says so), ``force_refresh`` recomputes. A live
    table is profiled in Snowflake with aggregates only (no histograms or top values) and
    cached ``LIVE_SAMPLE_TTL_S`` seconds."""
    key = await anyio.to_thread.run_sync(resolve_table, caller, table, services)
    engine = platform_sql(services)
    manifest = await anyio.to_thread.run_sync(sampling.current_manifest, engine, key, caller)
    wanted = _split(columns)
    names = pick_columns(manifest, wanted)
    types = {c.name: c.type for c in manifest.columns}
    specs = [ColumnSpec(n, types[n]) for n in names]
    cache = get_profile_cache(services)
    live = manifest.version == LIVE_VERSION
    try:
        limiter = get_limiter(services)

        def admit(deadline: float) -> Place:  # a profile computed here scans the table: heavy work
            return limiter.heavy_place(caller, deadline=deadline, limit_s=cache.timeout_s)

        profile, cached = await limiter.run_in_slot(caller, lambda: cache.get_or_compute(
            engine, caller, key, manifest, specs, all_columns=not wanted, sample_rows=sample,
            seed=(seed if seed is not None else 0) if sample else None, force=force_refresh,
            admit=None if live else admit), limit_s=cache.timeout_s, since=received_at(request))
    except ApiError:
        if live:
            await report_live_budget(request, engine, caller)
        raise
    if live:
        await report_live_budget(request, engine, caller)
    annotate(request, tables=[{"table": key, "version": profile["served_version"]}], rows=len(profile["columns"]))
    return msgspec.convert(profile | {"cached": cached}, TableProfile)


ROUTES: list[Any] = [sample_table, profile_table]
