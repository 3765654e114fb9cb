"""budgets per swarm and agent, and their shared usage counters

``budgets`` holds what the admin set (null: unlimited); ``budget_usage`` one counter per
subject, kind and fixed window, upserted atomically by every API worker and replica.

Revision ID: 0004_budgets
Revises: 0002_lifecycle
Create Date: 2026-12-06 03:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_budgets"
down_revision: str | None = "0003_policies"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "budgets",
        sa.Column("subject", sa.String(80), primary_key=True),
        sa.Column("queries_per_day", sa.BigInteger(), nullable=True),
        sa.Column("rows_per_day", sa.BigInteger(), nullable=True),
        sa.Column("bytes_per_day", sa.BigInteger(), nullable=True),
        sa.Column("refreshes_per_hour", sa.BigInteger(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "budget_usage",
        sa.Column("subject", sa.String(80), primary_key=True),
        sa.Column("kind", sa.String(16), primary_key=True),
        sa.Column("window_start", sa.BigInteger(), primary_key=True),
        sa.Column("used", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_budget_usage_window", "budget_usage", ["window_start"])


def downgrade() -> None:
    op.drop_index("ix_budget_usage_window", table_name="budget_usage")
    op.drop_table("budget_usage")
    op.drop_table("budgets")
