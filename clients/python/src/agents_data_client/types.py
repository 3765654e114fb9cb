"""Typed results. Each keeps the whole JSON answer in ``raw``, so fields the server adds later
are never lost, and fields a server does not send yet (``continuation``, ``provenance``,
``schema_version``) are simply ``None``."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any


@dataclasses.dataclass
class Column:
    name: str
    type: str
    nullable: bool | None = None
    description: str | None = None

    @classmethod
    def of(cls, d: Mapping[str, Any]) -> Column:
        return cls(name=str(d.get("name")), type=str(d.get("type")), nullable=d.get("nullable"), description=d.get("description"))


@dataclasses.dataclass
class Freshness:
    """``fresh``, ``stale`` or ``failing``, with the reason and the age of the served data."""

    status: str
    reason: str
    age_s: float | None
    target_s: int | None
    raw: dict[str, Any]

    @classmethod
    def of(cls, d: Mapping[str, Any] | None) -> Freshness:
        d = d or {}
        return cls(
            status=str(d.get("status", "unknown")),
            reason=str(d.get("reason", "")),
            age_s=d.get("age_s"),
            target_s=d.get("target_s"),
            raw=dict(d),
        )


@dataclasses.dataclass
class Table:
    """A catalog entry: ``table`` is exactly what to write in SQL, ``key`` the API key."""

    table: str
    key: str
    name: str
    description: str
    columns: list[Column]
    row_count: int | None
    served_version: str | None
    last_synced_at: str | None
    freshness: Freshness
    schema_version: str | None
    raw: dict[str, Any]

    @classmethod
    def of(cls, d: Mapping[str, Any]) -> Table:
        return cls(
            table=str(d.get("table")),
            key=str(d.get("key") or ""),
            name=str(d.get("name") or ""),
            description=str(d.get("description") or ""),
            columns=[Column.of(c) for c in d.get("columns") or []],
            row_count=d.get("row_count"),
            served_version=d.get("served_version"),
            last_synced_at=d.get("last_synced_at"),
            freshness=Freshness.of(d.get("freshness")),
            schema_version=d.get("schema_version"),
            raw=dict(d),
        )


@dataclasses.dataclass
class TableVersion:
    """A table an answer was read from, its served version and when that was synced."""

    table: str
    version: str | None
    synced_at: str | None

    @classmethod
    def of(cls, d: Mapping[str, Any]) -> TableVersion:
        return cls(table=str(d.get("table")), version=d.get("version"), synced_at=d.get("synced_at"))


@dataclasses.dataclass
class Continuation:
    """How to get the rest of a cut answer: a job holding the full result, paged or whole."""

    job_id: str
    status: str | None
    cut_by: str | None
    limit: int | None
    rows_returned: int | None
    rest_available: bool
    status_url: str | None
    result_url: str | None
    next_url: str | None
    artifact_url: str | None
    full_limit: int | None
    raw: dict[str, Any]

    @classmethod
    def of(cls, d: Mapping[str, Any] | None) -> Continuation | None:
        if not d or not d.get("job_id"):
            return None
        return cls(
            job_id=str(d["job_id"]),
            status=d.get("status"),
            cut_by=d.get("cut_by"),
            limit=d.get("limit"),
            rows_returned=d.get("rows_returned"),
            rest_available=bool(d.get("rest_available", True)),
            status_url=d.get("status_url"),
            result_url=d.get("result_url"),
            next_url=d.get("next_url"),
            artifact_url=d.get("artifact_url"),
            full_limit=d.get("full_limit"),
            raw=dict(d),
        )


@dataclasses.dataclass
class QueryResult:
    """Rows answered inline. ``truncated`` is never silent: ``continuation`` (when the server sends
    one) says how to fetch the rest."""

    columns: list[Column]
    rows: list[list[Any]]
    row_count: int
    truncated: bool
    tables: list[TableVersion]
    sql_hash: str | None
    job_id: str | None
    duration_ms: float | None
    continuation: Continuation | None
    provenance: dict[str, Any] | None
    schema_changes: list[dict[str, Any]]
    raw: dict[str, Any]

    @classmethod
    def of(cls, d: Mapping[str, Any]) -> QueryResult:
        return cls(
            columns=[Column.of(c) for c in d.get("columns") or []],
            rows=list(d.get("rows") or []),
            row_count=int(d.get("row_count") or 0),
            truncated=bool(d.get("truncated")),
            tables=[TableVersion.of(t) for t in d.get("tables") or []],
            sql_hash=d.get("sql_hash"),
            job_id=d.get("job_id"),
            duration_ms=d.get("duration_ms"),
            continuation=Continuation.of(d.get("continuation")),
            provenance=d.get("provenance"),
            schema_changes=list(d.get("schema_changes") or []),
            raw=dict(d),
        )

    def records(self) -> list[dict[str, Any]]:
        """Rows as dicts keyed by column name."""
        names = [c.name for c in self.columns]
        return [dict(zip(names, row, strict=False)) for row in self.rows]


@dataclasses.dataclass
class QueryJob:
    """An async query job: poll it until ``done``; a succeeded one has a ``result_url``."""

    job_id: str
    status: str
    output_format: str | None
    status_url: str | None
    result_url: str | None
    row_count: int | None
    bytes: int | None
    truncated: bool | None
    tables: list[TableVersion]
    error: dict[str, Any] | None
    continuation: Continuation | None
    raw: dict[str, Any]

    @classmethod
    def of(cls, d: Mapping[str, Any]) -> QueryJob:
        return cls(
            job_id=str(d.get("job_id")),
            status=str(d.get("status")),
            output_format=d.get("output_format"),
            status_url=d.get("status_url"),
            result_url=d.get("result_url"),
            row_count=d.get("row_count"),
            bytes=d.get("bytes"),
            truncated=d.get("truncated"),
            tables=[TableVersion.of(t) for t in d.get("tables") or []],
            error=d.get("error"),
            continuation=Continuation.of(d.get("continuation")),
            raw=dict(d),
        )

    @property
    def done(self) -> bool:
        return self.status not in ("queued", "running")


@dataclasses.dataclass
class RowsPage:
    """One page of a finished job's rows; follow ``next_url`` (null on the last page)."""

    job_id: str
    columns: list[Column]
    rows: list[list[Any]]
    offset: int
    next_cursor: str | None
    next_url: str | None
    total_rows: int | None
    raw: dict[str, Any]

    @classmethod
    def of(cls, d: Mapping[str, Any]) -> RowsPage:
        return cls(
            job_id=str(d.get("job_id")),
            columns=[Column.of(c) for c in d.get("columns") or []],
            rows=list(d.get("rows") or []),
            offset=int(d.get("offset") or 0),
            next_cursor=d.get("next_cursor"),
            next_url=d.get("next_url"),
            total_rows=d.get("total_rows"),
            raw=dict(d),
        )


