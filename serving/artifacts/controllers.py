"""Routes of the artifacts feature: upload, list, read, download, change, delete, save a query result."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Annotated, Any, cast

import anyio.to_thread
from litestar import Request, Response, delete, get, head, patch, post
from litestar.openapi.spec import OpenAPIFormat, OpenAPIMediaType, OpenAPIType, Operation, Reference, RequestBody, Schema
from litestar.params import Parameter
from litestar.response import Stream

from serving.artifacts import services as svc
from serving.artifacts.results import save_job_result
from serving.artifacts.schemas import Artifact, ArtifactList, ArtifactUpdate, JobArtifactCreate
from serving.artifacts.storage import RangeNotSatisfiable, etag, not_modified, parse_range, read_span
from serving.artifacts.upload import Form, receive_upload
from serving.artifacts.validation import Draft, content_disposition, draft_from_form
from serving.lib import quota
from serving.lib.audit import annotate
from serving.lib.caller import Caller
from serving.lib.errors import ApiError, NotFound
from serving.lib.guards import requires_agent
from serving.lib.services import Services
from shared.artifacts_store import StorageError
from shared.control.models import as_utc

TAGS = ["artifacts"]
ID = Annotated[str, Parameter(description="Artifact id", max_length=64)]
JOB_ID = Annotated[str, Parameter(description="Query job id", pattern=r"^[A-Za-z0-9_.:-]{1,64}$")]
MAX_OFFSET = 1_000_000_000


class RangeError(ApiError):
    status, code = 416, "range_not_satisfiable"


@dataclasses.dataclass
class _UploadOperation(Operation):
    """The upload's OpenAPI operation: the multipart body is read by hand (streamed), so document it here."""

    def __post_init__(self) -> None:
        text = Schema(type=OpenAPIType.STRING)
        fields: dict[str, Schema | Reference] = {
            "file": Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.BINARY),
            "name": text, "content_type": text, "tags": text, "metadata": text, "visibility": text, "expires_in": text}
        self.request_body = RequestBody(required=True, content={"multipart/form-data": OpenAPIMediaType(
            schema=Schema(type=OpenAPIType.OBJECT, required=["file"], properties=fields))})


@post("/api/v1/artifacts", operation_id="upload_artifact", tags=TAGS, status_code=201, request_max_body_size=None,
      operation_class=_UploadOperation, guards=[requires_agent])
async def upload_artifact(request: Request[Any, Any, Any], caller: Caller, services: Services) -> Artifact:
    """Upload a file as multipart/form-data, streamed to storage.

    Fields: ``file`` (required), ``name`` (default: the file name; metadata only),
    ``content_type``, ``tags`` (JSON list or comma-separated), ``metadata`` (JSON
    object), ``visibility`` (``private``, ``swarm`` or a list of agent token ids) and
    ``expires_in`` (seconds or '12h', '7d'). Larger than ARTIFACT_MAX_BYTES: 413.
    """
    settings = services.settings.artifacts

    async def prepare(form: Form) -> Draft:
        draft = draft_from_form(form, settings.default_ttl_s)
        await anyio.to_thread.run_sync(svc.check_visible_to, services.control_url, caller.swarm_id, draft.visible_to)
        return draft

    limit, most = services.settings.artifacts.swarm_storage_max_bytes, services.settings.artifacts.max_bytes
    # The swarm's room is held before the body is read (none left: refused unread) until the
    # artifact's row counts in its place: as much as the declared body (ARTIFACT_MAX_BYTES without
    # one), or less when less is left (then passing it is a 413 storage_quota).
    declared = request.headers.get("content-length", "")
    want = min(most, int(declared)) if declared.isdigit() else most  # the body holds the file and its framing
    reservation = await anyio.to_thread.run_sync(lambda: quota.reserve(services.control_url, caller, limit, want))
    try:
        left = reservation.bytes
        max_bytes, refuse = (most, None) if left is None or left >= most else (left, lambda: quota.exceeded(limit))
        stored, d = await receive_upload(request, svc.get_store(services), max_bytes, prepare, refuse)
        artifact = await anyio.to_thread.run_sync(lambda: svc.create(
            services.control_url, caller, stored, name=d.name, content_type=d.content_type, tags=d.tags,
            metadata=d.metadata, visibility=d.visibility, visible_to=d.visible_to, expires_in=d.expires_in))
    finally:
        await anyio.to_thread.run_sync(quota.release, services.control_url, reservation)
    annotate(request, bytes=stored.size)
    return artifact


@get("/api/v1/artifacts", operation_id="list_artifacts", tags=TAGS)
async def list_artifacts(  # noqa: PLR0917 - query parameters are keyword arguments for Litestar
    caller: Caller, services: Services,
    tag: str | None = None,
    content_type: str | None = None,
    owner: Annotated[str | None, Parameter(description="Owner agent token id")] = None,
    created_after: dt.datetime | None = None,
    created_before: dt.datetime | None = None,
    limit: Annotated[int, Parameter(ge=1, le=svc.MAX_PAGE)] = 100,
    offset: Annotated[int, Parameter(ge=0, le=MAX_OFFSET)] = 0,
) -> ArtifactList:
    """Artifacts this caller may see (newest first), filtered by tag, content type, owner and creation time."""
    return await anyio.to_thread.run_sync(lambda: svc.list_visible(
        services.control_url, caller, tag=tag, content_type=content_type, owner=owner,
        created_after=as_utc(created_after), created_before=as_utc(created_before), limit=limit, offset=offset))


