"""Capability checks: plain functions a handler calls with its ``caller``.

Why plain functions, not Litestar guards: the handler already has the resolved
``Caller`` (one token verification per request), the check reads as the first line of
the handler, and features can combine them without a framework hook.
"""

from __future__ import annotations

from serving.lib.caller import Caller
from serving.lib.errors import Forbidden


def requires_admin(caller: Caller) -> Caller:
    """Admin only (swarm and agent tokens are refused)."""
    if not caller.is_admin:
        raise Forbidden(f"this endpoint needs an admin token; a {caller.kind} token was given", rule="requires_admin")
    return caller


def requires_swarm(caller: Caller) -> Caller:
    """A swarm token (for example to mint agent tokens of its own swarm)."""
    if caller.kind != "swarm":
        raise Forbidden(f"this endpoint needs a swarm token; a {caller.kind} token was given", rule="requires_swarm")
    return caller


def requires_agent(caller: Caller) -> Caller:
    """An agent token (work that is owned by one agent, such as query jobs)."""
    if caller.kind != "agent":
        raise Forbidden(f"this endpoint needs an agent token; a {caller.kind} token was given", rule="requires_agent")
    return caller
