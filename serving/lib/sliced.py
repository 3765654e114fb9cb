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
from typing import Any

SLICE_BYTES = 256 << 10


class SlicedResponse:
    """An answer whose body is ``pieces`` (bytes-like), sent in slices of at most ``SLICE_BYTES``.

    A bare ASGI callable, not a Response object: it sends the status and headers a Litestar
    ``ASGIResponse`` would send (names lower-cased, Latin-1, then the content type and length),
    without that object's header bookkeeping on the hot path of every inline query answer."""

    __slots__ = ("headers", "pieces")

    def __init__(self, pieces: Sequence[bytes | bytearray | memoryview], headers: dict[str, str], *,
                 media_type: str) -> None:
        self.pieces = pieces
        self.headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
        self.headers += [(b"content-type", media_type.encode("latin-1")),
                         (b"content-length", str(sum(len(p) for p in pieces)).encode())]

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.headers})
        chunk = b""
        for i, following in enumerate(slices(self.pieces, SLICE_BYTES)):
            if i:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            chunk = following
        await send({"type": "http.response.body", "body": chunk, "more_body": False})


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
