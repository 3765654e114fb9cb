"""The asynchronous client: the same calls as ``Client``, as coroutines."""

from __future__ import annotations

import asyncio
import contextlib
import io
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import httpx

from agents_data_client import _core
from agents_data_client._core import ARTIFACTS, TABLES, Call, RetryPolicy
from agents_data_client.errors import ApiError
from agents_data_client.types import (
    Artifact,
    Continuation,
    Profile,
    QueryJob,
    QueryResult,
    Refresh,
    RowsPage,
    Sample,
    Table,
)


class AsyncClient(_core.ClientBase):
    """``AsyncClient(base_url, token)``: every call of :class:`Client`, as a coroutine (same errors, retries, ``rate_limits``)."""

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout: float = 120.0,
        retry: RetryPolicy | None = None,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        super().__init__(retry)
        self._http = _core.with_token(http or httpx.AsyncClient(base_url=base_url.rstrip("/"), timeout=timeout), token)

    async def close(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ------------------------------------------------------------------ transport
    @contextlib.asynccontextmanager
    async def _send(self, call: Call, *, stream: bool = False) -> AsyncIterator[httpx.Response]:
        attempt = 0
        while True:
            request = self._http.build_request(call.method, call.path, **call.kwargs())
            response = await self._http.send(request, stream=stream)
            try:
                if response.status_code >= 400:
                    await response.aread()
                    try:
                        _core.check(response)
                    except ApiError as error:
                        wait = self.retry.delay(attempt, error)
                        if wait is None:
                            raise
                        attempt += 1
                        await asyncio.sleep(wait)
                        continue
                self._note(response)
                yield response
                return
            finally:
                await response.aclose()

    async def _json(self, call: Call) -> Any:
        async with self._send(call) as r:
            return r.json() if r.content else None

    # ------------------------------------------------------------------ catalog
    async def whoami(self) -> dict[str, Any]:
        return dict(await self._json(Call("GET", "/api/v1/auth/whoami")))

    async def tables(self) -> list[Table]:
        """The tables this token may read, with columns, row counts and freshness."""
        return [Table.of(t) for t in (await self._json(Call("GET", TABLES)))["tables"]]

    async def table(self, table: str) -> Table:
        return Table.of(await self._json(Call("GET", _core.table_path(table))))

    # ------------------------------------------------------------------ queries
    async def query(
        self,
        sql: str,
        params: Any = None,
        *,
        max_rows: int | None = None,
        timeout_s: float | None = None,
        wait_s: float | None = None,
        min_freshness: float | None = None,
        job_timeout_s: float = 600.0,
        **options: Any,
    ) -> QueryResult:
        """Run SQL and answer its rows inline (JSON); a query still running after ``wait_s`` is waited for."""
        async with self._send(
            _core.query_call(
                sql, params, "json", max_rows=max_rows, timeout_s=timeout_s, wait_s=wait_s, min_freshness=min_freshness, **options
            )
        ) as r:
            answer = _core.query_answer(r.status_code, r.json())
        if isinstance(answer, QueryResult):
            return answer
        job = await self.wait(answer, timeout_s=job_timeout_s)
        async with self._send(_core.result_call(job)) as r:
            return QueryResult.of(r.json())

    async def dry_run(self, sql: str, params: Any = None, **options: Any) -> dict[str, Any]:
        """What a query would read and cost, without running it (the server's dry run answer)."""
        return dict(await self._json(_core.query_call(sql, params, "json", dry_run=True, **options)))

    async def submit(
        self,
        sql: str,
        params: Any = None,
        *,
        output_format: str = "parquet",
        wait_s: float = 0,
        max_rows: int | None = None,
        timeout_s: float | None = None,
        **options: Any,
    ) -> QueryJob:
        """Start a query as a job (by default without waiting); poll it with :meth:`wait`."""
        call = _core.query_call(sql, params, output_format, wait_s=wait_s, max_rows=max_rows, timeout_s=timeout_s, **options)
        return QueryJob.of(await self._json(call))

    async def job(self, job_id: str) -> QueryJob:
        return QueryJob.of(await self._json(_core.job_call(job_id)))

    async def cancel(self, job_id: str) -> QueryJob:
        return QueryJob.of(await self._json(_core.job_call(job_id, method="DELETE")))

    async def wait(self, job: QueryJob | str, *, timeout_s: float = 600.0) -> QueryJob:
        """Poll a job until it ends; a job that did not succeed raises :class:`JobFailed`."""
        current = await self.job(job) if isinstance(job, str) else job
        poll = _core.Poll(timeout_s)
        while not current.done:
            await asyncio.sleep(poll.pause(f"query job {current.job_id} still {current.status}"))
            current = await self.job(current.job_id)
        return _core.finished(current)

    @contextlib.asynccontextmanager
    async def stream_result(self, job: QueryJob | str, *, format: str | None = None) -> AsyncIterator[httpx.Response]:
        """The finished job's result as a streamed response (``iter_bytes()``), in its format or ``format``."""
        async with self._send(_core.result_call(job, format), stream=True) as r:
            yield r

    async def download(self, job: QueryJob | str, path: str | Path, *, format: str | None = None) -> Path:
        """Stream a finished job's result into ``path``."""
        target = Path(path)
        async with self.stream_result(job, format=format) as r:
            with target.open("wb") as fh:
                async for chunk in r.aiter_bytes():
                    fh.write(chunk)
        return target

    async def result_arrow(self, job: QueryJob | str) -> Any:
        """A finished job's result as a ``pyarrow.Table``, read as it streams in."""
        async with self.stream_result(job) as r:
            body = io.BytesIO(await r.aread())
        return _core.decode_table(r.headers.get("content-type", ""), body)

    async def query_arrow(self, sql: str, params: Any = None, *, job_timeout_s: float = 600.0, **options: Any) -> Any:
        """Run SQL and get the whole result (up to ``QUERY_MAX_ROWS``) as a ``pyarrow.Table``, streamed as Arrow IPC."""
        options.setdefault("wait_s", None)
        job = await self.submit(sql, params, output_format="arrow", **options)
        return await self.result_arrow(await self.wait(job, timeout_s=job_timeout_s))

    async def query_pandas(self, sql: str, params: Any = None, **options: Any) -> Any:
        """As :meth:`query_arrow`, as a pandas DataFrame (needs pandas)."""
        return _core.to_pandas(await self.query_arrow(sql, params, **options))

    async def query_to_file(
        self,
        sql: str,
        path: str | Path,
        params: Any = None,
        *,
        output_format: str = "parquet",
        job_timeout_s: float = 600.0,
        **options: Any,
    ) -> Path:
        """Run SQL as a job and stream its result file (parquet, csv, arrow or json) into ``path``."""
        options.setdefault("wait_s", None)
        job = await self.submit(sql, params, output_format=output_format, **options)
        return await self.download(await self.wait(job, timeout_s=job_timeout_s), path)

    # ------------------------------------------------------------------ continuations
    async def pages(self, result: QueryResult | Continuation) -> AsyncIterator[RowsPage]:
        """The rows after a cut answer, page by page (nothing when the answer was complete).

        The server runs a continuation only when it is first fetched: waiting for its job starts it."""
        cont = _core.continuation(result)
        if cont is None or not cont.rest_available:
            return
        await self.wait(cont.job_id)
        url = cont.next_url
        while url:
            page = RowsPage.of(await self._json(Call("GET", url)))
            yield page
            url = page.next_url

    async def all_rows(self, result: QueryResult) -> list[list[Any]]:
        """Every row of a query: the answer's own, then the pages of its continuation."""
        rows = list(result.rows)
        async for page in self.pages(result):
            rows.extend(page.rows)
        return rows

    async def rest_arrow(self, result: QueryResult | Continuation) -> Any:
        """The full result behind a cut answer as a ``pyarrow.Table`` (None when the answer was complete)."""
        cont = _core.continuation(result)
        if cont is None:
            return None
        return await self.result_arrow(await self.wait(cont.job_id))

    # ------------------------------------------------------------------ samples, profiles, refresh
    async def sample(
        self,
        table: str,
        *,
        method: str = "random",
        size: int | None = None,
        fraction: float | None = None,
        seed: int | None = None,
        columns: Sequence[str] | None = None,
        where: str | None = None,
        by: str | None = None,
    ) -> Sample:
        answer = await self._json(
            _core.sample_call(table, method, size=size, fraction=fraction, seed=seed, columns=columns, where=where, by=by)
        )
        return Sample.of(answer)

    async def profile(
        self,
        table: str,
        *,
        columns: Sequence[str] | None = None,
        sample: int | None = None,
        seed: int | None = None,
        force_refresh: bool = False,
    ) -> Profile:
        call = _core.profile_call(table, columns=columns, sample=sample, seed=seed, force_refresh=force_refresh)
        return Profile.of(await self._json(call))

    async def refresh(
        self, table: str, *, max_age_s: float | None = None, wait: bool = False, timeout_s: float = 600.0
    ) -> Refresh:
        """Ask for fresh data; with ``wait`` poll the job until it ends (its final state in ``raw``)."""
        answer = Refresh.of(await self._json(_core.refresh_call(table, max_age_s)))
        if not wait or answer.job_id is None:
            return answer
        poll, status = _core.Poll(timeout_s, first_s=1.0, most_s=1.0), answer.raw
        while _core.refresh_running(answer, status):
            await asyncio.sleep(poll.pause(f"refresh job {answer.job_id} still running"))
            status = await self._json(_core.refresh_status_call(table, answer.job_id))
        return _core.refresh_final(answer, status)

    # ------------------------------------------------------------------ artifacts
    async def upload_artifact(
        self,
        source: str | Path | bytes | IO[bytes],
        *,
        name: str | None = None,
        content_type: str | None = None,
        visibility: str | Sequence[str] = "private",
        tags: Sequence[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
        expires_in: int | str | None = None,
    ) -> Artifact:
        """Upload a file (streamed from a path), bytes or a binary file object."""
        answer = await self._json(
            _core.upload_call(
                source,
                name=name,
                content_type=content_type,
                visibility=visibility,
                tags=tags,
                metadata=metadata,
                expires_in=expires_in,
            )
        )
        return Artifact.of(answer)

    async def artifacts(self, *, tag: str | None = None, limit: int = 100, offset: int = 0) -> list[Artifact]:
        return [Artifact.of(a) for a in (await self._json(_core.artifacts_call(tag, limit, offset)))["items"]]

    async def artifact(self, artifact_id: str) -> Artifact:
        return Artifact.of(await self._json(Call("GET", f"{ARTIFACTS}/{artifact_id}")))

    @contextlib.asynccontextmanager
    async def stream_artifact(self, artifact_id: str) -> AsyncIterator[httpx.Response]:
        async with self._send(Call("GET", f"{ARTIFACTS}/{artifact_id}/content"), stream=True) as r:
            yield r

    async def download_artifact(self, artifact_id: str, path: str | Path | None = None) -> bytes | Path:
        """An artifact's content, streamed into ``path`` (returned), or as bytes without one."""
        async with self.stream_artifact(artifact_id) as r:
            if path is None:
                return await r.aread()
            target = Path(path)
            with target.open("wb") as fh:
                async for chunk in r.aiter_bytes():
                    fh.write(chunk)
            return target

    async def save_result(
        self,
        job: QueryJob | str,
        *,
        name: str | None = None,
        format: str = "parquet",
        visibility: str | Sequence[str] = "private",
        tags: Sequence[str] | None = None,
    ) -> Artifact:
        """Save a finished query job's result as an artifact (CSV or Parquet)."""
        call = _core.save_result_call(job, name=name, format=format, visibility=visibility, tags=tags)
        return Artifact.of(await self._json(call))

    async def delete_artifact(self, artifact_id: str) -> None:
        await self._json(Call("DELETE", f"{ARTIFACTS}/{artifact_id}"))
