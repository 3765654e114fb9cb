"""What the sync and async clients share: request descriptions, the retry rule, decoding results.

No I/O here: each client sends a :class:`Call` its own way and hands answers back.
"""

from __future__ import annotations

import dataclasses
import io
import random
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

import httpx

from agents_data_client.errors import ApiError, RateLimited, Unavailable, error_from
from agents_data_client.types import QueryJob, parse_rate_limits

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
    body.update({k: v for k, v in options.items() if v is not None})
    return body


def sample_params(
    method: str,
    *,
    size: int | None,
    fraction: float | None,
    seed: int | None,
    columns: Sequence[str] | None,
    where: str | None,
    by: str | None,
) -> dict[str, Any]:
    params = {
        "method": method,
        "size": size,
        "fraction": fraction,
        "seed": seed,
        "where": where,
        "by": by,
        "columns": ",".join(columns) if columns else None,
    }
    return {k: v for k, v in params.items() if v is not None}


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
