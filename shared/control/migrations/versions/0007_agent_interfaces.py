"""audit rows record the transport; query jobs keep their cut and provenance

A call made through the MCP server at ``/mcp`` runs the same REST route as a direct call;
``audit_log.transport`` (``rest`` or ``mcp``) tells them apart in the audit trail. Rows
written before this revision are REST calls. ``query_jobs.provenance`` keeps what cut a
result (``cut_by``, ``limit``), its continuation, schema changes and source watermarks.

Revision ID: 0007_agent_interfaces
Revises: 0002_lifecycle
Create Date: 2026-12-06 03:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_agent_interfaces"
down_revision: str | None = "0003_policies"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("audit_log") as batch:
        batch.add_column(sa.Column("transport", sa.String(8), nullable=False, server_default="rest"))
    with op.batch_alter_table("query_jobs") as batch:
        batch.add_column(sa.Column("provenance", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("query_jobs") as batch:
        batch.drop_column("provenance")
    with op.batch_alter_table("audit_log") as batch:
        batch.drop_column("transport")
