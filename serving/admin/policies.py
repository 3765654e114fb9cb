"""Admin routes for grant policies, unmask grants and classification overrides.

Thin handlers: the rules live in ``shared/policies.py`` (the records' one owner); here a
table name is made canonical, a row filter is checked by the SQL guard (through the
queries feature's start-up hook) and against the served version, and every change clears
the identity cache: it applies to this replica's next request, and to other replicas'
within ``TOKEN_CACHE_TTL_S`` (policies are loaded with a token's record). Every request is
audited like any other; the audit row names the table, and an unmask grant keeps its
reason, author and time in its own record.
"""

from __future__ import annotations

from typing import Any

import anyio.to_thread
import duckdb
import sqlalchemy as sa
from litestar import Request, delete, get, post, put
from litestar.params import Parameter

from serving.admin.schemas import (
    ColumnOverride,
    ColumnOverrideUpdate,
    ColumnUnmask,
    ColumnUnmaskCreate,
    ColumnVerdict,
    GrantPolicy,
    GrantPolicyDeleted,
    GrantPolicyUpdate,
    TableClassification,
)
from serving.lib.audit import annotate
from serving.lib.caller import Caller
from serving.lib.errors import ApiError, BadRequest, NotFound, ServiceUnavailable
from serving.lib.guards import requires_admin
from serving.lib.identity import get_identity
from serving.lib.services import Services
from serving.tables.platform import filter_guard
from serving.tables.policies import check_filter
from serving.tables.served import resolve_among, served_tables
from shared import policies
from shared.control.db import session_scope
from shared.control.models import ColumnOverrideRow, ColumnUnmaskRow, GrantPolicyRow, SwarmRow, TokenRow
from shared.identifiers import canonical_key, duck_fold
from shared.served import Manifest, ServedDataError
from shared.served_storage import open_store

ADMIN = Caller(kind="admin", subject="admin")  # only to list every served table when resolving a short name


def _key(services: Services, table: str) -> str:
    """A table key, its SQL name, or a short name unique among the served tables."""
    try:
        return canonical_key(table)
    except ValueError:
        pass
    served = served_tables(services)
    try:
        return resolve_among(served.grants_of(ADMIN, refresh=True), table)
    except ApiError as e:
        raise BadRequest(f"table must be a table key 'database.schema.table', its SQL name, or a short name unique "
                         f"among served tables: {table[:200]!r}", rule="invalid_table") from e


def _served(services: Services, key: str) -> Manifest | None:
    return served_tables(services).current(key)


def _known_columns(manifest: Manifest | None, names: list[str], field: str) -> None:
    """Refuse column names the served version does not have (any name is accepted before a first sync)."""
    if manifest is None:
        return
    have = {duck_fold(c.name) for c in manifest.columns}
    unknown = [n for n in names if duck_fold(n) not in have]
    if unknown:
        raise BadRequest(f"{field}: unknown columns {', '.join(u[:100] for u in unknown[:20])}", rule="unknown_column",
                         details={"unknown": unknown[:20], "columns": [c.name for c in manifest.columns]})


def _policy(row: GrantPolicyRow) -> GrantPolicy:
    return GrantPolicy(swarm_id=row.swarm_id, token_id=row.token_id or None, table=row.table_key,
                       exclude=list(row.exclude or []), masks=dict(row.masks or {}), row_filter=row.row_filter,
                       updated_by=row.updated_by, updated_at=row.updated_at)


def _unmask(row: ColumnUnmaskRow) -> ColumnUnmask:
    return ColumnUnmask(swarm_id=row.swarm_id, table=row.table_key, column=row.column_name, reason=row.reason,
                        granted_by=row.granted_by, granted_at=row.granted_at)


def _override(row: ColumnOverrideRow) -> ColumnOverride:
    return ColumnOverride(table=row.table_key, column=row.column_name, personal=row.personal, category=row.category,
                          reason=row.reason, updated_by=row.updated_by, updated_at=row.updated_at)


