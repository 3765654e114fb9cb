"""Policy copies: what a swarm or agent token physically reads of a table under its grant's policy.

Why a copy and not a view over the raw file: a view over the raw data would keep the raw
table (and, for the keyed hash, the key) inside the agent's DuckDB instance, one parser
difference or optimizer reordering away from the agent (a row filter's rows reached by an
error raised in a pushed-down predicate, a statistics probe, a view definition read back).
So for every (served version, plan) a private connection here writes a DuckDB file holding
exactly the plan's view: excluded columns absent, masked columns as their masked values,
filtered-out rows absent. The agent's instance attaches that file in place of the served
one (``serving/queries/instances.py``); the raw file and the hash key never enter it, and
every read path (queries in every format, samples, profiles, catalog row counts, results
saved as artifacts, MCP tools) reads the copy because they all run on that instance.

Cost: one sequential write per (version, plan) on first use (a keyed hash of 1M values
takes about a second), then queries read the copy as fast as a served file: the masked
text columns are stored uncompressed (``_create_data`` says why), so a point lookup does
not decode a whole dictionary segment to return one row. Copies
are named by the plan's fingerprint (version, swarm, hash-key digest, every rule), so a
policy change or a new version gives a new copy; copies of superseded versions are removed
after ``SERVED_VERSION_GRACE_MINUTES``.

Masks (the key never appears in any SQL text, only as a bound parameter of this private build):
- ``hash``: ``left(sha256(k || CAST(v AS VARCHAR)), 16)``, with ``k`` (64 hex characters)
  derived from the mask secret and the swarm id: equal values hash equally within a swarm
  (joins work), differently across swarms; NULL stays NULL. Only 64 of the 256 bits are
  shown, so the digest cannot be length-extended (one SHA-256 measured 2.8 times cheaper
  than the nested HMAC form on a million values); two distinct values of a column collide
  with probability about n²/2⁶⁵ for n distinct values, negligible for joins;
- ``partial``: ``j***@example.com`` for e-mail-like text, else ``***`` and the last 4
  characters (values shorter than 8 characters: ``***``);
- ``null``: NULL of the column's type.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import hmac
import os
import secrets
import threading
import time
from pathlib import Path
from typing import Any

import duckdb

from serving.lib.caller import Caller
from serving.lib.errors import ApiError
from serving.lib.tokens import resolve_jwt_secret
from serving.tables.names import quote_ident
from shared.policies import ColumnPlan, ViewPlan, plan
from shared.served import Column, Manifest, split_key, version_path
from shared.settings import Settings

POLICY_DIR = "policy-copies"


class PolicyUnavailable(ApiError):
    """The grant's policy cannot be applied to the served version (e.g. a row filter naming a dropped column)."""

    status, code = 409, "policy_unavailable"


def mask_sql(col: ColumnPlan) -> str:
    """The SELECT expression of one visible column (a ``hash`` takes the swarm's key as its one ``?``)."""
    q = quote_ident(col.name)
    if col.action == "plain":
        return q
    if col.action == "null":
        return f"CASE WHEN false THEN {q} END AS {q}"
    v = f"CAST({q} AS VARCHAR)"
    if col.action == "hash":
        return f"left(sha256(?::VARCHAR || {v}), 16) AS {q}"
    if col.action == "partial":
        return (f"CASE WHEN {q} IS NULL THEN NULL WHEN strpos({v}, '@') > 1 "
                f"THEN left({v}, 1) || '***' || substr({v}, strpos({v}, '@')) "
                f"WHEN length({v}) >= 8 THEN '***' || right({v}, 4) ELSE '***' END AS {q}")
    raise ValueError(f"unknown mask action {col.action!r}")


def seen_type(col: ColumnPlan) -> str:
    return "VARCHAR" if col.action in ("hash", "partial") else col.type


@dataclasses.dataclass(frozen=True)
class Built:
    path: Path
    rows: int
    bytes: int


