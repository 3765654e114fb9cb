"""A query job's row in the control database, and who may read its result.

Why apart from the worker (``jobs.py``): the row is the job's shared record. The replica
that runs a job writes it (inserted once, when the request stops waiting or a file
result is written; updated when the job ends, never over a ``cancelled`` row); any
replica reads it to report the job, serve its file or cancel it. Results are private: a
job is visible to the token that ran it and to admin (anyone else gets the 404 of an
unknown id), expired results answer 410, and a result read from a table the token may no
longer read is refused (403 ``table_not_granted``): results outlive no grant.

A continuation (the re-run holding a cut answer's full result) is recorded *deferred*:
``queued`` with no ``started_at``, its pinned table versions in ``tables`` and how to run
it in ``provenance.deferred``. Its first fetch claims it with one conditional update
(``claim``), so exactly one worker of one replica starts it however many fetch at once.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select, update

from serving.lib import quota
from serving.lib.caller import Caller
from serving.lib.errors import ApiError, Forbidden, NotFound
from serving.lib.results import FILE_MAX_ROWS
from shared import policies
from shared.control.db import session_scope
from shared.control.models import QueryJobRow, TokenRow, utcnow

if TYPE_CHECKING:
    from serving.queries.jobs import Job

ACTIVE = ("queued", "running")


class ResultGone(ApiError):
    status, code = 410, "expired"


def row_values(job: Job) -> dict[str, Any]:
    """The columns a job's end (or its detaching) writes."""
    finished = job.finished_at
    duration = (finished - job.started_at).total_seconds() * 1000.0 if finished else None
    return {
        "status": job.status, "row_count": job.row_count, "bytes": job.bytes, "truncated": job.truncated,
        "tables": job.tables, "error": job.error.message if job.error else None,
        "error_rule": (job.error.rule or job.error.code) if job.error else None,
        "result_path": job.result_path.name if job.result_path else None, "finished_at": finished,
        "duration_ms": duration,
        "expires_at": job.expires_at,
        "provenance": job_extra(job) | {"rules": read_rules(job.caller, job.tables)},
    }


def job_extra(job: Job) -> dict[str, Any]:
    """What ``QueryJobRow.provenance`` keeps of a job: its cut, continuation and schema changes."""
    limit = None
    if job.cut_by == "row_cap":
        limit = job.max_rows
    elif job.continuation is not None:
        limit = job.continuation["limit"]
    return {"cut_by": job.cut_by, "limit": limit, "continuation": job.continuation,
            "schema_changes": job.schema_changes, "watermarks": job.watermarks, "columns": job.columns}


def read_rules(caller: Caller, tables: Any) -> dict[str, list[str]]:
    """{table key: digests of the rules ``caller`` read it under} (``policies.rule_digests``), kept
    with the job: an artifact saved from its result later records these, not the rules of the
    token when it saves (a policy tightened in between would pass for one the read was under)."""
    policy = caller.policy_set()
    keys = {str(t["table"]) for t in tables or [] if isinstance(t, dict) and t.get("table")}
    return {k: policies.rule_digests(policy, k) for k in sorted(keys)}


def save(control_url: str, replica: str, job: Job, *, insert: bool, reservation: quota.Reservation | None = None) -> None:
    """Insert or update ``job``'s row; ``reservation`` (its result file's room) is handed over to it."""
    values = row_values(job)
    with session_scope(control_url) as s:
        quota.hand_over(s, reservation)
        if insert:
            s.add(QueryJobRow(id=job.id, token_id=job.owner, swarm_id=job.caller.swarm_id, replica=replica,
                              sql_text=job.sql, sql_hash=job.sql_hash, params=job.params, output_format=job.fmt,
                              max_rows=job.max_rows, created_at=job.created_at, started_at=job.started_at, **values))
        else:
            s.execute(update(QueryJobRow).where(QueryJobRow.id == job.id, QueryJobRow.status != "cancelled")
                      .values(**values))


def defer(control_url: str, job: Job, cont_id: str, *, result_ttl_s: float) -> None:
    """Record the deferred continuation ``cont_id`` of ``job``: same SQL and params, as Parquet at the
    file row limit, reading the versions ``job`` read; it expires like a result if never fetched."""
    now = utcnow()
    with session_scope(control_url) as s:
        s.add(QueryJobRow(id=cont_id, token_id=job.owner, swarm_id=job.caller.swarm_id, replica="", sql_text=job.sql,
                          sql_hash=job.sql_hash, params=job.params, output_format="parquet", max_rows=FILE_MAX_ROWS,
                          status="queued", truncated=False, tables=job.tables, created_at=now, started_at=None,
                          expires_at=now + dt.timedelta(seconds=result_ttl_s),
                          provenance={"deferred": {"timeout_s": job.timeout_s, "engine": job.engine},
                                      "watermarks": job.watermarks, "continuation": None, "schema_changes": []}))


def deferred(row: QueryJobRow) -> dict[str, Any] | None:
    """How to run ``row`` when it is a continuation no fetch has started yet; None otherwise."""
    spec = (row.provenance or {}).get("deferred")
    if row.status != "queued" or row.started_at is not None or not isinstance(spec, dict):
        return None
    return spec


def pinned_versions(row: QueryJobRow, live: Any = ()) -> dict[str, str]:
    """{table key: served version} the cut answer read (live tables have no served version to pin)."""
    return {str(t["table"]): str(t["version"]) for t in row.tables or []
            if isinstance(t, dict) and t.get("table") and t.get("version") and t["table"] not in live}


