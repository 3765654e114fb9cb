"""request ids: audit rows and sync jobs name the API request, audit rows the Dagster run

An operator finds a request's audit row, the sync job it started and the Dagster run by
one id. Adds ``audit_log.request_id`` and ``audit_log.run_id``, ``sync_requests.request_id``
(all nullable: rows written before have none), and ``housekeeping_totals`` (running totals
of housekeeping deletions, which the API's metrics read).

Revision ID: 0005_request_ids
Revises: 0007_agent_interfaces
Create Date: 2026-12-06 03:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_request_ids"
down_revision: str | None = "0007_agent_interfaces"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("audit_log") as batch:
        batch.add_column(sa.Column("request_id", sa.String(128), nullable=True))
        batch.add_column(sa.Column("run_id", sa.String(255), nullable=True))
    op.create_index("ix_audit_log_request_id", "audit_log", ["request_id"])
    op.create_index("ix_audit_log_run_id", "audit_log", ["run_id"])
    with op.batch_alter_table("sync_requests") as batch:
        batch.add_column(sa.Column("request_id", sa.String(128), nullable=True))
    op.create_index("ix_sync_requests_request_id", "sync_requests", ["request_id"])
    op.create_table(
        "housekeeping_totals",
        sa.Column("job", sa.String(64), primary_key=True),
        sa.Column("what", sa.String(64), primary_key=True),
        sa.Column("total", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("housekeeping_totals")
    op.drop_index("ix_sync_requests_request_id", table_name="sync_requests")
    with op.batch_alter_table("sync_requests") as batch:
        batch.drop_column("request_id")
    op.drop_index("ix_audit_log_run_id", table_name="audit_log")
    op.drop_index("ix_audit_log_request_id", table_name="audit_log")
    with op.batch_alter_table("audit_log") as batch:
        batch.drop_column("run_id")
        batch.drop_column("request_id")
