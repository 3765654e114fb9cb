"""Artifact storage: a small content-addressed object interface, and housekeeping.

Why here (``shared/``): the API writes and reads artifacts, and Dagster's housekeeping
job purges expired ones; orchestration may not import serving, so the storage
interface, its backends and ``purge_expired_artifacts`` live in shared code.

Objects are addressed by the SHA-256 of their content (the key *is* the hex digest, and
it is validated before it ever becomes a path), so client file names never reach the
file system. An upload is written to a private temporary object while its hash is
computed and is published under its hash only when complete: a partial upload
(disconnect, over limit, error) is never visible. Identical contents share one object.

Deleting an artifact removes its control-database row; the object goes when no row
refers to it any more and it is older than a grace period. The grace period closes the
race with a concurrent upload of the same content (an upload touches the object before
it inserts its row).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from sqlalchemy import delete, or_, select

from shared.artifacts_objects import CHUNK, KEY_PATTERN, StorageError, StoredObject, check_key
from shared.control.db import migrate, session_scope
from shared.control.models import ArtifactRow, utcnow
from shared.settings import Settings

WRITEBACK_EVERY = 8 << 20  # local uploads start flushing to disk every 8 MiB (see _LocalWriter._writeback)
ORPHAN_GRACE_S = 600
STALE_TEMP_S = 24 * 3600


class ObjectWriter(Protocol):
    """An object being uploaded. ``write`` hashes and stores; nothing is visible before ``commit``."""

    size: int

    def write(self, data: bytes) -> None: ...

    def commit(self) -> StoredObject: ...

    def abort(self) -> None: ...


class ArtifactStore(Protocol):
    name: str

    def open_writer(self) -> ObjectWriter: ...

    def read(self, key: str, start: int = 0, end: int | None = None, chunk: int = CHUNK) -> Iterator[bytes]:
        """Bytes ``start`` to ``end`` inclusive (None: to the end), in chunks."""
        ...

    def exists(self, key: str) -> bool: ...

    def delete(self, key: str) -> None: ...

    def list_objects(self) -> Iterator[tuple[str, float]]:
        """Every published object as (key, last-modified epoch seconds)."""
        ...

    def remove_stale_temps(self, older_than: float) -> int: ...


def put_file(store: ArtifactStore, path: Path) -> StoredObject:
    """Store a server-side file (e.g. a query result) through the same hashing writer."""
    writer = store.open_writer()
    try:
        with open(path, "rb") as fh:
            while block := fh.read(CHUNK):
                writer.write(block)
        return writer.commit()
    except BaseException:
        writer.abort()
        raise


class _LocalWriter:
    def __init__(self, store: LocalStore) -> None:
        self._store = store
        self._hash = hashlib.sha256()
        self.size = 0
        self._started_writeback = 0
        self._tmp = store.tmp_dir / f"{secrets.token_hex(12)}.part"
        self._fh = open(self._tmp, "xb")  # noqa: SIM115 - closed in commit/abort

    def write(self, data: bytes) -> None:
        self._hash.update(data)
        self._fh.write(data)
        self.size += len(data)
        if self.size - self._started_writeback >= WRITEBACK_EVERY:
            self._writeback()

    def _writeback(self) -> None:
        """Start the disk write of what is written so far, without waiting for it.

        So the final ``fsync`` has little left to flush: the disk works while the rest
        of the upload arrives (POSIX_FADV_DONTNEED starts writeback of dirty pages on Linux).
        """
        self._fh.flush()
        if hasattr(os, "posix_fadvise"):
            os.posix_fadvise(self._fh.fileno(), self._started_writeback, self.size - self._started_writeback,
                             os.POSIX_FADV_DONTNEED)
        self._started_writeback = self.size

    def commit(self) -> StoredObject:
        try:
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()
            digest = self._hash.hexdigest()
            final = self._store.path_of(digest)
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(self._tmp, final)  # identical content: replacing is harmless and refreshes mtime
            return StoredObject(key=digest, sha256=digest, size=self.size)
        except BaseException:
            self.abort()
            raise

    def abort(self) -> None:
        if not self._fh.closed:
            self._fh.close()
        self._tmp.unlink(missing_ok=True)


class LocalStore:
    """Content-addressed folder: ``<root>/objects/ab/<sha256>``, temporaries in ``<root>/tmp``."""

    name = "local"

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.objects_dir = self.root / "objects"
        self.tmp_dir = self.root / "tmp"
        self.objects_dir.mkdir(parents=True, exist_ok=True)
        self.tmp_dir.mkdir(parents=True, exist_ok=True)

    def path_of(self, key: str) -> Path:
        key = check_key(key)
        return self.objects_dir / key[:2] / key

    def open_writer(self) -> _LocalWriter:
        return _LocalWriter(self)

    def read(self, key: str, start: int = 0, end: int | None = None, chunk: int = CHUNK) -> Iterator[bytes]:
        try:
            fh = open(self.path_of(key), "rb")  # noqa: SIM115 - closed by the generator
        except FileNotFoundError as e:
            raise StorageError("object not found") from e
        return self._iter(fh, start, end, chunk)

    @staticmethod
    def _iter(fh: object, start: int, end: int | None, chunk: int) -> Iterator[bytes]:
        with fh as f:  # type: ignore[attr-defined]
            f.seek(start)
            remaining = None if end is None else end - start + 1
            while remaining is None or remaining > 0:
                block = f.read(chunk if remaining is None else min(chunk, remaining))
                if not block:
                    return
                if remaining is not None:
                    remaining -= len(block)
                yield block

    def exists(self, key: str) -> bool:
        return self.path_of(key).is_file()

    def delete(self, key: str) -> None:
        self.path_of(key).unlink(missing_ok=True)

    def list_objects(self) -> Iterator[tuple[str, float]]:
        for path in self.objects_dir.glob("*/*"):
            if KEY_PATTERN.match(path.name):
                try:
                    yield path.name, path.stat().st_mtime
                except FileNotFoundError:
                    continue

    def remove_stale_temps(self, older_than: float) -> int:
        removed = 0
        for path in self.tmp_dir.glob("*.part"):
            try:
                if path.stat().st_mtime < older_than:
                    path.unlink()
                    removed += 1
            except FileNotFoundError:
                continue
        return removed


def open_store(settings: Settings) -> ArtifactStore:
    """The backend named by ``ARTIFACT_STORAGE``."""
    cfg = settings.artifacts
    if cfg.storage == "local":
        return LocalStore(settings.artifacts_path)
    if cfg.storage == "s3":
        from shared.artifacts_s3 import S3Store

        return S3Store.from_settings(cfg)
    raise StorageError(f"ARTIFACT_STORAGE={cfg.storage!r} is not one of: local, s3")


def purge_expired_artifacts(settings: Settings, *, now: dt.datetime | None = None,
                            grace_s: float = ORPHAN_GRACE_S, store: ArtifactStore | None = None) -> int:
    """Remove expired and deleted artifacts, their unreferenced objects and stale partial uploads.

    Returns the number of artifact records removed. Safe to run from any process and
    concurrently with uploads (see the module docstring for the grace period).
    """
    now = now or utcnow()
    url = settings.control_url
    migrate(url)
    store = store or open_store(settings)
    with session_scope(url) as s:
        gone = s.execute(
            delete(ArtifactRow)
            .where(or_(ArtifactRow.deleted_at.is_not(None), ArtifactRow.expires_at <= now))
            .returning(ArtifactRow.id)
        ).all()
    with session_scope(url) as s:
        referenced = set(s.scalars(select(ArtifactRow.storage_key).distinct()))
    horizon = now.timestamp() - grace_s
    for key, mtime in list(store.list_objects()):
        if key not in referenced and mtime < horizon:
            store.delete(key)
    store.remove_stale_temps(min(horizon, time.time() - STALE_TEMP_S))
    return len(gone)