@get("/api/v1/artifacts/{artifact_id:str}", operation_id="get_artifact", tags=TAGS)
async def get_artifact(artifact_id: ID, caller: Caller, services: Services) -> Artifact:
    """An artifact's metadata (404 if it does not exist, expired, or this caller may not see it)."""
    return await anyio.to_thread.run_sync(svc.get, services.control_url, caller, artifact_id)


def _download_headers(row: Any) -> dict[str, str]:
    return {"ETag": etag(row.sha256), "Accept-Ranges": "bytes", "Cache-Control": "private, no-cache",
            "X-Content-Type-Options": "nosniff", "Content-Security-Policy": "default-src 'none'; sandbox",
            "Content-Disposition": content_disposition(row.name)}


@get("/api/v1/artifacts/{artifact_id:str}/content", operation_id="download_artifact", tags=TAGS)
async def download_artifact(request: Request[Any, Any, Any], artifact_id: ID, caller: Caller,
                            services: Services) -> Response[Any]:
    """Download the content. ETag is the SHA-256; supports ``If-None-Match`` (304) and one ``Range`` (206/416)."""
    row = await anyio.to_thread.run_sync(svc.content_row, services.control_url, caller, artifact_id)
    headers = _download_headers(row)
    if not_modified(request.headers.get("if-none-match"), row.sha256):
        return Response(content=b"", status_code=304, headers=headers)
    try:
        span = parse_range(request.headers.get("range"), row.size, request.headers.get("if-range"), row.sha256)
    except RangeNotSatisfiable as e:
        raise RangeError(f"range outside the artifact's {row.size} bytes", rule="range_not_satisfiable",
                         headers={"Content-Range": f"bytes */{row.size}"}) from e
    store = svc.get_store(services)
    try:
        chunks = await anyio.to_thread.run_sync(read_span, store, row.storage_key, span)
    except StorageError as e:
        raise NotFound("no such artifact") from e
    length = row.size if span is None else span.length
    headers["Content-Length"] = str(length)
    if span is not None:
        headers["Content-Range"] = f"bytes {span.start}-{span.end}/{row.size}"
    annotate(request, bytes=length)
    return Stream(chunks, media_type=row.content_type, status_code=206 if span else 200, headers=headers)


@head("/api/v1/artifacts/{artifact_id:str}/content", operation_id="head_artifact_content", tags=TAGS)
async def head_artifact_content(request: Request[Any, Any, Any], artifact_id: ID, caller: Caller,
                                services: Services) -> Response[None]:
    """The download's headers without its body: ETag (the SHA-256), Content-Length, Content-Type, Accept-Ranges.

    Same access rules as GET (404 when missing, expired or not visible); ``If-None-Match``
    answers 304. ``Range`` is ignored, as RFC 9110 defines ranges for GET only.
    """
    row = await anyio.to_thread.run_sync(svc.content_row, services.control_url, caller, artifact_id)
    headers = _download_headers(row)
    if not_modified(request.headers.get("if-none-match"), row.sha256):
        return _bodiless(304, headers)
    if not await anyio.to_thread.run_sync(svc.get_store(services).exists, row.storage_key):
        raise NotFound("no such artifact")
    headers["Content-Length"] = str(row.size)
    return _bodiless(200, headers, row.content_type)


def _bodiless(status: int, headers: dict[str, str], media_type: str | None = None) -> Response[None]:
    # Empty bytes, not None: Litestar cannot render None as e.g. application/octet-stream.
    return cast("Response[None]", Response(content=b"", status_code=status, headers=headers, media_type=media_type))


@patch("/api/v1/artifacts/{artifact_id:str}", operation_id="update_artifact", tags=TAGS)
async def update_artifact(artifact_id: ID, data: ArtifactUpdate, caller: Caller, services: Services) -> Artifact:
    """Change name, tags, metadata, visibility or expiry (owner only)."""
    ttl = services.settings.artifacts.default_ttl_s
    return await anyio.to_thread.run_sync(svc.update, services.control_url, caller, artifact_id, data, ttl)


@delete("/api/v1/artifacts/{artifact_id:str}", operation_id="delete_artifact", tags=TAGS, status_code=204)
async def delete_artifact(artifact_id: ID, caller: Caller, services: Services) -> None:
    """Delete an artifact (owner or admin). It stops being served at once; storage is reclaimed by housekeeping."""
    await anyio.to_thread.run_sync(svc.delete, services.control_url, caller, artifact_id)


@post("/api/v1/queries/jobs/{job_id:str}/artifact", operation_id="save_query_result_artifact", tags=TAGS,
      status_code=201, guards=[requires_agent])
async def save_query_result(request: Request[Any, Any, Any], job_id: JOB_ID,
                            data: JobArtifactCreate, caller: Caller, services: Services) -> Artifact:
    """Save a finished query job's result as an artifact (CSV or Parquet), server-side.

    The artifact records the job's SQL hash and the served versions the result came from.
    """
    artifact = await anyio.to_thread.run_sync(save_job_result, services, caller, job_id, data)
    annotate(request, bytes=artifact.size)
    return artifact


ROUTES: list[Any] = [upload_artifact, list_artifacts, get_artifact, download_artifact, head_artifact_content,
                     update_artifact, delete_artifact, save_query_result]