def claim(control_url: str, job_id: str, replica: str) -> bool:
    """Mark a deferred continuation running on ``replica``: True for exactly one caller."""
    with session_scope(control_url) as s:
        done = s.execute(update(QueryJobRow).where(QueryJobRow.id == job_id, QueryJobRow.status == "queued",
                                                   QueryJobRow.started_at.is_(None))
                         .values(status="running", replica=replica, started_at=utcnow(), expires_at=None))
        return bool(done.rowcount)  # type: ignore[attr-defined]


def fail_deferred(control_url: str, job_id: str, error: ApiError) -> None:
    """A deferred continuation that can no longer run (its version was deleted) fails for every reader."""
    now = utcnow()
    with session_scope(control_url) as s:
        s.execute(update(QueryJobRow).where(QueryJobRow.id == job_id, QueryJobRow.status == "queued",
                                            QueryJobRow.started_at.is_(None))
                  .values(status="failed", error=error.message, error_rule=error.rule or error.code,
                          started_at=now, finished_at=now))


def to_interrupt(control_url: str, jobs: list[Job]) -> dict[str, str]:
    """Ids of ``jobs`` to stop, with why: one control-database round trip per kind."""
    persisted = [job.id for job in jobs if job.detached]
    tokens = {job.caller.token_id for job in jobs if job.caller.token_id}
    stop: dict[str, str] = {}
    with session_scope(control_url) as s:
        if persisted:
            for job_id in s.scalars(select(QueryJobRow.id).where(QueryJobRow.id.in_(persisted),
                                                                  QueryJobRow.status == "cancelled")):
                stop[job_id] = "cancelled through another replica"
        if tokens:
            revoked = set(s.scalars(select(TokenRow.id).where(TokenRow.id.in_(tokens),
                                                              TokenRow.revoked_at.is_not(None))))
            for job in jobs:
                if job.caller.token_id in revoked:
                    stop.setdefault(job.id, "its token was revoked")
    return stop


def load(control_url: str, job_id: str, caller: Caller) -> QueryJobRow:
    """The job's row if ``caller`` may see it; 404 (same answer as unknown) otherwise."""
    with session_scope(control_url) as s:
        row = s.get(QueryJobRow, job_id) if len(job_id) <= 64 else None
        if row is None or not (caller.is_admin or (row.token_id is not None and row.token_id == caller.token_id)):
            raise NotFound(f"query job {job_id[:64]} does not exist or belongs to another token", rule="job_not_found")
        s.expunge(row)
    if row.status == "succeeded" and row.expires_at is not None and row.expires_at < utcnow():
        row.status = "expired"
    return row


def result_file(results_path: Path, row: QueryJobRow, caller: Caller) -> Path:
    """The result file of ``row`` for ``caller``: 403 ``table_not_granted`` once a table it was read
    from is no longer granted to the caller, 410 when expired, 404 when there is none."""
    check_still_granted(caller, row.tables, f"the result of job {row.id}")
    if row.status == "expired":
        raise ResultGone(f"the result of job {row.id} expired and was deleted; run the query again", rule="expired")
    if row.status == "failed" and row.error_rule == "version_gone":
        raise ResultGone(f"job {row.id} has no result: {row.error}", rule="version_gone")
    if row.status != "succeeded" or not row.result_path:
        raise NotFound(f"job {row.id} has no result (status {row.status})", rule="no_result")
    path = results_path / Path(row.result_path).name
    if not path.is_file():
        raise ResultGone(f"the result of job {row.id} is no longer available; run the query again", rule="expired")
    return path


def add_converted(control_url: str, job_id: str, nbytes: int) -> None:
    """Count a conversion kept beside ``job_id``'s result (its swarm's storage quota reads it)."""
    with session_scope(control_url) as s:
        s.execute(update(QueryJobRow).where(QueryJobRow.id == job_id)
                  .values(converted_bytes=func.coalesce(QueryJobRow.converted_bytes, 0) + nbytes))


def mark_cancelled(control_url: str, job_id: str) -> None:
    """Cancel a queued or running job's row (the replica running it sees it within a second)."""
    with session_scope(control_url) as s:
        s.execute(update(QueryJobRow).where(QueryJobRow.id == job_id, QueryJobRow.status.in_(ACTIVE))
                  .values(status="cancelled", finished_at=utcnow(), error="cancelled by request",
                          error_rule="cancelled", expires_at=utcnow()))


def ungranted(caller: Caller, tables: Any) -> list[str]:
    """Tables among ``tables`` (``[{table, version, synced_at}]`` as results and artifacts record
    them) that ``caller`` may not read now."""
    if caller.is_admin:
        return []
    names = {str(t.get("table")) for t in (tables or []) if isinstance(t, dict) and t.get("table")}
    return sorted(n for n in names if not caller.may_read(n))


def check_still_granted(caller: Caller, tables: Any, what: str) -> None:
    """Results outlive no grant: data read from a table is served only to callers who may still read it."""
    missing = ungranted(caller, tables)
    if missing:
        raise Forbidden(f"{what} was read from {', '.join(missing)}, which this token may no longer read; results "
                        "are served only while their tables are granted", rule="table_not_granted",
                        details={"tables": missing})
