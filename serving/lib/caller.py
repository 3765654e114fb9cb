"""Who is calling: the one identity type every handler and guard sees.

Why: grants are checked on every request in one place. ``grants`` is the set of table
keys (``database.schema.table``) the caller may read: the swarm's grants for a swarm
token, the intersection with ``allowed_tables`` for an agent token, ``ALL`` for admin.
``policy`` holds the column and row rules of those grants (``shared/policies.py``); it is
loaded with the token's record, so it changes when the grants do. A swarm or agent caller
without one reads under the defaults (personal columns masked), never raw.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

from shared.policies import PolicySet

CallerKind = Literal["admin", "swarm", "agent"]


@dataclasses.dataclass(frozen=True)
class Caller:
    kind: CallerKind
    subject: str  # admin user name, or the token's name
    token_id: str | None = None  # jti of a swarm/agent token
    swarm_id: str | None = None
    grants: frozenset[str] = frozenset()
    policy: PolicySet | None = dataclasses.field(default=None, compare=False, hash=False)

    def policy_set(self) -> PolicySet | None:
        """The rules this caller reads under; None only for the admin (raw data)."""
        if self.is_admin:
            return None
        return self.policy if self.policy is not None else PolicySet(self.swarm_id or "")

    @property
    def is_admin(self) -> bool:
        return self.kind == "admin"

    def may_read(self, table_key: str) -> bool:
        return self.is_admin or table_key.lower() in self.grants
