"""Per-swarm write locks in the control database, for count-then-write decisions.

Why: a cap that counts rows and then inserts one (live minted tokens, stored bytes) is
passed by every writer that counted before another inserted. A transaction that first
takes its swarm's lock makes writers of one swarm count and write one after another, on
every worker and replica, while other swarms go on.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session

from shared.control.models import SwarmRow


def lock_swarm(s: Session, swarm_id: str) -> None:
    """Hold ``swarm_id``'s write lock until ``s``'s transaction ends. Call it first in the transaction.

    A no-op UPDATE is the lock both control databases take: PostgreSQL locks the swarm's row
    (a second writer waits, then reads what the first committed), and SQLite takes its one
    write lock before the transaction reads anything. The values written are the row's own,
    ``updated_at`` included (its ``onupdate`` would otherwise move it)."""
    s.execute(sa.update(SwarmRow).where(SwarmRow.id == swarm_id)
              .values(name=SwarmRow.name, updated_at=SwarmRow.updated_at))
