"""A response body given as pieces and sent a slice at a time.

Why: the server writes an ASGI body message to its socket at once and buffers what the
socket did not take, and on Python 3.11 that buffering is a copy made on the event loop.
One 64 MB answer then held the GIL for tens of milliseconds on the event loop's own
thread, while every other request waited. Slices of ``SLICE_BYTES`` bound that copy, and
between slices the server waits for the socket to drain (its flow control), so a slow
reader holds one slice in memory, not a second copy of the answer. The pieces themselves
(an answer's own fields and its rows' encoded batches) are never joined.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from litestar.response.base import ASGIResponse
from litestar.types import Receive, Send

SLICE_BYTES = 256 << 10


class SlicedResponse(ASGIResponse):
    """``ASGIResponse`` whose body is ``pieces`` (bytes-like), sent in slices of at most ``SLICE_BYTES``."""

    def __init__(self, pieces: Sequence[bytes | bytearray | memoryview], *, media_type: str,
                 headers: dict[str, str] | None = None, status_code: int = 200) -> None:
        super().__init__(body=b"", content_length=sum(len(p) for p in pieces), media_type=media_type,
                         headers=headers, status_code=status_code)
        self.pieces = pieces

    async def send_body(self, send: Send, receive: Receive) -> None:
        for chunk in slices(self.pieces, SLICE_BYTES):
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})


def slices(pieces: Sequence[bytes | bytearray | memoryview], size: int) -> Iterator[bytes]:
    """``pieces`` re-cut into consecutive chunks of at most ``size`` bytes (small pieces gathered), each
    copied only when it is asked for."""
    pending: list[bytes] = []
    pending_size = 0
    for piece in pieces:
        view = memoryview(piece)
        for start in range(0, len(view), size):
            part = view[start:start + size]
            if pending_size + len(part) > size:
                yield b"".join(pending)
                pending, pending_size = [], 0
            pending.append(bytes(part))
            pending_size += len(part)
    if pending:
        yield b"".join(pending)