def _checked_filter(services: Services, key: str, manifest: Manifest | None, row_filter: str | None) -> str | None:
    if row_filter is None or not row_filter.strip():
        return None
    text = filter_guard(services)(row_filter, None)  # the SQL guard: 400 with its rule when refused
    if manifest is not None:
        try:
            open_store(services.settings).local_path(manifest)  # object storage: fetched if this replica lacks it
        except ServedDataError as e:
            raise ServiceUnavailable(f"the served data of {key} cannot be fetched on this replica now; try again",
                                     rule="served_data_unavailable") from e
        try:
            check_filter(services.settings.served_path, manifest, text)
        except duckdb.Error as e:
            message = str(e).split("\n")[0][:300]
            raise BadRequest(f"row_filter does not apply to {key}: {message}", rule="invalid_row_filter") from e
    return text


def _put_rule(services: Services, caller: Caller, *, swarm_id: str, token_id: str, table: str,
              data: GrantPolicyUpdate) -> GrantPolicy:
    key = _key(services, table)
    manifest = _served(services, key)
    _known_columns(manifest, [*data.exclude, *data.masks], "exclude/masks")
    row_filter = _checked_filter(services, key, manifest, data.row_filter)
    with session_scope(services.control_url) as s:
        if s.get(SwarmRow, swarm_id) is None:
            raise NotFound(f"no swarm {swarm_id!r}")
        try:
            row = policies.put_rule(s, swarm_id=swarm_id, token_id=token_id, table_key=key, exclude=data.exclude,
                                    masks=dict(data.masks), row_filter=row_filter, by=caller.subject)
        except ValueError as e:
            raise BadRequest(str(e), rule="invalid_policy") from e
        return _policy(row)


def _agent_token(services: Services, token_id: str) -> str:
    with session_scope(services.control_url) as s:
        token = s.get(TokenRow, token_id)
        if token is None:
            raise NotFound(f"no token {token_id!r}")
        if token.type != "agent":
            raise BadRequest("policies narrow agent tokens; a swarm token reads under its swarm's policies",
                             rule="not_an_agent_token")
        return token.swarm_id


async def _changed(services: Services, request: Request[Any, Any, Any], key: str, sql: str | None = None) -> None:
    get_identity(services).invalidate()
    annotate(request, tables=[{"table": key}], **({"sql_text": sql} if sql else {}))


@get("/policies", operation_id="listGrantPolicies", guards=[requires_admin])
async def list_policies(services: Services, swarm_id: str | None = None,
                        table: str | None = Parameter(default=None, description="table key or SQL name")
                        ) -> list[GrantPolicy]:
    """Grant policies (swarm-wide and per agent token), with their row filters' predicates."""

    def run() -> list[GrantPolicy]:
        q = sa.select(GrantPolicyRow).order_by(GrantPolicyRow.swarm_id, GrantPolicyRow.table_key, GrantPolicyRow.token_id)
        if swarm_id:
            q = q.where(GrantPolicyRow.swarm_id == swarm_id)
        if table:
            q = q.where(GrantPolicyRow.table_key == _key(services, table))
        with session_scope(services.control_url) as s:
            return [_policy(r) for r in s.scalars(q)]

    return await anyio.to_thread.run_sync(run)


@put("/swarms/{swarm_id:str}/policies/{table:str}", operation_id="putSwarmPolicy", guards=[requires_admin])
async def put_swarm_policy(*, request: Request[Any, Any, Any], caller: Caller, services: Services, swarm_id: str,
                           table: str, data: GrantPolicyUpdate) -> GrantPolicy:
    """Set the column and row rules of a table for every token of a swarm (replaces the previous rules).

    Takes effect on the next request here and within ``TOKEN_CACHE_TTL_S`` on other replicas."""
    policy = await anyio.to_thread.run_sync(lambda: _put_rule(services, caller, swarm_id=swarm_id, token_id="",
                                                              table=table, data=data))
    await _changed(services, request, policy.table, policy.row_filter)
    return policy


@delete("/swarms/{swarm_id:str}/policies/{table:str}", operation_id="deleteSwarmPolicy", status_code=200,
        guards=[requires_admin])
async def delete_swarm_policy(request: Request[Any, Any, Any], services: Services, swarm_id: str,
                              table: str) -> GrantPolicyDeleted:
    """Remove a swarm's rules on a table (personal columns stay masked by default)."""
    key = _key(services, table)

    def run() -> bool:
        with session_scope(services.control_url) as s:
            return policies.delete_rule(s, swarm_id=swarm_id, token_id="", table_key=key)

    deleted = await anyio.to_thread.run_sync(run)
    await _changed(services, request, key)
    return GrantPolicyDeleted(deleted=deleted)


