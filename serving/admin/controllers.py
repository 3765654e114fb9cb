"""Routes of the admin feature: swarms, swarm and agent tokens, budgets, the audit log; grant policies,
unmask grants and classification overrides in ``policies.py``.

Thin handlers: check the capability, run the blocking store call in a thread, and
clear the identity cache after any change so it applies to the very next request.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import anyio.to_thread
from litestar import Router, delete, get, patch, post, put
from litestar.params import Parameter

from serving.admin import audit_query, budget_store, policies, store
from serving.admin.schemas import (
    AgentTokenCreate,
    AuditPage,
    Budget,
    BudgetSet,
    Swarm,
    SwarmCreate,
    SwarmDeleted,
    SwarmUpdate,
    Token,
    TokenCreate,
    TokenCreated,
    TokenRevoked,
)
from serving.lib.budgets import get_budgets
from serving.lib.caller import Caller
from serving.lib.guards import requires_admin, requires_swarm
from serving.lib.identity import get_codec, get_identity
from serving.lib.services import Services


@post("/swarms", operation_id="createSwarm", guards=[requires_admin])
async def create_swarm(services: Services, data: SwarmCreate) -> Swarm:
    """Create a swarm with its granted tables (``database.schema.table`` keys)."""
    return await anyio.to_thread.run_sync(store.create_swarm, services.control_url, data)


@get("/swarms", operation_id="listSwarms", guards=[requires_admin])
async def list_swarms(services: Services) -> list[Swarm]:
    """All swarms with their grants."""
    return await anyio.to_thread.run_sync(store.list_swarms, services.control_url)


@get("/swarms/{swarm_id:str}", operation_id="getSwarm", guards=[requires_admin])
async def get_swarm(services: Services, swarm_id: str) -> Swarm:
    """One swarm."""
    return await anyio.to_thread.run_sync(store.get_swarm, services.control_url, swarm_id)


@patch("/swarms/{swarm_id:str}", operation_id="updateSwarm", guards=[requires_admin])
async def update_swarm(services: Services, swarm_id: str, data: SwarmUpdate) -> Swarm:
    """Change a swarm; new grants apply to its swarm and agent tokens on their next request."""
    swarm = await anyio.to_thread.run_sync(store.update_swarm, services.control_url, swarm_id, data)
    get_identity(services).invalidate()
    return swarm


@delete("/swarms/{swarm_id:str}", operation_id="deleteSwarm", status_code=200, guards=[requires_admin])
async def delete_swarm(services: Services, swarm_id: str) -> SwarmDeleted:
    """Delete a swarm: revoke all its tokens and cancel its running query jobs at once.

    Its query results expire now; its artifacts stay readable by the admin only, for
    ``DELETED_SWARM_ARTIFACT_GRACE_S``, and are then deleted by housekeeping.
    """
    grace = services.settings.artifacts.deleted_swarm_grace_s
    deleted = await anyio.to_thread.run_sync(
        lambda: store.delete_swarm(services.control_url, swarm_id, artifact_grace_s=grace))
    get_identity(services).invalidate()
    return deleted


@post("/tokens", operation_id="createToken", guards=[requires_admin])
async def create_token(services: Services, data: TokenCreate) -> TokenCreated:
    """Mint a swarm or agent token. The token is in this answer only; keep it."""

    def mint() -> TokenCreated:
        return store.mint_token(services.control_url, get_codec(services), kind=data.type, swarm_id=data.swarm_id,
                                name=data.name, expires_in=data.expires_in, allowed_tables=data.allowed_tables,
                                default_ttl_s=services.settings.auth.default_token_ttl_s)

    return await anyio.to_thread.run_sync(mint)


@get("/tokens", operation_id="listTokens", guards=[requires_admin])
async def list_tokens(
    *, services: Services,
    swarm_id: str | None = None,
    token_type: str | None = Parameter(query="type", default=None, description="swarm or agent"),
    include_revoked: bool = False,
    limit: int = Parameter(default=100, ge=1, le=1000),
    offset: int = Parameter(default=0, ge=0),
) -> list[Token]:
    """Issued tokens (never the tokens themselves), newest first."""

    def run() -> list[Token]:
        return store.list_tokens(services.control_url, swarm_id=swarm_id, kind=token_type,
                                 include_revoked=include_revoked, limit=limit, offset=offset)

    return await anyio.to_thread.run_sync(run)


@delete("/tokens/{token_id:str}", operation_id="revokeToken", status_code=200, guards=[requires_admin])
async def revoke_token(services: Services, token_id: str) -> TokenRevoked:
    """Revoke a token; revoking a swarm token also revokes the agent tokens it minted."""
    revoked = await anyio.to_thread.run_sync(store.revoke_token, services.control_url, token_id)
    get_identity(services).invalidate()
    return TokenRevoked(token_id=token_id, revoked=revoked)


async def _budget(services: Services, subject_type: str, subject_id: str) -> Budget:
    await anyio.to_thread.run_sync(get_budgets(services).writer.flush)  # this process's rows and bytes, counted
    return await anyio.to_thread.run_sync(budget_store.get_budget, services.control_url, subject_type, subject_id)


async def _set_budget(services: Services, subject_type: str, subject_id: str, data: BudgetSet) -> Budget:
    await anyio.to_thread.run_sync(budget_store.set_budget, services.control_url, subject_type, subject_id, data)
    get_budgets(services).invalidate()
    return await _budget(services, subject_type, subject_id)


@get("/swarms/{swarm_id:str}/budget", operation_id="getSwarmBudget", guards=[requires_admin])
async def get_swarm_budget(services: Services, swarm_id: str) -> Budget:
    """A swarm's budget (all its tokens together) and what it used in the current day and hour."""
    return await _budget(services, "swarm", swarm_id)


