"""Give freed slice buffers back to the OS, so RSS follows the slices alive and not their history.

Why: every slice allocates a few tens of MB in the connector (response text, base64,
Arrow) from whichever worker thread fetched it. glibc serves large blocks from per-thread
arenas and, once a big block has been freed, raises its mmap threshold (up to 32 MB), so
later slices land in the heap and freed memory stays resident. Fixing the threshold and
capping the arenas makes large buffers mmap'd and unmapped on free. Measured on the 1M-row
benchmark (bench/sync_throughput.py, two workers): peak RSS about 490 → 450 MB, together
with the per-batch permits in extract.py. A no-op off glibc.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8
MMAP_THRESHOLD_BYTES = 1 << 20
ARENA_MAX = 2


@functools.cache
def bound_native_memory() -> bool:
    """Apply the malloc settings once per process; True when they took effect."""
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl, macOS)
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)) and bool(mallopt(_M_ARENA_MAX, ARENA_MAX))