@put("/tokens/{token_id:str}/policies/{table:str}", operation_id="putAgentPolicy", guards=[requires_admin])
async def put_agent_policy(*, request: Request[Any, Any, Any], caller: Caller, services: Services, token_id: str,
                           table: str, data: GrantPolicyUpdate) -> GrantPolicy:
    """Narrow one agent token further on a table: its rules add to (never relax) its swarm's."""

    def run() -> GrantPolicy:
        swarm_id = _agent_token(services, token_id)
        return _put_rule(services, caller, swarm_id=swarm_id, token_id=token_id, table=table, data=data)

    policy = await anyio.to_thread.run_sync(run)
    await _changed(services, request, policy.table, policy.row_filter)
    return policy


@delete("/tokens/{token_id:str}/policies/{table:str}", operation_id="deleteAgentPolicy", status_code=200,
        guards=[requires_admin])
async def delete_agent_policy(request: Request[Any, Any, Any], services: Services, token_id: str,
                              table: str) -> GrantPolicyDeleted:
    """Remove an agent token's own rules on a table (its swarm's still apply)."""
    key = _key(services, table)

    def run() -> bool:
        swarm_id = _agent_token(services, token_id)
        with session_scope(services.control_url) as s:
            return policies.delete_rule(s, swarm_id=swarm_id, token_id=token_id, table_key=key)

    deleted = await anyio.to_thread.run_sync(run)
    await _changed(services, request, key)
    return GrantPolicyDeleted(deleted=deleted)


@get("/swarms/{swarm_id:str}/unmasked", operation_id="listUnmasked", guards=[requires_admin])
async def list_unmasked(services: Services, swarm_id: str) -> list[ColumnUnmask]:
    """Personal columns granted unmasked to a swarm, with who granted them, when and why."""

    def run() -> list[ColumnUnmask]:
        with session_scope(services.control_url) as s:
            rows = s.scalars(sa.select(ColumnUnmaskRow).where(ColumnUnmaskRow.swarm_id == swarm_id)
                             .order_by(ColumnUnmaskRow.table_key, ColumnUnmaskRow.column_name))
            return [_unmask(r) for r in rows]

    return await anyio.to_thread.run_sync(run)


@post("/swarms/{swarm_id:str}/unmasked", operation_id="grantUnmasked", guards=[requires_admin])
async def grant_unmasked(*, request: Request[Any, Any, Any], caller: Caller, services: Services, swarm_id: str,
                         data: ColumnUnmaskCreate) -> ColumnUnmask:
    """Grant a personal column unmasked to a swarm, with a reason (kept with the grant and audited)."""
    key = _key(services, data.table)
    if not data.reason.strip() or len(data.reason) > 2000:
        raise BadRequest("reason is required (1 to 2000 characters): why this swarm needs the unmasked values",
                         rule="reason_required")

    def run() -> ColumnUnmask:
        manifest = _served(services, key)
        _known_columns(manifest, [data.column], "column")
        column = next((c.name for c in manifest.columns if duck_fold(c.name) == duck_fold(data.column)),
                      data.column) if manifest else data.column
        with session_scope(services.control_url) as s:
            if s.get(SwarmRow, swarm_id) is None:
                raise NotFound(f"no swarm {swarm_id!r}")
            try:
                row = policies.unmask(s, swarm_id=swarm_id, table_key=key, column=column, reason=data.reason.strip(),
                                      by=caller.subject)
            except ValueError as e:
                raise BadRequest(str(e), rule="invalid_policy") from e
            return _unmask(row)

    grant = await anyio.to_thread.run_sync(run)
    await _changed(services, request, key)
    return grant


@delete("/swarms/{swarm_id:str}/unmasked/{table:str}/{column:str}", operation_id="revokeUnmasked", status_code=200,
        guards=[requires_admin])
