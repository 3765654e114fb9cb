"""Who is calling: the one identity type every handler and guard sees.

Why: grants are checked on every request in one place. ``grants`` is the set of table
keys (``database.schema.table``) the caller may read: the swarm's grants for a swarm
token, the intersection with ``allowed_tables`` for an agent token, ``ALL`` for admin.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

CallerKind = Literal["admin", "swarm", "agent"]


@dataclasses.dataclass(frozen=True)
class Caller:
    kind: CallerKind
    subject: str  # admin user name, or the token's name
    token_id: str | None = None  # jti of a swarm/agent token
    swarm_id: str | None = None
    grants: frozenset[str] = frozenset()

    @property
    def is_admin(self) -> bool:
        return self.kind == "admin"

    def may_read(self, table_key: str) -> bool:
        return self.is_admin or table_key.lower() in self.grants