class PolicyCopies:
    """Builds (once) and finds the policy copy of a served version for a plan."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.root = settings.home_path / "tmp" / POLICY_DIR
        self._secret: bytes | None = None
        self._lock = threading.Lock()
        self._building: dict[str, threading.Lock] = {}
        self._built: dict[str, Built] = {}

    # -- keys -------------------------------------------------------------------------------
    def _master(self) -> bytes:
        if self._secret is None:
            configured = self.settings.auth.mask_secret
            base = configured or "mask:" + resolve_jwt_secret(self.settings)
            self._secret = hashlib.sha256(base.encode()).digest()
        return self._secret

    def swarm_key(self, swarm_id: str) -> str:
        """A swarm's hash key (hex); never leaves this module except as a bound parameter of a private build."""
        return hmac.new(self._master(), b"swarm:" + swarm_id.encode(), hashlib.sha256).hexdigest()

    def key_digest(self, swarm_id: str) -> str:
        """A digest of the swarm's key that names copies (a rotated secret gives new copies)."""
        return hashlib.sha256(b"name:" + self.swarm_key(swarm_id).encode()).hexdigest()[:12]

    # -- the view a caller gets ---------------------------------------------------------------
    def view(self, manifest: Manifest, plan: ViewPlan) -> Manifest:
        """``manifest`` as the plan shows it: visible columns with their seen types, the copy's
        row count and size, and ``extra["policy_path"]`` for the instance to attach."""
        if not plan.restricted:
            return dataclasses.replace(manifest, extra=_public_extra(manifest) | {"policy": None})
        fp = plan.fingerprint(manifest.file) + "-" + self.key_digest(plan.swarm_id)
        built = self.ensure(manifest, plan, fp)
        columns = [Column(c.name, seen_type(c), True if c.action in ("hash", "partial", "null") else _nullable(
            manifest, c.name), _description(manifest, c.name)) for c in plan.visible]
        return dataclasses.replace(
            manifest, columns=columns, row_count=built.rows, bytes=built.bytes,
            extra=_public_extra(manifest) | {"policy": fp, "policy_path": str(built.path)})

    def ensure(self, manifest: Manifest, plan: ViewPlan, fp: str) -> Built:
        hit = self._built.get(fp)
        if hit is not None:
            return hit
        with self._lock:
            lock = self._building.setdefault(fp, threading.Lock())
        with lock:
            hit = self._built.get(fp)
            if hit is not None:
                return hit
            folder = self._folder(manifest.table_key)
            path = folder / f"{manifest.version}-{fp}.duckdb"
            if not path.exists():
                self._build(manifest, plan, path)
                self._cleanup(folder, manifest.version)
            built = Built(path, _count(path), path.stat().st_size)
            self._built[fp] = built
        with self._lock:
            self._building.pop(fp, None)
        return built

    def _folder(self, key: str) -> Path:
        folder = self.root.joinpath(*split_key(key))
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        return folder

    def _build(self, manifest: Manifest, plan: ViewPlan, path: Path) -> None:
        raw = str(version_path(self.settings.served_path, manifest)).replace("'", "''")
        tmp = path.with_name(f".tmp-{secrets.token_hex(6)}-{path.name}")
        select, params = [], []
        key = self.swarm_key(plan.swarm_id)
        for col in plan.visible:
            select.append(mask_sql(col))
            if col.action == "hash":
                params.append(key)
        where = " AND ".join(f"({f})" for f in plan.row_filters) or "TRUE"
        q = self.settings.query
        con = duckdb.connect(str(tmp), config={"threads": q.threads, "memory_limit": q.memory_limit,
                                               "autoinstall_known_extensions": False,
                                               "autoload_known_extensions": False})
        try:
            con.execute(f"ATTACH '{raw}' AS __src (READ_ONLY)")
            body = f"SELECT {', '.join(select) or '1 AS __no_columns'} FROM __src.main.data WHERE {where}"
            _create_data(con, body, params, plan)
            con.execute("DETACH __src")
            con.execute("CHECKPOINT")
        except duckdb.Error as e:
            with contextlib.suppress(duckdb.Error):
                con.close()
            for leftover in (tmp, tmp.with_name(tmp.name + ".wal")):
                leftover.unlink(missing_ok=True)
            raise PolicyUnavailable(
                f"the policy on your grant of {manifest.table_key} cannot be applied to its served version "
                f"({type(e).__name__}); ask an admin to update the policy", rule="policy_unavailable") from e
        finally:
            with contextlib.suppress(duckdb.Error):
                con.close()
        os.replace(tmp, path)
        with contextlib.suppress(FileNotFoundError):
            tmp.with_name(tmp.name + ".wal").unlink()

    def _cleanup(self, folder: Path, current_version: str) -> None:
        """Remove copies of superseded versions older than the served-version grace period, and stray temp files.

        Superseded means older than ``current_version`` (version ids start with their UTC time, so
        they sort by age): a copy built for an older version read on purpose (``at_versions``, a
        continuation) must not remove the copies of the newer versions other reads have attached."""
        grace = self.settings.dagster.version_grace_minutes * 60
        now = time.time()
        for f in folder.iterdir():
            try:
                old = now - f.stat().st_mtime > grace
            except FileNotFoundError:
                continue
            superseded = f.name < current_version and not f.name.startswith(current_version + "-")
            if old and (f.name.startswith(".tmp-") or superseded):
                with contextlib.suppress(OSError):
                    f.unlink()
                stale = [k for k, b in self._built.items() if b.path == f]
                for k in stale:
                    self._built.pop(k, None)



