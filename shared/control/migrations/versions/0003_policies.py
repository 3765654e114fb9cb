"""column and row policies on grants, unmask grants, classification overrides

Revision ID: 0003_policies
Revises: 0002_lifecycle
Create Date: 2026-12-06 03:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_policies"
down_revision: str | None = "0002_lifecycle"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "grant_policies",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("swarm_id", sa.String(length=64), nullable=False),
        sa.Column("token_id", sa.String(length=64), nullable=False),
        sa.Column("table_key", sa.String(length=400), nullable=False),
        sa.Column("exclude", sa.JSON(), nullable=False),
        sa.Column("masks", sa.JSON(), nullable=False),
        sa.Column("row_filter", sa.Text(), nullable=True),
        sa.Column("updated_by", sa.String(length=255), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_grant_policies_swarm_id", "grant_policies", ["swarm_id"])
    op.create_index("uq_grant_policies_scope", "grant_policies", ["swarm_id", "token_id", "table_key"], unique=True)
    op.create_table(
        "column_unmasks",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("swarm_id", sa.String(length=64), nullable=False),
        sa.Column("table_key", sa.String(length=400), nullable=False),
        sa.Column("column_name", sa.String(length=255), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("granted_by", sa.String(length=255), nullable=False),
        sa.Column("granted_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_column_unmasks_swarm_id", "column_unmasks", ["swarm_id"])
    op.create_index("uq_column_unmasks", "column_unmasks", ["swarm_id", "table_key", "column_name"], unique=True)
    op.create_table(
        "column_overrides",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("table_key", sa.String(length=400), nullable=False),
        sa.Column("column_name", sa.String(length=255), nullable=False),
        sa.Column("personal", sa.Boolean(), nullable=False),
        sa.Column("category", sa.String(length=32), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("updated_by", sa.String(length=255), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_column_overrides_table_key", "column_overrides", ["table_key"])
    op.create_index("uq_column_overrides", "column_overrides", ["table_key", "column_name"], unique=True)


def downgrade() -> None:
    op.drop_table("column_overrides")
    op.drop_table("column_unmasks")
    op.drop_table("grant_policies")