@dataclasses.dataclass
class Sample:
    table: str
    method: str
    seed: int | None
    columns: list[Column]
    rows: list[list[Any]]
    row_count: int
    truncated: bool
    served_version: str | None
    raw: dict[str, Any]

    @classmethod
    def of(cls, d: Mapping[str, Any]) -> Sample:
        return cls(
            table=str(d.get("table")),
            method=str(d.get("method")),
            seed=d.get("seed"),
            columns=[Column.of(c) for c in d.get("columns") or []],
            rows=list(d.get("rows") or []),
            row_count=int(d.get("row_count") or 0),
            truncated=bool(d.get("truncated")),
            served_version=d.get("served_version"),
            raw=dict(d),
        )


@dataclasses.dataclass
class Profile:
    """Per-column statistics of a served table (each column's dict as the API sends it)."""

    table: str
    served_version: str | None
    row_count: int
    columns: list[dict[str, Any]]
    cached: bool
    raw: dict[str, Any]

    @classmethod
    def of(cls, d: Mapping[str, Any]) -> Profile:
        return cls(
            table=str(d.get("table")),
            served_version=d.get("served_version"),
            row_count=int(d.get("row_count") or 0),
            columns=list(d.get("columns") or []),
            cached=bool(d.get("cached")),
            raw=dict(d),
        )

    def column(self, name: str) -> dict[str, Any]:
        return next(c for c in self.columns if c.get("name") == name)


@dataclasses.dataclass
class Refresh:
    """A refresh answer: ``already_fresh``, or the job bringing fresh data (``job_id``, ``eta_s``)."""

    table: str
    outcome: str
    job_id: str | None
    job_status: str | None
    eta_s: float | None
    poll_url: str | None
    synced_at: str | None
    raw: dict[str, Any]

    @classmethod
    def of(cls, d: Mapping[str, Any]) -> Refresh:
        return cls(
            table=str(d.get("table")),
            outcome=str(d.get("outcome")),
            job_id=d.get("job_id"),
            job_status=d.get("job_status") or d.get("status"),
            eta_s=d.get("eta_s"),
            poll_url=d.get("poll_url"),
            synced_at=d.get("synced_at"),
            raw=dict(d),
        )


@dataclasses.dataclass
class Artifact:
    id: str
    name: str
    content_type: str
    size: int
    visibility: str
    tags: list[str]
    metadata: dict[str, Any]
    content_url: str | None
    source_job_id: str | None
    provenance: dict[str, Any] | None
    raw: dict[str, Any]

    @classmethod
    def of(cls, d: Mapping[str, Any]) -> Artifact:
        return cls(
            id=str(d.get("id")),
            name=str(d.get("name")),
            content_type=str(d.get("content_type")),
            size=int(d.get("size") or 0),
            visibility=str(d.get("visibility")),
            tags=list(d.get("tags") or []),
            metadata=dict(d.get("metadata") or {}),
            content_url=d.get("content_url"),
            source_job_id=d.get("source_job_id"),
            provenance=d.get("provenance"),
            raw=dict(d),
        )


@dataclasses.dataclass
class Limit:
    """One rate-limit policy from ``RateLimit-Policy`` and ``RateLimit``: quota, window, what remains."""

    name: str
    quota: int | None
    window_s: int | None
    unit: str | None
    remaining: int | None
    reset_s: int | None


def parse_rate_limits(policy: str | None, current: str | None) -> dict[str, Limit]:
    """Both headers (IETF draft form: ``"name";q=…;w=…`` and ``"name";r=…;t=…``) as one dict by policy name."""

    def items(header: str | None) -> dict[str, dict[str, str]]:
        out: dict[str, dict[str, str]] = {}
        for item in (header or "").split(","):
            name, *params = [p.strip() for p in item.split(";")]
            if name:
                out[name.strip('"')] = {k: v.strip('"') for k, _, v in (p.partition("=") for p in params)}
        return out

    def num(v: str | None) -> int | None:
        try:
            return int(v) if v is not None else None
        except ValueError:
            return None

    p, c = items(policy), items(current)
    return {
        name: Limit(
            name=name,
            quota=num(p.get(name, {}).get("q")),
            window_s=num(p.get(name, {}).get("w")),
            unit=p.get(name, {}).get("qu"),
            remaining=num(c.get(name, {}).get("r")),
            reset_s=num(c.get(name, {}).get("t")),
        )
        for name in {**p, **c}
    }
