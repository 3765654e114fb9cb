"""One API over served data, wherever it is kept: ``open_store(settings)``.

Orchestration writes through it (``write_version``, ``publish``) and the API reads through
it (``current``, ``keys``, ``local_path``); ``shared/served.py`` keeps the layout, the lock
and the publish order for both backends.

- ``SERVED_STORAGE=local`` (``ServedStore``): the served folder under the data home is the
  truth, and every process shares it.
- ``SERVED_STORAGE=s3`` (``ObjectStore``): a publish uploads the version's files and switches
  the current version in the control database (``shared/served_remote.py``). The served
  folder of each machine is then a cache: a version is downloaded on first use, or ahead of
  time when an API replica's watcher sees a publish of a table it serves, and its size and
  sha256 are checked before anything opens it (a mismatch is refused and fetched again).
  Queries only ever open local files. Superseded versions stay for
  ``SERVED_VERSION_GRACE_MINUTES``; past ``SERVED_CACHE_MAX_BYTES`` the versions no query
  is using are evicted, superseded ones first, then the least recently used.
  A partition or incremental run on another machine fetches the current version as its base.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from shared import served, served_remote
from shared.artifacts_s3 import S3Store
from shared.control.db import migrate
from shared.served import Manifest, PendingVersion, ServedDataError, table_dir, version_files
from shared.served_remote import CorruptDownload, Published
from shared.settings import Settings

log = logging.getLogger("agents_data.served")
RECENT_USE_S = 10.0  # a version used this recently (by any process on the machine) is never evicted
TOUCH_EVERY_S = 4.0  # how often a use is written to the version's manifest mtime (the cross-process LRU)
STALE_DOWNLOAD_S = 3600.0
EVICT_EVERY_S = 30.0  # the watcher's cache pass when nothing was downloaded (grace periods run out meanwhile)

FilePair = tuple[str, str]  # (table key, file name)


class ServedStore:
    """``SERVED_STORAGE=local``: the served folder under the data home, shared by every process."""

    remote = False

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def current(self, key: str, *, fresh: bool = False) -> Manifest | None:
        """The version readers use now, or None if the table was never published."""
        return served.read_current(self.root, key)

    def keys(self, *, fresh: bool = False) -> list[str]:
        """Keys of every table with a current version (``fresh``: the folder is always read fresh)."""
        return served.list_served(self.root)

    def local_path(self, manifest: Manifest) -> Path:
        """The version's file on this machine (the one to attach)."""
        return served.version_path(self.root, manifest)

    def serve(self, key: str) -> Manifest | None:
        """The version a query of ``key`` reads now, its files present on this machine."""
        return self.current(key)

    def version(self, key: str, version: str) -> Manifest | None:
        """One version of ``key``, current or superseded, while its files are kept (superseded ones
        for ``SERVED_VERSION_GRACE_MINUTES``); None once it is gone. A continuation reads the
        version its cut answer read with it."""
        current = self.current(key)
        if current is not None and current.version == version:
            return current
        path = served.table_dir(self.root, key) / f"v-{version}.json"
        try:
            manifest = Manifest.from_json(path.read_text(encoding="utf-8"))
        except (FileNotFoundError, ValueError, TypeError):
            return None
        return manifest if served.version_path(self.root, manifest).is_file() else None

    def write_version(self, key: str, *, copy_previous: bool) -> contextlib.AbstractContextManager[PendingVersion]:
        return served.write_version(self.root, key, copy_previous=copy_previous)

    def publish(self, pending: PendingVersion, **fields: Any) -> Manifest:
        return served.publish(self.root, pending, **fields)

    def remove_table(self, key: str) -> None:
        served.remove_table(self.root, key)

    def watch(
        self, *, in_use: Callable[[], set[FilePair]] | None = None, on_evict: Callable[[set[FilePair]], None] | None = None
    ) -> None:
        """Start following publishes (object storage only; nothing to follow locally)."""

    def purge(self, *, now: dt.datetime) -> dict[str, int]:
        """Remove what object storage no longer needs (nothing locally: housekeeping's own pass does that)."""
        return {}

    def close(self) -> None:
        """Stop the watcher, if any."""


