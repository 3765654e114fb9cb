"""What the sync and async clients share: request descriptions, the retry rule, decoding results.

No I/O here: each client sends a :class:`Call` its own way and hands answers back.
"""

from __future__ import annotations

import dataclasses
import io
import random
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, TypeVar
from urllib.parse import quote

import httpx

from agents_data_client.errors import ApiError, RateLimited, Unavailable, error_from
from agents_data_client.types import Continuation, Limit, QueryJob, QueryResult, Refresh, parse_rate_limits

EXECUTE = "/api/v1/queries/execute"
TABLES = "/api/v1/data/tables"
ARTIFACTS = "/api/v1/artifacts"
JOBS = "/api/v1/queries/jobs"


@dataclasses.dataclass
class Call:
    """One request. ``files`` builds fresh file parts for each attempt (an upload may be retried)."""

    method: str
    path: str
    params: Mapping[str, Any] | Sequence[tuple[str, Any]] | None = None
    json: Any = None
    data: Mapping[str, Any] | None = None
    files: Callable[[], Mapping[str, Any]] | None = None
    headers: Mapping[str, str] | None = None

    def kwargs(self) -> dict[str, Any]:
        out: dict[str, Any] = {"params": self.params, "headers": self.headers}
        if self.json is not None:
            out["json"] = self.json
        if self.data is not None:
            out["data"] = self.data
        if self.files is not None:
            out["files"] = self.files()
        return out


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    """Retries of 429 and 503 answers: exponential backoff with jitter, or the server's ``Retry-After``.

    A wait longer than ``max_wait_s`` (a daily budget that resets in hours) is not waited
    for: the error is raised at once, so the caller can plan.
    """

    max_retries: int = 4
    backoff_s: float = 0.5
    max_backoff_s: float = 8.0
    max_wait_s: float = 60.0

    def delay(self, attempt: int, error: ApiError) -> float | None:
        """Seconds to wait before retry number ``attempt + 1``, or None to give up."""
        if attempt >= self.max_retries or not isinstance(error, (RateLimited, Unavailable)):
            return None
        asked = error.retry_after
        if asked is not None:
            return asked if asked <= self.max_wait_s else None
        backoff = min(self.max_backoff_s, self.backoff_s * 2**attempt)
        return backoff * (0.5 + random.random() / 2)  # noqa: S311 - jitter, not cryptography


class JobFailed(ApiError):
    """An async query job ended without a result (``failed``, ``cancelled`` or ``expired``)."""

    def __init__(self, job: QueryJob) -> None:
        error = job.error or {}
        super().__init__(
            0,
            f"job_{job.status}",
            str(error.get("message") or f"the job is {job.status}"),
            rule=error.get("rule"),
            details={"job_id": job.job_id},
        )
        self.job = job


class Poll:
    """The clock of a polling loop: pauses that double up to ``most_s``, and a deadline.

    The driver sleeps ``pause(...)`` seconds (its own way) and asks again; past the deadline
    ``pause`` raises ``TimeoutError`` with the driver's description of what is still running.
    """

    def __init__(self, timeout_s: float, *, first_s: float = 0.05, most_s: float = 1.0) -> None:
        self.timeout_s = timeout_s
        self.deadline = time.monotonic() + timeout_s
        self.next_s = first_s
        self.most_s = most_s

    def pause(self, waiting_for: str) -> float:
        if time.monotonic() > self.deadline:
            raise TimeoutError(f"{waiting_for} after {self.timeout_s:g} s")
        pause, self.next_s = self.next_s, min(self.next_s * 2, self.most_s)
        return pause


def job_id(job: QueryJob | str) -> str:
    return job if isinstance(job, str) else job.job_id


def job_call(job: QueryJob | str, *rest: str, method: str = "GET", params: Mapping[str, Any] | None = None) -> Call:
    return Call(method, "/".join([JOBS, job_id(job), *rest]), params=params)


def result_call(job: QueryJob | str, format: str | None = None) -> Call:
    return job_call(job, "result", params={"format": format} if format else None)


