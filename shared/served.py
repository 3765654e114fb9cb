"""The served-data contract between orchestration (writer) and serving (readers).

Layout, one folder per table so a table can be exposed without exposing another::

    <home>/served/<database>/<schema>/<table>/   (the key's encoded parts: shared/identifiers.py)
        CURRENT                  manifest of the version readers must use (JSON)
        v-<version>.duckdb       one immutable, checkpointed DuckDB file, table ``data``
        v-<version>.json         that version's manifest (history)
        .lock                    flock held by the single writer of this table
        .tmp-<version>.duckdb    a version being written (never read)

Why this design (measured with duckdb 2.0.1, see README "Architecture"):
- DuckDB lets one process open a file read-write and blocks readers meanwhile, so a
  reader never opens a file that is being written: writers build a *new* file and
  publish it by ``os.replace`` of ``CURRENT``, which is atomic. In-flight readers keep
  the file they opened (POSIX keeps unlinked files readable), new readers see the new
  version at once.
- ``kill -9`` at any point leaves ``CURRENT`` naming the last complete version; the
  next writer removes orphaned ``.tmp-*`` files under the lock.
- Version ids sort by time and file names change per version, so Python's per-path
  DuckDB instance cache can never hand out stale data.
- Native DuckDB files (not Parquet folders) keep point queries near 1 ms; Parquet over
  hundreds of partition files measured ~70x slower for the same query.
- A partition or merge write starts from the current file (``copy_version_file``): a
  reflink where the filesystem shares blocks (XFS, btrfs), so the run writes only what it
  changes; elsewhere (ext4) a byte copy whose flush to disk starts at once, in the
  background, so the publish's ``fsync`` overlaps the run instead of following it.

With ``SERVED_STORAGE=s3`` this folder is each machine's cache of the bucket and the
control database says which version is current (``shared/served_storage.py``); the
functions here take that backend's hooks (``current``, ``local_base``, ``commit``) so the
layout, the lock and the publish order stay in this one module.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import fcntl
import itertools
import json
import os
import secrets
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb

from shared import identifiers

DATA_TABLE = "data"
CURRENT = "CURRENT"


class ServedDataError(RuntimeError):
    """The served-data folder is not in the shape this module writes."""


def table_key(database: str, schema: str, table: str) -> str:
    """The canonical key of exact Snowflake names: ``demo.public.orders`` for ordinary (unquoted)
    names, an encoded part such as ``demo.public.0_order_32__lines`` for any other; the
    encoding (reversible, one spelling per name) lives in ``shared/identifiers.py``."""
    return identifiers.table_key(database, schema, table)


def split_key(key: str) -> tuple[str, str, str]:
    """The key's three encoded parts, which are also its folder and DuckDB names."""
    return identifiers.split_key(key)


def new_version_id(now: dt.datetime | None = None) -> str:
    """A time-sortable, unique version id such as ``20261125T183000123456-3fa2``."""
    now = now or dt.datetime.now(dt.UTC)
    return now.strftime("%Y%m%dT%H%M%S%f") + "-" + secrets.token_hex(2)


@dataclasses.dataclass(frozen=True)
class Column:
    name: str
    type: str
    nullable: bool = True
    description: str = ""


@dataclasses.dataclass(frozen=True)
class Manifest:
    """What one served version holds. Published atomically with its data."""

    table_key: str
    version: str
    file: str
    published_at: str
    strategy: str
    row_count: int
    bytes: int
    columns: list[Column]
    partitions: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    watermark: str | None = None
    run_id: str | None = None
    previous_version: str | None = None
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True, default=str)

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        raw = json.loads(text)
        raw["columns"] = [Column(**c) for c in raw.get("columns", [])]
        return cls(**raw)


def read_time(manifest: Manifest) -> dt.datetime | None:
    """When the data ``manifest`` serves was read from the source, as its runs recorded it; None
    for a version written before runs recorded it.

    Why not ``published_at``: a run reads the source, then writes, checks, classifies and
    publishes, which can take minutes; a row committed in between is not served, so the
    publish time would claim data newer than it is. What "synced at" means for a layout:

    - unpartitioned: when the run that wrote the version began reading the source (a merge
      read every change up to then: the rows it kept need no newer read);
    - time windows and snapshots: the read time of the newest partition served, where new
      rows land (a re-run of an old partition leaves it unchanged);
    - static values: the oldest read time over the values, since any of them can change.
    """
    parts = manifest.partitions
    if not parts:
        return _instant(manifest.extra.get("source_read_at"))
    kind = (manifest.extra.get("partitioning") or [None])[0]
    chosen = list(parts.values()) if kind == "static" else [parts[max(parts)]]
    times = [_instant(p.get("read_at") or p.get("materialized_at")) for p in chosen]
    return None if any(t is None for t in times) else min(t for t in times if t is not None)


