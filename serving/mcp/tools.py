"""The MCP tools: what each is for, what it costs and what it returns, in words for a model.

Each tool calls the API's own routes as the caller (``dispatch.RouteCaller``), so every
rule, limit and audit row is the REST one; a refusal comes back as a tool error naming
the HTTP status, the same ``rule`` and the message. Answers are rendered by ``render``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from mcp.server.mcpserver.exceptions import ToolError
from pydantic import Field

from serving.lib.continuation import encode_cursor
from serving.mcp import render
from serving.mcp.dispatch import Answer, BadSegment, RouteCaller, segment
from serving.tables.platform import LIVE_VERSION
from shared.settings import McpSettings

Routes = Callable[[], Awaitable[RouteCaller]]
TABLES = "/api/v1/data/tables"
QUERIES = "/api/v1/queries"
TEXT_TYPES = ("text/", "application/json", "application/x-ndjson", "application/csv", "application/xml")
TERMINAL_SYNC = ("succeeded", "failed", "canceled")
POLL_S = 1.0


def _seg(value: str, what: str) -> str:
    """``value`` as one segment of a route's path, else the tool's 400 (``dispatch.segment``)."""
    try:
        return segment(value, what)
    except BadSegment as e:
        raise ToolError(f"error 400 rule=invalid_name: {e}") from None


def refused(answer: Answer) -> ToolError:
    e = answer.error()
    details = f" details: {e['details']}" if e["details"] else ""
    return ToolError(f"error {e['status']} rule={e['rule'] or e['code']}: {e['message']}{details}")


def _ok(answer: Answer) -> Any:
    if not answer.ok:
        raise refused(answer)
    return answer.json()


def _rest_hint(job_id: str) -> str:
    return (f"call get_job with job_id={job_id} (and a cursor) to page through the full result, or "
            f"save_result_as_artifact with job_id={job_id} to keep it all as a file")


class Tools:
    """The tool functions; ``routes()`` gives the current request's caller of routes."""

    def __init__(self, routes: Routes, settings: McpSettings, *, json_max_rows: int) -> None:
        self.routes, self.settings, self.json_max_rows = routes, settings, json_max_rows

    @property
    def budget(self) -> int:
        return max(500, self.settings.answer_max_chars)

    # ------------------------------------------------------------------ catalog
    async def list_tables(self) -> str:
        """List every table you may read, with its freshness.

        Use it first, to learn what data exists. Cheap (no data is scanned). Returns one line per
        table: the name to write in SQL, row count, column count, freshness (fresh / stale /
        failing, with the reason and age), served version and schema_version. Call
        describe_table for a table's columns."""
        r = await self.routes()
        data = _ok(await r.call("GET", TABLES))
        lines = []
        for t in data.get("tables", []):
            f = t.get("freshness") or {}
            lines.append(f"- {t['table']}: {render.value(t.get('row_count'))} rows, {len(t.get('columns') or [])} columns,"
                         f" {f.get('status')} ({f.get('reason')}), served version {t.get('served_version')},"
                         f" schema_version {t.get('schema_version')}"
                         + (f" — {t['description']}" if t.get("description") else ""))
        body = f"{data.get('count', len(lines))} tables you may read:\n" + "\n".join(lines)
        reads = [{"table": t["key"], "version": t.get("served_version"), "synced_at": t.get("last_synced_at")}
                 for t in data.get("tables", [])]
        return render.fit(body, render.footer(tables=reads, shown=None, total=None, cut=None, rest=None), self.budget)

    async def describe_table(
        self, table: Annotated[str, Field(description="Table name as in SQL, e.g. demo.public.orders or orders")],
    ) -> str:
        """Describe one table: its columns (name, type, nullable, description), row count,
        freshness and 5 sample rows (the first rows of the served version).

        Use it before writing SQL against a table. Costs one small read of the table. Names
        are written as in SQL; a table you may not read answers like one that does not exist."""
        r = await self.routes()
        path = f"{TABLES}/{_seg(table, 'table')}"
        t = _ok(await r.call("GET", path))
        sample = await r.call("GET", f"{path}/sample", params={"method": "head", "size": 5})
        f = t.get("freshness") or {}
        head = [f"table: {t['table']}", f"description: {t.get('description') or '(none)'}",
                f"rows: {render.value(t.get('row_count'))}; bytes on disk: {render.value(t.get('bytes'))}",
                f"freshness: {f.get('status')} ({f.get('reason')})",
                f"served version: {t.get('served_version')}; schema_version: {t.get('schema_version')}",
                f"strategy: {t.get('strategy')}; partitioning: {t.get('partitioning') or 'none'}", "columns:"]
        head += [f"- {c['name']} {c['type']}{'' if c.get('nullable', True) else ' NOT NULL'}"
                 + (f": {c['description']}" if c.get("description") else "") for c in t.get("columns") or []]
        reads = [{"table": t["key"], "version": t.get("served_version"), "synced_at": t.get("last_synced_at")}]
        foot = render.footer(tables=reads, shown=None, total=None, cut=None, rest=None)
        if sample.ok:
            s = sample.json()
            room = self.budget - len(foot) - sum(len(x) + 1 for x in head) - 40
            text, _ = render.table(s.get("columns") or [], s.get("rows") or [], max(0, room))
            head += ["5 sample rows (head):", text]
        else:
            e = sample.error()
            head.append(f"sample rows: not available ({e['rule'] or e['code']}: {e['message']})")
        return render.fit("\n".join(head), foot, self.budget)

    # ------------------------------------------------------------------ queries
    async def query(
        self,
        sql: Annotated[str, Field(description="One read-only DuckDB SELECT (or WITH … SELECT) over your tables")],
        params: Annotated[list[Any] | dict[str, Any] | None, Field(
            description="Values bound to ? / $1 (a list) or $name (an object); never paste values into the SQL")] = None,
        max_rows: Annotated[int | None, Field(ge=1, description="Rows wanted at most (default: the server's JSON cap)")] = None,
        if_schema_version: Annotated[dict[str, str] | None, Field(
            description="{table: schema_version} you wrote the SQL against; the answer says if a schema changed")] = None,
    ) -> str:
        """Run read-only SQL (DuckDB dialect) over the tables you may read and get the rows as a
        compact table.

        Costs one query slot for as long as it runs (the server's time limit applies). The
        answer holds as many rows as fit the answer budget; when rows are cut, the footer says
        by what and gives a job id: page on with get_job, or keep everything with
        save_result_as_artifact. Aggregate in SQL where you can: it is cheaper than reading
        rows. Use ``params`` for values."""
        r = await self.routes()
        body: dict[str, Any] = {"query": sql, "params": params, "max_rows": max_rows}
        if if_schema_version:
            body["if_schema_version"] = if_schema_version
        answer = await r.call("POST", f"{QUERIES}/execute", body={k: v for k, v in body.items() if v is not None})
        data = _ok(answer)
        if answer.status == 202 or "rows" not in data:
            return self._job_text(data, "the query is still running")
        return await self._rows_text(r, data, sql=sql, params=params)

    async def _rows_text(self, r: RouteCaller, data: dict[str, Any], *, sql: str, params: Any) -> str:
        notes = [f"{d['table']}: schema changed since {d['expected']} (now {d['current']}); check your columns"
                 for d in data.get("schema_changes") or []]
        cont = data.get("continuation")
        rows = data.get("rows") or []
        total = data.get("row_count", len(rows))
        tables = data.get("tables") or []
        read = render.tables_read(tables)  # once: the probe footer and the answer's name the same ages
        probe = render.footer(tables=tables, shown=total, total=None, cut="x" * 120, rest="x" * 400, read=read)
        room = self.budget - len(probe) - sum(len(n) + 1 for n in notes)
        text, shown = render.table(data.get("columns") or [], rows, room)
        cut = rest = None
        if cont is not None:
            cut = f"the server's {cont['cut_by'].replace('_', ' ')} of {cont['limit']}"
            if shown < total:
                cut += f" and the answer budget of {self.budget} characters"
            rest = (_rest_hint(cont["job_id"]) if cont.get("rest_available")
                    else f"none: the hard cap of {cont['limit']} rows was reached; narrow the query or aggregate")
        elif shown < total:
            cut = f"the answer budget of {self.budget} characters"
            # The rest is the same query as a file, read at the versions the shown rows came from, so
            # its pages continue these rows even when a sync publishes a new version meanwhile (a query
            # that read Snowflake runs there again: it has no versions to keep).
            live = any(t.get("version") == LIVE_VERSION for t in tables)
            pins = {} if live else {t["table"]: t["version"] for t in tables if t.get("version")}
            job = await r.call("POST", f"{QUERIES}/execute",
                               body={k: v for k, v in {"query": sql, "params": params, "output_format": "parquet",
                                                       "wait_s": 0, "at_versions": pins or None}.items()
                                     if v is not None})
            rest = _rest_hint(job.json()["job_id"]) if job.ok else "run the query again with fewer columns or rows"
        foot = render.footer(tables=tables, shown=shown, total=total if cont is None else None, cut=cut, rest=rest,
                             read=read)
        return render.fit("\n".join([*notes, text]), foot, self.budget)

    def _job_text(self, job: dict[str, Any], what: str) -> str:
        err = job.get("error") or {}
        lines = [f"{what}: job {job.get('job_id')} is {job.get('status')}",
                 render.fields(job, ["progress", "elapsed_s", "row_count", "bytes", "truncated", "duration_ms",
                                     "created_at", "finished_at", "expires_at"])]
        if err:
            lines.append(f"error: rule={err.get('rule')}: {err.get('message')}")
        if job.get("status") in ("queued", "running"):
            lines.append(f"call get_job with job_id={job.get('job_id')} in a few seconds")
        foot = render.footer(tables=job.get("tables") or [], shown=None, total=None, cut=None, rest=None)
        return render.fit("\n".join(x for x in lines if x), foot, self.budget)

    async def get_job(
        self,
        job_id: Annotated[str, Field(description="A query job id, or a refresh job id together with its table")],
        cursor: Annotated[str | None, Field(description="Page cursor from a previous get_job answer (query jobs)")] = None,
        table: Annotated[str | None, Field(description="For a refresh job: the table it refreshes")] = None,
    ) -> str:
        """Status of a job, and for a finished query job one page of its rows.

        Query jobs (from query, or a continuation): status, rows, bytes, and when finished the
        next page of rows with a cursor for the page after. Refresh jobs (from refresh_table):
        pass ``table`` too. Cheap: it reads the stored result, it never runs the query again."""
        r = await self.routes()
        if table:
            state = _ok(await r.call("GET", f"{TABLES}/{_seg(table, 'table')}/refresh/{_seg(job_id, 'job id')}"))
            return self._refresh_text(state, waited=None)
        job = _ok(await r.call("GET", f"{QUERIES}/jobs/{_seg(job_id, 'job id')}"))
        if job.get("status") != "succeeded":
            return self._job_text(job, "query job")
        page = _ok(await r.call("GET", f"{QUERIES}/jobs/{_seg(job_id, 'job id')}/rows",
                                params={"cursor": cursor, "limit": self.json_max_rows}))
        rows = page.get("rows") or []
        tables = job.get("tables") or []
        read = render.tables_read(tables)
        probe = render.footer(tables=tables, shown=len(rows), total=None, cut="x" * 120, rest="x" * 300, read=read)
        text, shown = render.table(page.get("columns") or [], rows, self.budget - len(probe) - 120)
        start = page.get("offset", 0)
        head = f"job {job_id}: rows {start + 1}–{start + shown} of {page.get('total_rows')}"
        if shown < len(rows):
            nxt = f"call get_job with job_id={job_id} and cursor={encode_cursor(start + shown)}"
            cut = f"the answer budget of {self.budget} characters"
        elif page.get("next_cursor"):
            nxt, cut = f"call get_job with job_id={job_id} and cursor={page['next_cursor']}", "the page size"
        else:
            nxt, cut = None, None
        foot = render.footer(tables=tables, shown=shown, total=None, cut=cut, rest=nxt, read=read)
        return render.fit(f"{head}\n{text}", foot, self.budget)

    # ------------------------------------------------------------------ samples and profiles
    async def sample(  # noqa: PLR0917 - a tool's arguments come by name from the MCP call
        self,
        table: Annotated[str, Field(description="Table name as in SQL")],
        method: Annotated[str, Field(description="random (default), head, stratified (needs by) or recent")] = "random",
        size: Annotated[int, Field(ge=1, description="Rows (stratified: rows per value of by)")] = 20,
        seed: Annotated[int | None, Field(ge=0, description="Same seed, same rows on the same version")] = None,
        where: Annotated[str | None, Field(description="An SQL filter, e.g. amount > 100")] = None,
        by: Annotated[str | None, Field(description="stratified: column; recent: ordering column")] = None,
    ) -> str:
        """A sample of a table's rows, to see real values before writing SQL.

        Cheaper than a query over the whole table (random samples read row ids first). Returns
        the rows as a compact table with the served version they come from. A live table is
        sampled in Snowflake (it spends the swarm's Snowflake seconds; a repeat within minutes
        is answered from a cache)."""
        r = await self.routes()
        params = {"method": method, "size": size, "seed": seed, "where": where, "by": by}
        data = _ok(await r.call("GET", f"{TABLES}/{_seg(table, 'table')}/sample", params=params))
        rows = data.get("rows") or []
        reads = [{"table": data.get("table"), "version": data.get("served_version"), "synced_at": data.get("synced_at")}]
        read = render.tables_read(reads)
        probe = render.footer(tables=reads, shown=len(rows), total=None, cut="x" * 80, rest="x" * 100, read=read)
        text, shown = render.table(data.get("columns") or [], rows, self.budget - len(probe) - 100)
        head = f"{data.get('method')} sample of {data.get('table')}" + (
            f" (seed {data['seed']})" if data.get("seed") is not None else "")
        cut = f"the answer budget of {self.budget} characters" if shown < len(rows) else None
        foot = render.footer(tables=reads, shown=shown, total=len(rows), cut=cut,
                             rest="ask for a smaller size, or fewer columns with query" if cut else None, read=read)
        return render.fit(f"{head}\n{text}", foot, self.budget)

    async def profile(
        self,
        table: Annotated[str, Field(description="Table name as in SQL")],
        columns: Annotated[list[str] | None, Field(description="Only these columns (default: all)")] = None,
        sample: Annotated[int | None, Field(ge=1, description="Profile a sample of this many rows (faster)")] = None,
    ) -> str:
        """Per-column statistics of a table: type, nulls, distinct count, min/max, mean and
        quartiles (numbers), lengths (text) and top values.

        Scans the whole table unless ``sample`` is given (cached per served version, so a
        second call is cheap). Use it to understand value ranges before filtering. A live
        table is profiled in Snowflake, without top values, and cached for minutes."""
        r = await self.routes()
        params: dict[str, Any] = {"sample": sample}
        if columns:
            params["columns"] = ",".join(columns)
        data = _ok(await r.call("GET", f"{TABLES}/{_seg(table, 'table')}/profile", params=params))
        lines = [f"profile of {data.get('table')} ({render.value(data.get('row_count'))} rows"
                 + (f", sample of {data['sample_rows']}" if data.get("sample_rows") else "") + ")"]
        for c in data.get("columns") or []:
            stats = {k: v for k, v in c.items() if k not in ("name", "type", "histogram", "top_values") and v is not None}
            top = ", ".join(f"{render.value(t.get('value'))}×{t.get('count')}" for t in (c.get("top_values") or [])[:5])
            lines.append(f"- {c.get('name')} {c.get('type')}: "
                         + ", ".join(f"{k}={render.value(v)}" for k, v in stats.items())
                         + (f"; top: {top}" if top else ""))
        reads = [{"table": data.get("table"), "version": data.get("served_version"), "synced_at": data.get("synced_at")}]
        foot = render.footer(tables=reads, shown=None, total=None, cut=None, rest=None)
        return render.fit("\n".join(lines), foot, self.budget)

    # ------------------------------------------------------------------ refresh
    async def refresh_table(
        self,
        table: Annotated[str, Field(description="Table name as in SQL")],
        max_age_s: Annotated[int | None, Field(ge=0, description="Fresh enough if synced within this many seconds")] = None,
    ) -> str:
        """Ask for fresh data in a table: copies what changed in the source since the last sync.

        Slow and rate-limited (a sync run takes seconds to minutes; a few refreshes a minute per
        agent). Answers at once when the table is already fresh; otherwise waits a bounded time
        for the sync to finish and then returns the job to poll with get_job (job_id and table)."""
        r = await self.routes()
        body = {"max_age_s": max_age_s} if max_age_s is not None else None
        refresh = f"{TABLES}/{_seg(table, 'table')}/refresh"
        ans = _ok(await r.call("POST", refresh, body=body if body else {}))
        if not ans.get("job_id"):
            return self._refresh_text(ans, waited=None)
        status = f"{refresh}/{_seg(ans['job_id'], 'job id')}"
        deadline = time.monotonic() + max(0.0, self.settings.refresh_wait_s)
        state: dict[str, Any] = {}
        while time.monotonic() < deadline:
            state = _ok(await r.call("GET", status))
            if state.get("status") in TERMINAL_SYNC:
                break
            await asyncio.sleep(min(POLL_S, max(0.0, deadline - time.monotonic())))
        return self._refresh_text(ans | {"job": state, "table_asked": table}, waited=self.settings.refresh_wait_s)

    def _refresh_text(self, ans: dict[str, Any], *, waited: float | None) -> str:
        job = ans.get("job") or (ans if "status" in ans and "outcome" not in ans else {})
        lines = []
        if "outcome" in ans:
            lines.append(f"refresh of {ans.get('table')}: {ans['outcome']}")
            lines.append(render.fields(ans, ["synced_at", "age_s", "served_version", "partitions", "eta_s",
                                             "served_watermark", "source_watermark", "newer_rows", "note"]))
        if job:
            status = job.get("status")
            lines.append(f"job {job.get('job_id')}: {status}")
            lines.append(render.fields(job, ["rows", "errors", "started_at", "finished_at"]))
            if status not in TERMINAL_SYNC:
                table = ans.get("table_asked") or job.get("table")
                since = f"after waiting {waited:g} s " if waited else ""
                lines.append(f"still running {since}— call get_job with job_id={job.get('job_id')} and table={table}")
            elif status == "succeeded":
                lines.append("new data is served now; queries read it from their next call")
        foot = render.footer(tables=[], shown=None, total=None, cut=None, rest=None)
        return render.fit("\n".join(x for x in lines if x), foot, self.budget)

    # ------------------------------------------------------------------ artifacts
    async def save_result_as_artifact(
        self,
        job_id: Annotated[str, Field(description="A finished query job (from a query's footer or a continuation)")],
        name: Annotated[str | None, Field(description="File name, e.g. top_customers.parquet")] = None,
        format: Annotated[str, Field(description="parquet (default) or csv")] = "parquet",
        visibility: Annotated[str, Field(description="private, or swarm to share with your swarm")] = "swarm",
    ) -> str:
        """Keep a query job's full result as an artifact your swarm can read later (server-side;
        no rows pass through this conversation).

        Costs a copy of the result file. Returns the artifact's id, size and content URL; it
        records the SQL hash and the table versions the rows came from."""
        r = await self.routes()
        job = _ok(await r.call("GET", f"{QUERIES}/jobs/{_seg(job_id, 'job id')}"))  # a continuation's first fetch starts it
        if job.get("status") in ("queued", "running"):
            return self._job_text(job, "not saved yet: the query job has not finished")
        body = {k: v for k, v in {"name": name, "format": format, "visibility": visibility}.items() if v is not None}
        a = _ok(await r.call("POST", f"{QUERIES}/jobs/{_seg(job_id, 'job id')}/artifact", body=body))
        return self._artifact_text(a, "saved artifact")

    async def list_artifacts(
        self,
        tag: Annotated[str | None, Field(description="Only artifacts with this tag")] = None,
        limit: Annotated[int, Field(ge=1, le=200, description="At most this many")] = 50,
    ) -> str:
        """List the artifacts you may read: your own and those shared with your swarm.

        Cheap. One line each: id, name, type, size, owner, created, and the job and table
        versions it was saved from. Read one with read_artifact."""
        r = await self.routes()
        data = _ok(await r.call("GET", "/api/v1/artifacts", params={"tag": tag, "limit": limit}))
        lines = [f"{data.get('count', 0)} artifacts:"]
        for a in data.get("items") or []:
            src = f", from job {a['source_job_id']}" if a.get("source_job_id") else ""
            lines.append(f"- {a['id']}: {a['name']} ({a['content_type']}, {a['size']} bytes, {a['visibility']},"
                         f" by {a.get('owner_name')}, created {a['created_at']}{src})")
        foot = render.footer(tables=[], shown=None, total=None, cut=None, rest=None)
        return render.fit("\n".join(lines), foot, self.budget)

    async def read_artifact(self, artifact_id: Annotated[str, Field(description="An artifact id from list_artifacts")]) -> str:
        """Read an artifact: its metadata, and for text (CSV, JSON, Markdown, plain text) its
        content inline up to the answer budget.

        Binary files (Parquet, images) are described, not shown: query them or download the
        content URL over HTTP."""
        r = await self.routes()
        a = _ok(await r.call("GET", f"/api/v1/artifacts/{_seg(artifact_id, 'artifact id')}"))
        head = self._artifact_text(a, "artifact", footer=False)
        if not str(a.get("content_type", "")).startswith(TEXT_TYPES):
            return render.fit(head + "\n(binary content: not shown)", render.footer(
                tables=a.get("served_versions") or [], shown=None, total=None, cut=None, rest=None), self.budget)
        room = max(0, self.budget - len(head) - 400)
        content = await r.call("GET", f"/api/v1/artifacts/{_seg(artifact_id, 'artifact id')}/content", max_body=room)
        if not content.ok:
            raise refused(content)
        text = content.body.decode("utf-8", errors="replace")
        cut = f"the answer budget of {self.budget} characters" if content.cut or len(text) > room else None
        foot = render.footer(tables=a.get("served_versions") or [], shown=None, total=None, cut=cut,
                             rest=f"download {a.get('content_url')} (Range requests work)" if cut else None)
        return render.fit(f"{head}\ncontent:\n{text[:room]}", foot, self.budget)

    def _artifact_text(self, a: dict[str, Any], what: str, *, footer: bool = True) -> str:
        text = f"{what} {a.get('id')}\n" + render.fields(a, ["name", "content_type", "size", "sha256", "visibility",
                                                              "owner_name", "created_at", "expires_at", "source_job_id",
                                                              "sql_hash", "content_url"])
        if not footer:
            return text
        return render.fit(text, render.footer(tables=a.get("served_versions") or [], shown=None, total=None, cut=None,
                                              rest=None), self.budget)


TOOL_NAMES = ("list_tables", "describe_table", "query", "sample", "profile", "refresh_table", "get_job",
              "save_result_as_artifact", "list_artifacts", "read_artifact")