def finished(job: QueryJob) -> QueryJob:
    """A job that has ended: itself when it succeeded, else :class:`JobFailed`."""
    if job.status != "succeeded":
        raise JobFailed(job)
    return job


class ClientBase:
    """What both clients keep between calls: the retry rule, and the rate limits read from the last answer."""

    def __init__(self, retry: RetryPolicy | None) -> None:
        self.retry = retry or RetryPolicy()
        self.rate_limits: dict[str, Limit] = {}

    def _note(self, response: httpx.Response) -> None:
        self.rate_limits = rate_limits(response) or self.rate_limits


HttpClient = TypeVar("HttpClient", httpx.Client, httpx.AsyncClient)


def with_token(http: HttpClient, token: str) -> HttpClient:
    """The httpx client, sending ``token`` as its bearer credential."""
    http.headers["Authorization"] = f"Bearer {token}"
    return http


def check(response: httpx.Response) -> httpx.Response:
    """Raise the mapped :class:`ApiError` for an error answer (the body must already be read)."""
    if response.status_code < 400:
        return response
    try:
        body = response.json()
    except ValueError:
        body = None
    raise error_from(response.status_code, body, response.headers, response.text)


def rate_limits(response: httpx.Response) -> dict[str, Any]:
    return parse_rate_limits(response.headers.get("ratelimit-policy"), response.headers.get("ratelimit"))


def table_path(table: str, *rest: str) -> str:
    return "/".join([TABLES, quote(table, safe=""), *rest])


def query_body(sql: str, params: Any, output_format: str, **options: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"query": sql, "output_format": output_format}
    if params is not None:
        body["params"] = params
    body.update(present(options))
    return body


def query_call(sql: str, params: Any, output_format: str, **options: Any) -> Call:
    return Call("POST", EXECUTE, json=query_body(sql, params, output_format, **options))


def query_answer(status_code: int, data: Any) -> QueryResult | QueryJob:
    """An execute answer: the rows when they came inline, else the job still running them."""
    if status_code == 200 and "columns" in data:
        return QueryResult.of(data)
    return QueryJob.of(data)


def continuation(result: QueryResult | Continuation) -> Continuation | None:
    return result.continuation if isinstance(result, QueryResult) else result


def sample_call(
    table: str,
    method: str,
    *,
    size: int | None,
    fraction: float | None,
    seed: int | None,
    columns: Sequence[str] | None,
    where: str | None,
    by: str | None,
) -> Call:
    params = {
        "method": method,
        "size": size,
        "fraction": fraction,
        "seed": seed,
        "where": where,
        "by": by,
        "columns": column_list(columns),
    }
    return Call("GET", table_path(table, "sample"), params=present(params))


def profile_call(table: str, *, columns: Sequence[str] | None, sample: int | None, seed: int | None, force_refresh: bool) -> Call:
    params = {
        "columns": column_list(columns),
        "sample": sample,
        "seed": seed,
        "force_refresh": "true" if force_refresh else None,
    }
    return Call("GET", table_path(table, "profile"), params=present(params))


def refresh_call(table: str, max_age_s: float | None) -> Call:
    return Call("POST", table_path(table, "refresh"), json={"max_age_s": max_age_s} if max_age_s is not None else None)


def refresh_status_call(table: str, refresh_job: str) -> Call:
    return Call("GET", table_path(table, "refresh", refresh_job))


def refresh_running(answer: Refresh, status: Mapping[str, Any]) -> bool:
    return status.get("status", answer.job_status) not in ("succeeded", "failed", "canceled", "cancelled")


def refresh_final(answer: Refresh, status: Mapping[str, Any]) -> Refresh:
    """The refresh answer updated with the job's final state (in ``raw``), keeping the first ``outcome``."""
    return Refresh.of({**answer.raw, **status, "outcome": answer.outcome})


def artifacts_call(tag: str | None, limit: int, offset: int) -> Call:
    return Call("GET", ARTIFACTS, params=present({"tag": tag, "limit": limit, "offset": offset}))


def save_result_call(
    job: QueryJob | str, *, name: str | None, format: str, visibility: str | Sequence[str], tags: Sequence[str] | None
) -> Call:
    body = {
        "format": format,
        "name": name,
        "visibility": visibility if isinstance(visibility, str) else list(visibility),
        "tags": list(tags or []),
    }
    return Call("POST", f"{JOBS}/{job_id(job)}/artifact", json=present(body))