@put("/swarms/{swarm_id:str}/budget", operation_id="setSwarmBudget", guards=[requires_admin])
async def set_swarm_budget(services: Services, swarm_id: str, data: BudgetSet) -> Budget:
    """Set a swarm's budget: queries, rows and bytes returned per UTC day, refreshes per hour (null: unlimited).

    Past it every token of the swarm gets 429 (``query_budget``, ``row_budget``, ``byte_budget``,
    ``refresh_budget``) with ``Retry-After`` until the window resets.
    """
    return await _set_budget(services, "swarm", swarm_id, data)


@get("/tokens/{token_id:str}/budget", operation_id="getAgentBudget", guards=[requires_admin])
async def get_agent_budget(services: Services, token_id: str) -> Budget:
    """An agent token's budget and what it used in the current day and hour."""
    return await _budget(services, "agent", token_id)


@put("/tokens/{token_id:str}/budget", operation_id="setAgentBudget", guards=[requires_admin])
async def set_agent_budget(services: Services, token_id: str, data: BudgetSet) -> Budget:
    """Set an agent token's own budget (within its swarm's): the same fields as a swarm's (null: unlimited)."""
    return await _set_budget(services, "agent", token_id, data)


@get("/audit", operation_id="listAudit", guards=[requires_admin])
async def list_audit(
    *, services: Services,
    swarm_id: str | None = None,
    token_id: str | None = Parameter(default=None, description="agent or swarm token id"),
    caller_type: str | None = None,
    table: str | None = Parameter(default=None, description="table key read by the request"),
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    status: str | None = Parameter(default=None, description="status code (404) or class (4xx)"),
    limit: int = Parameter(default=100, ge=1, le=1000),
    cursor: int | None = Parameter(default=None, description="next_cursor of the previous page"),
    request_id: str | None = Parameter(default=None, max_length=128, description="the request's X-Request-ID"),
    run_id: str | None = Parameter(default=None, max_length=64, description="a Dagster run or backfill id the "
                                                                           "request started"),
) -> AuditPage:
    """The audit log, newest first, filtered by swarm, token, table, time range, status, request id or
    the Dagster run a request started."""

    def run() -> AuditPage:
        return audit_query.query_audit(services.control_url, swarm_id=swarm_id, token_id=token_id,
                                       caller_type=caller_type, table=table, since=since, until=until,
                                       status=status, limit=limit, cursor=cursor, request_id=request_id,
                                       run_id=run_id)

    return await anyio.to_thread.run_sync(run)


@post("/agents/tokens", operation_id="mintAgentToken", guards=[requires_swarm])
async def mint_agent_token(caller: Caller, services: Services, data: AgentTokenCreate) -> TokenCreated:
    """A swarm token mints an agent token for its own swarm (a subset of its grants, never outliving it)."""
    swarm_id, parent_id = caller.swarm_id or "", caller.token_id or ""

    def mint() -> TokenCreated:
        parent_expiry = store.token_expiry(services.control_url, parent_id)
        return store.mint_token(services.control_url, get_codec(services), kind="agent", swarm_id=swarm_id,
                                name=data.name, expires_in=data.expires_in, allowed_tables=data.allowed_tables,
                                default_ttl_s=services.settings.auth.default_token_ttl_s, parent_id=parent_id,
                                not_after=parent_expiry, max_minted=services.settings.auth.swarm_max_agent_tokens)

    return await anyio.to_thread.run_sync(mint)


admin_router = Router(path="/api/v1/admin", tags=["admin"],
                      route_handlers=[create_swarm, list_swarms, get_swarm, update_swarm, delete_swarm,
                                      create_token, list_tokens, revoke_token, list_audit, get_swarm_budget,
                                      set_swarm_budget, get_agent_budget, set_agent_budget])
policies_router = Router(path="/api/v1/admin", tags=["admin: data protection"], route_handlers=policies.ROUTES)
swarm_router = Router(path="/api/v1/swarm", tags=["swarm"], route_handlers=[mint_agent_token])

ROUTES: list[Any] = [admin_router, policies_router, swarm_router]
