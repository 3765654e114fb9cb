"""Served versions in object storage: the files in the bucket and the rows that publish them.

Why one module for both: a version is published by exactly two steps in this order, and
nothing else may write either side.

1. Every file of the version (``served.version_files``) is uploaded to the bucket under its
   sha256 (``<prefix>objects/<sha256>``, the artifact store's content-addressed layout and
   writer). A file whose object already exists is not uploaded again, only touched.
2. One transaction in the control database inserts the version's row (manifest, files with
   size and sha256) and switches the table's ``served_current`` row from the version the
   writer started from to the new one (compare-and-set). A writer that started from a
   version which is no longer current is refused (``PublishConflict``), so two machines
   can never overwrite each other's publish.

Readers learn of versions only from ``served_current``, so a version whose upload did not
complete (``kill -9``, a network error) is never seen; what it left in the bucket is an
unreferenced object or multipart upload, which ``purge`` removes later.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import os
import secrets
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from shared.artifacts_objects import CHUNK, StorageError
from shared.artifacts_s3 import S3Store
from shared.control.db import session_scope
from shared.control.models import ServedCurrentRow, ServedVersionRow, utcnow
from shared.served import Manifest, ServedDataError, version_files


class PublishConflict(ServedDataError):
    """Another writer published this table after this writer read its current version."""


class CorruptDownload(ServedDataError):
    """A downloaded file does not have the size and sha256 its version recorded."""


@dataclasses.dataclass(frozen=True)
class FileRef:
    """One file of a version: its name in the table's folder, size and sha256 (the object's key)."""

    name: str
    size: int
    sha256: str

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class Published:
    """A version as the control database records it."""

    manifest: Manifest
    files: tuple[FileRef, ...]
    bytes: int
    sha256: str


def version_digest(files: Iterable[FileRef]) -> str:
    """One sha256 naming a version's content: over its sorted ``name size sha256`` lines."""
    lines = "".join(f"{f.name} {f.size} {f.sha256}\n" for f in sorted(files, key=lambda f: f.name))
    return hashlib.sha256(lines.encode()).hexdigest()


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(CHUNK):
            h.update(block)
    return h.hexdigest()


# --- the bucket -------------------------------------------------------------------------------


def upload_version(objects: S3Store, folder: Path, manifest: Manifest) -> list[FileRef]:
    """Upload every file of ``manifest``'s version (already final in ``folder``); their refs."""
    refs = []
    for name in version_files(manifest):
        path = folder / name
        digest = file_digest(path)
        if not objects.touch(digest):
            writer = objects.open_writer()
            try:
                with open(path, "rb") as fh:
                    while block := fh.read(CHUNK):
                        writer.write(block)
            except BaseException:
                writer.abort()
                raise
            stored = writer.commit()
            if stored.sha256 != digest:
                raise ServedDataError(f"{name} changed while it was uploaded")
        refs.append(FileRef(name=name, size=path.stat().st_size, sha256=digest))
    return refs


def download_file(objects: S3Store, ref: FileRef, dest: Path) -> None:
    """Download one file to ``dest`` through a private temporary file; refuse it unless size and
    sha256 match what its version recorded (``CorruptDownload``); atomic and fsynced."""
    tmp = dest.with_name(f".dl-{secrets.token_hex(6)}-{dest.name}")
    h, size = hashlib.sha256(), 0
    try:
        with open(tmp, "wb") as fh:
            try:
                for block in objects.read(ref.sha256):
                    h.update(block)
                    size += len(block)
                    fh.write(block)
            except StorageError as e:
                raise ServedDataError(f"object {ref.sha256[:12]}… of {ref.name} is missing from the bucket") from e
            fh.flush()
            os.fsync(fh.fileno())
        if size != ref.size or h.hexdigest() != ref.sha256:
            raise CorruptDownload(
                f"{ref.name}: downloaded {size} bytes with sha256 {h.hexdigest()[:12]}…, "
                f"expected {ref.size} bytes with sha256 {ref.sha256[:12]}…"
            )
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


# --- the control database -----------------------------------------------------------------------