async def revoke_unmasked(request: Request[Any, Any, Any], services: Services, swarm_id: str, table: str,
                          column: str) -> GrantPolicyDeleted:
    """Mask a personal column again for a swarm."""
    key = _key(services, table)

    def run() -> bool:
        with session_scope(services.control_url) as s:
            rows = s.scalars(sa.select(ColumnUnmaskRow).where(ColumnUnmaskRow.swarm_id == swarm_id,
                                                               ColumnUnmaskRow.table_key == key)).all()
            hit = [r for r in rows if duck_fold(r.column_name) == duck_fold(column)]
            for r in hit:
                s.delete(r)
            return bool(hit)

    deleted = await anyio.to_thread.run_sync(run)
    await _changed(services, request, key)
    return GrantPolicyDeleted(deleted=deleted)


@get("/classifications/{table:str}", operation_id="getClassification", guards=[requires_admin])
async def get_classification(services: Services, table: str) -> TableClassification:
    """Each column's personal-data classification at the last sync, the admin's override, and the result."""
    key = _key(services, table)

    def run() -> TableClassification:
        manifest = _served(services, key)
        with session_scope(services.control_url) as s:
            overrides = policies.load_overrides(s, key)
            found = {k: _override(r) for k, r in overrides.items()}
        if manifest is None and not found:
            raise NotFound(f"table {key} has no served data and no overrides", rule="table_not_served")
        detected = policies.classification(manifest) if manifest else {}
        names = [c.name for c in manifest.columns] if manifest else []
        names += [o.column for k, o in found.items() if k not in {duck_fold(n) for n in names}]
        out = []
        for n in names:
            o = found.get(duck_fold(n))
            d = detected.get(n)
            personal = o.personal if o else (bool(d.get("personal")) if isinstance(d, dict) else True)
            out.append(ColumnVerdict(name=n, personal=personal, detected=d if isinstance(d, dict) else None, override=o))
        return TableClassification(table=key, served_version=manifest.version if manifest else None, columns=out)

    return await anyio.to_thread.run_sync(run)


@put("/classifications/{table:str}/{column:str}", operation_id="overrideClassification", guards=[requires_admin])
async def override_classification(*, request: Request[Any, Any, Any], caller: Caller, services: Services, table: str,
                                  column: str, data: ColumnOverrideUpdate) -> ColumnOverride:
    """Decide whether a column is personal; the verdict survives every re-sync until it is removed."""
    key = _key(services, table)
    if not data.reason.strip() or len(data.reason) > 2000:
        raise BadRequest("reason is required (1 to 2000 characters)", rule="reason_required")
    if data.category is not None and data.category not in policies.CATEGORIES:
        raise BadRequest(f"category must be one of {', '.join(policies.CATEGORIES)}", rule="invalid_policy")

    def run() -> ColumnOverride:
        manifest = _served(services, key)
        _known_columns(manifest, [column], "column")
        name = next((c.name for c in manifest.columns if duck_fold(c.name) == duck_fold(column)),
                    column) if manifest else column
        with session_scope(services.control_url) as s:
            try:
                row = policies.set_override(s, table_key=key, column=name, personal=data.personal,
                                            category=data.category, reason=data.reason.strip(), by=caller.subject)
            except ValueError as e:
                raise BadRequest(str(e), rule="invalid_policy") from e
            return _override(row)

    found = await anyio.to_thread.run_sync(run)
    await _changed(services, request, key)
    return found


@delete("/classifications/{table:str}/{column:str}", operation_id="clearClassificationOverride", status_code=200,
        guards=[requires_admin])
async def clear_override(request: Request[Any, Any, Any], services: Services, table: str,
                         column: str) -> GrantPolicyDeleted:
    """Remove the admin's override: the classification of the served version applies again."""
    key = _key(services, table)

    def run() -> bool:
        with session_scope(services.control_url) as s:
            return policies.clear_override(s, table_key=key, column=column)

    deleted = await anyio.to_thread.run_sync(run)
    await _changed(services, request, key)
    return GrantPolicyDeleted(deleted=deleted)


ROUTES: list[Any] = [list_policies, put_swarm_policy, delete_swarm_policy, put_agent_policy, delete_agent_policy,
                     list_unmasked, grant_unmasked, revoke_unmasked, get_classification, override_classification,
                     clear_override]
