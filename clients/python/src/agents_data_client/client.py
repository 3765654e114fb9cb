"""The synchronous client."""

from __future__ import annotations

import contextlib
import io
import time
from collections.abc import Iterator, Mapping, Sequence
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


class Client(_core.ClientBase):
    """``Client(base_url, token)``: every call of the agents-data API an agent makes.

    Errors raise :class:`agents_data_client.ApiError` subclasses; 429 and 503 are retried per
    ``retry``. ``rate_limits`` holds the policies and what remains of them, from the last answer.
    """

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout: float = 120.0,
        retry: RetryPolicy | None = None,
        http: httpx.Client | None = None,
    ) -> None:
        super().__init__(retry)
        self._http = _core.with_token(http or httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout), token)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ transport
    @contextlib.contextmanager
    def _send(self, call: Call, *, stream: bool = False) -> Iterator[httpx.Response]:
        attempt = 0
        while True:
            request = self._http.build_request(call.method, call.path, **call.kwargs())
            response = self._http.send(request, stream=stream)
            try:
                if response.status_code >= 400:
                    response.read()
                    try:
                        _core.check(response)
                    except ApiError as error:
                        wait = self.retry.delay(attempt, error)
                        if wait is None:
                            raise
                        attempt += 1
                        time.sleep(wait)
                        continue
                self._note(response)
                yield response
                return
            finally:
                response.close()

    def _json(self, call: Call) -> Any:
        with self._send(call) as r:
            return r.json() if r.content else None

    # ------------------------------------------------------------------ catalog
    def whoami(self) -> dict[str, Any]:
        return dict(self._json(Call("GET", "/api/v1/auth/whoami")))

    def tables(self) -> list[Table]:
        """The tables this token may read, with columns, row counts and freshness."""
        return [Table.of(t) for t in self._json(Call("GET", TABLES))["tables"]]

    def table(self, table: str) -> Table:
        return Table.of(self._json(Call("GET", _core.table_path(table))))

    # ------------------------------------------------------------------ queries
    def query(
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
        with self._send(
            _core.query_call(
                sql, params, "json", max_rows=max_rows, timeout_s=timeout_s, wait_s=wait_s, min_freshness=min_freshness, **options
            )
        ) as r:
            answer = _core.query_answer(r.status_code, r.json())
        if isinstance(answer, QueryResult):
            return answer
        job = self.wait(answer, timeout_s=job_timeout_s)
        with self._send(_core.result_call(job)) as r:
            return QueryResult.of(r.json())

    def dry_run(self, sql: str, params: Any = None, **options: Any) -> dict[str, Any]:
        """What a query would read and cost, without running it (the server's dry run answer)."""
        return dict(self._json(_core.query_call(sql, params, "json", dry_run=True, **options)))

    def submit(
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
        return QueryJob.of(self._json(call))

    def job(self, job_id: str) -> QueryJob:
        return QueryJob.of(self._json(_core.job_call(job_id)))

    def cancel(self, job_id: str) -> QueryJob:
        return QueryJob.of(self._json(_core.job_call(job_id, method="DELETE")))

    def wait(self, job: QueryJob | str, *, timeout_s: float = 600.0) -> QueryJob:
        """Poll a job until it ends; a job that did not succeed raises :class:`JobFailed`."""
        current = self.job(job) if isinstance(job, str) else job
        poll = _core.Poll(timeout_s)
        while not current.done:
            time.sleep(poll.pause(f"query job {current.job_id} still {current.status}"))
            current = self.job(current.job_id)
        return _core.finished(current)

    @contextlib.contextmanager
    def stream_result(self, job: QueryJob | str, *, format: str | None = None) -> Iterator[httpx.Response]:
        """The finished job's result as a streamed response (``iter_bytes()``), in its format or ``format``."""
        with self._send(_core.result_call(job, format), stream=True) as r:
            yield r

    def download(self, job: QueryJob | str, path: str | Path, *, format: str | None = None) -> Path:
        """Stream a finished job's result into ``path``."""
        target = Path(path)
        with self.stream_result(job, format=format) as r, target.open("wb") as fh:
            for chunk in r.iter_bytes():
                fh.write(chunk)
        return target

    def result_arrow(self, job: QueryJob | str) -> Any:
        """A finished job's result as a ``pyarrow.Table``, read as it streams in."""
        with self.stream_result(job) as r:
            return _core.decode_table(r.headers.get("content-type", ""), io.BufferedReader(_core.IterReader(r.iter_bytes())))

    def query_arrow(self, sql: str, params: Any = None, *, job_timeout_s: float = 600.0, **options: Any) -> Any:
        """Run SQL and get the whole result (up to ``QUERY_MAX_ROWS``) as a ``pyarrow.Table``, streamed as Arrow IPC."""
        options.setdefault("wait_s", None)
        job = self.submit(sql, params, output_format="arrow", **options)
        return self.result_arrow(self.wait(job, timeout_s=job_timeout_s))

    def query_pandas(self, sql: str, params: Any = None, **options: Any) -> Any:
        """As :meth:`query_arrow`, as a pandas DataFrame (needs pandas)."""
        return _core.to_pandas(self.query_arrow(sql, params, **options))

    def query_to_file(
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
        job = self.submit(sql, params, output_format=output_format, **options)
        return self.download(self.wait(job, timeout_s=job_timeout_s), path)

    # ------------------------------------------------------------------ continuations
    def pages(self, result: QueryResult | Continuation) -> Iterator[RowsPage]:
        """The rows after a cut answer, page by page (nothing when the answer was complete).

        The server runs a continuation only when it is first fetched: waiting for its job starts it."""
        cont = _core.continuation(result)
        if cont is None or not cont.rest_available:
            return
        self.wait(cont.job_id)
        url = cont.next_url
        while url:
            page = RowsPage.of(self._json(Call("GET", url)))
            yield page
            url = page.next_url

    def all_rows(self, result: QueryResult) -> list[list[Any]]:
        """Every row of a query: the answer's own, then the pages of its continuation."""
        rows = list(result.rows)
        for page in self.pages(result):
            rows.extend(page.rows)
        return rows

    def rest_arrow(self, result: QueryResult | Continuation) -> Any:
        """The full result behind a cut answer as a ``pyarrow.Table`` (None when the answer was complete)."""
        cont = _core.continuation(result)
        if cont is None:
            return None
        return self.result_arrow(self.wait(cont.job_id))

    # ------------------------------------------------------------------ samples, profiles, refresh
    def sample(
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
        answer = self._json(
            _core.sample_call(table, method, size=size, fraction=fraction, seed=seed, columns=columns, where=where, by=by)
        )
        return Sample.of(answer)

    def profile(
        self,
        table: str,
        *,
        columns: Sequence[str] | None = None,
        sample: int | None = None,
        seed: int | None = None,
        force_refresh: bool = False,
    ) -> Profile:
        call = _core.profile_call(table, columns=columns, sample=sample, seed=seed, force_refresh=force_refresh)
        return Profile.of(self._json(call))

    def refresh(self, table: str, *, max_age_s: float | None = None, wait: bool = False, timeout_s: float = 600.0) -> Refresh:
        """Ask for fresh data; with ``wait`` poll the job until it ends (its final state in ``raw``)."""
        answer = Refresh.of(self._json(_core.refresh_call(table, max_age_s)))
        if not wait or answer.job_id is None:
            return answer
        poll, status = _core.Poll(timeout_s, first_s=1.0, most_s=1.0), answer.raw
        while _core.refresh_running(answer, status):
            time.sleep(poll.pause(f"refresh job {answer.job_id} still running"))
            status = self._json(_core.refresh_status_call(table, answer.job_id))
        return _core.refresh_final(answer, status)

    # ------------------------------------------------------------------ artifacts
    def upload_artifact(
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
        answer = self._json(
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

    def artifacts(self, *, tag: str | None = None, limit: int = 100, offset: int = 0) -> list[Artifact]:
        return [Artifact.of(a) for a in self._json(_core.artifacts_call(tag, limit, offset))["items"]]

    def artifact(self, artifact_id: str) -> Artifact:
        return Artifact.of(self._json(Call("GET", f"{ARTIFACTS}/{artifact_id}")))

    @contextlib.contextmanager
    def stream_artifact(self, artifact_id: str) -> Iterator[httpx.Response]:
        with self._send(Call("GET", f"{ARTIFACTS}/{artifact_id}/content"), stream=True) as r:
            yield r

    def download_artifact(self, artifact_id: str, path: str | Path | None = None) -> bytes | Path:
        """An artifact's content, streamed into ``path`` (returned), or as bytes without one."""
        with self.stream_artifact(artifact_id) as r:
            if path is None:
                return r.read()
            target = Path(path)
            with target.open("wb") as fh:
                for chunk in r.iter_bytes():
                    fh.write(chunk)
            return target

    def save_result(
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
        return Artifact.of(self._json(call))

    def delete_artifact(self, artifact_id: str) -> None:
        self._json(Call("DELETE", f"{ARTIFACTS}/{artifact_id}"))
