"""Save a finished query job's result as an artifact, without a round trip through the agent.

The job's result file (written by the queries feature under ``<home>/results``) is
converted batch by batch when the wanted format differs (``convert.py``: exact, or a
400 naming the column), so memory stays bounded, then stored through the same hashing
writer as uploads. The artifact records
the job id, the SQL hash and the tables (with served versions) the result was read
from, so the artifact stops being served when one of them is no longer granted, and the
rules its read was under, so a swarm-mate narrowed by a rule of its own is not served it. A Parquet
artifact also carries the result's provenance in its key-value metadata
(``agents_data.provenance``): a Parquet result keeps its own, a converted one gets it here.
"""

from __future__ import annotations

import contextlib
import json
import secrets

from serving.artifacts import services as svc
from serving.artifacts.convert import convert
from serving.artifacts.schemas import Artifact, JobArtifactCreate
from serving.artifacts.validation import check_expires_in, check_metadata, check_name, check_tags, check_visibility
from serving.lib import quota
from serving.lib.caller import Caller
from serving.lib.continuation import PROVENANCE_KEY, provenance
from serving.lib.errors import PayloadTooLarge
from serving.lib.services import Services
from serving.tables.hooks import job_result
from shared.artifacts_store import put_file

MEDIA = {"csv": "text/csv", "parquet": "application/vnd.apache.parquet"}


def save_job_result(services: Services, caller: Caller, job_id: str, data: JobArtifactCreate) -> Artifact:
    settings = services.settings
    name = check_name(data.name or f"query-{job_id}.{data.format}")
    tags, metadata = check_tags(data.tags), check_metadata(data.metadata)
    visibility, visible_to = check_visibility(data.visibility)
    expires_in = check_expires_in(data.expires_in, settings.artifacts.default_ttl_s)
    job, source = job_result(services)(services, caller, job_id)  # served by the queries feature
    svc.check_visible_to(settings.control_url, caller.swarm_id, visible_to)
    # The swarm's room is held from before the conversion until the artifact's row counts in its place.
    limit = settings.artifacts.swarm_storage_max_bytes
    with quota.reserved(settings.control_url, caller, limit, settings.artifacts.max_bytes) as left:
        store = svc.get_store(services)
        tmp = settings.artifacts_path / "tmp" / f"export-{secrets.token_hex(8)}.{data.format}"
        tmp.parent.mkdir(parents=True, exist_ok=True)
        try:
            extra = job.provenance or {}
            prov = provenance(tables=job.tables or [], watermarks=extra.get("watermarks") or {}, sql_hash=job.sql_hash,
                              truncated=bool(job.truncated), cut_by=extra.get("cut_by"), limit=extra.get("limit"),
                              row_count=job.row_count, job_id=job.id)
            exported = convert(source, (job.output_format or "").lower(), data.format, tmp,
                               metadata={PROVENANCE_KEY: json.dumps(prov, separators=(",", ":"), default=str)})
            if exported.stat().st_size > settings.artifacts.max_bytes:
                raise PayloadTooLarge(f"the result is larger than the artifact limit of {settings.artifacts.max_bytes} bytes",
                                      rule="artifact_too_large", details={"max_bytes": settings.artifacts.max_bytes})
            if left is not None and exported.stat().st_size > left:
                raise quota.exceeded(limit)
            stored = put_file(store, exported)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        # The rules the job read each table under (recorded with the job when it ran), not the token's
        # now: a result read before a policy tightened is not shared as if read under it. A job with
        # none recorded counts as read under no rule (only readers under none may read the artifact).
        recorded = (job.provenance or {}).get("rules")
        read_under = recorded if isinstance(recorded, dict) else {}
        versions = [{k: t.get(k) for k in ("table", "version", "synced_at") if k in t}
                    | {"rules": read_under.get(str(t.get("table")), [])}
                    for t in (job.tables or []) if isinstance(t, dict)]
        return svc.create(settings.control_url, caller, stored, name=name, content_type=MEDIA[data.format], tags=tags,
                          metadata=metadata, visibility=visibility, visible_to=visible_to, expires_in=expires_in,
                          source_job_id=job.id, sql_hash=job.sql_hash, served_versions=versions)