@dataclasses.dataclass
class _Local:
    """One version in this machine's cache."""

    key: str
    manifest: Manifest
    json_path: Path
    files: list[Path]
    bytes: int
    used_at: float
    superseded_at: float | None = None


class ObjectStore(ServedStore):
    """``SERVED_STORAGE=s3``: the bucket and the control database are the truth; the served folder is a cache."""

    remote = True

    def __init__(self, settings: Settings, objects: S3Store | None = None) -> None:
        super().__init__(settings.served_path)
        self.cfg = settings.served
        self.url = settings.control_url
        self.grace_s = settings.dagster.version_grace_minutes * 60.0
        self._objects = objects
        self._known: dict[str, Published] = {}
        self._known_at = float("-inf")
        self._lock = threading.Lock()
        self._fetch_locks: dict[tuple[str, str], threading.Lock] = {}
        self._verified: dict[FilePair, float] = {}  # -> monotonic time of the last mtime touch
        self._last_served: dict[str, Manifest] = {}
        self._parsed: dict[Path, tuple[int, Manifest]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.in_use: Callable[[], set[FilePair]] = set
        self.on_evict: Callable[[set[FilePair]], None] = lambda pairs: None
        self.downloads = 0
        self.refused = 0

    @property
    def objects(self) -> S3Store:
        if self._objects is None:
            c = self.cfg
            self._objects = S3Store.connect(c.s3_endpoint_url, c.s3_region, c.s3_bucket, c.s3_prefix)
        return self._objects

    # -- what is published ---------------------------------------------------------------
    def refresh(self) -> list[str]:
        """Read the current versions from the control database; the keys whose version changed."""
        migrate(self.url)
        versions = served_remote.current_versions(self.url)
        known, changed = dict(self._known), []
        for key in [k for k in known if k not in versions]:
            known.pop(key)
            changed.append(key)
        for key, version in versions.items():
            hit = known.get(key)
            if hit is None or hit.manifest.version != version:
                pub = served_remote.load_version(self.url, key, version)
                if pub is not None:
                    known[key] = pub
                    changed.append(key)
        with self._lock:
            self._known, self._known_at = known, time.monotonic()
        return changed

    def _refresh_if_due(self) -> None:
        """Re-read the published versions once ``SERVED_POLL_INTERVAL_S`` has passed. While the control
        database is away, a replica that has read them once keeps serving what it knows (as the
        local folder does), and tries again one interval later."""
        if time.monotonic() - self._known_at <= self.cfg.poll_interval_s:
            return
        try:
            self.refresh()
        except Exception as e:
            if self._known_at == float("-inf"):
                raise
            log.warning("published versions not re-read (%s: %s); serving the ones known", type(e).__name__, e)
            self._known_at = time.monotonic()

    def _published(self, key: str, *, fresh: bool) -> Published | None:
        if fresh:
            migrate(self.url)
            return served_remote.current_version(self.url, key)
        self._refresh_if_due()
        return self._known.get(key)

    def current(self, key: str, *, fresh: bool = False) -> Manifest | None:
        pub = self._published(key, fresh=fresh)
        return pub.manifest if pub else None

    def keys(self, *, fresh: bool = False) -> list[str]:
        """Keys of every published table; ``fresh`` re-reads them now (an admin query naming a table
        published a moment ago on another machine), else at most every ``SERVED_POLL_INTERVAL_S``."""
        if fresh:
            try:
                self.refresh()
            except Exception as e:  # the control database is away: what is known still serves
                log.warning("published versions not re-read (%s); serving the ones known", type(e).__name__)
        self._refresh_if_due()
        return sorted(self._known)

    # -- the local cache -----------------------------------------------------------------
    def local_path(self, manifest: Manifest) -> Path:
        """The version's file on this machine, downloaded and verified first when it is not there yet."""
        self.ensure_local(self._pub_of(manifest))
        return served.version_path(self.root, manifest)

    def serve(self, key: str) -> Manifest | None:
        """The current version, downloaded first if need be. If it cannot be fetched (the bucket is
        away) the last version this process served stays in use, so a query never reads through the
        network and an outage of the bucket only delays new versions."""
        pub = self._published(key, fresh=False)
        if pub is None:
            return None
        try:
            self.ensure_local(pub)
        except Exception as e:
            fallback = self._last_served.get(key)
            if fallback is None or fallback.version == pub.manifest.version:
                raise ServedDataError(
                    f"{key}: version {pub.manifest.version} could not be fetched from object storage ({e})"
                ) from e
            log.warning(
                "%s: serving version %s: version %s could not be fetched (%s)", key, fallback.version, pub.manifest.version, e
            )
            self.ensure_local(self._pub_of(fallback))
            return fallback
        self._last_served[key] = pub.manifest
        return pub.manifest

    def version(self, key: str, version: str) -> Manifest | None:
        """One version of ``key`` while the control database still lists it (superseded ones until
        the grace period's purge); its files are downloaded when a query attaches it."""
        current = self.current(key)
        if current is not None and current.version == version:
            return current
        pub = served_remote.load_version(self.url, key, version)
        return pub.manifest if pub is not None else None

    def _pub_of(self, manifest: Manifest) -> Published:
        hit = self._known.get(manifest.table_key)
        if hit is not None and hit.manifest.version == manifest.version:
            return hit
        pub = served_remote.load_version(self.url, manifest.table_key, manifest.version)
        if pub is None:
            raise ServedDataError(f"{manifest.table_key}: version {manifest.version} is not published")
        return pub

    def ensure_local(self, pub: Published) -> bool:
        """Make every file of ``pub`` present and verified here; True when something was downloaded."""
        key, folder = pub.manifest.table_key, table_dir(self.root, pub.manifest.table_key)
        if all((key, f.name) in self._verified and (folder / f.name).exists() for f in pub.files):
            self._touch(pub)
            return False
        with self._lock:
            lock = self._fetch_locks.setdefault((key, pub.manifest.version), threading.Lock())
        downloaded = False
        with lock:
            folder.mkdir(parents=True, exist_ok=True)
            for ref in pub.files:
                dest = folder / ref.name
                if (key, ref.name) in self._verified and dest.exists():
                    continue
                if not (dest.exists() and dest.stat().st_size == ref.size and served_remote.file_digest(dest) == ref.sha256):
                    self._download(ref, dest)
                    downloaded = True
                self._verified[(key, ref.name)] = 0.0
            json_path = folder / f"v-{pub.manifest.version}.json"
            if not json_path.exists():
                served.save_manifest(self.root, pub.manifest)
            self._touch(pub)
        if downloaded:
            self.evict()
        return downloaded

    def _download(self, ref: served_remote.FileRef, dest: Path) -> None:
        last: Exception | None = None
        for attempt in range(1, max(1, self.cfg.download_attempts) + 1):
            try:
                served_remote.download_file(self.objects, ref, dest)
                self.downloads += 1
                return
            except CorruptDownload as e:
                self.refused += 1
                last = e
                log.warning("refused a served-data download (attempt %d): %s", attempt, e)
            except Exception as e:  # the bucket or the network failed mid-download: try again
                last = e
                log.warning("served-data download failed (attempt %d): %s: %s", attempt, type(e).__name__, e)
        what = "matched its sha256" if isinstance(last, CorruptDownload) else "succeeded"
        raise ServedDataError(f"{ref.name}: no download {what} after {self.cfg.download_attempts} attempts: {last}") from last

    def _touch(self, pub: Published) -> None:
        """Record a use on the version's manifest mtime (at most every few seconds), for the LRU."""
        now = time.monotonic()
        pair = (pub.manifest.table_key, pub.files[0].name if pub.files else pub.manifest.file)
        if now - self._verified.get(pair, 0.0) < TOUCH_EVERY_S:
            return
        self._verified[pair] = now
        with contextlib.suppress(OSError):
            os.utime(table_dir(self.root, pub.manifest.table_key) / f"v-{pub.manifest.version}.json")

    def _local_versions(self) -> list[_Local]:
        out: list[_Local] = []
        if not self.root.exists():
            return out
        for json_path in self.root.glob("*/*/*/v-*.json"):
            try:
                st = json_path.stat()
                hit = self._parsed.get(json_path)
                manifest = hit[1] if hit and hit[0] == st.st_size else Manifest.from_json(json_path.read_text(encoding="utf-8"))
                self._parsed[json_path] = (st.st_size, manifest)
                used_at = st.st_mtime
            except (OSError, ValueError, TypeError):
                continue
            files = [json_path.parent / name for name in version_files(manifest)]
            size = sum(p.stat().st_size for p in files if p.exists())
            out.append(_Local(manifest.table_key, manifest, json_path, files, size, used_at))
        by_key: dict[str, list[_Local]] = {}
        for e in out:
            by_key.setdefault(e.key, []).append(e)
        for key, entries in by_key.items():
            entries.sort(key=lambda e: e.manifest.version)
            current = self._known.get(key)
            for older, newer in zip(entries, [*entries[1:], None], strict=True):
                if current is not None and older.manifest.version == current.manifest.version:
                    continue
                after = newer.manifest if newer is not None else (current.manifest if current else None)
                older.superseded_at = (
                    dt.datetime.fromisoformat(after.published_at).timestamp() if after is not None else older.used_at
                )
        return out

    def evict(self, *, now: float | None = None) -> set[FilePair]:
        """Delete superseded versions past the grace period, then evict versions no query uses until
        the cache is within ``SERVED_CACHE_MAX_BYTES``: superseded first, then least recently used."""
        now = time.time() if now is None else now
        with self._lock:
            entries = self._local_versions()
            busy = self.in_use()
            evicted: set[FilePair] = set()

            def idle(e: _Local) -> bool:
                return not any((e.key, p.name) in busy for p in e.files) and now - e.used_at > RECENT_USE_S

            keep = []
            for e in entries:
                if e.superseded_at is not None and now - e.superseded_at > self.grace_s and idle(e):
                    evicted |= self._remove(e)
                else:
                    keep.append(e)
            total = sum(e.bytes for e in keep)
            order = sorted((e for e in keep if idle(e)), key=lambda e: (e.superseded_at is None, e.used_at))
            for e in order:
                if total <= self.cfg.cache_max_bytes:
                    break
                evicted |= self._remove(e)
                total -= e.bytes
            self._remove_stale_downloads(now)
        if evicted:
            self.on_evict(evicted)
        return evicted

    def _remove(self, e: _Local) -> set[FilePair]:
        pairs = {(e.key, p.name) for p in e.files}
        for p in [*e.files, e.json_path]:
            p.unlink(missing_ok=True)
        self._parsed.pop(e.json_path, None)
        for pair in pairs:
            self._verified.pop(pair, None)
        log.info("evicted %s version %s (%d bytes) from the served-data cache", e.key, e.manifest.version, e.bytes)
        return pairs

    def _remove_stale_downloads(self, now: float) -> None:
        for tmp in self.root.glob("*/*/*/.dl-*"):
            with contextlib.suppress(OSError):
                if now - tmp.stat().st_mtime > STALE_DOWNLOAD_S:
                    tmp.unlink()

    def cache_bytes(self) -> int:
        return sum(e.bytes for e in self._local_versions())

    # -- writing -------------------------------------------------------------------------
    def write_version(self, key: str, *, copy_previous: bool) -> contextlib.AbstractContextManager[PendingVersion]:
        return served.write_version(
            self.root, key, copy_previous=copy_previous, current=lambda: self.current(key, fresh=True), local_base=self.local_path
        )

    def publish(self, pending: PendingVersion, **fields: Any) -> Manifest:
        return served.publish(self.root, pending, commit=self._commit, **fields)

    def _commit(self, manifest: Manifest) -> None:
        folder = table_dir(self.root, manifest.table_key)
        files = served_remote.upload_version(self.objects, folder, manifest)
        served_remote.publish_row(self.url, manifest, files)
        for ref in files:
            self._verified[(manifest.table_key, ref.name)] = 0.0

    def remove_table(self, key: str) -> None:
        migrate(self.url)
        served_remote.unpublish(self.url, key)
        with self._lock:
            self._known.pop(key, None)
        served.remove_table(self.root, key)

    def purge(self, *, now: dt.datetime) -> dict[str, int]:
        counts = served_remote.purge(self.url, self.objects, older_than=now - dt.timedelta(seconds=self.grace_s))
        self.refresh()
        counts["cache_files_evicted"] = len(self.evict(now=now.timestamp()))
        return counts

    # -- following publishes (API replicas) ------------------------------------------------
    def watch(
        self, *, in_use: Callable[[], set[FilePair]] | None = None, on_evict: Callable[[set[FilePair]], None] | None = None
    ) -> None:
        """Poll the published versions every ``SERVED_POLL_INTERVAL_S``; download a new version of a
        table this machine already serves ahead of its first query; keep the cache within its limit."""
        self.in_use = in_use or set
        self.on_evict = on_evict or (lambda pairs: None)
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._follow, name="served-watch", daemon=True)
            self._thread.start()

    def _follow(self) -> None:
        last_pass = float("-inf")
        while not self._stop.is_set():
            try:
                fetched = False
                for key in self.refresh():
                    pub = self._known.get(key)
                    if pub is not None and any(table_dir(self.root, key).glob("v-*.json")):
                        fetched = self.ensure_local(pub) or fetched  # ensure_local evicts after a download
                if not fetched and time.monotonic() - last_pass > EVICT_EVERY_S:
                    self.evict()
                    last_pass = time.monotonic()
            except Exception as e:  # the control database or the bucket is away: try again next tick
                log.warning("served-data watcher: %s: %s", type(e).__name__, e)
            self._stop.wait(max(0.05, self.cfg.poll_interval_s))

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None


_stores: dict[tuple[Any, ...], ObjectStore] = {}
_stores_lock = threading.Lock()


def open_store(settings: Settings) -> ServedStore:
    """The served-data store of ``SERVED_STORAGE``; one ``ObjectStore`` per process and configuration,
    so every feature of the API shares its cache and watcher."""
    cfg = settings.served
    mode = cfg.storage.strip().lower()
    if mode == "local":
        return ServedStore(settings.served_path)
    if mode != "s3":
        raise ServedDataError(f"SERVED_STORAGE={cfg.storage!r} is not one of: local, s3")
    if not cfg.s3_bucket:
        raise ServedDataError("SERVED_S3_BUCKET is required for SERVED_STORAGE=s3")
    ident = (str(settings.served_path), settings.control_url, cfg, settings.dagster.version_grace_minutes)
    with _stores_lock:
        store = _stores.get(ident)
        if store is None:
            store = _stores[ident] = ObjectStore(settings)
        return store


@contextlib.contextmanager
def watching(store: ServedStore, **kwargs: Any) -> Iterator[ServedStore]:
    """``store`` following publishes for the block (tests and scripts)."""
    store.watch(**kwargs)
    try:
        yield store
    finally:
        store.close()
