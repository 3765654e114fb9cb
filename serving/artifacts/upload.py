"""Streaming multipart upload: parse ``multipart/form-data`` as it arrives, straight into storage.

Why not Litestar's form parsing: it buffers the whole body (and is capped by the 10 MB
``request_max_body_size``). Here each ASGI message is fed to python-multipart's
incremental parser; file bytes go to an ``ObjectWriter`` (hashing as they go) on one
worker thread, so hashing and disk or network writes overlap with receiving, and small
form fields are collected within ``FIELDS_MAX_BYTES``. The size limit is checked
on every message, so an oversized upload is refused after at most the limit plus one
message has been read, whatever ``Content-Length`` says (or if there is none). On any
failure the writer is aborted: nothing partial is ever published.

Everything besides the file's bytes is bounded too, as it streams, so a body made of
framing (thousands of empty parts, huge header or field names) is refused early: at
most ``MAX_PARTS`` parts, ``PART_HEADERS_MAX_BYTES`` of headers per part, all headers
and non-file fields together within ``FIELDS_MAX_BYTES``, and the whole body within
``max_bytes + FIELDS_MAX_BYTES``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import queue
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import anyio
import anyio.to_thread
from litestar import Request
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from serving.lib.errors import ApiError, BadRequest, PayloadTooLarge
from shared.artifacts_store import ArtifactStore, ObjectWriter, StoredObject

T = TypeVar("T")
FIELDS_MAX_BYTES = 64 * 1024  # every non-file field and every part header together
MAX_PARTS = 32  # the form has 8 fields; repeated tags stay well within this
PART_HEADERS_MAX_BYTES = 4 * 1024  # the headers of one part (names, values) together
FILE_FIELD = "file"


class UnsupportedMediaType(ApiError):
    status, code = 415, "unsupported_media_type"


class ClientDisconnected(ApiError):
    status, code = 400, "client_disconnected"


@dataclasses.dataclass
class Form:
    """The upload's form fields (strings; repeated ones as lists) and the file part's own headers."""

    fields: dict[str, list[str]]
    filename: str | None
    part_content_type: str | None


class _Pipe:
    """Feeds an ``ObjectWriter`` from one worker thread, so hashing and writing overlap with receiving.

    The queue is bounded (``DEPTH`` chunks of at most one ASGI message each), so memory
    stays flat; when it is full the event loop yields until the worker catches up.
    """

    DEPTH = 32

    def __init__(self, writer: ObjectWriter) -> None:
        self.writer = writer
        self.size = 0
        self.error: BaseException | None = None
        self.discard = False  # set when the upload is abandoned: queued chunks are dropped
        self._q: queue.Queue[Any] = queue.Queue(self.DEPTH)
        self._thread = threading.Thread(target=self._run, name="artifact-upload", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (item := self._q.get()) is not None:
            if self.error is None and not self.discard:
                try:
                    self.writer.write(item)
                except BaseException as e:  # reported to the request on its next write or at the end
                    self.error = e

    async def _put(self, item: Any) -> None:
        while True:
            try:
                self._q.put_nowait(item)
                return
            except queue.Full:
                await asyncio.sleep(0.0005)

    async def write(self, chunk: Any) -> None:
        if self.error is not None:
            raise self.error
        await self._put(chunk)
        self.size += len(chunk)

    async def drain(self) -> None:
        """Stop the worker once everything queued is written; re-raise its error."""
        if self._thread.is_alive():
            await self._put(None)
            await anyio.to_thread.run_sync(self._thread.join)
        if self.error is not None:
            raise self.error


class _Parts:
    """python-multipart callbacks: collect headers and fields, queue file data for the writer."""

    def __init__(self) -> None:
        self.fields: dict[str, list[str]] = {}
        self.field_bytes = 0
        self.file_chunks: list[bytes | memoryview] = []
        self.filename: str | None = None
        self.part_content_type: str | None = None
        self.files_seen = 0
        self.parts = 0
        self.ended = False
        self._header_bytes = 0
        self._headers: dict[bytes, bytes] = {}
        self._hname = b""
        self._hvalue = b""
        self._name: str | None = None
        self._is_file = False
        self._value = bytearray()

    def callbacks(self) -> dict[str, Any]:
        return {
            "on_part_begin": self._part_begin, "on_header_field": self._hfield, "on_header_value": self._hval,
            "on_header_end": self._hend, "on_headers_finished": self._headers_done, "on_part_data": self._data,
            "on_part_end": self._part_end, "on_end": self._end,
        }

    def _part_begin(self) -> None:
        self.parts += 1
        if self.parts > MAX_PARTS:
            raise BadRequest(f"a multipart upload may have at most {MAX_PARTS} parts", rule="too_many_parts",
                             details={"limit": MAX_PARTS})
        self._headers, self._hname, self._hvalue, self._value = {}, b"", b"", bytearray()
        self._header_bytes = 0

    def _count_header(self, n: int) -> None:
        self._header_bytes += n
        if self._header_bytes > PART_HEADERS_MAX_BYTES:
            raise BadRequest(f"the headers of one multipart part exceed {PART_HEADERS_MAX_BYTES} bytes",
                             rule="part_headers_too_large", details={"limit": PART_HEADERS_MAX_BYTES})
        self._count_field(n)

    def _count_field(self, n: int) -> None:
        self.field_bytes += n
        if self.field_bytes > FIELDS_MAX_BYTES:
            raise PayloadTooLarge(f"form fields and part headers other than the file's bytes exceed "
                                  f"{FIELDS_MAX_BYTES} bytes", rule="fields_too_large")

    def _hfield(self, data: bytes, start: int, end: int) -> None:
        self._count_header(end - start)
        self._hname += data[start:end]

    def _hval(self, data: bytes, start: int, end: int) -> None:
        self._count_header(end - start)
        self._hvalue += data[start:end]

    def _hend(self) -> None:
        self._headers[self._hname.strip().lower()] = self._hvalue.strip()
        self._hname, self._hvalue = b"", b""

    def _headers_done(self) -> None:
        _, params = parse_options_header(self._headers.get(b"content-disposition", b""))
        raw_name = params.get(b"name")
        if raw_name is None:
            raise BadRequest("every multipart part needs Content-Disposition with a name", rule="malformed_multipart")
        self._name = raw_name.decode("utf-8", "replace")
        self._is_file = self._name == FILE_FIELD
        if self._is_file:
            self.files_seen += 1
            if self.files_seen > 1:
                raise BadRequest("exactly one 'file' part is allowed", rule="malformed_multipart")
            fname = params.get(b"filename*") or params.get(b"filename")
            self.filename = fname.decode("utf-8", "replace") if fname is not None else None
            ctype = self._headers.get(b"content-type")
            self.part_content_type = ctype.decode("latin-1") if ctype else None

    def _data(self, data: bytes, start: int, end: int) -> None:
        if self._is_file:
            # A view of an immutable message body costs no copy; the parser's own look-behind
            # buffer (mutable, reused) is copied.
            self.file_chunks.append(memoryview(data)[start:end] if isinstance(data, bytes) else bytes(data[start:end]))
        else:
            self._count_field(end - start)
            self._value += data[start:end]

    def _part_end(self) -> None:
        if not self._is_file and self._name is not None:
            try:
                text = self._value.decode("utf-8")
            except UnicodeDecodeError as e:
                raise BadRequest(f"form field {self._name!r} is not UTF-8", rule="malformed_multipart") from e
            self.fields.setdefault(self._name, []).append(text)
        self._name, self._is_file = None, False

    def _end(self) -> None:
        self.ended = True


def _boundary(request: Request[Any, Any, Any]) -> bytes:
    ctype, params = parse_options_header(request.headers.get("content-type", ""))
    if ctype != b"multipart/form-data":
        raise UnsupportedMediaType("upload with Content-Type multipart/form-data (fields: file, name, content_type, "
                                   "tags, metadata, visibility, expires_in)", rule="multipart_required")
    boundary = params.get(b"boundary")
    if not boundary or len(boundary) > 70:
        raise BadRequest("multipart boundary is missing or too long", rule="malformed_multipart")
    return boundary


async def receive_upload(request: Request[Any, Any, Any], store: ArtifactStore, max_bytes: int,
                         prepare: Callable[[Form], Awaitable[T]],
                         refuse: Callable[[], ApiError] | None = None) -> tuple[StoredObject, T]:
    """Read the request body once, streaming the ``file`` part into ``store``.

    ``prepare`` validates the form once the body is complete and *before* the object is
    published, so a refused upload leaves nothing behind. Raises 413 as soon as the file
    exceeds ``max_bytes`` (or ``Content-Length`` makes that certain), 415 for a
    non-multipart body, 400 for malformed or incomplete ones. ``refuse`` makes that 413
    when ``max_bytes`` is not the upload limit but what a quota leaves.
    """
    def too_large() -> ApiError:
        if refuse is not None:
            return refuse()
        return PayloadTooLarge(f"artifact is larger than the limit of {max_bytes} bytes",
                               rule="artifact_too_large", details={"max_bytes": max_bytes})

    boundary = _boundary(request)
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes + FIELDS_MAX_BYTES:
        raise too_large()
    parts = _Parts()
    parser = MultipartParser(boundary, parts.callbacks())  # type: ignore[arg-type]
    writer: ObjectWriter = store.open_writer()
    pipe = _Pipe(writer)
    received = 0
    try:
        while True:
            message = await request.receive()
            if message["type"] == "http.disconnect":
                raise ClientDisconnected("the client disconnected before the upload finished", rule="client_disconnected")
            body: bytes = message.get("body", b"")  # type: ignore[assignment]
            received += len(body)
            if received > max_bytes + FIELDS_MAX_BYTES:
                raise too_large()
            if body:
                try:
                    parser.write(body)
                except MultipartParseError as e:
                    raise BadRequest("malformed multipart body", rule="malformed_multipart") from e
                if parts.file_chunks:
                    chunks, parts.file_chunks = parts.file_chunks, []
                    if pipe.size + sum(map(len, chunks)) > max_bytes:
                        raise too_large()
                    for chunk in chunks:
                        await pipe.write(chunk)
            if not message.get("more_body", False):
                break
        if not parts.ended:
            raise BadRequest("the multipart body ended before its closing boundary", rule="malformed_multipart")
        if parts.files_seen != 1:
            raise BadRequest("the upload needs one 'file' part", rule="file_missing")
        prepared = await prepare(Form(fields=parts.fields, filename=parts.filename,
                                      part_content_type=parts.part_content_type))
        await pipe.drain()
        stored = await anyio.to_thread.run_sync(writer.commit)
    except BaseException:
        pipe.discard = True
        with anyio.CancelScope(shield=True):
            with contextlib.suppress(BaseException):
                await pipe.drain()
            await anyio.to_thread.run_sync(writer.abort)
        raise
    return stored, prepared