def synced_at(manifest: Manifest) -> dt.datetime:
    """When ``manifest``'s data was read from the source (``read_time``), else (a version written
    before runs recorded it) when it was published: what every answer reports as ``synced_at``."""
    return read_time(manifest) or _instant(manifest.published_at) or dt.datetime.now(dt.UTC)


def _instant(value: Any) -> dt.datetime | None:
    if not value:
        return None
    try:
        at = dt.datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return at if at.tzinfo is not None else at.replace(tzinfo=dt.UTC)


def table_dir(served_root: Path, key: str) -> Path:
    db, schema, table = split_key(key)
    return Path(served_root) / db / schema / table


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove(path: Path) -> None:
    """Remove a file or a folder (DuckDB spills a writer's temp data into ``<file>.tmp/``)."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


_current_cache: dict[Path, tuple[tuple[int, int], Manifest]] = {}


def read_current(served_root: Path, key: str) -> Manifest | None:
    """The manifest readers must use now, or None if the table was never published.

    Cached by (inode, mtime) so a hot path costs one ``stat``.
    """
    path = table_dir(served_root, key) / CURRENT
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    stamp = (st.st_ino, st.st_mtime_ns)
    hit = _current_cache.get(path)
    if hit and hit[0] == stamp:
        return hit[1]
    manifest = Manifest.from_json(path.read_text(encoding="utf-8"))
    _current_cache[path] = (stamp, manifest)
    return manifest


def version_path(served_root: Path, manifest: Manifest) -> Path:
    return table_dir(served_root, manifest.table_key) / manifest.file


def version_files(manifest: Manifest) -> list[str]:
    """The names (in the table's folder) of every file that makes up ``manifest``'s version.

    Object storage uploads, downloads, verifies and evicts exactly these, so a version made
    of several files needs no change there.
    """
    return [manifest.file]


def save_manifest(served_root: Path, manifest: Manifest) -> Path:
    """Write ``v-<version>.json`` beside the version's files (a downloaded copy's history entry)."""
    folder = table_dir(served_root, manifest.table_key)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"v-{manifest.version}.json"
    _write_atomic(path, manifest.to_json())
    return path


def list_served(served_root: Path) -> list[str]:
    """Keys of every table that has a CURRENT manifest."""
    root = Path(served_root)
    if not root.exists():
        return []
    return sorted(".".join(p.parent.relative_to(root).parts) for p in root.glob(f"*/*/*/{CURRENT}"))


@dataclasses.dataclass
class PendingVersion:
    """A version being written: a private DuckDB file plus the manifest fields to publish."""

    key: str
    version: str
    path: Path
    previous: Manifest | None
    con: duckdb.DuckDBPyConnection
    timings: dict[str, float] = dataclasses.field(default_factory=dict)  # seconds per stage of copy and publish
    copied: str = ""  # how the previous version was copied: "clone", "copy" or "" (the file started empty)


@contextmanager
def table_lock(served_root: Path, key: str) -> Iterator[Path]:
    """Exclusive writer lock for one table; released by the kernel even on ``kill -9``."""
    folder = table_dir(served_root, key)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "a+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield folder
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _remove_orphans(folder: Path, current: Manifest | None) -> None:
    """Remove what a killed writer left: temp files, and a version renamed but never made CURRENT."""
    for orphan in [*folder.glob(".tmp-*"), *folder.glob(".*.tmp")]:
        _remove(orphan)
    for path in folder.glob("v-*.duckdb"):
        if current is None or path.name > current.file:
            _remove(path)
            path.with_suffix(".json").unlink(missing_ok=True)


@contextmanager
def write_version(served_root: Path, key: str, *, copy_previous: bool,
                  current: Callable[[], Manifest | None] | None = None,
                  local_base: Callable[[Manifest], Path] | None = None) -> Iterator[PendingVersion]:
    """Write a new version of ``key`` under the table lock, without publishing it.

    ``copy_previous`` starts from a copy of the current version (partition and merge
    writes); otherwise the file starts empty (full replace). On any exception the
    temporary file is removed and ``CURRENT`` is untouched. Call ``publish`` inside the
    block to make the version visible. ``current`` (the published version, default this
    folder's ``CURRENT``) and ``local_base`` (its file on this machine, fetched if need be)
    are how object storage plugs in.
    """
    with table_lock(served_root, key) as folder:
        previous = current() if current is not None else read_current(served_root, key)
        _remove_orphans(folder, previous)
        version = new_version_id()
        tmp = folder / f".tmp-{version}.duckdb"
        copied = ""
        if copy_previous and previous is not None:
            base = local_base(previous) if local_base is not None else folder / previous.file
            copied = copy_version_file(base, tmp)
        con = duckdb.connect(str(tmp))
        pending = PendingVersion(key=key, version=version, path=tmp, previous=previous, con=con, copied=copied)
        try:
            yield pending
        finally:
            with contextlib.suppress(duckdb.Error):
                con.close()
            for leftover in (tmp, Path(str(tmp) + ".wal"), Path(str(tmp) + ".tmp")):
                _remove(leftover)


def _clone(src: Path, dst: Path) -> bool:
    """Make ``dst`` a reflink of ``src`` (FICLONE: btrfs, XFS, …); False where the filesystem
    cannot share blocks (ext4, tmpfs answer EOPNOTSUPP or EINVAL, other systems lack the call)."""
    ficlone = 0x40049409  # _IOW(0x94, 9, int), the same number on every Linux architecture
    if not hasattr(fcntl, "ioctl") or os.uname().sysname != "Linux":
        return False
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        try:
            fcntl.ioctl(fout.fileno(), ficlone, fin.fileno())
        except OSError:
            return False
    return True


def _start_writeback(path: Path) -> None:
    """Flush ``path`` to disk in a background thread, so the publish's ``fsync`` finds most of a
    copied version already written while the run extracts, checks and profiles its window."""
    def flush() -> None:
        with contextlib.suppress(OSError):  # the file was removed (a failed run): nothing to flush
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fdatasync(fd)
            finally:
                os.close(fd)

    threading.Thread(target=flush, name="served-writeback", daemon=True).start()


def copy_version_file(base: Path, tmp: Path) -> str:
    """Start a version from a copy of ``base``: a reflink where the filesystem shares blocks
    ("clone": no data is written, whatever the table's size), else a byte copy ("copy"),
    whose disk write starts at once in the background.

    Either way ``tmp`` is a file of its own: the writer's changes never reach ``base``, which
    readers may hold open.
    """
    if _clone(base, tmp):
        return "clone"
    shutil.copyfile(base, tmp)
    _start_writeback(tmp)
    return "copy"


def publish(served_root: Path, pending: PendingVersion, *, commit: Callable[[Manifest], None] | None = None,
            **fields: Any) -> Manifest:
    """Checkpoint, close and atomically publish ``pending``; returns its manifest.

    ``fields`` are the Manifest fields other than key, version, file, bytes, previous.
    ``commit`` (object storage: upload, then switch the current version in the control
    database) runs once the version's files are final and before ``CURRENT`` is written;
    if it raises, the version is removed and nothing is published.
    """
    t0 = time.perf_counter()
    pending.con.execute("CHECKPOINT")
    pending.con.close()
    t1 = time.perf_counter()
    folder = pending.path.parent
    final = folder / f"v-{pending.version}.duckdb"
    with open(pending.path, "rb+") as fh:
        os.fsync(fh.fileno())
    t2 = time.perf_counter()
    pending.timings.update(checkpoint_s=t1 - t0, fsync_s=t2 - t1)
    os.replace(pending.path, final)
    manifest = Manifest(
        table_key=pending.key,
        version=pending.version,
        file=final.name,
        published_at=dt.datetime.now(dt.UTC).isoformat(),
        bytes=final.stat().st_size,
        previous_version=pending.previous.version if pending.previous else None,
        **fields,
    )
    if commit is not None:
        t3 = time.perf_counter()
        try:
            commit(manifest)
        except BaseException:
            for name in version_files(manifest):
                _remove(folder / name)
            raise
        pending.timings["commit_s"] = time.perf_counter() - t3
    _write_atomic(folder / f"v-{pending.version}.json", manifest.to_json())
    _write_atomic(folder / CURRENT, manifest.to_json())
    _fsync_dir(folder)
    return manifest


def superseded_versions(served_root: Path, key: str, older_than: dt.datetime) -> list[Path]:
    """Version files that are not current and were *replaced* before ``older_than``.

    A version is replaced when the next version (ids sort by time) was written, so a
    file written long ago but replaced a moment ago is kept for the grace period.
    """
    current = read_current(served_root, key)
    folder = table_dir(served_root, key)
    files = sorted(folder.glob("v-*.duckdb"))
    out: list[Path] = []
    for older, newer in itertools.pairwise(files):
        if current and older.name == current.file:
            continue
        replaced_at = dt.datetime.fromtimestamp(newer.stat().st_mtime, dt.UTC)
        if replaced_at < older_than:
            out.append(older)
    return out


def remove_table(served_root: Path, key: str) -> None:
    """Remove a table's served data (registration deleted). Open readers keep their files."""
    folder = table_dir(served_root, key)
    if not folder.exists():
        return
    with table_lock(served_root, key):
        (folder / CURRENT).unlink(missing_ok=True)
        for f in folder.iterdir():
            if f.name != ".lock":
                f.unlink(missing_ok=True)
    _current_cache.pop(folder / CURRENT, None)
