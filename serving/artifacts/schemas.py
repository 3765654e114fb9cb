"""API shapes of the artifacts feature."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

import msgspec


class Artifact(msgspec.Struct, kw_only=True):
    """An artifact's metadata. ``sha256`` is also the download's ETag."""

    id: str
    name: str
    content_type: str
    size: int
    sha256: str
    tags: list[str]
    metadata: dict[str, Any]
    visibility: Literal["private", "swarm", "agents"]
    visible_to: list[str]
    owner: str | None  # the owning agent token id
    owner_name: str | None
    swarm_id: str | None
    created_at: dt.datetime
    updated_at: dt.datetime
    expires_at: dt.datetime | None
    source_job_id: str | None = None
    sql_hash: str | None = None
    served_versions: list[dict[str, Any]] = msgspec.field(default_factory=list)
    content_url: str


class ArtifactList(msgspec.Struct, kw_only=True):
    items: list[Artifact]
    count: int
    next_offset: int | None  # pass as ``offset`` for the next page (None: no more); pages are full until the last


class ArtifactUpdate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Fields to change; absent fields stay. ``visibility`` is 'private', 'swarm' or a list of agent ids.

    Expiry: ``expires_in`` (seconds or '12h', '7d' from now) or ``expires_at``.
    """

    name: str | msgspec.UnsetType = msgspec.UNSET
    tags: list[str] | msgspec.UnsetType = msgspec.UNSET
    metadata: dict[str, Any] | msgspec.UnsetType = msgspec.UNSET
    visibility: str | list[str] | msgspec.UnsetType = msgspec.UNSET
    expires_in: int | str | msgspec.UnsetType = msgspec.UNSET
    expires_at: dt.datetime | msgspec.UnsetType = msgspec.UNSET


class JobArtifactCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Save a finished query job's result as an artifact, server-side."""

    format: Literal["csv", "parquet"] = "parquet"
    name: str | None = None
    tags: list[str] = msgspec.field(default_factory=list)
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)
    visibility: str | list[str] = "private"
    expires_in: int | str | None = None