def column_list(columns: Sequence[str] | None) -> str | None:
    """Column names as the ``columns`` parameter takes them: comma-separated, a name holding a comma,
    starting with a double quote or padded with spaces written in double quotes (``"a,b"``), so it
    is read whole; joined as they were, such a name was read as other columns or trimmed."""
    if not columns:
        return None
    def one(name: str) -> str:
        needs = "," in name or name.startswith('"') or name != name.strip()
        return '"' + name.replace('"', '""') + '"' if needs else name
    return ",".join(one(c) for c in columns)


def present(values: Mapping[str, Any]) -> dict[str, Any]:
    """The entries that are not None."""
    return {k: v for k, v in values.items() if v is not None}


def upload_call(
    source: str | Path | bytes | IO[bytes],
    *,
    name: str | None,
    content_type: str | None,
    visibility: str | Sequence[str],
    tags: Sequence[str] | None,
    metadata: Mapping[str, Any] | None,
    expires_in: int | str | None,
) -> Call:
    """A multipart upload: a path is opened anew for each attempt and streamed; bytes are sent as they are."""
    import json

    if isinstance(source, (str, Path)):
        path = Path(source)
        filename = name or path.name

        def files() -> Mapping[str, Any]:
            return {"file": (filename, path.open("rb"), content_type or "application/octet-stream")}
    elif isinstance(source, bytes):
        filename = name or "upload.bin"

        def files() -> Mapping[str, Any]:
            return {"file": (filename, io.BytesIO(source), content_type or "application/octet-stream")}
    else:
        filename = name or getattr(source, "name", None) or "upload.bin"
        stream = source

        def files() -> Mapping[str, Any]:
            return {"file": (Path(str(filename)).name, stream, content_type or "application/octet-stream")}

    fields: dict[str, Any] = {
        "name": name or Path(str(filename)).name,
        "visibility": visibility if isinstance(visibility, str) else json.dumps(list(visibility)),
    }
    if content_type:
        fields["content_type"] = content_type
    if tags:
        fields["tags"] = json.dumps(list(tags))
    if metadata:
        fields["metadata"] = json.dumps(dict(metadata))
    if expires_in is not None:
        fields["expires_in"] = str(expires_in)
    return Call("POST", ARTIFACTS, data=fields, files=files)


def decode_table(content_type: str, source: IO[bytes]) -> Any:
    """A result body as a ``pyarrow.Table``, whatever its format (Arrow stream, Parquet, CSV, JSON)."""
    try:
        import pyarrow as pa
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("pyarrow is needed for Arrow results: pip install 'agents-data-client[arrow]'") from e
    kind = content_type.split(";", maxsplit=1)[0].strip().lower()
    if "arrow" in kind:
        with pa.ipc.open_stream(source) as reader:
            return reader.read_all()
    if "parquet" in kind:
        import pyarrow.parquet as pq

        return pq.read_table(pa.BufferReader(source.read()))
    if "csv" in kind:
        import pyarrow.csv as pcsv

        return pcsv.read_csv(source)
    import json

    body = json.loads(source.read())
    names = [c["name"] for c in body.get("columns", [])]
    return pa.table({n: [row[i] for row in body.get("rows", [])] for i, n in enumerate(names)})


def to_pandas(table: Any) -> Any:
    try:
        import pandas  # noqa: F401
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("pandas is not installed: pip install 'agents-data-client[pandas]'") from e
    return table.to_pandas()


class IterReader(io.RawIOBase):
    """A readable file over an iterator of byte chunks, so pyarrow reads a streamed body as it arrives."""

    def __init__(self, chunks: Any) -> None:
        self._chunks = iter(chunks)
        self._buffer = b""

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        while not self._buffer:
            try:
                self._buffer = next(self._chunks)
            except StopIteration:
                return 0
        n = min(len(b), len(self._buffer))
        b[:n] = self._buffer[:n]
        self._buffer = self._buffer[n:]
        return n
