"""Minting at the same moment: the swarm-wide cap on agent tokens holds under concurrent mints.

Each mint counts the swarm's live minted tokens and then inserts its own. Without one lock
per swarm, mints running together all count the same total and all insert, so the cap is
passed by as many as ran at once. Run on SQLite and PostgreSQL, the two control databases.
"""

from __future__ import annotations

import threading

import sqlalchemy as sa

from serving.admin import store
from serving.admin.schemas import Swarm, SwarmCreate, TokenCreated
from serving.lib.errors import Conflict
from serving.lib.tokens import TokenCodec
from shared.control.db import migrate, session_scope
from shared.control.models import TokenRow

CAP = 3
MINTERS = 12


CODEC = TokenCodec(secret="m" * 48, audience="agents-data", issuer="agents-data")


def _swarm_and_minter(url: str, name: str) -> tuple[Swarm, TokenCreated]:
    """A new swarm on a migrated control database, and a swarm token of it (the minter)."""
    migrate(url)
    swarm = store.create_swarm(url, SwarmCreate(name=name))
    return swarm, store.mint_token(url, CODEC, kind="swarm", swarm_id=swarm.id, name="minter", expires_in=None,
                                   allowed_tables=None, default_ttl_s=3600)


def test_concurrent_mints_never_pass_the_swarm_cap(control_url: str) -> None:
    swarm, parent = _swarm_and_minter(control_url, "racing")
    start = threading.Barrier(MINTERS)
    minted: list[str] = []
    refused: list[str] = []
    failed: list[BaseException] = []
    lock = threading.Lock()

    def mint(i: int) -> None:
        start.wait()
        try:
            got = store.mint_token(control_url, CODEC, kind="agent", swarm_id=swarm.id, name=f"agent-{i}",
                                   expires_in=None, allowed_tables=None, default_ttl_s=3600,
                                   parent_id=parent.token_id, max_minted=CAP)
            with lock:
                minted.append(got.token_id)
        except Conflict as e:
            with lock:
                refused.append(e.rule or "")
        except BaseException as e:
            with lock:
                failed.append(e)

    threads = [threading.Thread(target=mint, args=(i,)) for i in range(MINTERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not failed, failed
    assert len(minted) == CAP, (len(minted), len(refused))
    assert refused == ["token_limit"] * (MINTERS - CAP)
    with session_scope(control_url) as s:
        live = s.scalar(sa.select(sa.func.count()).select_from(TokenRow).where(
            TokenRow.swarm_id == swarm.id, TokenRow.parent_id == parent.token_id))
    assert live == CAP


def test_the_mint_lock_changes_nothing_on_the_swarm(sqlite_url: str) -> None:
    swarm, parent = _swarm_and_minter(sqlite_url, "still")
    before = store.get_swarm(sqlite_url, swarm.id)
    store.mint_token(sqlite_url, CODEC, kind="agent", swarm_id=swarm.id, name="one", expires_in=None,
                     allowed_tables=None, default_ttl_s=3600, parent_id=parent.token_id, max_minted=CAP)
    assert store.get_swarm(sqlite_url, swarm.id) == before
