"""Profiles over the guarded engine, cached per served version.

Why a cache keyed by version: a profile of a 10M-row table costs seconds, and it only
changes when a sync publishes a new version. The key is (table, version, columns,
sample); a new version is a different key, so the next call recomputes and older
entries age out. Full-table profiles are also written to
``<home>/profiles/<table>/<version>.json`` so API replicas share them (older versions'
files are removed when a newer one is written). ``force_refresh`` recomputes. Concurrent
requests for the same missing profile compute it once.

A live table (not copied) has no version to key on: its profile runs in Snowflake (the scans
are transpiled; aggregates only, see ``compute_profile``), is kept in memory for
``LIVE_SAMPLE_TTL_S`` and never written to disk.

Access is checked before the cache is consulted (the caller must be granted the table),
and every scan runs through the query engine's ``execute_platform_sql`` (``serving.tables.platform``); all scans of one profile
share one deadline (``timeout_s``: ``QUERY_MAX_TIMEOUT_S``, at most 300 s), and the
request holds one of the agent's query slots (the controller).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import secrets
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from serving.lib.caller import Caller
from serving.sampling.ttl import TtlCache
from serving.tables.names import quote_table
from serving.tables.platform import LIVE_VERSION, PlatformSql
from shared.profile import ColumnSpec, compute_profile
from shared.served import Manifest
from shared.settings import Settings

Admit = Callable[[float], AbstractContextManager[Any]]  # deadline -> a held place for heavy work
MAX_ENTRIES = 256
PROFILE_TIMEOUT_S = 300.0


class ProfileCache:
    def __init__(self, settings: Settings, *, max_entries: int = MAX_ENTRIES,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.root = settings.home_path / "profiles"
        self.timeout_s = min(PROFILE_TIMEOUT_S, settings.query.max_timeout_s)
        # Served versions never change, so their profiles stay until pushed out; a live
        # table's profile expires after LIVE_SAMPLE_TTL_S.
        self._served: TtlCache[dict[str, Any]] = TtlCache(None, max_entries=max_entries, clock=clock)
        self._live: TtlCache[dict[str, Any]] = TtlCache(settings.sources.live_sample_ttl_s,
                                                               max_entries=max_entries, clock=clock)
        self._lock = threading.Lock()
        self._building: dict[tuple[Any, ...], threading.Lock] = {}

    # -- storage ------------------------------------------------------------------------
    def _file(self, key: str, version: str) -> Path:
        return self.root / key / f"{version}.json"

    def _memory(self, ckey: tuple[Any, ...]) -> TtlCache[dict[str, Any]]:
        return self._live if ckey[1] == LIVE_VERSION else self._served

    def _get(self, ckey: tuple[Any, ...]) -> dict[str, Any] | None:
        hit = self._memory(ckey).get(ckey)
        return None if hit is None else hit[0]

    def _put(self, ckey: tuple[Any, ...], profile: dict[str, Any]) -> None:
        self._memory(ckey).put(ckey, profile)

    def _read_disk(self, key: str, version: str) -> dict[str, Any] | None:
        try:
            data: dict[str, Any] = json.loads(self._file(key, version).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return data if data.get("served_version") == version else None

    def _write_disk(self, key: str, version: str, profile: dict[str, Any]) -> None:
        path = self._file(key, version)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
            tmp.write_text(json.dumps(profile, default=str), encoding="utf-8")
            os.replace(tmp, path)
            for old in path.parent.glob("*.json"):
                if old.name != path.name and old.stem < version:
                    old.unlink(missing_ok=True)
        except OSError:
            return  # the disk cache is an optimisation only

    # -- the one entry point ------------------------------------------------------------------
    def get_or_compute(self, engine: PlatformSql, caller: Caller, key: str, manifest: Manifest,
                       columns: list[ColumnSpec], *, all_columns: bool, sample_rows: int | None, seed: int | None,
                       force: bool, admit: Admit | None = None) -> tuple[dict[str, Any], bool]:
        """(profile, served from cache). Blocking: call from a worker thread.

        ``admit(deadline)`` holds a place for heavy work around a computation (not a cache hit):
        a computed profile scans the table (``admission.py``)."""
        names = tuple(c.name for c in columns)
        # A caller under a grant policy reads its policy copy: its profiles are cached apart
        # (by the copy's fingerprint), in memory only, never shared with raw readers.
        policy = manifest.extra.get("policy")
        vid = f"{manifest.version}@{policy}" if policy else manifest.version
        disk = not policy and manifest.version != LIVE_VERSION
        full_key = (key, vid, None, None)
        ckey = (key, vid, None if all_columns else names, (sample_rows, seed) if sample_rows else None)
        if not force:
            hit = self._lookup(ckey, full_key, key, vid, names=names, sample_rows=sample_rows, disk=disk)
            if hit is not None:
                return hit, True
        with self._lock:
            building = self._building.setdefault(ckey, threading.Lock())
        with building:
            if not force:
                hit = self._lookup(ckey, full_key, key, vid, names=names, sample_rows=sample_rows, disk=disk)
                if hit is not None:
                    return hit, True
            profile = self._compute(engine, caller, key, manifest, columns, sample_rows=sample_rows, seed=seed,
                                    admit=admit)
            version = profile["served_version"]
            if version == manifest.version:
                self._put(ckey, profile)
                if ckey == full_key and disk:
                    self._write_disk(key, version, profile)
        with self._lock, contextlib.suppress(KeyError):
            if not building.locked():
                del self._building[ckey]
        return profile, False

    def _lookup(self, ckey: tuple[Any, ...], full_key: tuple[Any, ...], key: str, version: str, *,
                names: tuple[str, ...], sample_rows: int | None, disk: bool = True) -> dict[str, Any] | None:
        hit = self._get(ckey)
        if hit is not None:
            return hit
        if sample_rows:
            return None
        full = self._get(full_key)
        if full is None and disk:
            full = self._read_disk(key, version)
            if full is not None:
                self._put(full_key, full)
        if full is None:
            return None
        if ckey == full_key:
            return full
        by_name = {c["name"]: c for c in full["columns"]}
        if not all(n in by_name for n in names):
            return None
        return full | {"columns": [by_name[n] for n in names]}

    def _compute(self, engine: PlatformSql, caller: Caller, key: str, manifest: Manifest, columns: list[ColumnSpec], *,
                 sample_rows: int | None, seed: int | None, admit: Admit | None) -> dict[str, Any]:
        deadline = time.monotonic() + self.timeout_s
        with admit(deadline) if admit is not None else contextlib.nullcontext():
            return self._profile(engine, caller, key, manifest, columns, sample_rows=sample_rows, seed=seed,
                                 deadline=deadline)

    def _profile(self, engine: PlatformSql, caller: Caller, key: str, manifest: Manifest, columns: list[ColumnSpec],
                 *, sample_rows: int | None, seed: int | None, deadline: float) -> dict[str, Any]:
        versions: set[str] = set()

        def run(sql: str, params: Any) -> list[tuple[Any, ...]]:
            res = engine.execute_platform_sql(caller, [key], sql, params=params, max_rows=1,
                                              timeout_s=max(0.001, deadline - time.monotonic()))
            versions.update(t.version for t in res.tables)
            return res.rows

        source = quote_table(key)
        live = manifest.version == LIVE_VERSION
        if sample_rows and live:  # Snowflake's SAMPLE (n ROWS) takes no seed
            source, seed = f"(SELECT * FROM {source} USING SAMPLE reservoir({int(sample_rows)} ROWS))", None
        elif sample_rows:
            source = f"(SELECT * FROM {source} USING SAMPLE reservoir({int(sample_rows)} ROWS) REPEATABLE ({int(seed or 0)}))"
        for _attempt in range(2):
            versions.clear()
            started = dt.datetime.now(dt.UTC).isoformat()
            body = compute_profile(run, source, columns, aggregates_only=live)
            if versions <= {manifest.version}:
                break
            manifest = engine.manifests([key], caller)[0]  # a sync published mid-profile: redo on the new version
        return {"table": key, "served_version": manifest.version, "synced_at": manifest.published_at,
                "sampled": bool(sample_rows), "sample_rows": sample_rows, "seed": seed if sample_rows else None,
                "computed_at": started, **body}
