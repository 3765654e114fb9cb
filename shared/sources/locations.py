"""Where file sources live: local paths under the allowed roots, and ``s3://`` locations.

Why here: registration (is this path allowed, does it exist), the sync (which files to
read) and change detection (their sizes and modification times) must list the same
files the same way. A listing is a sorted list of ``(path, size, mtime_ns)``; its
signature is what the source-change sensor compares.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import glob
import hashlib
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from shared.settings import Settings

GLOB_CHARS = "*?["
PARQUET_SUFFIX = ".parquet"


class LocationError(ValueError):
    """A location is malformed, outside the allowed roots, or cannot be listed."""


@dataclasses.dataclass(frozen=True)
class FileEntry:
    path: str  # absolute local path, or "bucket/key" for S3
    size: int
    mtime_ns: int


def is_s3(location: str) -> bool:
    return location.startswith("s3://")


def signature(entries: list[FileEntry]) -> str:
    """``files=N|bytes=B|<digest of every path, size and mtime>``: any added, removed,
    rewritten or touched file changes it."""
    digest = hashlib.sha256()
    for e in entries:
        digest.update(f"{e.path}\0{e.size}\0{e.mtime_ns}\n".encode())
    return f"files={len(entries)}|bytes={sum(e.size for e in entries)}|{digest.hexdigest()[:24]}"


def _under(path: Path, roots: list[Path]) -> bool:
    return any(path == r or r in path.parents for r in roots)


def local_path(location: str, settings: Settings) -> Path:
    """The absolute local path, refused unless it (symlinks resolved) lies under an allowed root."""
    if "\0" in location or not os.path.isabs(location):
        raise LocationError(f"{location[:200]!r} is not an absolute path (or s3://bucket/prefix)")
    roots = settings.sources.roots(settings.home_path)
    fixed = location.split("*", maxsplit=1)[0].split("?", maxsplit=1)[0].split("[", maxsplit=1)[0]
    resolved = Path(fixed).resolve()
    if not _under(resolved, roots) or _under(resolved, [settings.served_path.resolve()]):
        allowed = ", ".join(str(r) for r in roots)
        raise LocationError(
            f"{location[:200]} is outside the folders file sources may be read from ({allowed}; set SOURCE_FILE_ROOTS)"
        )
    return Path(location)


def list_local(location: str, settings: Settings, *, suffix: str = PARQUET_SUFFIX) -> list[FileEntry]:
    """Files of a local file, folder (every ``suffix`` file beneath) or glob, each checked against the roots."""
    base = local_path(location, settings)
    if any(ch in location for ch in GLOB_CHARS):
        names = glob.glob(location, recursive=True)
    elif base.is_dir():
        names = [str(p) for p in base.rglob(f"*{suffix}")]
    else:
        names = [location] if base.exists() else []
    roots = settings.sources.roots(settings.home_path)
    out = []
    for name in names:
        real = Path(name).resolve()
        if not real.is_file():
            continue
        if not _under(real, roots):
            raise LocationError(f"{name} resolves outside the allowed folders")
        st = real.stat()
        out.append(FileEntry(str(real), st.st_size, st.st_mtime_ns))
    return sorted(out, key=lambda e: e.path)


def s3_filesystem(settings: Settings) -> Any:
    """A pyarrow S3 filesystem for the configured endpoint (credentials: the usual AWS_* chain)."""
    from pyarrow import fs

    src = settings.sources
    kwargs: dict[str, Any] = {"region": src.s3_region, "connect_timeout": 5, "request_timeout": 30}
    if src.s3_endpoint_url:
        url = urlparse(src.s3_endpoint_url)
        kwargs["endpoint_override"] = url.netloc or src.s3_endpoint_url
        kwargs["scheme"] = url.scheme or "https"
    return fs.S3FileSystem(**kwargs)


def list_s3(location: str, settings: Settings, *, suffix: str = PARQUET_SUFFIX) -> list[FileEntry]:
    """Objects of an ``s3://bucket/key``, ``s3://bucket/prefix/`` (every ``suffix`` object beneath) or glob."""
    from pyarrow import fs

    url = urlparse(location)
    if not url.netloc:
        raise LocationError(f"{location[:200]!r} names no bucket (s3://bucket/prefix)")
    path = f"{url.netloc}/{url.path.lstrip('/')}".rstrip("/")
    pattern = path if any(ch in path for ch in GLOB_CHARS) else None
    prefix = path.split("*")[0].split("?")[0].split("[")[0].rstrip("/") if pattern else path
    filesystem = s3_filesystem(settings)
    try:
        single = filesystem.get_file_info(prefix)
        if pattern is None and single.type == fs.FileType.File:
            infos = [single]
        else:
            if "/" not in prefix and pattern:  # a glob right under the bucket
                prefix = prefix.split("/")[0]
            infos = filesystem.get_file_info(fs.FileSelector(prefix, recursive=True, allow_not_found=True))
    except OSError as e:
        raise LocationError(f"cannot list {location[:200]}: {e}") from e
    out = []
    for info in infos:
        if info.type != fs.FileType.File:
            continue
        if pattern is not None and not fnmatch.fnmatchcase(info.path, pattern):
            continue
        if pattern is None and info.path != prefix and not info.path.endswith(suffix):
            continue
        mtime = info.mtime_ns if info.mtime_ns is not None else 0
        out.append(FileEntry(info.path, int(info.size or 0), int(mtime)))
    return sorted(out, key=lambda e: e.path)


def list_files(location: str, settings: Settings, *, suffix: str = PARQUET_SUFFIX) -> list[FileEntry]:
    return list_s3(location, settings, suffix=suffix) if is_s3(location) else list_local(location, settings, suffix=suffix)