def publish_row(url: str, manifest: Manifest, files: list[FileRef], *, now: dt.datetime | None = None) -> None:
    """Insert the version and make it current, in one transaction, iff the table's current version
    is still ``manifest.previous_version`` (none: the table has no current version)."""
    now = now or utcnow()
    key, previous = manifest.table_key, manifest.previous_version
    try:
        with session_scope(url) as s:
            s.add(
                ServedVersionRow(
                    table_key=key,
                    version=manifest.version,
                    manifest=manifest.to_json(),
                    files=[f.as_dict() for f in files],
                    bytes=sum(f.size for f in files),
                    sha256=version_digest(files),
                    published_at=now,
                )
            )
            if previous is None:
                s.add(ServedCurrentRow(table_key=key, version=manifest.version, updated_at=now))
                s.flush()
            else:
                switched = s.execute(
                    update(ServedCurrentRow)
                    .where(ServedCurrentRow.table_key == key, ServedCurrentRow.version == previous)
                    .values(version=manifest.version, updated_at=now)
                    .execution_options(synchronize_session=False)
                )
                if switched.rowcount != 1:  # type: ignore[attr-defined]
                    raise PublishConflict(
                        f"{key}: version {previous} is no longer current; version {manifest.version} was not published"
                    )
                s.execute(
                    update(ServedVersionRow)
                    .where(ServedVersionRow.table_key == key, ServedVersionRow.version == previous)
                    .values(superseded_at=now)
                    .execution_options(synchronize_session=False)
                )
    except IntegrityError as e:
        raise PublishConflict(f"{key}: another writer published first; version {manifest.version} was not published") from e


def current_versions(url: str) -> dict[str, str]:
    """Every table's current version id (one small query; the replicas' poll)."""
    with session_scope(url) as s:
        return {str(k): str(v) for k, v in s.execute(select(ServedCurrentRow.table_key, ServedCurrentRow.version)).tuples()}


def load_version(url: str, key: str, version: str) -> Published | None:
    with session_scope(url) as s:
        row = s.get(ServedVersionRow, (key, version))
        if row is None:
            return None
        files = tuple(FileRef(**f) for f in row.files)
        return Published(Manifest.from_json(row.manifest), files, int(row.bytes), row.sha256)


def current_version(url: str, key: str) -> Published | None:
    with session_scope(url) as s:
        version = s.scalar(select(ServedCurrentRow.version).where(ServedCurrentRow.table_key == key))
    return load_version(url, key, version) if version else None


def unpublish(url: str, key: str, *, now: dt.datetime | None = None) -> None:
    """The table is no longer served (registration deleted): no current version; its versions
    are superseded now, so ``purge`` removes them after the grace period."""
    now = now or utcnow()
    with session_scope(url) as s:
        s.execute(delete(ServedCurrentRow).where(ServedCurrentRow.table_key == key))
        s.execute(
            update(ServedVersionRow)
            .where(ServedVersionRow.table_key == key, ServedVersionRow.superseded_at.is_(None))
            .values(superseded_at=now)
            .execution_options(synchronize_session=False)
        )


def purge(url: str, objects: S3Store, *, older_than: dt.datetime) -> dict[str, int]:
    """Forget versions superseded before ``older_than``; delete the objects no remaining version
    refers to (and that were not written or touched since ``older_than``), and abandoned uploads."""
    with session_scope(url) as s:
        gone = s.execute(
            delete(ServedVersionRow)
            .where(ServedVersionRow.superseded_at < older_than)
            .execution_options(synchronize_session=False)
        )
        referenced = {f["sha256"] for files in s.scalars(select(ServedVersionRow.files)) for f in files}
    cutoff = older_than.timestamp()
    deleted = 0
    for key, mtime in list(objects.list_objects()):
        if key not in referenced and mtime < cutoff:
            objects.delete(key)
            deleted += 1
    return {
        "versions_forgotten": int(gone.rowcount or 0),  # type: ignore[attr-defined]
        "objects_deleted": deleted,
        "uploads_aborted": objects.remove_stale_temps(cutoff),
    }