def _create_data(con: duckdb.DuckDBPyConnection, body: str, params: list[str], plan: ViewPlan) -> None:
    """``CREATE TABLE data AS body``, with the masked text columns stored uncompressed.

    Why: masked values are strings of middling cardinality (a hash per distinct value,
    ``***1234``), which DuckDB's automatic choice stores dictionary-compressed; fetching one
    row of such a segment decodes far more than the row, and a point lookup on the copy
    measured twice as slow as on the served file. Stored plain, the copy answers point
    lookups as fast as the served file and ``GROUP BY`` on a hashed column faster, for a
    larger file (about 32 bytes per masked value). The column types come from DuckDB itself
    (an empty ``CREATE TABLE AS``); should a type not read back as DDL, the copy is written
    with DuckDB's own choice of compression instead."""
    plain_store = {c.name for c in plan.visible if c.action in ("hash", "partial")}
    if not plain_store:
        con.execute(f"CREATE TABLE data AS {body}", params)
        return
    con.execute(f"CREATE TABLE data AS {body} LIMIT 0", params)
    types = con.execute("SELECT column_name, data_type FROM duckdb_columns() WHERE database_name = current_database() "
                        "AND schema_name = 'main' AND table_name = 'data' ORDER BY column_index").fetchall()
    con.execute("DROP TABLE data")
    ddl = ", ".join(f"{quote_ident(name)} {kind}" + (" USING COMPRESSION uncompressed" if name in plain_store else "")
                    for name, kind in types)
    try:
        con.execute(f"CREATE TABLE data ({ddl})")
    except duckdb.Error:
        con.execute(f"CREATE TABLE data AS {body}", params)
        return
    con.execute(f"INSERT INTO data {body}", params)


def hides_figures(caller: Caller, manifest: Manifest | None, key: str | None = None) -> bool:
    """Whether ``caller`` reads ``manifest``'s table under a policy that a table-wide figure could
    undo (the row count before its filter, a watermark taken over hidden rows or columns). Before
    the first copy there is no classification yet: figures are hidden where the grant carries rules."""
    policy = caller.policy_set()
    if policy is None:
        return False
    if manifest is None:
        return key is None or bool(policy.rules.get(key))
    # Asked for every query's provenance: a plan judges every column (hundreds of µs for a wide
    # table), so it is kept per (rules snapshot, version) beside the copies ``seen`` keeps.
    memo_key = ("hides_figures", manifest.table_key, manifest.file)
    hidden = policy.memo.get(memo_key)
    if hidden is None:
        hidden = plan(policy, manifest).restricted
        if len(policy.memo) < 4096:
            policy.memo[memo_key] = hidden
    return bool(hidden)


HIDDEN_SYNC_ERROR = "the sync failed (its error message is shown to admins)"


def sync_errors_seen(caller: Caller, manifest: Manifest | None, key: str, errors: list[str]) -> list[str]:
    """A sync's error messages as ``caller`` may read them: as written, or one line saying there
    were some when it reads ``key`` under a policy (``hides_figures``). Every path that reports a
    sync's failure to an agent (a refresh job's ``errors``, a ``min_freshness`` query's 503)
    takes them from here: an error raised while copying rows may quote a value (a cast that
    failed, a duplicate key) taken from a column or row the policy hides."""
    if not errors or not hides_figures(caller, manifest, key):
        return list(errors)
    return [HIDDEN_SYNC_ERROR]


def check_filter(served_root: Path, manifest: Manifest, row_filter: str) -> None:
    """Raise ``duckdb.Error`` if ``row_filter`` (already guarded) does not bind on ``manifest``'s version."""
    raw = str(version_path(served_root, manifest)).replace("'", "''")
    con = duckdb.connect(":memory:")
    try:
        con.execute(f"ATTACH '{raw}' AS __src (READ_ONLY)")
        con.execute(f"SELECT count(*) FROM (SELECT * FROM __src.main.data LIMIT 0) WHERE ({row_filter})").fetchall()
    finally:
        con.close()


def _public_extra(manifest: Manifest) -> dict[str, Any]:
    """A manifest's extra fields without the raw classification (the catalog shows its own)."""
    return {k: v for k, v in manifest.extra.items() if k not in ("classification", "policy_path")}


def _nullable(manifest: Manifest, name: str) -> bool:
    return next((c.nullable for c in manifest.columns if c.name == name), True)


def _description(manifest: Manifest, name: str) -> str:
    return next((c.description for c in manifest.columns if c.name == name), "")


def _count(path: Path) -> int:
    con = duckdb.connect(str(path), read_only=True)
    try:
        row = con.execute("SELECT count(*) FROM data").fetchone()
        return int(row[0]) if row else 0
    finally:
        con.close()
